#!/usr/bin/env bash
# Run every check Hearth has: ruff, mypy, the test suite on SQLite, then again on a throwaway
# PostgreSQL server. Extra arguments go to both pytest runs (e.g. ./scripts/test.sh -k consent).
# Every step runs even when an earlier one fails; the exit status is non-zero if any failed.
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

STARTED=$SECONDS
FAILED=()
PASSED=()
PG_BIN=""
PG_DIR=""
PG_CTL=""
PG_AS=()
PG_URL=""

cleanup() {
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        if [ -f "$PG_DIR/data/postmaster.pid" ]; then
            "${PG_AS[@]}" "$PG_CTL" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$PG_DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Run one named step, recording whether it passed instead of stopping the script.
step() {
    local name=$1 began=$SECONDS status=0
    shift
    printf '\n==> %s: %s\n' "$name" "$*" >&2
    "$@" || status=$?
    if [ "$status" -eq 0 ]; then
        PASSED+=("$name")
        printf '==> %s passed (%ss)\n' "$name" "$((SECONDS - began))" >&2
    else
        FAILED+=("$name")
        printf '==> %s FAILED with exit status %s (%ss)\n' "$name" "$status" "$((SECONDS - began))" >&2
    fi
}

free_port() {
    "$VENV/bin/python" -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# Start a PostgreSQL server in a temporary directory, loopback only, tuned for throwaway data,
# and set PG_URL to its admin URL. PostgreSQL refuses to run as root, so root runs it as `nobody`.
# Called where `set -e` does not apply (inside `step`), hence the explicit `|| return 1`.
start_postgres() {
    local bin=$PG_BIN port
    [ -n "$bin" ] || { printf 'error: no PostgreSQL server to test against\n' >&2; return 1; }
    PG_CTL="$bin/pg_ctl"
    if [ "$(id -u)" -eq 0 ]; then
        # /tmp, not $TMPDIR: `nobody` must be able to reach the directory.
        PG_DIR="$(mktemp -d /tmp/hearth-pg.XXXXXX)" || return 1
        PG_AS=(runuser -u nobody --)
    else
        PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hearth-pg.XXXXXX")" || return 1
        PG_AS=(env)
    fi
    mkdir "$PG_DIR/data" "$PG_DIR/socket" || return 1
    if [ "$(id -u)" -eq 0 ]; then
        chown -R nobody "$PG_DIR" || return 1
    fi
    "${PG_AS[@]}" "$bin/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --no-sync \
        --encoding=UTF8 --no-locale >"$PG_DIR/initdb.log" 2>&1 \
        || { cat "$PG_DIR/initdb.log" >&2; return 1; }
    port="$(free_port)" || return 1
    "${PG_AS[@]}" "$PG_CTL" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-p $port -k $PG_DIR/socket -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c synchronous_commit=off" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
    PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    log "PostgreSQL $("$bin/postgres" --version | awk '{print $3}') at $PG_URL (data in $PG_DIR)"
}

pytest_postgres() {
    start_postgres || return 1
    HEARTH_TEST_POSTGRES_URL="$PG_URL" \
        python -m pytest -n 2 -p no:cacheprovider -m "not live" "$@"
}

# Print the arguments separated by ", " (or "none").
join() {
    local IFS=,
    local joined="$*"
    printf '%s' "${joined:-none}" | sed 's/,/, /g'
}

ensure_venv
ensure_test_services
# A failed PostgreSQL install fails only the PostgreSQL pass; everything else still runs.
PG_BIN="$(postgres_bin)" || PG_BIN=""
cd "$ROOT"
export PATH="$VENV/bin:$PATH"
unset HEARTH_TEST_POSTGRES_URL

step "ruff check" ruff check .
step "ruff format" ruff format --check .
step "mypy" mypy
step "pytest (SQLite)" python -m pytest -n 2 -p no:cacheprovider "$@"
step "pytest (PostgreSQL)" pytest_postgres "$@"

elapsed=$((SECONDS - STARTED))
if [ "${#FAILED[@]}" -eq 0 ]; then
    printf '\nverdict: PASS: %s in %ss\n' "$(join "${PASSED[@]}")" "$elapsed"
    exit 0
fi
printf '\nverdict: FAIL: %s (passed: %s) in %ss\n' \
    "$(join "${FAILED[@]}")" "$(join "${PASSED[@]}")" "$elapsed"
exit 1
