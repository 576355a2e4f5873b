"""The copy ledger keeps master orders, copy states and the feed cursor across restarts."""

from __future__ import annotations

import re
import sqlite3
import threading
from decimal import Decimal
from pathlib import Path

import pytest

from copytrader.domain import OrderStatus, OrderType, Side, TimeInForce
from copytrader.ledger import (
    CopyState,
    Decision,
    Ledger,
    LedgerError,
    MasterOrderRecord,
    copy_client_order_id,
)

USERS = ("daivon_frazier", "tania_gilbert")


def master(
    txid: str,
    *,
    decision: Decision = Decision.COPY,
    opentm: float = 1000.0,
    status: OrderStatus = OrderStatus.OPEN,
    reason: str | None = None,
) -> MasterOrderRecord:
    return MasterOrderRecord(
        txid=txid, pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.5"), price=Decimal("60000.1"), price2=None, oflags=frozenset({"post"}),
        timeinforce=TimeInForce.GTC, expiretm=None, opentm=opentm, status=status,
        vol_exec=Decimal("0"), avg_price=None, decision=decision, skip_reason=reason,
        master_equity=Decimal("12345.6789"), master_base_before=Decimal("0.5"),
    )  # fmt: skip


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger.in_data_dir(tmp_path)


def test_client_order_id_is_a_stable_long_uuid_per_master_and_user() -> None:
    """The cl_ord_id is a 36-char UUID, the same every time, different per user and order."""
    first = copy_client_order_id("OABCDE-FGHIJ-KLMNOP", "daivon_frazier")
    assert re.fullmatch(
        r"[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", first
    )
    assert first == copy_client_order_id("OABCDE-FGHIJ-KLMNOP", "daivon_frazier")
    assert first != copy_client_order_id("OABCDE-FGHIJ-KLMNOP", "tania_gilbert")
    assert first != copy_client_order_id("OABCDE-FGHIJ-KLMNOQ", "daivon_frazier")
    # no ambiguity from concatenation: ("a", "bc") and ("ab", "c") differ
    assert copy_client_order_id("a", "bc") != copy_client_order_id("ab", "c")


def test_master_order_recorded_once_with_one_planned_copy_per_user(ledger: Ledger) -> None:
    """A new master order yields one planned copy per user; recording it again changes nothing."""
    assert ledger.record_master_order(master("O1"), USERS) is True
    assert ledger.record_master_order(master("O1"), USERS) is False
    copies = ledger.copies_of("O1")
    assert [(c.user_id, c.state) for c in copies] == [(u, CopyState.PLANNED) for u in USERS]
    assert {c.cl_ord_id for c in copies} == {copy_client_order_id("O1", u) for u in USERS}
    stored = ledger.master_order("O1")
    assert stored.volume == Decimal("0.5")
    assert stored.price == Decimal("60000.1")
    assert stored.oflags == frozenset({"post"})
    assert stored.master_equity == Decimal("12345.6789")
    assert stored.decision is Decision.COPY


def test_skipped_master_order_gets_skipped_copies_with_reason(ledger: Ledger) -> None:
    """An order seen too late is recorded with skipped copies carrying the reason."""
    ledger.record_master_order(master("O2", decision=Decision.SKIP, reason="signal too old"), USERS)
    assert {(c.state, c.reason) for c in ledger.copies_of("O2")} == {
        (CopyState.SKIPPED, "signal too old")
    }
    assert ledger.pending_copies_by_user() == {}


def test_copy_state_machine_and_illegal_transitions(ledger: Ledger) -> None:
    """planned -> submitting -> placed works; placed -> submitting is refused."""
    ledger.record_master_order(master("O3"), USERS)
    user = USERS[0]
    sub = ledger.mark_submitting("O3", user, volume=Decimal("0.12345678"),
                                 price=Decimal("60000.1"), price2=None)  # fmt: skip
    assert (sub.state, sub.volume, sub.attempts) == (CopyState.SUBMITTING, Decimal("0.12345678"), 1)
    placed = ledger.mark_placed("O3", user, txid="OUSER1-AAAAA-BBBBBB", acked_at=1001.5,
                                latency_ms=1500.0)  # fmt: skip
    assert (placed.state, placed.txid, placed.latency_ms) == (
        CopyState.PLACED, "OUSER1-AAAAA-BBBBBB", 1500.0)  # fmt: skip
    with pytest.raises(LedgerError, match="placed -> submitting"):
        ledger.mark_submitting("O3", user, volume=Decimal(1), price=None, price2=None)
    assert [c.user_id for c in ledger.pending_copies(user)] == []
    assert [c.user_id for c in ledger.pending_copies(USERS[1])] == [USERS[1]]


def test_retry_keeps_the_copy_submitting_and_counts_attempts(ledger: Ledger) -> None:
    """A failed attempt stays `submitting` with a retry time; the next attempt counts up."""
    ledger.record_master_order(master("O4"), USERS)
    ledger.mark_submitting("O4", USERS[0], volume=Decimal("1"), price=None, price2=None)
    waiting = ledger.schedule_retry(
        "O4", USERS[0], next_attempt_at=2000.0, error="EService:Unavailable"
    )
    assert (waiting.state, waiting.next_attempt_at, waiting.error) == (
        CopyState.SUBMITTING, 2000.0, "EService:Unavailable")  # fmt: skip
    again = ledger.mark_submitting("O4", USERS[0], volume=Decimal("1"), price=None, price2=None)
    assert (again.attempts, again.next_attempt_at, again.error) == (2, None, None)


