"""The comparison itself, fast: real KrakenBrokers on the in-process exchange and a real
ledger. Orders are placed on the exchange as copies would be (by their copy ids); the
comparison must classify each, and a user whose orders cannot be read is named, never a
reason to skip the others."""

from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

from copytrader.domain import OrderType, Side
from copytrader.kraken.broker import KrakenBroker
from copytrader.kraken.models import OrderRequest
from copytrader.ledger import copy_client_order_id
from copytrader.service.ledger_check import compare, read_exchange
from tests.copy_fast.world import copy_world


def limit(broker: KrakenBroker, price: str, cl_ord_id: str | None = None) -> str:
    request = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT, volume=Decimal("0.01"),
        price=Decimal(price), cl_ord_id=cl_ord_id,
    )  # fmt: skip
    return broker.add_order(request).txids[0]


def market(broker: KrakenBroker, cl_ord_id: str | None = None) -> str:
    request = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.MARKET, volume=Decimal("0.001"),
        cl_ord_id=cl_ord_id,
    )  # fmt: skip
    return broker.add_order(request).txids[0]


def test_each_kind_is_found_and_an_unreadable_user_is_named(tmp_path: Path) -> None:
    # "boss" is the master account here; ben's key may not query orders.
    with copy_world(
        tmp_path, ["boss", "ann", "ben"], permissions={"ben": ("query_funds",)}
    ) as world:
        boss, ann = world.brokers["boss"], world.brokers["ann"]
        copied = limit(boss, "30000")
        limit(ann, "30000", copy_client_order_id(copied, "ann"))
        cancelled = limit(boss, "31000")
        limit(ann, "31000", copy_client_order_id(cancelled, "ann"))
        boss.cancel_order(txid=cancelled)
        twice = market(boss)
        market(ann, copy_client_order_id(twice, "ann"))
        market(ann, copy_client_order_id(twice, "ann"))
        uncopied = limit(boss, "32000")
        limit(ann, "33000")  # ann's own order, no copy id: none of the comparison's business

        read = read_exchange(boss, {"ann": ann, "ben": world.brokers["ben"]}, window_s=3600,
                             now=time.time())  # fmt: skip
        found = compare(read, world.ledger, baseline_at=time.time() - 600, max_signal_age_s=60)

    assert set(read.not_read) == {"ben"}
    kinds = {(f.kind, f.master_txid) for f in found.findings}
    assert kinds == {
        ("unrecorded", copied),
        ("orphaned", cancelled),
        ("doubled", twice),
        ("unrecorded", twice),
        ("missing", uncopied),
    }
    assert all(f.user_id == "ann" for f in found.findings)
