"""The timed scenarios of DESIGN §9, each as `name(args, baseline) -> figures`.

Ours: `manage.py qcluster` running; endpoints made as users make them (`--jobs realistic`, the
default: a job file through `manage.py applyjobs`, POST with a JSON body and Bearer token,
default policies), or with bulk_create as GETs with overlap `allow` (`--jobs minimal`).
Baseline: the same number of django-q2 cron Schedules calling `bench.baseline.call` (the same
request), run by django-q2's cluster alone. Lag is always request arrival at the target minus
the slot.
"""

from __future__ import annotations

import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from bench import baseline as q2
from bench.harness import (
    RESULTS,
    Environment,
    Target,
    make_jobs,
    next_minute,
    next_second,
    percentiles,
    sleep_until,
    tree_cpu_seconds,
    tree_memory_mb,
    wait_for,
)

FINAL = ("success", "failed", "skipped", "missed", "cancelled")
# How long after a throughput window its runs are counted: the last ones are being written.
RECORD_GRACE_SECONDS = 2.0


def make_endpoints(urls: list[str], cron: str, first_run: datetime, **fields) -> None:
    from endpoints.models import Endpoint

    Endpoint.objects.bulk_create(
        (
            Endpoint(
                name=f"bench-{index:06d}",
                url=url,
                cron_expression=cron,
                timezone="UTC",
                next_run_at=first_run,
                created_at=first_run - timedelta(minutes=1),
                **fields,
            )  # fmt: skip
            for index, url in enumerate(urls)
        ),
        batch_size=2000,
    )


def create(env: Environment, args, urls: list[str], cron: str, first_run: datetime) -> None:
    """Our endpoints for `urls`: realistic jobs through applyjobs (next_run_at computed on save,
    so `first_run` is the schedule's own next slot), or minimal ones due at `first_run`.
    With --flow-key they share one flow key whose parallelism the load never reaches."""
    flow = (
        {"flow_key": "bench", "flow_parallelism": 10_000}
        if getattr(args, "flow_key", False)
        else {}
    )
    if args.jobs == "minimal":
        make_endpoints(urls, cron, first_run, overlap_policy="allow", **flow)
        return
    specs = [
        {"name": f"bench-{i:06d}", "url": url, "cron": cron, "fields": flow}
        for i, url in enumerate(urls)
    ]
    make_jobs(env, specs, "realistic")


def creation_margin(args, n: int) -> float:
    """Seconds to leave before a slot for creating n endpoints: applyjobs takes ~4 ms a job on a
    quiet machine and four times that on a busy one (the slot must come after they are saved),
    plus the dispatcher's look-ahead for an instant of n (runs/dispatcher_loop.py: 0.6 ms a
    run, at most 15 s), as for endpoints made long before their slot."""
    lookahead = min(15.0, 0.0006 * n) + 1.0
    return lookahead + (3.0 + 0.001 * n if args.jobs == "minimal" else 10.0 + 0.02 * n)


def once_at(slot: datetime) -> str:
    """A cron (seconds last) whose next slot is `slot`, even when it is more than a minute away:
    that second of that minute, every hour."""
    return f"{slot.minute} * * * * {slot.second}"


def slot_lags(target: Target, since: datetime, until: datetime) -> tuple[list[float], int]:
    """(lag of each first attempt scheduled in [since, until] whose request arrived, Logs seen):
    matched by the Idempotency-Key each run sends."""
    from runs.models import Log, idempotency_key_for_slot

    arrivals = target.keyed_arrivals()
    rows = Log.objects.filter(scheduled_for__gte=since, scheduled_for__lte=until, attempt=1)
    lags, seen = [], 0
    columns = ("endpoint_id", "scheduled_for", "idempotency_key")
    for endpoint_id, slot, key in rows.values_list(*columns):
        seen += 1
        at = arrivals.get(key or idempotency_key_for_slot(endpoint_id, slot))
        if at is not None:
            lags.append(at - slot.timestamp())
    return lags, seen


def start(env: Environment, baseline: bool):
    """Start the cluster and wait until it is ready to dispatch (ours: its heartbeat is written)."""
    cluster = env.start_cluster(baseline=baseline)
    if baseline:
        time.sleep(5)
    else:
        from runs.models import Heartbeat

        assert wait_for(Heartbeat.objects.exists, 60), "qcluster did not start"
    return cluster


def first_arrivals(target: Target, prefix: str = "/e/") -> dict[str, float]:
    first: dict[str, float] = {}
    for path, at in target.arrivals():
        if path.startswith(prefix) and path not in first:
            first[path] = at
    return first


def _done_file(env: Environment) -> str:
    path = RESULTS / f"{env.name}_baseline_done.txt"
    path.unlink(missing_ok=True)
    return str(path)


