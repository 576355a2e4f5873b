"""The `/status` page: one HTML page a non-programmer can read, from a BoardSnapshot and the
ledger's recent rows.

Every string that came from the configuration or the exchange (names, ids, pairs, reasons,
error texts) goes through `html.escape` (`_e`) and nowhere else; the page has no script and its
Content-Security-Policy (set by the server) allows none, so even a string that slipped through
could not run. It refreshes itself every 15 s.
"""

from __future__ import annotations

import html
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from copytrader.ledger.records import CopyRecord, CopyState, MasterOrderRecord
from copytrader.logs import redact_text
from copytrader.service.status_state import AccountLine, BoardSnapshot

REFRESH_S = 15
NOT_MEASURED = "not measured"


@dataclass(frozen=True)
class LedgerRows:
    """What the page shows from the ledger; `problem` says why it could not be read."""

    master_orders: Sequence[MasterOrderRecord] = ()
    copies: Sequence[CopyRecord] = ()
    problem: str | None = None


def _e(value: object) -> str:
    """Text for the page: escaped for HTML, and with anything that looks like a key or secret
    blanked, as in the logs (the page shows the same exchange errors the logs do)."""
    return html.escape(redact_text(str(value)), quote=True)


def _when(unix: float | None) -> str:
    if not unix:
        return "—"
    moment = datetime.fromtimestamp(unix, tz=UTC)
    ago = max(0.0, time.time() - unix)
    if ago < 120:
        rel = f"{ago:.0f} s ago"
    elif ago < 7200:
        rel = f"{ago / 60:.0f} min ago"
    else:
        rel = f"{ago / 3600:.1f} h ago"
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC ({rel})"


def _num(value: Decimal | None) -> str:
    if value is None:
        return "—"
    text = format(value.normalize(), "f")
    return text


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


