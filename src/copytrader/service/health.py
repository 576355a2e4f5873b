"""`python -m copytrader.service.health`: exit 0 if a daemon wrote its heartbeat file recently.

For Docker's HEALTHCHECK (and any host that runs a command to ask "alive?"); Railway ignores it.
It looks in the data folder and in paper mode's `paper/` inside it, and calls a heartbeat older
than three intervals stale. A daemon that is up but resting (MASTER cannot be used: a wrong key,
a missing permission) is reported unhealthy with the reason its heartbeat gives: it is alive,
but copies nothing until the operator acts. (Docker only shows the state; it restarts nothing.)
"""

from __future__ import annotations

import sys

from copytrader.config.settings import load_local_settings
from copytrader.errors import ConfigError
from copytrader.service.lifecycle import (
    HEALTHY_BEATS,
    HEARTBEAT_INTERVAL_S,
    PAPER_SUBDIR,
    heartbeat_age_s,
    heartbeat_resting_reason,
)


def main() -> int:
    try:
        data_dir = load_local_settings().data_dir
    except ConfigError as error:
        sys.stdout.write(f"unhealthy: {error}\n")
        return 1
    max_age = HEARTBEAT_INTERVAL_S * HEALTHY_BEATS
    ages = {
        folder: age
        for folder in (data_dir, data_dir / PAPER_SUBDIR)
        if (age := heartbeat_age_s(folder)) is not None
    }
    if not ages:
        sys.stdout.write(f"unhealthy: no heartbeat file in {data_dir}\n")
        return 1
    folder, age = min(ages.items(), key=lambda item: item[1])
    if age > max_age:
        sys.stdout.write(f"unhealthy: last heartbeat in {folder} is {age:.0f} s old\n")
        return 1
    resting = heartbeat_resting_reason(folder)
    if resting is not None:
        # Up, but copying nothing until the operator fixes this: say so (`docker ps` shows it).
        # Docker never restarts a container for being unhealthy, and a restart would not help.
        sys.stdout.write(f"unhealthy: running but resting, copying nothing: {resting}\n")
        return 1
    sys.stdout.write(f"healthy: heartbeat in {folder} is {age:.0f} s old\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
