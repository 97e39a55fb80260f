from datetime import UTC, datetime, timedelta
from io import StringIO

from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext

from runs.models import Log
from runs.retention import prune_logs

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def logs(endpoint, count: int, *, age_days: float, state: str = "success") -> None:
    when = NOW - timedelta(days=age_days)
    Log.objects.bulk_create(
        Log(endpoint=endpoint, state=state, created_at=when, due_at=when) for _ in range(count)
    )


def test_it_keeps_the_retention_window(make_endpoint):
    endpoint = make_endpoint(name="busy")
    logs(endpoint, 150, age_days=40)
    logs(endpoint, 120, age_days=1)
    assert prune_logs(NOW, days=30) == 150
    assert Log.objects.filter(endpoint=endpoint).count() == 120


def test_it_always_keeps_the_last_100_logs_of_every_endpoint(make_endpoint):
    quiet = make_endpoint(name="quiet")
    busy = make_endpoint(name="busy")
    logs(quiet, 30, age_days=400)  # all old, but all of its history
    logs(busy, 250, age_days=400)
    logs(busy, 40, age_days=1)
    prune_logs(NOW, days=30)
    assert Log.objects.filter(endpoint=quiet).count() == 30
    # The 40 recent ones plus the 60 newest old ones make up its floor of 100.
    assert Log.objects.filter(endpoint=busy).count() == 100


def test_it_never_deletes_open_runs(make_endpoint):
    endpoint = make_endpoint(name="slow")
    logs(endpoint, 200, age_days=60)
    logs(endpoint, 3, age_days=60, state="pending")
    prune_logs(NOW, days=30, keep=10)
    assert Log.objects.filter(endpoint=endpoint, state="pending").count() == 3


def test_it_deletes_in_batches(make_endpoint):
    endpoint = make_endpoint(name="bulk")
    logs(endpoint, 350, age_days=90)
    with CaptureQueriesContext(connection) as queries:
        assert prune_logs(NOW, days=30, keep=100, batch=100) == 250
    deletes = [q["sql"] for q in queries if q["sql"].startswith('DELETE FROM "runs_log"')]
    assert len(deletes) == 3  # 100 + 100 + 50, never one statement for everything


def test_prunelogs_reports_what_it_did(make_endpoint):
    endpoint = make_endpoint(name="cmd")
    logs(endpoint, 120, age_days=10_000)
    out = StringIO()
    call_command("prunelogs", "--days", "30", stdout=out)
    assert out.getvalue().strip() == "Deleted 20 run log(s) older than 30 day(s)."


def test_the_cluster_schedules_retention_daily(db):
    from django_q.models import Schedule

    from runs.management.commands.qcluster import ensure_daily_retention

    ensure_daily_retention()
    ensure_daily_retention()
    schedule = Schedule.objects.get()
    assert (schedule.func, schedule.schedule_type) == ("runs.retention.prune_logs_task", "D")
