"""The simulator's command line, shared by `python -m kraken_sim` and `copytrader sim`."""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence


# Numbers are checked here, where argparse turns a bad one into a usage error (exit 2), rather
# than where they are used: an out-of-range port would otherwise end in a traceback from the
# socket module.
def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535 (got {port})")
    return port


def _milliseconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number (got {text!r})")
    if value < 0:
        raise argparse.ArgumentTypeError(f"cannot be negative (got {text!r})")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=_port, default=0, help="0 picks a free port")
    parser.add_argument("--accounts", required=True, help="TOML file with the simulated accounts")
    parser.add_argument(
        "--latency-ms", type=_milliseconds, default=0.0, help="added to every request"
    )
    parser.add_argument("--seed", type=int, default=None, help="makes ids and runs reproducible")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="kraken_sim", description="A Kraken-compatible exchange simulator on loopback."
    )
    add_arguments(parser)
    from kraken_sim.server import run_from_args

    return run_from_args(parser.parse_args(argv), prog="kraken_sim")


if __name__ == "__main__":
    sys.exit(main())
