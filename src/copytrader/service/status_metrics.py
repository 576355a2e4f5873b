"""`/metrics`: the StatusBoard in Prometheus' text format (prometheus-client).

One custom collector reads a fresh BoardSnapshot on every scrape, so the numbers are the same
ones the page and `/healthz` show; it lives in a registry of its own (not the library's global
one), so nothing else in the process adds metrics by accident.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from copytrader.service.status_state import StatusBoard
from copytrader.service.status_verdict import CopyState

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class BoardCollector(Collector):
    def __init__(self, board: StatusBoard) -> None:
        self._board = board

    def collect(self) -> Iterator[Metric]:
        snap = self._board.snapshot()
        beat = snap.heartbeat
        facts = snap.facts

        copying = GaugeMetricFamily(
            "copytrader_copying", "1 while the daemon is copying (what /healthz answers 200 for)"
        )
        copying.add_metric([], int(snap.verdict.copying))
        yield copying

        state = GaugeMetricFamily(
            "copytrader_state",
            "1 for the daemon's current state, 0 for the others",
            labels=["state"],
        )
        for member in CopyState:
            state.add_metric([member.value], int(snap.verdict.state is member))
        yield state

        uptime = GaugeMetricFamily("copytrader_uptime_seconds", "Seconds since the daemon started")
        uptime.add_metric([], beat.uptime_s)
        yield uptime

        ready = GaugeMetricFamily(
            "copytrader_account_ready",
            "1 when the account is connected and not resting",
            labels=["account"],
        )
        ready.add_metric([snap.master.account], int(snap.master.ready))
        for line in snap.users:
            ready.add_metric([line.account], int(line.ready))
        yield ready

        copies = CounterMetricFamily(
            "copytrader_copies", "Copies since the daemon started, by outcome", labels=["outcome"]
        )
        copies.add_metric(["placed"], beat.copies_placed)
        copies.add_metric(["skipped"], beat.copies_skipped)
        copies.add_metric(["failed"], beat.copies_failed)
        yield copies

        seen = CounterMetricFamily(
            "copytrader_master_orders_seen", "MASTER orders seen since the daemon started"
        )
        seen.add_metric([], beat.master_orders_seen)
        yield seen

        reads = CounterMetricFamily(
            "copytrader_master_feed_reads", "Successful reads of MASTER's orders", labels=["result"]
        )
        reads.add_metric(["ok"], snap.feed_reads)
        reads.add_metric(["failed"], snap.feed_failures)
        yield reads

        if facts.feed_age_s is not None:
            age = GaugeMetricFamily(
                "copytrader_master_feed_age_seconds",
                "Seconds since MASTER's orders were last read successfully",
            )
            age.add_metric([], facts.feed_age_s)
            yield age

        kill = GaugeMetricFamily("copytrader_kill_switch", "1 while the kill switch is on")
        kill.add_metric([], int(snap.kill_switch is not None))
        yield kill

        if snap.close_only is not None:
            close = GaugeMetricFamily(
                "copytrader_close_only", "1 while the user is in close-only mode", labels=["user"]
            )
            for user, mode in sorted(snap.close_only.items()):
                close.add_metric([user], int(mode.on))
            yield close

        if snap.drift is not None:
            drift = GaugeMetricFamily(
                "copytrader_drift_exceeded",
                "1 while the user's drift from MASTER is past its threshold",
                labels=["user"],
            )
            for user, reading in sorted(snap.drift.items()):
                drift.add_metric([user], int(reading.exceeded))
            yield drift


class StatusMetrics:
    def __init__(self, board: StatusBoard) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(BoardCollector(board))

    def render(self) -> bytes:
        return generate_latest(self.registry)
