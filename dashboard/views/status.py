"""The status page: dispatchers alive, the django-q2 cluster, queue depth, lag, recent failures."""

from __future__ import annotations

import logging
import statistics
from datetime import timedelta
from typing import Any

from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.views.common import vary_on_htmx
from runs.models import Heartbeat, Log
from runs.observability import dispatch_lags

logger = logging.getLogger(__name__)
LAG_SAMPLE = 200
RECENT_FAILURES = 10


@login_required
@permission_required("runs.view_log", raise_exception=True)
def status(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    heartbeats = list(Heartbeat.objects.order_by("name"))
    for beat in heartbeats:
        beat.fresh = beat.is_fresh(now)
    open_runs = dict(
        Log.objects.filter(state__in=Log.OPEN_STATES)
        .values_list("state")
        .annotate(n=Count("id"))
        .order_by()
    )
    context = {
        "now": now,
        "heartbeats": heartbeats,
        "alive": sum(1 for beat in heartbeats if beat.fresh),
        "open_runs": {state: open_runs.get(state, 0) for state in Log.OPEN_STATES},
        "overdue": Log.objects.filter(state=Log.State.PENDING, due_at__lt=now).count(),
        "broker": broker_stats(),
        "clusters": cluster_stats(),
        "lag": dispatch_lag(now),
        "failures": Log.objects.filter(state=Log.State.FAILED)
        .select_related("endpoint")
        .order_by("-id")[:RECENT_FAILURES],
    }
    template = "dashboard/partials/status_panels.html" if request.htmx else "dashboard/status.html"
    return vary_on_htmx(render(request, template, context))


def dispatch_lag(now) -> dict[str, Any]:
    """Dispatch lag of the latest on-time runs of the last hour (p50, p95, max, in ms): what
    runs.observability.dispatch_lags measures, the same figure /metrics reports."""
    lags = [round(lag * 1000) for lag in dispatch_lags(now - timedelta(hours=1), LAG_SAMPLE)]
    if not lags:
        return {"runs": 0}
    return {
        "runs": len(lags),
        "p50": int(statistics.median(lags)),
        "p95": lags[min(len(lags) - 1, int(len(lags) * 0.95))],
        "max": lags[-1],
    }


def broker_stats() -> dict[str, Any]:
    """Tasks waiting on the django-q2 broker (ORM table or Redis list)."""
    from django_q.brokers import get_broker

    try:
        broker = get_broker()
        return {"name": broker.info(), "queued": broker.queue_size(), "error": ""}
    except Exception as exc:  # a broker that is down is what this page must show, not a 500
        logger.warning("broker unavailable: %s", exc)
        return {"name": "", "queued": None, "error": f"{type(exc).__name__}: {exc}"[:300]}


def cluster_stats() -> list[dict[str, Any]]:
    """django-q2's own cluster statistics (published through the cache: Redis or a shared one)."""
    from django_q.status import Stat

    try:
        stats = Stat.get_all()
    except Exception as exc:
        logger.warning("cluster statistics unavailable: %s", exc)
        return []
    return [
        {
            "cluster_id": str(stat.cluster_id),
            "host": stat.host,
            "status": stat.status,
            "workers": len(stat.workers),
            "task_q_size": stat.task_q_size,
            "uptime_s": int(stat.uptime()) if stat.tob else None,
        }
        for stat in stats
    ]