_STYLE = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
main{max-width:1100px;margin:0 auto;padding:16px}
h1{font-size:1.3rem;margin:8px 0 12px}
h2{font-size:1.05rem;margin:22px 0 8px}
.banner{padding:14px 18px;border-radius:8px;font-size:1.15rem;font-weight:600}
.ok{background:#dff3e4;color:#14532d;border:1px solid #86c99a}
.bad{background:#fde2e1;color:#7f1d1d;border:1px solid #f0a3a0}
.warn{background:#fff4d6;color:#6b4b00;border:1px solid #e8c66b}
table{border-collapse:collapse;width:100%;background:#fff;font-size:.92rem}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e3e5ea;vertical-align:top}
th{background:#eceef2;font-weight:600}
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:.85rem;font-weight:600}
.yes{background:#dff3e4;color:#14532d}.no{background:#fde2e1;color:#7f1d1d}
.muted{color:#6b7280}.small{font-size:.85rem}
dl{display:grid;grid-template-columns:max-content auto;gap:4px 16px;background:#fff;padding:10px;
margin:0}
dt{color:#4b5563}dd{margin:0}
"""


def _pill(ok: bool, yes: str, no: str) -> str:
    return f'<span class="pill {"yes" if ok else "no"}">{_e(yes if ok else no)}</span>'


def render_status_page(snapshot: BoardSnapshot, rows: LedgerRows) -> str:
    verdict = snapshot.verdict
    beat = snapshot.heartbeat
    banner_class = "ok" if verdict.copying else "bad"
    headline = "Copying" if verdict.copying else "Not copying"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="refresh" content="{REFRESH_S}">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        "<title>kraken-copytrader status</title>",
        f"<style>{_STYLE}</style></head><body><main>",
        "<h1>kraken-copytrader</h1>",
        f'<div id="verdict" class="banner {banner_class}" data-copying='
        f'"{"yes" if verdict.copying else "no"}" data-state="{_e(verdict.state.value)}">'
        f"{headline}: {_e(verdict.reason)}</div>",
    ]
    if snapshot.dry_run:
        parts.append(
            '<p class="banner warn" id="dry-run">Dry run: orders are only validated by Kraken,'
            " never placed.</p>"
        )
    parts.append(_overview(snapshot))
    parts.append(_accounts(snapshot))
    parts.append(_master_orders(rows))
    parts.append(_copies(rows))
    parts.append(
        f'<p class="muted small">Up {_duration(beat.uptime_s)}; copies since start: placed'
        f" {beat.copies_placed}, skipped {beat.copies_skipped}, failed {beat.copies_failed};"
        f" master orders seen {beat.master_orders_seen}. Page written"
        f" {datetime.now(tz=UTC):%Y-%m-%d %H:%M:%S} UTC, refreshes every {REFRESH_S} s.</p>"
    )
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _overview(snapshot: BoardSnapshot) -> str:
    facts = snapshot.facts
    feed = (
        "not read yet"
        if facts.feed_age_s is None
        else f"read {facts.feed_age_s:.0f} s ago (every {facts.poll_interval_s:g} s)"
    )
    if facts.feed_error:
        feed += f"; last error: {facts.feed_error}"
    kill = snapshot.kill_switch
    close_only = snapshot.close_only
    if close_only is None:
        close_text = NOT_MEASURED
    else:
        on = sorted(user for user, state in close_only.items() if state.on)
        close_text = f"on for {', '.join(on)}" if on else "off for every user"
    return (
        '<h2>Overview</h2><dl id="overview">'
        f'<dt>MASTER\'s orders</dt><dd id="feed">{_e(feed)}</dd>'
        f'<dt>Kill switch</dt><dd id="kill-switch">{_pill(kill is None, "off", "ON")}'
        f"{'' if kill is None else ' ' + _e(kill)}</dd>"
        f'<dt>Close-only</dt><dd id="close-only">{_e(close_text)}</dd>'
        "</dl>"
    )


def _accounts(snapshot: BoardSnapshot) -> str:
    close_only = snapshot.close_only
    drift = snapshot.drift
    head = (
        '<h2>Accounts</h2><table id="accounts"><thead><tr><th>Account</th><th>Name</th>'
        "<th>Connected</th><th>Details</th><th>Close-only</th><th>Drift</th></tr></thead><tbody>"
    )
    body = [_account_row(snapshot.master, "—", "—")]
    if not snapshot.users:
        body.append('<tr><td colspan="6" class="muted">no enabled user (yet)</td></tr>')
    for line in snapshot.users:
        if close_only is None:
            close_cell = NOT_MEASURED
        elif line.account in close_only:
            state = close_only[line.account]
            close_cell = ("ON: " + state.reason) if state.on else "off"
        else:
            close_cell = "off"
        if drift is None or line.account not in drift:
            drift_cell = NOT_MEASURED
        else:
            reading = drift[line.account]
            drift_cell = ("over threshold: " if reading.exceeded else "") + reading.summary
        body.append(_account_row(line, close_cell, drift_cell))
    return head + "".join(body) + "</tbody></table>"


def _account_row(line: AccountLine, close_cell: str, drift_cell: str) -> str:
    return (
        f'<tr data-account="{_e(line.account)}"><td>{_e(line.account)}</td><td>{_e(line.name)}'
        f"</td><td>{_pill(line.ready, 'yes', 'no')}</td><td>{_e(line.detail)}</td>"
        f"<td>{_e(close_cell)}</td><td>{_e(drift_cell)}</td></tr>"
    )


def _master_orders(rows: LedgerRows) -> str:
    if rows.problem:
        return f'<h2>Last master orders</h2><p class="muted" id="ledger">{_e(rows.problem)}</p>'
    if not rows.master_orders:
        return (
            '<h2>Last master orders</h2><p class="muted" id="master-orders">none since the'
            " daemon first started (orders that existed before are never copied)</p>"
        )
    body = []
    for order in rows.master_orders:
        decision = order.decision.value + (f": {order.skip_reason}" if order.skip_reason else "")
        body.append(
            f"<tr><td>{_e(_when(order.first_seen_at))}</td><td>{_e(order.txid)}</td>"
            f"<td>{_e(order.pair)}</td><td>{_e(order.side.value)}</td>"
            f"<td>{_e(order.order_type.value if order.order_type else 'unsupported')}</td>"
            f"<td>{_e(_num(order.volume))}</td><td>{_e(_num(order.price))}</td>"
            f"<td>{_e(order.status.value)}</td><td>{_e(decision)}</td></tr>"
        )
    return (
        '<h2>Last master orders</h2><table id="master-orders"><thead><tr><th>Seen</th>'
        "<th>Order</th><th>Pair</th><th>Side</th><th>Type</th><th>Volume</th><th>Price</th>"
        "<th>Status</th><th>Decision</th></tr></thead><tbody>" + "".join(body) + "</tbody></table>"
    )


def _outcome(copy: CopyRecord) -> str:
    if copy.state is CopyState.SKIPPED:
        return f"skipped: {copy.reason or 'no reason recorded'}"
    if copy.state is CopyState.FAILED:
        return f"failed: {copy.error or copy.reason or 'no error recorded'}"
    if copy.state is CopyState.CANCELLED:
        return f"cancelled: {copy.reason}" if copy.reason else "cancelled"
    if copy.state in (CopyState.PLANNED, CopyState.SUBMITTING):
        retry = f" (attempt {copy.attempts + 1})" if copy.attempts else ""
        return f"in progress{retry}"
    return f"placed as {copy.txid}" if copy.txid else "placed"


def _copies(rows: LedgerRows) -> str:
    if rows.problem:
        return ""
    if not rows.copies:
        return '<h2>Last copies</h2><p class="muted" id="copies">no copies yet</p>'
    masters = {order.txid: order for order in rows.master_orders}
    body = []
    for copy in rows.copies:
        master = masters.get(copy.master_txid)
        pair = master.pair if master else "?"
        side = master.side.value if master else "?"
        latency = "—" if copy.latency_ms is None else f"{copy.latency_ms:.0f} ms"
        body.append(
            f'<tr class="copy-{_e(copy.state.value)}"><td>{_e(_when(copy.updated_at))}</td>'
            f"<td>{_e(copy.user_id)}</td><td>{_e(copy.master_txid)}</td><td>{_e(pair)}</td>"
            f"<td>{_e(side)}</td><td>{_e(_num(copy.volume))}</td><td>{_e(_num(copy.price))}</td>"
            f"<td>{_e(latency)}</td><td>{_e(NOT_MEASURED)}</td><td>{_e(_outcome(copy))}</td></tr>"
        )
    return (
        '<h2>Last copies</h2><table id="copies"><thead><tr><th>When</th><th>User</th>'
        "<th>Master order</th><th>Pair</th><th>Side</th><th>Volume</th><th>Price</th>"
        "<th>Latency</th><th>Slippage</th><th>Outcome</th></tr></thead><tbody>"
        + "".join(body)
        + "</tbody></table>"
        '<p class="muted small">Latency: from MASTER\'s order being seen to Kraken accepting'
        " the copy. Slippage needs the copy's fill price, which is not recorded yet.</p>"
    )