def _one_slot(args, baseline: bool, name: str, delay_ms: float) -> dict:
    """N endpoints due at one instant: lag of each request, and when all are logged."""
    n = args.endpoints or 1000
    target = Target(delay_ms)
    figures: dict = {"endpoints": n}
    urls = [target.url(f"/e/{i}") for i in range(n)]
    with Environment(name, args.db, args.redis, args.workers) as env:
        done = _done_file(env)
        if baseline:
            slot = next_minute(10)
            q2.make_schedules(urls, "* * * * *", slot, done, args.jobs)
            cluster = start(env, baseline)
        else:
            cluster = start(env, baseline)
            slot = next_second(creation_margin(args, n))
            create(env, args, urls, once_at(slot), slot)
            late = (datetime.now(UTC) - slot).total_seconds()
            # Each endpoint's next slot is this one only if it was saved before it.
            assert late < -0.2, f"creating {n} endpoints ended {late:.1f} s after the slot"
        # From here, not from the slot: the dispatcher's work for the slot starts before it.
        cpu_before = tree_cpu_seconds(cluster.pid)
        sleep_until(slot)
        t0 = slot.timestamp()

        def logged() -> list[float]:
            if baseline:
                return [at - t0 for _, at in q2.finished(done)]
            from runs.models import Log

            rows = Log.objects.filter(scheduled_for=slot, state__in=FINAL)
            return [(f - slot).total_seconds() for f in rows.values_list("finished_at", flat=True)]

        wait_for(lambda: len(logged()) >= n, timeout=90 if baseline else 60, poll=0.25)
        figures["cluster_cpu_s"] = round(tree_cpu_seconds(cluster.pid) - cpu_before, 2)
        arrivals = first_arrivals(target)
        finished = logged()
        figures["cluster_exit_code"] = env.stop_cluster(cluster)
        if not baseline:
            figures.update(_accounting(slot))
    target.close()
    lags = [at - t0 for at in arrivals.values()]
    figures.update(
        arrived=len(arrivals),
        lag_s=percentiles(lags),
        early=sum(1 for lag in lags if lag < 0),
        logged=len(finished),
        all_logged_s=round(max(finished), 3) if len(finished) >= n else None,
        logged_within_5s=sum(1 for at in finished if at <= 5),
    )
    return figures


def _accounting(slot: datetime) -> dict:
    from django.db.models import Count

    from runs.models import Log

    rows = Log.objects.filter(scheduled_for=slot).values("state").annotate(n=Count("id"))
    per_slot = Log.objects.filter(scheduled_for=slot, attempt=1).values("endpoint_id")
    duplicates = per_slot.annotate(n=Count("id")).filter(n__gt=1).count()
    return {"states": {row["state"]: row["n"] for row in rows}, "duplicated_slots": duplicates}


def precision(args, baseline: bool) -> dict:
    return _one_slot(args, baseline, "precision", delay_ms=0)


def burst(args, baseline: bool) -> dict:
    return _one_slot(args, baseline, "burst", delay_ms=1000)


def precision_single(args, baseline: bool) -> dict:
    """One endpoint every second (django-q2's cron: every minute) for --seconds."""
    seconds = args.seconds or 60
    target = Target(0)
    figures: dict = {"seconds": seconds}
    with Environment("precision_single", args.db, args.redis, args.workers) as env:
        if baseline:
            slot = next_minute(10)
            q2.make_schedules([target.url("/e/0")], "* * * * *", slot, "", args.jobs)
            cluster = start(env, baseline)
            period = 60
            sleep_until(slot + timedelta(seconds=seconds))
            wait_for(lambda: len(target.arrivals()) >= 1, timeout=40)
        else:
            cluster = start(env, baseline)
            slot = next_second(creation_margin(args, 1))
            create(env, args, [target.url("/e/0")], "* * * * * *", slot)
            period = 1
            # Slots slot … slot+seconds; the last one has most of a second to arrive.
            sleep_until(slot + timedelta(seconds=seconds, milliseconds=900))
        figures["cluster_exit_code"] = env.stop_cluster(cluster)
        if not baseline:
            lags, _ = slot_lags(target, slot, slot + timedelta(seconds=seconds))
            arrivals = lags
    if baseline:
        arrivals = sorted(at for path, at in target.arrivals() if path == "/e/0")
        slots = [slot.timestamp() + k * period for k in range(len(arrivals))]
        lags = [at - when for at, when in zip(arrivals, slots, strict=True)]
    target.close()
    figures.update(
        slots_expected=seconds // period + (0 if baseline else 1),
        arrived=len(arrivals),
        lag_s=percentiles(lags),
        early=sum(1 for lag in lags if lag < 0),
    )
    return figures


