"""The baseline time kept outside the ledger, in `ledger_baseline.txt` next to it.

The baseline (when the daemon first started on this data folder: master orders older than it
are never copied) is the one thing a rebuild cannot read back from the exchange. The ledger
holds it too; this small file, written once and fsync'd, keeps it when the ledger file is
deleted, damaged or restored from an older backup."""

from __future__ import annotations

import contextlib
import math
import os
from pathlib import Path

BASELINE_FILE_NAME = "ledger_baseline.txt"


def read_baseline_file(data_dir: Path) -> float | None:
    """The baseline time stored in the data folder, or None (absent or unreadable)."""
    try:
        text = (data_dir / BASELINE_FILE_NAME).read_text(encoding="ascii").strip()
        value = float(text)
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def write_baseline_file(data_dir: Path, baseline_at: float) -> None:
    """Write the baseline time durably (temp file, fsync, rename, fsync of the folder)."""
    path = data_dir / BASELINE_FILE_NAME
    temp = path.with_name(path.name + ".tmp")
    with open(temp, "w", encoding="ascii") as handle:
        handle.write(repr(baseline_at) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    with contextlib.suppress(OSError):  # not every platform can fsync a folder
        folder = os.open(data_dir, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
