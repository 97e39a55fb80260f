"""The catalog scenario: a big installation at rest (no cluster running).

Ours: 100,000 endpoints and 1,000,000 finished logs (with --jobs realistic, the default, every
endpoint is a copy of one job made through `manage.py applyjobs`: POST, a JSON body, an
encrypted Bearer header, default policies; --jobs minimal: bulk_create of GETs); the
dashboard's endpoint list, the API's job and schedule lists (first page, in-process through
Django's test client: view + ORM + template time, no network), and the dispatcher's idle tick
(nothing due) are timed.
Baseline: 100,000 django-q2 Schedules and 1,000,000 saved tasks; the admin's schedule and
task lists, and one pass of django-q2's scheduler with nothing due.
Rows are copied from one template row with INSERT … SELECT over a number series (seconds, not
the minutes bulk_create would take).
"""

from __future__ import annotations

import statistics
import sys
import time
from datetime import UTC, datetime, timedelta

from bench.harness import Environment, make_jobs, percentiles


def series_insert(model, template_pk, count: int, overrides: dict[str, str]) -> None:
    """INSERT `count` copies of one row of `model`, with some columns computed from g = 1..count."""
    from django.db import connection

    table = model._meta.db_table
    columns = [
        f.column
        for f in model._meta.concrete_fields
        if not (f.primary_key and f.column not in overrides)
    ]
    values = ", ".join(overrides.get(column, f't."{column}"') for column in columns)
    quoted = ", ".join(f'"{column}"' for column in columns)
    if connection.vendor == "postgresql":
        source = f"generate_series(1, {count}) AS s(g)"
    else:
        source = (
            f"(WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < {count}) "
            "SELECT g FROM s) AS s"
        )
    sql = (
        f'INSERT INTO "{table}" ({quoted}) SELECT {values} FROM "{table}" AS t, {source} '
        f"WHERE t.{model._meta.pk.column} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [template_pk])


def minutes_before(base: datetime, minutes_sql: str) -> str:
    from django.db import connection

    stamp = base.strftime("%Y-%m-%d %H:%M:%S")
    if connection.vendor == "postgresql":
        return f"(TIMESTAMPTZ '{stamp}+00' - ({minutes_sql}) * INTERVAL '1 minute')"
    return f"datetime('{stamp}', '-' || ({minutes_sql}) || ' minutes')"


def unique_text(expr: str) -> str:
    from django.db import connection

    if connection.vendor == "postgresql":
        return f"md5(({expr})::text)"
    return "lower(hex(randomblob(16)))"


def seconds_after(base: datetime, seconds_sql: str) -> str:
    from django.db import connection

    stamp = base.strftime("%Y-%m-%d %H:%M:%S")
    if connection.vendor == "postgresql":
        return f"(TIMESTAMPTZ '{stamp}+00' + ({seconds_sql}) * INTERVAL '1 second')"
    return f"datetime('{stamp}', '+' || ({seconds_sql}) || ' seconds')"


def build_realistic(env: Environment, endpoints: int) -> None:
    """`endpoints` copies of one realistic job made through applyjobs (name, url, state varied)."""
    from django.db import connection

    from endpoints.models import Endpoint

    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    [template] = make_jobs(
        env, [{"name": "catalog-template", "url": "http://127.0.0.1:9/hook", "cron": "*/5 * * * *"}]
    )
    pg = connection.vendor == "postgresql"
    overrides = {
        "name": "'catalog-' || lpad(g::text, 6, '0')" if pg else "'catalog-' || printf('%%06d', g)",
        "url": "'https://example.com/hook/' || g",
        "enabled": "(g %% 20 != 0)",
        "next_run_at": seconds_after(later, "g %% 3600"),
        "last_status": "'success'",
        "last_run_at": seconds_after(now, "0"),
    }
    for field in Endpoint._meta.concrete_fields:
        if field.unique and not field.primary_key and field.column not in overrides:
            text = unique_text("g")
            uuid = field.get_internal_type() == "UUIDField"
            overrides[field.column] = f"{text}::uuid" if uuid and pg else text
    series_insert(Endpoint, template.pk, endpoints, overrides)
    template.delete()


def build_ours(endpoints: int, logs: int, env: Environment | None = None, jobs="minimal") -> None:
    from endpoints.models import Endpoint

    now = datetime.now(UTC)
    later = now + timedelta(hours=1)
    if jobs == "realistic":
        build_realistic(env, endpoints)
    else:
        _build_minimal(endpoints, now, later)
    first = Endpoint.objects.order_by("pk").values_list("pk", flat=True).first()
    _build_logs(first, endpoints, logs, now, jobs)


def _build_minimal(endpoints: int, now: datetime, later: datetime) -> None:
    from endpoints.models import Endpoint

    Endpoint.objects.bulk_create(
        (
            Endpoint(
                name=f"catalog-{i:06d}",
                url=f"https://example.com/hook/{i}",
                cron_expression="*/5 * * * *",
                timezone="UTC",
                enabled=i % 20 != 0,
                next_run_at=later + timedelta(seconds=i % 3600),
                last_status="success",
                last_run_at=now,
            )  # fmt: skip
            for i in range(endpoints)
        ),
        batch_size=5000,
    )


def _build_logs(first: int, endpoints: int, logs: int, now: datetime, jobs: str) -> None:
    from runs.models import Log

    request = {"method": "GET", "url": "https://example.com/hook"}
    if jobs == "realistic":
        request = {
            "method": "POST", "url": "https://example.com/hook",
            "headers": {"Content-Type": "application/json", "Accept": "application/json",
                        "Authorization": "••••••••", "Idempotency-Key": "0" * 36},
            "body": '{"job":"catalog","report":"daily-digest","since":"yesterday"}',
        }  # fmt: skip
    template = Log.objects.create(
        endpoint_id=first, scheduled_for=now - timedelta(days=30), state="success",
        started_at=now, finished_at=now, duration_ms=42, status_code=200,
        response_headers={"content-type": "application/json"}, response_excerpt='{"ok":true}',
        response_bytes=11, request=request,
        result_summary={"status_code": 200, "duration_ms": 42, "response_bytes": 11},
    )  # fmt: skip
    when = minutes_before(now, f"g / {endpoints}")
    series_insert(
        Log, template.pk, logs,
        {
            "endpoint_id": f"{first} + (g %% {endpoints})",
            "scheduled_for": when, "due_at": when, "created_at": when, "queued_at": when,
            "started_at": when, "finished_at": when,
            "state": "CASE WHEN g %% 10 = 0 THEN 'failed' ELSE 'success' END",
        },
    )  # fmt: skip
    template.delete()


def build_baseline(schedules: int, tasks: int) -> None:
    from django_q.models import Schedule, Task

    now = datetime.now(UTC)
    Schedule.objects.bulk_create(
        (
            Schedule(
                name=f"catalog-{i:06d}",
                func="bench.baseline.call",
                args=repr((f"https://example.com/hook/{i}", "")),
                schedule_type=Schedule.CRON,
                cron="*/5 * * * *",
                repeats=-1,
                next_run=now + timedelta(hours=1, seconds=i % 3600),
            )  # fmt: skip
            for i in range(schedules)
        ),
        batch_size=5000,
    )
    template = Task.objects.create(
        id="0" * 32, name="template", func="bench.baseline.call",
        args=("https://example.com/hook", ""), kwargs={}, result=200, group="catalog",
        started=now, stopped=now, success=True, attempt_count=1,
    )  # fmt: skip
    when = minutes_before(now, f"g / {schedules}")
    series_insert(
        Task,
        template.pk,
        tasks,
        {"id": unique_text("g"), "name": unique_text("g + 7"), "started": when, "stopped": when},
    )
    template.delete()


def timed(fn, times: int, budget_s: float = 60) -> list[float]:
    """Up to `times` timings in ms (at least 3, fewer when each one is slow), after a warm-up."""
    fn()  # warm up (template loading, first queries)
    samples: list[float] = []
    deadline = time.monotonic() + budget_s
    while len(samples) < times and (len(samples) < 3 or time.monotonic() < deadline):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def get(client, url: str):
    def fetch() -> None:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)

    return fetch


