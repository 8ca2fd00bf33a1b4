#!/usr/bin/env bash
# Runs the whole product on the embedded broker: ./scripts/run.sh [triage up options]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_env.sh
ensure_env "[embedded]"
exec .venv/bin/triage up "$@"
