"""The heartbeat says when the daemon rests (MASTER unusable) and which accounts rest (a lockout,
a bad key), in its log event and its file; the health check reads the daemon's rest from it."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

from copytrader.logs import configure_logging
from copytrader.service.lifecycle import (
    HEARTBEAT_FILE_NAME,
    Heartbeat,
    heartbeat_resting_reason,
)
from tests import secretscan
from tests.service.daemonproc import clean_environment


def beat_line(stream: io.StringIO) -> dict[str, object]:
    found: dict[str, object] = json.loads(stream.getvalue().splitlines()[-1])
    return found


def health(data_dir: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "copytrader.service.health"],
        cwd=data_dir.parent, capture_output=True, text=True, timeout=60,
        env=clean_environment({"COPYTRADER_DATA_DIR": str(data_dir)}),
    )  # fmt: skip
    secretscan.record_output("health", done.stdout + done.stderr)
    return done


def test_resting_accounts_are_named_in_the_heartbeat(tmp_path: Path) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    heartbeat = Heartbeat(tmp_path, interval_s=60)
    heartbeat.set_accounts(connected=2, total=3)
    heartbeat.watch_resting_accounts(lambda: {"ann": 287.4})
    snap = heartbeat.beat()
    assert (snap.status, snap.accounts_resting) == ("copying", {"ann": 287.4})
    line = beat_line(stream)
    assert line["accounts_resting"] == {"ann": 287.4}
    assert "resting: ann (287 s)" in str(line["message"])
    on_disk = json.loads((tmp_path / HEARTBEAT_FILE_NAME).read_text())
    assert on_disk["accounts_resting"] == {"ann": 287.4}
    assert heartbeat_resting_reason(tmp_path) is None
    assert health(tmp_path).returncode == 0  # one user resting: the daemon still copies


def test_a_resting_daemon_is_reported_by_the_heartbeat_and_the_health_check(
    tmp_path: Path,
) -> None:
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    heartbeat = Heartbeat(tmp_path, interval_s=60)
    heartbeat.set_resting("MASTER cannot be used: the key lacks Query Funds")
    heartbeat.beat()
    line = beat_line(stream)
    assert line["status"] == "resting"
    assert str(line["message"]).startswith("alive but resting, copying nothing: MASTER")
    assert heartbeat_resting_reason(tmp_path) == "MASTER cannot be used: the key lacks Query Funds"
    checked = health(tmp_path)
    assert checked.returncode == 1
    assert "resting, copying nothing: MASTER cannot be used" in checked.stdout
    heartbeat.set_resting(None)
    heartbeat.beat()
    assert beat_line(stream)["status"] == "copying"
    assert health(tmp_path).returncode == 0
