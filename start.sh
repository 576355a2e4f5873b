#!/usr/bin/env bash
# Start kraken-copytrader.
#
#   ./start.sh                            the daemon: `copytrader run`
#   ./start.sh --paper [--duration N]     paper mode: simulator + demo trader + daemon, no keys
#   ./start.sh check [--json]             any other subcommand (check, sim) is passed through
#
# On a laptop it first makes a virtual environment (.venv, or $VENV; the same one ./test.sh uses)
# and installs the project into it; later runs reuse it. In the Docker image (COPYTRADER_IMAGE=1,
# set by the Dockerfile) the package is already installed, and when started as root this script
# hands the data folder to the unprivileged user and drops to it. Either way it ends by `exec`ing
# Python, so SIGTERM from Railway, Docker or tini reaches the daemon itself, not a shell.
set -euo pipefail
cd "$(dirname "$0")"

case "${1:-}" in
    run | check | sim) ;;
    *) set -- run "$@" ;;
esac

if [ "${COPYTRADER_IMAGE:-}" = "1" ]; then
    run_uid="${COPYTRADER_RUN_UID:-}"
    if [ "$(id -u)" = "0" ] && [ -n "$run_uid" ]; then
        run_gid="${COPYTRADER_RUN_GID:-$run_uid}"
        # The same rule as copytrader.config.settings; repeated here because it must run before Python.
        data_dir="${COPYTRADER_DATA_DIR:-${RAILWAY_VOLUME_MOUNT_PATH:-data}}"
        mkdir -p "$data_dir"
        # Railway volumes and bind mounts arrive owned by root. Give the data folder to the
        # daemon's user, touching only what is not already theirs (cheap on every restart).
        find "$data_dir" \( ! -user "$run_uid" -o ! -group "$run_gid" \) \
            -exec chown -h "$run_uid:$run_gid" {} +
        exec setpriv --reuid="$run_uid" --regid="$run_gid" --clear-groups -- \
            python -u -m copytrader "$@"
    fi
    exec python -u -m copytrader "$@"
fi

find_python() {
    local candidate
    for candidate in python3.13 python3.12 python3.11 python3 python; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    return 1
}

VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    base_python="$(find_python)" || {
        echo "start.sh: Python 3.11 or newer is needed (tried python3.13 ... python)" >&2
        exit 1
    }
    echo "start.sh: first run: creating $VENV with $base_python" >&2
    "$base_python" -m venv "$VENV"
fi
PY="$VENV/bin/python"

# Installed already if ./test.sh (with test extras) or this script did so since pyproject.toml
# last changed. The install is editable, so code changes need no reinstall.
installed=false
for stamp in "$VENV/.copytrader-installed" "$VENV/.copytrader-run-installed"; do
    if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ]; then
        installed=true
    fi
done
if [ "$installed" = false ]; then
    echo "start.sh: installing kraken-copytrader into $VENV (first run only)" >&2
    "$PY" -m pip install --quiet --disable-pip-version-check -e . >&2
    touch "$VENV/.copytrader-run-installed"
fi

exec "$PY" -u -m copytrader "$@"
