"""The dispatcher's frequent reads use their indexes (EXPLAIN on SQLite and on PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from endpoints.models import Endpoint
from runs import cluster, flow
from runs.models import Log

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def plan(queryset) -> str:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            # Tiny test tables are cheaper to scan: ask what the planner would use at scale.
            cursor.execute("SET enable_seqscan = off")
        try:
            return queryset.explain()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SET enable_seqscan = on")
    return queryset.explain()


@pytest.mark.parametrize(
    ("name", "query", "index"),
    [
        (
            "due endpoints",
            lambda: Endpoint.objects.due(NOW).order_by("next_run_at"),
            "endpoint_due_idx",
        ),
        (
            "paused endpoints to resume",
            lambda: Endpoint.objects.filter(enabled=False, paused_until__lte=NOW).order_by(),
            "endpoint_paused_until_idx",
        ),
        (
            "earliest pending run",
            lambda: Log.objects.filter(state="pending").order_by("due_at").values("due_at")[:1],
            # Either narrows to the few pending rows (SQLite picks by its own statistics).
            ("log_pending_due_idx", "log_state_latest_idx"),
        ),
        (
            "expired leases",
            lambda: Log.objects.filter(
                state__in=("queued", "running"), lease_expires_at__lt=NOW
            ).order_by(),
            ("log_open_lease_idx", "log_state_latest_idx"),
        ),
        (
            "runs lost with their cluster or lease",
            lambda: Log.objects.filter(cluster._lost(NOW, {"live-cluster"})).order_by(),
            ("log_open_cluster_idx", "log_open_lease_idx", "log_state_latest_idx"),
        ),
        (
            "a flow key's runs in flight",
            lambda: flow.keyed_runs().filter(flow_key="vendor-api", state__in=flow.IN_FLIGHT),
            "log_flow_state_idx",
        ),
        (
            "a flow key's waiting runs",
            lambda: (
                flow.keyed_runs()
                .filter(flow_key="vendor-api", state="pending", held_since__lte=NOW)
                .order_by("held_since", "id")
            ),
            ("log_flow_state_idx", "log_flow_starts_idx"),
        ),
        (
            "a flow key's recent starts",
            lambda: flow.keyed_runs().filter(
                flow_key="vendor-api", state__in=flow.STARTED, due_at__gt=NOW
            ),
            ("log_flow_starts_idx", "log_flow_state_idx"),
        ),
        (
            "the jobs sharing a flow key",
            lambda: Endpoint.objects.exclude(flow_key="").filter(flow_key__in=["vendor-api"]),
            "endpoint_flow_key_idx",
        ),
        (
            "an endpoint's latest runs",
            lambda: Log.objects.filter(endpoint_id=1).order_by("-id")[:20],
            "log_endpoint_latest_idx",
        ),
    ],
)
def test_the_query_uses_its_index(db, name, query, index):
    explained = plan(query())
    indexes = (index,) if isinstance(index, str) else index
    assert any(ix in explained for ix in indexes), f"{name} uses none of {indexes}: {explained}"
    # A search on the index, not a walk through the whole table or index.
    assert "Seq Scan" not in explained and "SCAN " not in explained, explained
