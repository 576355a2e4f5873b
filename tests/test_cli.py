"""The command line parses its subcommands and runs as `python -m copytrader`."""

import subprocess
import sys

from copytrader.cli import build_parser


def test_parser_knows_every_subcommand() -> None:
    """run, check and sim are all accepted with their documented options."""
    parser = build_parser()
    assert parser.parse_args(["run", "--paper", "--duration", "5"]).duration == 5.0
    assert parser.parse_args(["check", "--json"]).json is True
    sim = parser.parse_args(["sim", "--accounts", "a.toml", "--port", "0", "--seed", "3"])
    assert (sim.port, sim.seed, sim.host) == (0, 3, "127.0.0.1")


def test_module_entry_point_prints_help() -> None:
    """`python -m copytrader --help` works without an installed console script."""
    out = subprocess.run(
        [sys.executable, "-m", "copytrader", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert "sim" in out.stdout
    assert "check" in out.stdout
