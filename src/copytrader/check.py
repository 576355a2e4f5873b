"""Placeholder: replaced by the module's real implementation."""

from __future__ import annotations

import argparse


def run_from_args(args: argparse.Namespace) -> int:
    raise SystemExit(f"not implemented yet: {args.command}")
