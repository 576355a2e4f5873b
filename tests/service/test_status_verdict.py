"""The one rule "copying or why not", the `daemon.not_copying` alarm after N minutes (on an
injected clock), and health.json: the health command decides from the daemon's facts with the
same rule, and calls a file that stopped changing a dead or hung daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from copytrader.config.settings import load_local_settings
from copytrader.errors import ConfigError
from copytrader.service.status_verdict import (
    HEALTH_FILE_NAME,
    CopyState,
    HealthFacts,
    NotCopyingAlarm,
    Phase,
    decide,
    read_health_file,
    write_health_file,
)
from tests import secretscan
from tests.service.daemonproc import clean_environment

COPYING = HealthFacts(
    phase=Phase.RUNNING.value, feed_age_s=1.0, poll_interval_s=1.0, users={"ann": None, "bob": None}
)


def with_(**changes: object) -> HealthFacts:
    return HealthFacts.from_json(COPYING.to_json() | changes)


def test_the_rule_names_the_first_thing_to_fix() -> None:
    assert decide(COPYING).copying
    cases = {
        CopyState.STARTING: with_(phase="starting"),
        CopyState.STOPPING: with_(phase="stopping", master_problem="MASTER cannot be used: x"),
        CopyState.MASTER_DOWN: with_(phase="starting", master_problem="MASTER cannot be used: x"),
        CopyState.FEED_STALE: with_(feed_age_s=None),
        CopyState.NO_USER_READY: with_(users={"ann": "locked out", "bob": "gets no copies"}),
        CopyState.KILL_SWITCH: with_(kill_switch="kill switch on (file data/KILL)"),
    }
    for state, facts in cases.items():
        verdict = decide(facts)
        assert (verdict.copying, verdict.state) == (False, state), facts
        # Healthy (200, exit 0) only while copying or paused by the operator's kill switch.
        assert verdict.healthy is (state is CopyState.KILL_SWITCH), facts
    assert decide(with_(master_rest_s=12.0)).state is CopyState.MASTER_DOWN
    assert decide(with_(users={})).reason == "no enabled user is configured"
    assert decide(with_(users={"ann": None, "bob": "locked out"})).reason == (
        "MASTER to 1/2 users (ann)"
    )
    # Fresh means within 5 poll intervals, and never under 60 s.
    assert decide(with_(feed_age_s=59.0)).copying
    assert not decide(with_(feed_age_s=61.0)).copying
    assert decide(with_(poll_interval_s=30.0, feed_age_s=149.0)).copying


def test_not_copying_for_n_minutes_is_said_once_per_spell() -> None:
    now = [0.0]
    alarm = NotCopyingAlarm(300.0, monotonic=lambda: now[0])
    down = decide(with_(users={"ann": "locked out", "bob": "locked out"}))
    with capture_logs() as logs:
        assert not alarm.observe(down)
        now[0] = 299.0
        assert not alarm.observe(decide(COPYING))  # copying again: the spell starts over
        assert not alarm.observe(down)
        now[0] = 598.0
        assert not alarm.observe(down)
        now[0] = 600.0
        assert alarm.observe(down)
        now[0] = 900.0
        assert not alarm.observe(down)  # once per spell
        assert not alarm.observe(decide(COPYING))
        now[0] = 905.0
        assert not alarm.observe(decide(with_(phase="stopping")))  # a stop is not a spell
        now[0] = 2000.0
        assert not alarm.observe(decide(with_(phase="stopping")))
    events = [(e["event"], e["log_level"]) for e in logs]
    assert events == [("daemon.not_copying", "error"), ("daemon.copying_again", "info")]
    assert logs[0]["message"] == (
        "not copying for 5 min: no user is ready: ann: locked out; bob: locked out"
    )
    assert logs[0]["state"] == "no_user_ready"


def test_the_minutes_are_a_setting(tmp_path: Path) -> None:
    settings = load_local_settings(
        {"COPYTRADER_NOT_COPYING_MINUTES": "2.5"}, cwd=tmp_path, dotenv=False
    )
    assert settings.status.not_copying_minutes == 2.5
    assert load_local_settings({}, cwd=tmp_path, dotenv=False).status.not_copying_minutes == 5.0


def health(data_dir: Path) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "copytrader.service.health"],
        cwd=data_dir.parent, capture_output=True, text=True, timeout=60,
        env=clean_environment({"COPYTRADER_DATA_DIR": str(data_dir)}),
    )  # fmt: skip
    secretscan.record_output("health", done.stdout + done.stderr)
    return done


def test_the_health_command_decides_from_health_json(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    write_health_file(data, COPYING)
    checked = health(data)
    assert (checked.returncode, checked.stdout) == (
        0, "healthy: copying: MASTER to 2/2 users (ann, bob)\n"
    )  # fmt: skip
    write_health_file(data, with_(users={"ann": "locked out", "bob": "locked out"}))
    checked = health(data)
    assert checked.returncode == 1
    assert checked.stdout.startswith("unhealthy: no_user_ready: no user is ready: ann: locked")
    # A daemon that stopped writing (killed, hung) is not copying, whatever the file said.
    write_health_file(data, COPYING, now=1_000.0)
    checked = health(data)
    assert checked.returncode == 1
    assert "it is not running, or hung" in checked.stdout
    raw = json.loads((data / HEALTH_FILE_NAME).read_text())
    assert raw["facts"]["users"] == {"ann": None, "bob": None}
    assert read_health_file(data, now=1_030.0) == decide(COPYING)


def test_where_the_status_server_listens(tmp_path: Path) -> None:
    def status(env: dict[str, str]) -> tuple[int | None, str, bool]:
        found = load_local_settings(env, cwd=tmp_path, dotenv=False).status
        return found.port, found.host, found.token is not None

    assert status({}) == (None, "127.0.0.1", False)  # off
    assert status({"COPYTRADER_STATUS_PORT": "8081"}) == (8081, "127.0.0.1", False)
    assert status({"PORT": "8080"}) == (8080, "0.0.0.0", False)  # noqa: S104 - Railway
    assert status({"PORT": "8080", "COPYTRADER_STATUS_PORT": "9"}) == (8080, "0.0.0.0", False)  # noqa: S104
    assert status({"COPYTRADER_STATUS_PORT": "8081", "COPYTRADER_STATUS_HOST": "0.0.0.0"}) == (  # noqa: S104
        8081, "0.0.0.0", False  # noqa: S104
    )  # fmt: skip
    token = "t0k3n-0123456789-abcdef"
    assert status({"COPYTRADER_STATUS_TOKEN": token}) == (None, "127.0.0.1", True)
    shown = repr(load_local_settings({"COPYTRADER_STATUS_TOKEN": token}, cwd=tmp_path,
                                     dotenv=False))  # fmt: skip
    assert token not in shown


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("PORT", "http", "must be a port number from 1 to 65535"),
        ("PORT", "0", "must be a port number from 1 to 65535"),
        ("COPYTRADER_STATUS_PORT", "70000", "must be a port number from 0 to 65535"),
        ("COPYTRADER_STATUS_TOKEN", "tiny-Tok3n", "shorter than 16 characters"),
        ("COPYTRADER_STATUS_TOKEN", " spaces-around-0123456789 ", "space"),
        ("COPYTRADER_NOT_COPYING_MINUTES", "0", "above 0"),
        ("COPYTRADER_NOT_COPYING_MINUTES", "soon", "above 0"),
    ],
)
def test_status_settings_refuse_what_they_cannot_mean(
    tmp_path: Path, name: str, value: str, says: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        load_local_settings({name: value}, cwd=tmp_path, dotenv=False)
    assert says in str(refused.value)
    assert name in str(refused.value)
    if "TOKEN" in name:
        assert value.strip() not in str(refused.value)
