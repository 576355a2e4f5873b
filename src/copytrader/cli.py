"""The `copytrader` command: argument parsing only; each subcommand lives in its own module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copytrader",
        description="Mirror the orders of one MASTER Kraken account onto several USER accounts.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the copy-trading daemon")
    run.add_argument("--paper", action="store_true", help="run against the built-in simulator")
    run.add_argument(
        "--duration", type=float, default=None, help="stop by itself after this many seconds"
    )

    check = sub.add_parser("check", help="report which accounts connect, and why not")
    check.add_argument("--json", action="store_true", help="print one JSON document")

    sim = sub.add_parser("sim", help="run the Kraken-compatible exchange simulator")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=0, help="0 picks a free port")
    sim.add_argument("--accounts", required=True, help="TOML file with the simulated accounts")
    sim.add_argument("--latency-ms", type=float, default=0.0, help="added to every request")
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
