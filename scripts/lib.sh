# Shared set-up for scripts/run.sh and scripts/test.sh; sourced, never run on its own.
#
# Everything the project needs on a fresh machine is installed from here: the virtual environment
# (.venv in the repo), the project with its test extras, Debian's Chromium and PostgreSQL server.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
STAMP="$VENV/.hearth-install-stamp"
PYTHON="${PYTHON:-python3}"
_APT_UPDATED=0

log() {
    printf '==> %s\n' "$*" >&2
}

die() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# Run a command as root: directly when we are root, else through sudo when it is there.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        die "'$*' needs root and sudo is not installed; install it as root or run this script as root"
    fi
}

apt_install() {
    command -v apt-get >/dev/null 2>&1 \
        || die "apt-get not found: install these Debian packages by other means: $*"
    if [ "$_APT_UPDATED" -eq 0 ]; then
        log "apt-get update"
        as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
        _APT_UPDATED=1
    fi
    log "apt-get install $*"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@"
}

# Create .venv and install the project with its test extras; skipped while pyproject.toml is
# unchanged since the last successful install (the stamp holds its hash).
ensure_venv() {
    if [ -x "$VENV/bin/python" ] && ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
        log "removing broken virtual environment $VENV"
        rm -rf "$VENV"
    fi
    if [ ! -x "$VENV/bin/python" ]; then
        "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
            || die "Hearth needs Python 3.11 or newer as '$PYTHON' (set PYTHON=/path/to/python3.11)"
        log "creating virtual environment $VENV"
        "$PYTHON" -m venv "$VENV"
    fi
    local want
    want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
    if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ]; then
        return
    fi
    log "installing Hearth and its test tools into $VENV"
    (cd "$ROOT" && "$VENV/bin/python" -m pip install --disable-pip-version-check -q -e '.[test]')
    printf '%s\n' "$want" >"$STAMP"
}

# Debian's Chromium for the browser tests and redis-server for the shared rate-limit tests.
ensure_test_services() {
    local missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    [ -x /usr/bin/redis-server ] || missing+=(redis-server)
    if [ "${#missing[@]}" -gt 0 ]; then
        apt_install "${missing[@]}"
    fi
    [ -x /usr/bin/chromium ] || die "Debian's chromium package did not provide /usr/bin/chromium"
    [ -x /usr/bin/redis-server ] || die "Debian's redis-server package did not provide /usr/bin/redis-server"
}

# Print the newest PostgreSQL server bin directory, installing Debian's server when none is there.
postgres_bin() {
    local initdb
    initdb="$(find_initdb)"
    if [ -z "$initdb" ]; then
        apt_install postgresql >&2
        initdb="$(find_initdb)"
    fi
    [ -n "$initdb" ] || die "no initdb under /usr/lib/postgresql/*/bin after installing postgresql"
    dirname "$initdb"
}

find_initdb() {
    local candidate
    for candidate in /usr/lib/postgresql/*/bin/initdb; do
        if [ -x "$candidate" ]; then printf '%s\n' "$candidate"; fi
    done | sort -V | tail -n 1
}
