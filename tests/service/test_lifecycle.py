"""The daemon's life-cycle pieces: the data-folder lock, stop signals and the heartbeat."""

from __future__ import annotations

import io
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from copytrader.errors import DataDirLockedError
from copytrader.logs import configure_logging
from copytrader.service.lifecycle import (
    HEARTBEAT_FILE_NAME,
    Heartbeat,
    acquire_data_dir_lock,
    heartbeat_age_s,
    is_healthy,
    read_lock_holder,
)

HOLD_LOCK = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from copytrader.service.lifecycle import acquire_data_dir_lock
    from copytrader.logs import configure_logging
    configure_logging(fmt="json", stream=sys.stderr)
    with acquire_data_dir_lock(Path(sys.argv[1])):
        print("locked", flush=True)
        time.sleep(60)
    """
)

WAIT_FOR_STOP = textwrap.dedent(
    """
    import sys
    from copytrader.service.lifecycle import install_stop_signals
    from copytrader.logs import configure_logging
    configure_logging(fmt="json")
    stop = install_stop_signals()
    print("ready", flush=True)
    if not stop.wait(20):
        sys.exit(3)
    print("stopping because", stop.reason, flush=True)
    if len(sys.argv) > 1:  # keep "draining" so that a second signal can arrive
        import time; time.sleep(20)
    sys.exit(0)
    """
)


@pytest.fixture
def lock_holder(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(tmp_path)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "locked"
        yield process
    finally:
        process.kill()
        process.wait(10)


def test_second_run_on_same_folder_is_refused_naming_the_holder(
    tmp_path: Path, lock_holder: subprocess.Popen[str]
) -> None:
    """A second acquirer fails at once with the holder's pid, host and start time."""
    started = time.monotonic()
    with pytest.raises(DataDirLockedError) as refused, acquire_data_dir_lock(tmp_path):
        pass
    assert time.monotonic() - started < 2.0
    message = str(refused.value)
    assert f"pid {lock_holder.pid}" in message
    assert socket.gethostname() in message
    holder = read_lock_holder(tmp_path)
    assert holder is not None
    assert holder.started_at in message


def test_lock_is_free_the_moment_the_holder_is_killed(
    tmp_path: Path, lock_holder: subprocess.Popen[str]
) -> None:
    """SIGKILL of the holder leaves no stale lock: the next run gets the folder at once."""
    lock_holder.kill()
    lock_holder.wait(10)
    with acquire_data_dir_lock(tmp_path) as holder:
        assert read_lock_holder(tmp_path) == holder
    assert read_lock_holder(tmp_path) is None


def _start_waiter(*args: str) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WAIT_FOR_STOP, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "ready"
    return process


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_sets_the_event_and_the_process_exits_zero(signum: signal.Signals) -> None:
    """SIGTERM or SIGINT sets the stop event, logs why, and lets the process exit 0."""
    process = _start_waiter()
    process.send_signal(signum)
    out, _ = process.communicate(timeout=10)
    assert process.returncode == 0
    assert f"stopping because {signum.name}" in out
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert [e["event"] for e in events] == ["daemon.stop_requested"]
    assert events[0]["signal"] == signum.name


def test_second_signal_exits_at_once() -> None:
    """A second SIGINT while draining ends the process immediately with 128+signal."""
    process = _start_waiter("linger")
    process.send_signal(signal.SIGINT)
    assert process.stdout is not None
    assert process.stdout.readline().startswith("{")  # daemon.stop_requested
    assert "stopping because SIGINT" in process.stdout.readline()
    process.send_signal(signal.SIGINT)
    out, _ = process.communicate(timeout=5)
    assert process.returncode == 128 + signal.SIGINT
    assert "daemon.stop_forced" in out


def test_heartbeat_logs_counts_and_keeps_its_file_fresh(tmp_path: Path) -> None:
    """Each beat logs daemon.heartbeat with the counters and rewrites the heartbeat file."""
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    heartbeat = Heartbeat(tmp_path, interval_s=0.05)
    heartbeat.set_accounts(connected=2, total=3)
    heartbeat.master_order_seen()
    heartbeat.copy_placed()
    heartbeat.copy_placed()
    heartbeat.copy_skipped()
    heartbeat.copy_failed()
    stop = threading.Event()
    with heartbeat.running(stop):
        deadline = time.monotonic() + 5
        while stream.getvalue().count("daemon.heartbeat") < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
    beats = [
        json.loads(line)
        for line in stream.getvalue().splitlines()
        if json.loads(line)["event"] == "daemon.heartbeat"
    ]
    assert len(beats) >= 3
    last = beats[-1]
    assert (last["accounts_connected"], last["accounts_total"]) == (2, 3)
    assert (last["copies_placed"], last["copies_skipped"], last["copies_failed"]) == (2, 1, 1)
    assert last["master_orders_seen"] == 1
    assert 0 <= last["last_master_event_age_s"] < 5
    assert "2/3 accounts connected" in last["message"]
    on_disk = json.loads((tmp_path / HEARTBEAT_FILE_NAME).read_text())
    assert on_disk["copies_placed"] == 2
    age = heartbeat_age_s(tmp_path)
    assert age is not None
    assert age < 5
    assert is_healthy([tmp_path], max_age_s=5)
    assert not is_healthy([tmp_path], max_age_s=-1)
    assert not is_healthy([tmp_path / "elsewhere"], max_age_s=60)


def test_heartbeat_says_never_before_any_master_event(tmp_path: Path) -> None:
    """Before the feed has seen anything, the age of the last master event is null."""
    stream = io.StringIO()
    configure_logging(fmt="json", stream=stream)
    snap = Heartbeat(tmp_path, interval_s=60).beat()
    assert snap.last_master_event_age_s is None
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["last_master_event_age_s"] is None
    assert "last master event never" in line["message"]