def catalog(args, baseline: bool) -> dict:
    endpoints = args.endpoints or 100_000
    logs = endpoints * 10
    with Environment("catalog", args.db, args.redis, args.workers) as env:
        from django.contrib.auth.models import User
        from django.db import connection
        from django.test import Client

        started = time.monotonic()
        if baseline:
            build_baseline(endpoints, logs)
        else:
            build_ours(endpoints, logs, env, args.jobs)
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        figures: dict = {"endpoints": endpoints, "logs": logs}
        figures["build_s"] = round(time.monotonic() - started, 1)
        client = Client(SERVER_NAME="localhost")
        client.force_login(User.objects.create_superuser("bench", "b@example.com", "x"))
        pages = {
            # the admin's lists stand for django-q2's "dashboard" and "API"
            "dashboard_ms": "/admin/django_q/schedule/" if baseline else "/",
            "api_jobs_ms": "/admin/django_q/success/" if baseline else "/api/v1/scheduler/jobs",
        }
        if not baseline:
            pages["api_schedules_ms"] = "/api/v1/schedules?limit=50"
        for key, url in pages.items():
            figures[key] = percentiles(timed(get(client, url), 20))
        if baseline:
            figures["idle_tick_ms"] = percentiles(timed(_q2_scheduler_pass, 30))
        else:
            figures["idle_tick_ms"] = _idle_ticks(12)
            figures["plans"] = explain_dispatcher()
            for plan in figures["plans"]:
                print(f"EXPLAIN {plan['query'][:70]}… → {plan['uses']}", file=sys.stderr)
    return figures


