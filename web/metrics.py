"""Prometheus metrics: HTTP requests and latency by route and status (Litestar's Prometheus
middleware, paths grouped by their route template), and what the serving snapshot says of the
runs, read when scraped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

from litestar.plugins.prometheus import PrometheusConfig
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import REGISTRY, Collector

from store.errors import StoreError
from store.run_metrics import SourceLastRun, drift_events, last_source_runs
from web.snapshot import Snapshot

PREFIX = "kasparro"
SOURCE_STATUSES = ("loaded", "failed", "skipped")
ROW_KINDS = ("fetched", "inserted", "updated", "quarantined")

HTTP_METRICS = PrometheusConfig(
    app_name="kasparro",
    prefix=f"{PREFIX}_http",
    group_path=True,  # /api/v1/coins/{coin_id}, not one series per coin
    exclude=["/metrics"],
)
"""kasparro_http_requests_total, kasparro_http_request_duration_seconds (histogram),
kasparro_http_requests_in_progress, kasparro_http_requests_error_total: labels method, path,
status_code, app_name."""


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            f"{PREFIX}_snapshot_up", "1 when the serving snapshot can be read, else 0"
        )
        try:
            cursor = self.snapshot.cursor()
        except StoreError:
            up.add_metric([], 0)
            yield up
            return
        try:
            sources, drift = last_source_runs(cursor), drift_events(cursor)
        finally:
            cursor.close()
        up.add_metric([], 1)
        yield up
        age = GaugeMetricFamily(
            f"{PREFIX}_snapshot_age_seconds", "Seconds since the serving snapshot was published"
        )
        age.add_metric([], (datetime.now(UTC) - self.snapshot.published_at()).total_seconds())
        yield age
        yield from _source_metrics(sources)
        if drift is not None:
            events = GaugeMetricFamily(
                f"{PREFIX}_source_drift_events",
                "Schema-drift events recorded per source, all runs",
                labels=["source"],
            )
            for source, count in sorted(drift.items()):
                events.add_metric([source], count)
            yield events


def _source_metrics(sources: list[SourceLastRun]) -> Iterator[Metric]:
    status = GaugeMetricFamily(
        f"{PREFIX}_source_last_run_status",
        "1 for the status of each source's last run (loaded, failed, skipped), else 0",
        labels=["source", "status"],
    )
    finished = GaugeMetricFamily(
        f"{PREFIX}_source_last_run_timestamp_seconds",
        "When each source's last run finished (Unix time)",
        labels=["source"],
    )
    duration = GaugeMetricFamily(
        f"{PREFIX}_source_last_run_duration_seconds",
        "Extract + transform + load seconds of each source's last run",
        labels=["source"],
    )
    rows = GaugeMetricFamily(
        f"{PREFIX}_source_last_run_rows",
        "Rows of each source's last run: fetched, inserted, updated, quarantined",
        labels=["source", "kind"],
    )
    for row in sources:
        for name in SOURCE_STATUSES:
            status.add_metric([row.source, name], float(row.status == name))
        if row.finished_at is not None:
            finished.add_metric([row.source], row.finished_at.timestamp())
        duration.add_metric([row.source], row.seconds)
        for kind in ROW_KINDS:
            rows.add_metric([row.source, kind], getattr(row, kind))
    yield from (status, finished, duration, rows)


def exposition(snapshot: Snapshot) -> bytes:
    """The HTTP metrics (process-wide registry) and the snapshot's, in the text format."""
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(REGISTRY) + generate_latest(registry)
