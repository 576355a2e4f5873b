"""The `copytrader` command: argument parsing only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence


# Numbers are checked here, where argparse turns a bad one into a usage error (exit 2), rather
# than where they are used: an out-of-range port or an infinite timer would otherwise end in a
# traceback from the socket or threading module.
def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535 (got {port})")
    return port


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds (got {text!r})")
    return value


def _milliseconds(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative (got {text!r})")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copytrader",
        description="Mirror the orders of one MASTER Kraken account onto several USER accounts.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the copy-trading daemon")
    run.add_argument("--paper", action="store_true", help="run against the built-in simulator")
    run.add_argument(
        "--duration",
        type=_positive_seconds,
        default=None,
        help="stop by itself after this many seconds",
    )

    check = sub.add_parser("check", help="report which accounts connect, and why not")
    check.add_argument("--json", action="store_true", help="print one JSON document")

    sim = sub.add_parser("sim", help="run the Kraken-compatible exchange simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    sim.add_argument("--accounts", required=True, help="TOML file with the simulated accounts")
    sim.add_argument("--latency-ms", type=_milliseconds, default=0.0, help="added to every request")
    sim.add_argument("--seed", type=int, default=None, help="makes ids and runs reproducible")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sim":
        from copytrader.sim.server import run_from_args

        return run_from_args(args)
    if args.command == "check":
        from copytrader.check import run_from_args as check_from_args

        return check_from_args(args)
    if args.command == "run":
        from copytrader.daemon import run_from_args as daemon_from_args

        return daemon_from_args(args)
    raise AssertionError("unreachable")  # argparse rejects unknown subcommands


if __name__ == "__main__":
    sys.exit(main())
