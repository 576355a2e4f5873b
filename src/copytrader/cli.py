"""The `copytrader` command: argument parsing only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence

from kraken_sim.cli import add_arguments as add_sim_arguments


# Numbers are checked here, where argparse turns a bad one into a usage error (exit 2), rather
# than where they are used: an infinite timer would otherwise end in a traceback from the
# threading module.
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

    resync = sub.add_parser(
        "resync",
        help="compare the ledger with the exchange: missing, orphaned and doubled copies",
    )
    resync.add_argument(
        "--apply",
        action="store_true",
        help="fix what is found (refused while a daemon holds the data folder)",
    )
    resync.add_argument("--json", action="store_true", help="print one JSON document")
    resync.add_argument(
        "--window",
        type=_positive_seconds,
        default=None,
        help="seconds of closed orders to compare (default: the signal-age window, at least 1 h)",
    )
    resync.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=60.0,
        help="with --apply: how long to wait for the copies it sends and cancels (default 60)",
    )

    sim = sub.add_parser("sim", help="run the Kraken-compatible exchange simulator")
    add_sim_arguments(sim)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "sim":
        from kraken_sim.server import run_from_args

        return run_from_args(args)
    if args.command == "check":
        from copytrader.service.check import run_from_args as check_from_args

        return check_from_args(args)
    if args.command == "resync":
        from copytrader.service.resync import run_from_args as resync_from_args

        return resync_from_args(args)
    if args.command == "run" and args.paper:
        from copytrader.paper.supervisor import run as run_paper

        return run_paper(args)
    if args.command == "run":
        from copytrader.service.daemon import run_from_args as daemon_from_args

        return daemon_from_args(args)
    raise AssertionError("unreachable")  # argparse rejects unknown subcommands


if __name__ == "__main__":
    sys.exit(main())
