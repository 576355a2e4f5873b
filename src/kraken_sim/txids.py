"""The shape Kraken accepts for an order id in a query: three groups of 6, 5 and 6 letters or
digits (`OQCLML-BW3P3-BUCMWZ`). Anything else is a malformed id, which Kraken's QueryOrders
answers with `EOrder:Invalid order` (an unknown but well-formed id is simply left out)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from kraken_sim.errors import INVALID_ORDER, SimError

TXID = re.compile(r"^[A-Za-z0-9]{6}-[A-Za-z0-9]{5}-[A-Za-z0-9]{6}$")


def check_order_ids(ids: Iterable[str]) -> None:
    """Raise Kraken's `EOrder:Invalid order` if any of `ids` is not shaped like an order id."""
    if any(TXID.match(txid) is None for txid in ids):
        raise SimError(INVALID_ORDER)