def test_master_cancel_skips_unsent_and_flags_sent_copies(ledger: Ledger) -> None:
    """When the master order is cancelled, planned copies are skipped and placed ones are
    marked for cancelling until the cancel is done."""
    ledger.record_master_order(master("O5"), USERS)
    ledger.mark_submitting("O5", USERS[0], volume=Decimal("1"), price=None, price2=None)
    ledger.mark_placed("O5", USERS[0], txid="T1", acked_at=1.0, latency_ms=1.0)
    flagged = ledger.record_master_update("O5", OrderStatus.CANCELLED, Decimal("0"))
    assert [c.user_id for c in flagged] == [USERS[0]]
    assert ledger.copy("O5", USERS[1]).state is CopyState.SKIPPED
    assert [c.cancel_requested for c in ledger.pending_copies(USERS[0])] == [True]
    ledger.mark_cancelled("O5", USERS[0], reason="master order cancelled")
    assert ledger.pending_copies(USERS[0]) == []
    assert ledger.master_states(["O5", "nope"])["O5"].status is OrderStatus.CANCELLED


def test_fill_progress_does_not_touch_copies(ledger: Ledger) -> None:
    """A partial fill of the master only updates what the feed saw."""
    ledger.record_master_order(master("O6"), USERS)
    assert ledger.record_master_update("O6", OrderStatus.OPEN, Decimal("0.1")) == []
    state = ledger.master_states(["O6"])["O6"]
    assert (state.status, state.vol_exec) == (OrderStatus.OPEN, Decimal("0.1"))
    assert ledger.unfinished_master_txids() == ["O6"]
    ledger.record_master_update("O6", OrderStatus.CLOSED, Decimal("0.5"))
    assert ledger.unfinished_master_txids() == []
    assert {c.state for c in ledger.copies_of("O6")} == {CopyState.PLANNED}


def test_summary_is_claimed_once_after_all_copies_are_terminal(ledger: Ledger) -> None:
    """copy.summary data comes out exactly once, and only when every copy is done."""
    ledger.record_master_order(master("O7"), USERS)
    ledger.mark_submitting("O7", USERS[0], volume=Decimal("1"), price=None, price2=None)
    ledger.mark_placed("O7", USERS[0], txid="T", acked_at=5.0, latency_ms=40.0)
    assert ledger.claim_summary("O7") is None
    ledger.mark_failed("O7", USERS[1], error="EOrder:Insufficient funds")
    summary = ledger.claim_summary("O7")
    assert summary is not None
    assert (summary.total, summary.placed, summary.failed, summary.max_latency_ms) == (
        2,
        1,
        1,
        40.0,
    )
    assert ledger.claim_summary("O7") is None


def test_everything_survives_a_reopen_and_marks_the_earlier_run(tmp_path: Path) -> None:
    """Baseline, cursor, orders and copies are on disk; rows of a previous run are recognisable."""
    first = Ledger.in_data_dir(tmp_path, run_id="run-1")
    first.record_baseline(500.0, [master("OLD", decision=Decision.COPY)], cursor=470.0)
    first.record_master_order(master("O8"), USERS)
    first.set_feed_cursor(990.5)
    first.close()
    second = Ledger.in_data_dir(tmp_path, run_id="run-2")
    assert second.baseline_at() == 500.0
    assert second.feed_cursor() == 990.5
    assert second.master_states(["OLD"])["OLD"].decision is Decision.BASELINE
    assert ledger_copy_runs(second, "O8") == {"run-1"}
    second.mark_submitting("O8", USERS[0], volume=Decimal("1"), price=None, price2=None)
    assert second.copy("O8", USERS[0]).written_by_run == "run-2"
    # a second baseline never moves the first start time
    second.record_baseline(900.0, [], cursor=880.0)
    assert second.baseline_at() == 500.0
    second.close()
    mode = sqlite3.connect(tmp_path / "copies.sqlite3").execute("PRAGMA journal_mode").fetchone()
    assert mode[0] == "wal"


def ledger_copy_runs(ledger: Ledger, txid: str) -> set[str | None]:
    return {c.written_by_run for c in ledger.copies_of(txid)}


def test_threads_update_different_copies_concurrently(ledger: Ledger) -> None:
    """Many threads moving their own copies through the states lose no update."""
    users = [f"user_{n:03d}" for n in range(50)]
    ledger.record_master_order(master("O9"), users)
    errors: list[BaseException] = []

    def work(user: str) -> None:
        try:
            ledger.mark_submitting("O9", user, volume=Decimal("0.1"), price=None, price2=None)
            ledger.mark_placed("O9", user, txid=f"T-{user}", acked_at=1.0, latency_ms=2.0)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=work, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert errors == []
    assert ledger.state_counts()["placed"] == 50
    summary = ledger.claim_summary("O9")
    assert summary is not None
    assert summary.placed == 50
