"""Run `copytrader run` (or `./start.sh ...`) as a real subprocess and read its JSON log lines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests import secretscan

# Variables of a real deployment that must not leak from the developer's shell into a test.
_SCRUBBED_PREFIXES = ("KRAKEN_", "COPYTRADER_", "RAILWAY_", "LOG_")


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUBBED_PREFIXES)}
    return base | {"PYTHONUNBUFFERED": "1", "LOG_FORMAT": "json"} | dict(extra)


@dataclass
class LoggedProcess:
    """A child whose stdout+stderr lines are collected by a thread as they come."""

    name: str
    process: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None

    def events(self) -> list[dict[str, Any]]:
        found = []
        for line in list(self.lines):
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                found.append(event)
        return found

    def wait_for(
        self, predicate: Callable[[list[dict[str, Any]]], bool], timeout_s: float, what: str
    ) -> None:
        """Poll the events until `predicate` holds; fail (with the output) after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.events()):
                return
            if self.process.poll() is not None and predicate(self.events()) is False:
                break
            time.sleep(0.05)
        tail = "\n".join(self.lines[-40:])
        raise AssertionError(f"{self.name}: no {what} within {timeout_s} s; output:\n{tail}")

    def signal_and_wait(self, signum: signal.Signals, timeout_s: float) -> tuple[int, float]:
        """Send `signum`, wait for the exit; returns (exit code, seconds it took)."""
        started = time.monotonic()
        self.process.send_signal(signum)
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"{self.name} did not exit within {timeout_s} s of {signum.name}"
            ) from None
        self.join()
        return code, time.monotonic() - started

    def wait(self, timeout_s: float) -> int:
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"{self.name} did not finish within {timeout_s} s") from None
        self.join()
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self.join()

    def join(self) -> None:
        if self.reader is not None:
            self.reader.join(5)
            self.reader = None
            secretscan.record_output(self.name, "\n".join(self.lines))


def start_logged(
    name: str, command: Sequence[str], *, cwd: Path, env: Mapping[str, str]
) -> LoggedProcess:
    process = subprocess.Popen(
        list(command),
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    logged = LoggedProcess(name=name, process=process)

    def pump() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            logged.lines.append(line.rstrip("\n"))

    logged.reader = threading.Thread(target=pump, daemon=True)
    logged.reader.start()
    return logged


def start_daemon(*, cwd: Path, env: Mapping[str, str], name: str = "daemon") -> LoggedProcess:
    return start_logged(
        name, [sys.executable, "-m", "copytrader", "run"], cwd=cwd, env=clean_environment(env)
    )


def event_names(events: list[dict[str, Any]]) -> list[str]:
    return [str(e.get("event")) for e in events]
