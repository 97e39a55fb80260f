"""What /healthz and /metrics report: read from the database, so every process agrees."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, Q, Sum
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

from endpoints.models import Endpoint
from runs.models import Heartbeat, Log, lag_seconds

RECENT = timedelta(minutes=5)
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# The runs whose start measures the dispatcher: on-time slots, fired by the loop or by
# /api/v1/cron/process. A catch-up run starts late by the downtime (it is counted as catch_up),
# and manual runs and retries have no slot to be late for.
LAG_TRIGGERS = (Log.Trigger.SCHEDULE, Log.Trigger.CRON_ENDPOINT)


def health(now: datetime) -> tuple[bool, dict]:
    """(healthy, report): the database answers and at least one dispatcher is alive."""
    report: dict = {"checked_at": now.isoformat()}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        report["database"] = "ok"
    except Exception as exc:  # the point is to report it, whatever it is
        report.update(status="unavailable", database=f"error: {type(exc).__name__}")
        return False, report
    workers = [
        {
            "name": beat.name,
            "last_seen_at": beat.last_seen_at.isoformat(),
            "age_seconds": round((now - beat.last_seen_at).total_seconds(), 1),
            "fresh": beat.is_fresh(now),
        }
        for beat in Heartbeat.objects.order_by("name")
    ]
    alive = sum(worker["fresh"] for worker in workers)
    report.update(workers=workers, workers_alive=alive)
    report["status"] = "ok" if alive else "no worker"
    return alive > 0, report


class DatabaseCollector:
    """A prometheus-client collector that reads the numbers at scrape time."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def collect(self):
        yield from self._runs()
        yield from self._recent_durations()
        yield from self._lag()
        queue = GaugeMetricFamily(
            "cronplane_queue_depth", "Runs waiting: due pending ones and queued ones"
        )
        queue.add_metric(
            [],
            Log.objects.filter(
                Q(state=Log.State.QUEUED) | Q(state=Log.State.PENDING, due_at__lte=self.now)
            ).count(),
        )
        yield queue
        workers = GaugeMetricFamily("cronplane_workers_alive", "Dispatchers with a fresh heartbeat")
        workers.add_metric([], Heartbeat.objects.fresh(self.now).count())
        yield workers

    def _runs(self):
        by_state = GaugeMetricFamily(
            "cronplane_runs",
            "Run logs kept, by state (retention deletes old ones)",
            labels=["state"],
        )
        counts = dict(Log.objects.values_list("state").annotate(n=Count("id")).order_by())
        for state in Log.State.values:
            by_state.add_metric([state], counts.get(state, 0))
        yield by_state
        totals = Endpoint.objects.aggregate(
            success=Sum("success_count"), failed=Sum("failure_count")
        )
        finished = CounterMetricFamily(
            "cronplane_runs_finished",
            "Runs finished since the endpoints were created",
            labels=["outcome"],
        )
        for outcome in ("success", "failed"):
            finished.add_metric([outcome], totals[outcome] or 0)
        yield finished
        endpoints = GaugeMetricFamily("cronplane_endpoints", "Endpoints", labels=["enabled"])
        for enabled, n in (
            Endpoint.objects.values_list("enabled").annotate(n=Count("id")).order_by()
        ):
            endpoints.add_metric([str(enabled).lower()], n)
        yield endpoints

    def _recent_durations(self):
        durations = list(
            Log.objects.filter(finished_at__gte=self.now - RECENT, duration_ms__isnull=False)
            .order_by("-id")
            .values_list("duration_ms", flat=True)[:10_000]
        )
        buckets, running = [], 0
        for bound in DURATION_BUCKETS:
            running = sum(1 for ms in durations if ms / 1000 <= bound)
            buckets.append((str(float(bound)), running))
        buckets.append(("+Inf", len(durations)))
        yield HistogramMetricFamily(
            "cronplane_run_duration_seconds",
            "Duration of the runs finished in the last 5 minutes",
            buckets=buckets,
            sum_value=sum(durations) / 1000,
        )

    def _lag(self):
        lags = dispatch_lags(self.now - RECENT)
        lag = GaugeMetricFamily(
            "cronplane_dispatch_lag_seconds",
            "From slot to start, runs started in the last 5 minutes",
            labels=["quantile"],
        )
        for label, q in (("0.5", 0.5), ("0.99", 0.99), ("1", 1.0)):
            lag.add_metric([label], lags[min(len(lags) - 1, int(q * len(lags)))] if lags else 0)
        yield lag


def dispatch_lags(since: datetime, limit: int = 10_000) -> list[float]:
    """The dispatch lag (runs.models.lag_seconds) of the latest `limit` on-time runs started
    since `since`, sorted: what the dashboard's status page and /metrics show."""
    rows = (
        Log.objects.filter(
            started_at__gte=since, scheduled_for__isnull=False, trigger__in=LAG_TRIGGERS
        )
        .order_by("-id")
        .values_list(
            "started_at", "scheduled_for", "endpoint_id", "endpoint__jitter_seconds",
            "endpoint__schedule_type", "endpoint__created_at",
        )[:limit]
    )  # fmt: skip
    stubs: dict[int, Endpoint] = {}
    lags = []
    for started, slot, endpoint_id, jitter, schedule_type, created_at in rows:
        stub = stubs.setdefault(endpoint_id, Endpoint(pk=endpoint_id, jitter_seconds=jitter))
        lags.append(
            lag_seconds(started, slot, stub, schedule_type=schedule_type, created_at=created_at)
        )
    return sorted(lags)


def metrics_registry(now: datetime) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(now))
    return registry
