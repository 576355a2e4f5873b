"""The ledger's schema version: a file written before versions were kept (version 1) is
upgraded in place at open, keeping its rows; a file of a newer version is refused untouched."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from copytrader.ledger import LEDGER_FILE_NAME, CopyState, Ledger, LedgerError
from copytrader.ledger.schema import SCHEMA, SCHEMA_VERSION


def version_1_file(path: Path) -> None:
    """A ledger as the version before schema versions wrote it: the version-1 tables, one
    master order and its copy, `user_version` 0."""
    db = sqlite3.connect(path)
    db.executescript(SCHEMA)
    db.execute(
        "INSERT INTO master_orders (txid, pair, side, order_type, volume, oflags, timeinforce,"
        " opentm, status, vol_exec, decision, first_seen_at, updated_at) VALUES"
        " ('OAAAAA-BBBBB-CCCCCC', 'XBTUSD', 'buy', 'limit', '0.1', '', 'GTC', 1.0, 'open', '0',"
        " 'copy', 1.0, 1.0)"
    )
    db.execute(
        "INSERT INTO copies (master_txid, user_id, cl_ord_id, state, txid, created_at,"
        " updated_at) VALUES ('OAAAAA-BBBBB-CCCCCC', 'ann', 'x-1', 'placed', 'OUSER1', 1.0, 1.0)"
    )
    db.execute("INSERT INTO meta (key, value) VALUES ('baseline_at', '0.5')")
    db.commit()
    db.close()


def test_unversioned_file_is_upgraded_keeping_its_rows(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE_NAME
    version_1_file(path)
    with Ledger(path) as ledger:
        assert ledger.schema_version_found == 1
        assert ledger.copy("OAAAAA-BBBBB-CCCCCC", "ann").state is CopyState.PLACED
        assert ledger.baseline_at() == 0.5
        ledger.mark_recorded_by_rebuild(["OAAAAA-BBBBB-CCCCCC"])  # the version-2 column
        assert ledger.recorded_by_rebuild() == ["OAAAAA-BBBBB-CCCCCC"]
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()
    with Ledger(path) as again:  # opening an up-to-date file changes nothing
        assert again.schema_version_found == SCHEMA_VERSION


def test_new_file_starts_at_the_current_version(tmp_path: Path) -> None:
    with Ledger(tmp_path / LEDGER_FILE_NAME) as ledger:
        assert ledger.schema_version_found == 0
        assert ledger.recorded_by_rebuild() == []
    db = sqlite3.connect(tmp_path / LEDGER_FILE_NAME)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    db.close()


def test_newer_file_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / LEDGER_FILE_NAME
    version_1_file(path)
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="newer than this copytrader"):
        Ledger(path)
    assert path.read_bytes() == before
