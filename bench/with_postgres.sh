#!/usr/bin/env bash
# Run the benchmarks against a throwaway PostgreSQL server started for this run only:
#   bench/with_postgres.sh [bench.run arguments ...]
# The server listens on 127.0.0.1 only, keeps its data in a temporary directory and is stopped
# (and the directory removed) on exit. PostgreSQL refuses to run as root, so root runs it as
# `nobody`. Commits are not flushed synchronously (synchronous_commit=off), like SQLite's WAL with
# synchronous=NORMAL that Hearth uses; fsync stays on.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PG_BIN="${PG_BIN:-$(dirname "$(command -v pg_ctl || ls /usr/lib/postgresql/*/bin/pg_ctl | tail -n1)")}"
PG_DIR=""
PG_AS=(env)

stop() {
    if [ -n "$PG_DIR" ] && [ -d "$PG_DIR" ]; then
        if [ -f "$PG_DIR/data/postmaster.pid" ]; then
            "${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true
        fi
        rm -rf "$PG_DIR"
    fi
}
trap stop EXIT

if [ "$(id -u)" -eq 0 ]; then
    PG_DIR="$(mktemp -d /tmp/hearth-bench-pg.XXXXXX)"
    PG_AS=(runuser -u nobody --)
else
    PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/hearth-bench-pg.XXXXXX")"
fi
mkdir "$PG_DIR/data" "$PG_DIR/socket"
[ "$(id -u)" -eq 0 ] && chown -R nobody "$PG_DIR"
"${PG_AS[@]}" "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth=trust --encoding=UTF8 \
    --no-locale >"$PG_DIR/initdb.log" 2>&1 || { cat "$PG_DIR/initdb.log" >&2; exit 1; }
PORT="$("$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
"${PG_AS[@]}" "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-p $PORT -k $PG_DIR/socket -c listen_addresses=127.0.0.1 -c synchronous_commit=off -c shared_buffers=256MB -c max_connections=100" \
    start >/dev/null || { cat "$PG_DIR/server.log" >&2; exit 1; }
echo "==> PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') on 127.0.0.1:$PORT" >&2
cd "$ROOT"
"$PYTHON" -m bench.run --postgres-url "postgresql+psycopg://postgres@127.0.0.1:$PORT/postgres" "$@"
