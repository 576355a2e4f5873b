"""Start the simulator as a real subprocess on loopback, and stop it (tests, benchmarks, scripts).

with running_sim(accounts_toml) as sim:
    api.uri = sim.url
    sim.control("price", {"pair": "XXBTZUSD", "price": "61000"})
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STARTUP_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 10.0


# `python -m kraken_sim`; a caller may run `copytrader sim` instead, which is the same server.
SIM_COMMAND: tuple[str, ...] = (sys.executable, "-m", "kraken_sim")


def new_secret() -> str:
    """A random API secret shaped like Kraken's: 64 bytes, standard base64."""
    return base64.b64encode(secrets.token_bytes(64)).decode()


@dataclass
class SimProcess:
    url: str
    process: subprocess.Popen[str]
    output: list[str] = field(default_factory=list)

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        """POST (or GET when payload is None) to the simulator's `/sim/<path>` control endpoint."""
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback URL we started ourselves
            f"{self.url}/sim/{path}",
            data=data,
            method="GET" if payload is None else "POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return json.loads(response.read().decode())


def _pump(stream: Any, sink: list[str]) -> None:
    for line in stream:
        sink.append(line.rstrip("\n"))


@contextlib.contextmanager
def running_sim(
    accounts_toml: str,
    *extra_args: str,
    command: Sequence[str] = SIM_COMMAND,
    on_stopped: Callable[[str, str], None] | None = None,
) -> Iterator[SimProcess]:
    """Run the simulator with these accounts until the block ends; always stops it. `on_stopped`
    gets a name for the run and everything the simulator printed, once it has stopped."""
    with tempfile.TemporaryDirectory(prefix="copytrader-sim-") as tmp:
        accounts = Path(tmp) / "accounts.toml"
        accounts.write_text(accounts_toml)
        argv = [*command, "--host", "127.0.0.1", "--port", "0", "--accounts", str(accounts)]
        argv.extend(extra_args)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        output: list[str] = []
        try:
            url = _wait_for_listening(process)
            pump = threading.Thread(target=_pump, args=(process.stdout, output), daemon=True)
            pump.start()
            yield SimProcess(url=url, process=process, output=output)
        finally:
            _stop(process)
            if on_stopped is not None:
                on_stopped(f"simulator {accounts}", "\n".join(output))


def _wait_for_listening(process: subprocess.Popen[str]) -> str:
    found: list[str] = []
    seen: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            seen.append(line)
            if line.startswith("listening on "):
                found.append(line.split("listening on ", 1)[1].strip())
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(STARTUP_TIMEOUT_S)
    if not found:
        _stop(process)
        raise RuntimeError("simulator did not start:\n" + "".join(seen))
    return found[0]


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)
