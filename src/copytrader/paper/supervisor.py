"""Paper mode (`copytrader run --paper`, `./start.sh --paper`): the whole system with no keys.

It starts three things and watches them:

1. the built-in simulator (`python -m copytrader sim`) on a free loopback port, with a demo MASTER
   account and three demo USER accounts, each with fresh random API keys and some money;
2. the real daemon (`python -m copytrader run`) as a child process, pointed at the simulator by
   environment variables exactly as an operator would point it at Kraken, with its data folder in
   `<data folder>/paper/` (wiped at the start of each paper run, kept afterwards to look at);
3. a demo trader (copytrader.paper.demo_trader) placing master orders through a key of its own.

The daemon's JSON log lines are passed through (rendered for a terminal when stdout is one) and
counted. Ctrl-C, SIGTERM or `--duration` stop the trader, then the daemon (which drains its
copies in flight), then the simulator, and a `paper.summary` event tells what happened.

The children run in their own sessions so that a Ctrl-C reaches only this process: it stops
them in order, and on Linux they are also told to stop if this process dies.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

from filelock import FileLock, Timeout

from copytrader.config.settings import load_local_settings
from copytrader.domain import Side
from copytrader.errors import ConfigError
from copytrader.logs import configure_logging, get_logger
from copytrader.paper.accounts import (
    DemoSetup,
    child_environment,
    daemon_config_toml,
    make_demo_setup,
    sim_accounts_toml,
)
from copytrader.paper.demo_trader import DemoTrader
from copytrader.paper.stats import PaperStats, render_console
from copytrader.service.lifecycle import (
    PAPER_SUBDIR,
    StopSignal,
    ensure_writable_data_dir,
    install_stop_signals,
)

log = get_logger(__name__)

# The exit status of a configuration error, as for `copytrader run` (daemon.EXIT_CONFIG).
EXIT_CONFIG = 2
SIM_START_TIMEOUT_S = 20.0
# The daemon promises to exit within 10 s of SIGTERM; a little margin before SIGKILL.
DAEMON_STOP_TIMEOUT_S = 13.0
SIM_STOP_TIMEOUT_S = 5.0
# The trader waits for the daemon to say it is running (so its orders are not "from before the
# daemon started"), but not forever if the daemon words it differently.
DAEMON_READY_TIMEOUT_S = 20.0


def run(args: argparse.Namespace) -> int:
    """Run paper mode until a stop signal or `args.duration` seconds; returns the exit code."""
    try:
        settings = load_local_settings()
        ensure_writable_data_dir(settings.data_dir)
    except ConfigError as error:
        # As `copytrader run` does: one line, not a traceback (logging is not set up yet, and
        # a bad LOG_LEVEL or LOG_FORMAT is one of the things that can be wrong).
        sys.stderr.write(f"copytrader: configuration error: {error}\n")
        return EXIT_CONFIG
    configure_logging(settings.log_level, settings.log_format)
    stop = install_stop_signals(component="paper")
    paper_dir = settings.data_dir / PAPER_SUBDIR
    guard = FileLock(str(settings.data_dir / ".paper.lock"), timeout=0)
    try:
        guard.acquire()
    except Timeout:
        log.error(
            "paper.busy",
            message=f"another paper run is using {paper_dir}; stop it first",
            data_dir=str(paper_dir),
        )
        return 1
    try:
        try:
            shutil.rmtree(paper_dir, ignore_errors=True)  # what the last paper run left
            paper_dir.mkdir(parents=True)
        except OSError as error:
            log.error(
                "paper.data_dir",
                message=f"cannot make a fresh {paper_dir}: {error.strerror or error}",
                data_dir=str(paper_dir),
            )
            return EXIT_CONFIG
        with tempfile.TemporaryDirectory(prefix="copytrader-paper-") as secrets_dir:
            return _run_paper(args, stop, paper_dir, Path(secrets_dir), settings.log_level)
    finally:
        guard.release()


def _run_paper(
    args: argparse.Namespace, stop: StopSignal, paper_dir: Path, work: Path, log_level: str
) -> int:
    started = time.monotonic()
    setup = make_demo_setup()
    # The accounts file holds the demo secrets: it lives in a private temporary folder that is
    # deleted on exit, never in the data folder.
    (work / "sim-accounts.toml").write_text(sim_accounts_toml(setup))
    (work / "config").mkdir()
    (work / "config" / "accounts.toml").write_text(daemon_config_toml(setup))

    sim = _start_child(
        [sys.executable, "-u", "-m", "copytrader", "sim", "--host", "127.0.0.1", "--port", "0",
         "--accounts", str(work / "sim-accounts.toml")],
        cwd=work, env=child_environment({}),
    )  # fmt: skip
    children: list[subprocess.Popen[str]] = [sim]
    try:
        url = _read_listening_url(sim, SIM_START_TIMEOUT_S)
        if url is None:
            log.error("paper.sim_failed", message="the simulator did not start; see its output")
            return 1
        log.info(
            "paper.started",
            message=f"paper exchange on {url}; demo master and users "
            f"{', '.join(u.display_name for u in setup.users)}; daemon data in {paper_dir}",
            sim_url=url,
            data_dir=str(paper_dir),
            users=[u.user_id for u in setup.users],
        )
        env = child_environment(
            setup.daemon_variables(
                api_url=url, config=work / "config" / "accounts.toml", data_dir=paper_dir
            )
            | {"LOG_FORMAT": "json", "LOG_LEVEL": log_level}
        )
        daemon = _start_child([sys.executable, "-u", "-m", "copytrader", "run"], cwd=work, env=env)
        children.append(daemon)
        return _supervise(args, stop, setup, url, sim, daemon, paper_dir, started)
    finally:
        for child in reversed(children):
            _stop_child(child, SIM_STOP_TIMEOUT_S, "process")


def _supervise(
    args: argparse.Namespace,
    stop: StopSignal,
    setup: DemoSetup,
    url: str,
    sim: subprocess.Popen[str],
    daemon: subprocess.Popen[str],
    paper_dir: Path,
    started: float,
) -> int:
    stats = PaperStats(user_ids=[u.user_id for u in setup.users])
    ready = threading.Event()
    console = render_console(sys.stdout)
    assert daemon.stdout is not None
    assert sim.stdout is not None
    daemon_pump = threading.Thread(
        target=_pump_daemon, args=(daemon.stdout, stats, ready, console), daemon=True
    )
    daemon_pump.start()
    sim_log = (paper_dir / "sim.log").open("a", encoding="utf-8")
    sim_pump = threading.Thread(target=_copy_lines, args=(sim.stdout, sim_log), daemon=True)
    sim_pump.start()
    trader = DemoTrader(
        api_url=url,
        key=setup.trader.key,
        secret=setup.trader.secret,
        set_price=lambda pair, price: _set_price(url, pair, price),
        trade_through=lambda pair, side, price, volume: _trade_through(
            url, pair, side, price, volume
        ),
        rng=random.Random(),
    )
    trader_stop = threading.Event()
    trader_thread = threading.Thread(target=_trade_when_ready, args=(trader, ready, trader_stop))
    deadline = None if args.duration is None else started + float(args.duration)
    exit_code = 0
    reason = "signal"
    try:
        trader_thread.start()
        while not stop.wait(0.2):
            if deadline is not None and time.monotonic() >= deadline:
                reason = "duration"
                stop.request("duration")
                log.info("paper.duration_reached", message=f"{args.duration} s are up, stopping")
                break
            if daemon.poll() is not None:
                reason = "daemon_exited"
                log.error(
                    "paper.daemon_exited",
                    message=f"the daemon exited by itself with code {daemon.returncode}",
                    exit_code=daemon.returncode,
                )
                exit_code = 1
                break
            if sim.poll() is not None:
                reason = "sim_exited"
                log.error("paper.sim_exited", message="the simulator exited; stopping")
                exit_code = 1
                break
        if reason == "signal":
            reason = stop.reason or "signal"
    finally:
        trader_stop.set()
        trader_thread.join(timeout=10.0)
        daemon_code = _stop_child(daemon, DAEMON_STOP_TIMEOUT_S, "daemon")
        daemon_pump.join(timeout=5.0)
        _stop_child(sim, SIM_STOP_TIMEOUT_S, "simulator")
        sim_pump.join(timeout=2.0)
        sim_log.close()
    if daemon_code != 0 and reason != "daemon_exited":
        log.error(
            "paper.daemon_unclean_exit",
            message=f"the daemon exited with code {daemon_code} after being asked to stop",
            exit_code=daemon_code,
        )
        exit_code = 1
    summary = stats.summary(
        placed_at={o.txid: o.placed_at for o in trader.placed},
        master_orders_placed=len(trader.placed),
        master_cancels=len(trader.cancelled),
    )
    log.info(
        "paper.summary",
        message=stats.sentence(summary),
        reason=reason,
        duration_s=round(time.monotonic() - started, 1),
        daemon_exit_code=daemon_code,
        **summary,
    )
    return exit_code


def _trade_when_ready(trader: DemoTrader, ready: threading.Event, stop: threading.Event) -> None:
    if not ready.wait(DAEMON_READY_TIMEOUT_S) and not stop.is_set():
        log.warning(
            "paper.daemon_not_ready",
            message="no word from the daemon that it is running; the demo trader starts anyway",
        )
    if not stop.is_set():
        trader.run(stop)


def _set_price(url: str, pair: str, price: Decimal) -> None:
    _sim_control(url, "price", {"pair": pair, "price": str(price)})


def _trade_through(url: str, pair: str, side: Side, price: Decimal, volume: Decimal) -> None:
    payload = {"pair": pair, "side": side.value, "price": str(price), "volume": str(volume)}
    _sim_control(url, "trade", payload)


def _sim_control(url: str, operation: str, payload: dict[str, str]) -> None:
    request = urllib.request.Request(  # noqa: S310 - the loopback simulator we started
        f"{url}/sim/{operation}",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310
        response.read()


# --------------------------------------------------------------------------- child processes


def _die_with_parent() -> Callable[[], None] | None:
    """On Linux, a preexec hook that makes the child get SIGTERM if paper mode itself dies."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, int(signal.SIGTERM), 0, 0, 0)

    return hook


