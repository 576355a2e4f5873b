"""A broker workload with every kind of failure leaves no secret, full key or signature behind."""

from __future__ import annotations

import io
import traceback
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import requests
import structlog
from requests import Response
from requests.adapters import HTTPAdapter

from copytrader.domain import OrderType, Side
from copytrader.errors import KrakenError
from copytrader.kraken.api import account_api
from copytrader.kraken.models import OrderRequest
from copytrader.nonce.store import wall_clock_ms
from tests import secretscan
from tests.broker.conftest import SimAccount, accounts_toml, make_broker
from tests.simproc import SimProcess, running_sim


@pytest.fixture(name="log_sink")
def _log_sink() -> Iterator[io.StringIO]:
    """Every structlog event at any level, rendered as JSON lines (no redaction), into a buffer."""
    previous = structlog.get_config()
    sink = io.StringIO()
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=repr),
        ],
        logger_factory=structlog.PrintLoggerFactory(file=sink),
        wrapper_class=structlog.make_filtering_bound_logger(0),
        cache_logger_on_first_use=False,
    )
    try:
        yield sink
    finally:
        structlog.configure(**previous)
        secretscan.record_output("broker secret workload logs", sink.getvalue())


class SignatureRecordingTransport(HTTPAdapter):
    """The real transport, also keeping each API-Sign it sends (to look for it afterwards)."""

    def __init__(self, signatures: list[str]) -> None:
        super().__init__(max_retries=0)
        self.signatures = signatures

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        if "API-Sign" in request.headers:
            self.signatures.append(str(request.headers["API-Sign"]))
        return super().send(request, *args, **kwargs)


def describe(exc: BaseException) -> str:
    """Everything an operator could see of an exception: str, repr and the chained traceback."""
    return "\n".join([str(exc), repr(exc), *traceback.format_exception(exc)])


def workload(sim: SimProcess, good: SimAccount, reader: SimAccount, data: Path) -> list[str]:
    """Successes, lost replies, 5xx, timeouts, nonce jumps, bad keys, permissions, lockouts."""
    seen: list[str] = []
    signatures: list[str] = []
    broker = make_broker(
        good, sim, data, timeout_s=0.3, transport=SignatureRecordingTransport(signatures)
    )
    order = OrderRequest(
        pair="XBTUSD", side=Side.BUY, order_type=OrderType.LIMIT,
        volume=Decimal("0.01"), price=Decimal("50000"),
    )  # fmt: skip

    def attempt(call: object) -> None:
        try:
            assert callable(call)
            call()
        except KrakenError as exc:
            seen.append(describe(exc))

    attempt(broker.balances)
    for kind in ("drop_reply", "http502", "unavailable", "hang"):
        sim.control("fault", {"endpoint": "AddOrder", "kind": kind, "count": 1})
        attempt(lambda: broker.add_order(order))
    sim.control("fault", {"endpoint": "Balance", "kind": "hang", "count": -1})
    attempt(broker.balances)
    sim.control("faults/clear", {})
    sim.control("nonce", {"key": good.key, "nonce": wall_clock_ms() + 300_000})
    attempt(broker.open_orders)
    sim.control("nonce", {"key": good.key, "nonce": wall_clock_ms() * 1000})
    attempt(broker.open_orders)  # nonce jumps run out: AccountUnusableError with a cause chain
    attempt(broker.open_orders)  # resting
    wrong_secret = make_broker(SimAccount("x", "USER:x", key=reader.key), sim, data)
    attempt(wrong_secret.balances)
    unknown_key = make_broker(SimAccount("y", "USER:y"), sim, data)
    attempt(unknown_key.balances)
    read_only = make_broker(reader, sim, data)
    attempt(lambda: read_only.add_order(order))
    attempt(read_only.websocket_token)
    api = account_api(good.credentials, sim.url)
    for thing in (broker, read_only, broker.nonce_store, good.credentials, api, api.secret):
        seen.extend([repr(thing), str(thing), f"{thing}"])
    seen.append(repr(vars(api)))
    api.close()
    assert len(signatures) >= 5
    secretscan.record_output("broker secret workload", "\n".join(seen))
    return seen + [f"SIGNATURE:{s}" for s in signatures]


def test_no_secret_key_or_signature_in_logs_reprs_or_errors(
    tmp_path: Path, log_sink: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    """Logs, exception texts (with their causes) and reprs never contain a secret or full key."""
    good = SimAccount(name="master", account_id="MASTER")
    reader = SimAccount(
        name="reader", account_id="USER:reader", permissions=("query_funds", "query_orders")
    )
    with running_sim(accounts_toml(good, reader)) as sim:
        texts = workload(sim, good, reader, tmp_path / "data")
        sim_output = "\n".join(sim.output)
    signatures = [t.removeprefix("SIGNATURE:") for t in texts if t.startswith("SIGNATURE:")]
    texts = [t for t in texts if not t.startswith("SIGNATURE:")]
    captured = capsys.readouterr()
    logs = log_sink.getvalue()
    assert "broker.nonce_jump" in logs
    assert "broker.outcome_resolved" in logs
    assert "broker.retry" in logs
    haystack = "\n".join([logs, captured.out, captured.err, *texts])
    forbidden = {
        "master secret": good.secret,
        "reader secret": reader.secret,
        "master key": good.key,
        "reader key": reader.key,
        **{f"signature {n}": s for n, s in enumerate(signatures)},
    }
    leaks = [name for name, value in forbidden.items() if value in haystack]
    assert leaks == []
    assert good.key[:4] + "…" in haystack  # the key hint is what identifies a key instead
    assert all(value not in sim_output for value in (good.secret, reader.secret))
