#!/usr/bin/env bash
# Writes deploy/requirements.lock: every runtime dependency (pyproject.toml's `dependencies`,
# not the extras) with its transitive dependencies, pinned with their hashes. The service image
# installs exactly that (deploy/Dockerfile). Run it after changing a runtime dependency.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_env "[dev]"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp pyproject.toml "$work/"
(cd "$work" && "$OLDPWD/.venv/bin/pip-compile" --quiet --generate-hashes --strip-extras \
  --allow-unsafe --no-emit-index-url --no-emit-find-links --no-header \
  --output-file requirements.lock pyproject.toml)
{
  echo "# The service image's dependencies, pinned with their hashes: written by scripts/lock.sh"
  echo "# from pyproject.toml; do not edit."
  cat "$work/requirements.lock"
} > deploy/requirements.lock
echo "wrote deploy/requirements.lock"
