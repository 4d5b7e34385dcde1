#!/usr/bin/env bash
# Run Hearth on this machine: API on http://localhost:8000, frontend on http://localhost:3000,
# SQLite under instance/ (or DATABASE_URL), with demo data. Environment variables pass through.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ensure_venv
cd "$ROOT"
export PATH="$VENV/bin:$PATH"

hearth db upgrade
log "demo data"
hearth demo
log "stop with Ctrl-C"
exec hearth serve --api-port 8000 --web-port 3000
