"""What a key may do, found out with harmless calls (for `copytrader check`)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

from copytrader.domain import OrderType, Side
from copytrader.errors import AccountUnusableError, KrakenError
from copytrader.kraken.models import OrderRequest, PermissionReport

if TYPE_CHECKING:
    from copytrader.kraken.broker import KrakenBroker


def check_permissions(broker: KrakenBroker, *, order_pair: str | None) -> PermissionReport:
    """Balance, OpenOrders, GetWebSocketsToken and (with a pair) a validate-only AddOrder.

    A call refused as "account unusable" (permission denied, bad key) counts as not allowed;
    any other refusal (e.g. insufficient funds for the validate order) still proves the right.
    """
    problems: list[str] = []

    def allowed(call: Callable[[], object]) -> bool:
        try:
            call()
        except AccountUnusableError as exc:
            problems.append(str(exc))
            return False
        except KrakenError as exc:
            problems.append(str(exc))
        return True

    create: bool | None = None
    if order_pair is not None:
        create = allowed(lambda: _validate_only_order(broker, order_pair))
    return PermissionReport(
        query_funds=allowed(broker.balances),
        query_orders=allowed(broker.open_orders),
        websocket=allowed(broker.websocket_token),
        create_orders=create,
        problems=tuple(problems),
    )


def _validate_only_order(broker: KrakenBroker, pair_name: str) -> None:
    info = broker.pair(pair_name)
    broker.add_order(
        OrderRequest(
            pair=info.pair_id,
            side=Side.BUY,
            order_type=OrderType.MARKET,
            volume=max(info.ordermin, Decimal(1).scaleb(-info.lot_decimals)),
            validate=True,
        )
    )