def explain_dispatcher() -> list[dict]:
    """EXPLAIN each read of a dispatcher pass and a sweep: which index (if any) it uses."""
    import re

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from runs import dispatcher
    from runs.models import Log

    now = datetime.now(UTC)
    some = list(Log.objects.order_by("-id").values_list("endpoint_id", flat=True)[:500])
    with CaptureQueriesContext(connection) as queries:
        dispatcher.dispatch_due(now)
        dispatcher.dispatch_pending(now)
        dispatcher.recover_stuck(now)
        dispatcher.next_wakeup(now, timedelta(seconds=1))
        dispatcher._open_runs(some)
        dispatcher._without_claimed_slots(
            [Log(endpoint_id=pk, scheduled_for=now, attempt=1) for pk in some]
        )
    plans = []
    prefix = "EXPLAIN QUERY PLAN " if connection.vendor == "sqlite" else "EXPLAIN "
    for query in queries:
        sql = query["sql"]
        if not sql.lstrip().upper().startswith("SELECT"):
            continue
        with connection.cursor() as cursor:
            cursor.execute(prefix + sql)
            text = "\n".join(" ".join(str(cell) for cell in row) for row in cursor.fetchall())
        uses = sorted(set(re.findall(r"\b(\w+_idx|\w+_pkey|log_one_per_slot_attempt)\b", text)))
        scan = "Seq Scan" in text or re.search(r"\bSCAN \w+(?! USING)", text) is not None
        plans.append(
            {"query": sql, "plan": text, "uses": ", ".join(uses) or "no index", "full_scan": scan}
        )
    return plans


def _q2_scheduler_pass() -> None:
    from django_q.scheduler import scheduler

    scheduler()


def _idle_ticks(seconds: float) -> dict:
    """Dispatcher loop ticks with nothing due, 4 a second (sweeps and heartbeats included)."""
    from runs.dispatcher_loop import DispatcherLoop

    loop = DispatcherLoop(enqueue=lambda logs: None)
    loop.tick()
    samples = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        started = time.perf_counter()
        loop.tick()
        samples.append((time.perf_counter() - started) * 1000)
        time.sleep(0.25)
    figures = percentiles(samples)
    figures["mean"] = round(statistics.fmean(samples), 3)
    return figures