def throughput(args, baseline: bool) -> dict:
    """N endpoints every second for --seconds: runs finished per second once warmed up."""
    seconds = args.seconds or 60
    warmup = 5
    rate = args.endpoints or (500 if args.db == "postgres" else 300)
    target = Target(0)
    figures: dict = {"offered_per_s": rate, "seconds": seconds}
    with Environment("throughput", args.db, args.redis, args.workers) as env:
        done = _done_file(env)
        if baseline:
            # django-q2's cron fires each schedule once a minute: the same runs/s needs 60× more.
            count = rate * seconds
            slot = next_minute(15)
            urls = [target.url(f"/e/{i}") for i in range(count)]
            q2.make_schedules(urls, "* * * * *", slot, done, args.jobs)
            cluster = start(env, baseline)
            sleep_until(slot)
            wait_for(lambda: q2.finished(done), timeout=60)
        else:
            cluster = start(env, baseline)
            slot = next_second(creation_margin(args, rate))
            urls = [target.url(f"/e/{i}") for i in range(rate)]
            create(env, args, urls, "* * * * * *", slot)
            sleep_until(slot)
        time.sleep(warmup)
        window_start = time.time()
        cpu_before = tree_cpu_seconds(cluster.pid)
        memory = tree_memory_mb(cluster.pid)
        time.sleep(seconds - warmup)
        window_end = time.time()
        cpu = tree_cpu_seconds(cluster.pid) - cpu_before
        memory_end = tree_memory_mb(cluster.pid)
        if baseline:
            finished = [at for _, at in q2.finished(done)]
            lag = None
        else:
            # A run is counted by when its call ended (finished_at); give the last ones of the
            # window the moment it takes to write them (a batch writes once its calls are done).
            time.sleep(RECORD_GRACE_SECONDS)
            finished, lag, behind = _our_throughput(window_start, window_end)
            figures["open_or_behind_at_end"] = behind
        figures["cluster_exit_code"] = env.stop_cluster(cluster)
    arrivals = [at for path, at in target.arrivals() if path.startswith("/e/")]
    target.close()
    span = window_end - window_start
    runs = sum(1 for at in finished if window_start <= at < window_end)
    figures.update(
        runs_per_s=round(runs / span, 1),
        requests_per_s=round(sum(1 for at in arrivals if window_start <= at < window_end) / span),
        cluster_cpu_ms_per_run=round(cpu * 1000 / runs, 2) if runs else None,
        cluster_cpu_cores=round(cpu / span, 2),
        start_lag_s=lag,
        cluster_memory_mb=max(memory, memory_end, key=lambda m: m["rss_mb"]),
    )
    return figures


def _our_throughput(window_start: float, window_end: float):
    from datetime import UTC, datetime

    from runs.models import Log

    start = datetime.fromtimestamp(window_start, UTC)
    end = datetime.fromtimestamp(window_end, UTC)
    # Executed runs only: a slot recorded as missed or skipped is accounted for, not run.
    rows = Log.objects.filter(
        finished_at__gte=start, finished_at__lt=end, state__in=("success", "failed")
    )
    finished = [at.timestamp() for at in rows.values_list("finished_at", flat=True)]
    started = Log.objects.filter(scheduled_for__gte=start, scheduled_for__lt=end, attempt=1)
    lags = [
        (s - slot).total_seconds()
        for s, slot in started.exclude(started_at=None).values_list("started_at", "scheduled_for")
    ]
    # Runs due within the window that have still not ended (the cluster falling behind).
    behind = Log.objects.filter(due_at__lt=end, state__in=("queued", "running", "pending")).count()
    return finished, percentiles(lags), behind


def memory(args, baseline: bool) -> dict:
    """RSS of the whole qcluster (every process) idle, then under load: --endpoints N (default
    100) every second, or with --at-once N endpoints due at one instant (sampled every 0.5 s from
    when they are made). django-q2's side has minute cron slots: its N schedules are all due at once
    either way."""
    seconds = args.seconds or 30
    load = args.endpoints or 100
    at_once = getattr(args, "at_once", False)
    target = Target(0)
    samples: dict[str, list[dict]] = defaultdict(list)
    figures: dict = {}
    with Environment("memory", args.db, args.redis, args.workers) as env:
        urls = [target.url(f"/e/{i}") for i in range(load)]
        if baseline:
            cluster = start(env, baseline)
        else:
            cluster = start(env, baseline)
        for _ in range(5):
            samples["idle"].append(tree_memory_mb(cluster.pid))
            time.sleep(1)
        if baseline:
            q2.make_schedules(
                urls, "* * * * *", next_minute(0) - timedelta(minutes=1), "", args.jobs
            )
        elif at_once:
            slot = next_second(creation_margin(args, load))
            create(env, args, urls, once_at(slot), slot)
        else:
            create(env, args, urls, "* * * * * *", next_second(1))
        deadline = time.monotonic() + seconds
        if at_once:
            # From now: the dispatcher takes a big instant up to 15 s before it.
            deadline += max(0.0, (slot - datetime.now(UTC)).total_seconds())
        while time.monotonic() < deadline:
            samples["load"].append(tree_memory_mb(cluster.pid))
            time.sleep(0.5 if at_once else 1)
        if at_once and not baseline:
            from runs.models import Log

            figures["logged"] = Log.objects.filter(scheduled_for=slot, state__in=FINAL).count()
        figures["cluster_exit_code"] = env.stop_cluster(cluster)
    requests = len(target.arrivals())
    target.close()
    peak = {phase: max(rows, key=lambda m: m["rss_mb"]) for phase, rows in samples.items()}
    return {
        "load_endpoints": load, "at_once": at_once, "seconds": seconds, "requests": requests,
        **peak, **figures,
    }  # fmt: skip


SCENARIOS = {
    "precision": precision,
    "precision_single": precision_single,
    "burst": burst,
    "throughput": throughput,
    "memory": memory,
}
