#!/usr/bin/env bash
# Format check, lint and type-check: ./scripts/check.sh  (./scripts/check.sh --fix to format)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_env "[dev]"
if [ "${1:-}" = "--fix" ]; then
  .venv/bin/ruff format .
  .venv/bin/ruff check --fix .
fi
.venv/bin/ruff format --check .
.venv/bin/ruff check .
.venv/bin/mypy
