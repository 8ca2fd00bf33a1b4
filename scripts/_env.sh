# Sourced by the run and test scripts: makes .venv and installs the project when needed.
# Usage: ensure_env "[embedded]" (the product on the embedded broker) or ensure_env "[dev]"
# (tests and tools; it includes the train and embedded extras).
set -euo pipefail

ensure_env() {
  local extras="$1"
  local python="${PYTHON:-}"
  if [ -z "$python" ]; then
    for candidate in python3.11 python3; do
      if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
    done
  fi
  if [ -z "$python" ] || ! "$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    echo "Python 3.11 is required (set PYTHON=/path/to/python3.11)" >&2
    exit 1
  fi
  if [ ! -x .venv/bin/python ]; then
    echo "creating .venv" >&2
    "$python" -m venv .venv
  fi
  local stamp=".venv/.installed${extras}"
  local digest
  digest=$(cat pyproject.toml | sha256sum | cut -d' ' -f1)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "installing the project into .venv (first run or dependencies changed)" >&2
    .venv/bin/python -m pip install --quiet --upgrade pip
    .venv/bin/python -m pip install --quiet -e ".${extras}"
    echo "$digest" > "$stamp"
  fi
}