_PREEXEC = _die_with_parent()


def _start_child(command: list[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    # Own session: the terminal's Ctrl-C reaches only paper mode, which stops the children in
    # order (trader, daemon, simulator) instead of all at once.
    return subprocess.Popen(  # noqa: S603 - our own interpreter and module
        command,
        cwd=cwd,
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
        start_new_session=True,
        # Safe here: paper mode starts its children before it starts any thread.
        preexec_fn=_PREEXEC,
    )


def _read_listening_url(process: subprocess.Popen[str], timeout_s: float) -> str | None:
    """Wait for the simulator's one `listening on http://HOST:PORT` line, without a thread."""
    assert process.stdout is not None
    deadline = time.monotonic() + timeout_s
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        while (left := deadline - time.monotonic()) > 0:
            if not selector.select(left):
                break
            line = process.stdout.readline()
            if not line:
                return None
            if line.startswith("listening on "):
                return line.split("listening on ", 1)[1].strip()
            sys.stdout.write(line)
    return None


def _stop_child(process: subprocess.Popen[str], timeout_s: float, name: str) -> int:
    """SIGTERM, wait up to `timeout_s`, then SIGKILL. Returns the exit code."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.error(
                "paper.child_killed",
                message=f"the {name} did not stop within {timeout_s:.0f} s; killed it",
            )
            process.kill()
            process.wait(timeout_s)
    return process.returncode


def _pump_daemon(
    stream: IO[str],
    stats: PaperStats,
    ready: threading.Event,
    console: Callable[[dict[str, Any]], str] | None,
) -> None:
    plain: list[str] = []  # consecutive lines that are not JSON (a traceback?)

    def flush_plain() -> None:
        if plain:
            # One JSON line for the whole block, so a traceback stays together in Railway.
            log.warning("paper.daemon_output", message="\n".join(plain))
            plain.clear()

    for line in stream:
        event = stats.observe_line(line)
        if event is None:
            plain.append(line.rstrip("\n"))
            continue
        flush_plain()
        if stats.is_ready_event(event):
            ready.set()
        if console is not None:
            sys.stdout.write(console(event) + "\n")
        else:
            sys.stdout.write(line if line.endswith("\n") else line + "\n")
        sys.stdout.flush()
    flush_plain()
    sys.stdout.flush()


def _copy_lines(stream: IO[str], sink: IO[str]) -> None:
    for line in stream:
        sink.write(line)
        sink.flush()
