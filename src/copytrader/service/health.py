"""`python -m copytrader.service.health`: exit 0 only while the daemon is copying.

The Docker HEALTHCHECK's command, and any host's that runs a command to ask "healthy?". The
answer is the one rule of `status_verdict` (MASTER usable and its orders read recently, at
least one user ready, the kill switch off, not starting or stopping), read one of two ways:

- a status port is configured (`PORT` or `COPYTRADER_STATUS_PORT`): it asks the daemon's
  `/healthz` on this machine, the same answer Railway's deploy healthcheck gets;
- no port: it reads `health.json`, which the daemon rewrites every few seconds in its data
  folder (or paper mode's `paper/` inside it), and decides from the facts in it; a file that
  stopped changing means the daemon is dead or hung. With no `health.json` at all it falls back
  to the heartbeat file (alive, and not resting).

It prints one line (`healthy: ...` / `unhealthy: ...`), which `docker inspect` shows. Docker
only shows the state; it restarts nothing, and a restart would not fix what makes a daemon
stop copying (a key, a lockout, a kill switch).
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from pathlib import Path

from copytrader.config.settings import load_local_settings
from copytrader.config.types import StatusSettings
from copytrader.errors import ConfigError
from copytrader.service.lifecycle import (
    HEALTHY_BEATS,
    HEARTBEAT_INTERVAL_S,
    PAPER_SUBDIR,
    heartbeat_age_s,
    heartbeat_resting_reason,
)
from copytrader.service.status_verdict import HEALTH_FILE_NAME, read_health_file

HTTP_TIMEOUT_S = 5.0


def main() -> int:
    try:
        settings = load_local_settings()
    except ConfigError as error:
        sys.stdout.write(f"unhealthy: {error}\n")
        return 1
    if settings.status.port:
        return _ask_healthz(settings.status)
    return _from_files(settings.data_dir)


def _ask_healthz(status: StatusSettings) -> int:
    host = "127.0.0.1" if status.host in ("0.0.0.0", "") else status.host  # noqa: S104
    url = f"http://{host}:{status.port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as reply:
            body = reply.read().decode("utf-8", "replace").strip()
            sys.stdout.write(f"healthy: {body}\n")
            return 0
    except urllib.error.HTTPError as error:
        body = error.read().decode("utf-8", "replace").strip()
        sys.stdout.write(f"unhealthy: {body or error.reason}\n")
        return 1
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        sys.stdout.write(f"unhealthy: no answer from {url} ({reason}): the daemon is not up\n")
        return 1


def _from_files(data_dir: Path) -> int:
    folders = (data_dir, data_dir / PAPER_SUBDIR)
    health_files = [f for f in folders if (f / HEALTH_FILE_NAME).is_file()]
    if health_files:
        newest = max(health_files, key=lambda f: (f / HEALTH_FILE_NAME).stat().st_mtime)
        verdict = read_health_file(newest)
        if verdict is None:
            sys.stdout.write(f"unhealthy: {newest / HEALTH_FILE_NAME} cannot be read\n")
            return 1
        word = "healthy" if verdict.healthy else "unhealthy"
        sys.stdout.write(f"{word}: {verdict.state.value}: {verdict.reason}\n")
        return 0 if verdict.healthy else 1
    return _from_heartbeat(data_dir, folders)


def _from_heartbeat(data_dir: Path, folders: tuple[Path, ...]) -> int:
    max_age = HEARTBEAT_INTERVAL_S * HEALTHY_BEATS
    ages = {folder: age for folder in folders if (age := heartbeat_age_s(folder)) is not None}
    if not ages:
        sys.stdout.write(f"unhealthy: no health or heartbeat file in {data_dir}\n")
        return 1
    folder, age = min(ages.items(), key=lambda item: item[1])
    if age > max_age:
        sys.stdout.write(f"unhealthy: last heartbeat in {folder} is {age:.0f} s old\n")
        return 1
    resting = heartbeat_resting_reason(folder)
    if resting is not None:
        sys.stdout.write(f"unhealthy: running but resting, copying nothing: {resting}\n")
        return 1
    sys.stdout.write(f"healthy: heartbeat in {folder} is {age:.0f} s old\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
