#!/usr/bin/env bash
# Runs the test suite (it starts its own embedded broker): ./scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_env "[dev]"
exec .venv/bin/python -m pytest "$@"
