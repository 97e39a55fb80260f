"""Where the time of a run goes: the engine's steps profiled in one process, no cluster.

    python bench/profile.py [--db sqlite|postgres] [--redis] [--endpoints 500] [--html]
    python bench/profile.py --rounds 5 [--jobs realistic|minimal] [--db ...] [--endpoints 2000]

Makes N endpoints (GETs, overlap `allow`) due now against the loopback target, then times and
profiles (pyinstrument) each step the cluster takes for them:

1. `dispatcher.dispatch_due` — claim the slots and write their Logs (the dispatcher loop);
2. `services.enqueue_many` — hand them to the broker as batch tasks (`runs.tasks.run_batch`);
3. `executor.claim` — a worker's batch task claiming them (queued → running);
4. perform — `executor.perform_finished` for every run on one asyncio loop through one
   `calls.client.Client` (what `runs.engine`'s loop thread does; connections to the target are
   new, as at a slot);
5. `recording.record_many` — writing the outcomes in bulk (the engine's recorder thread).

Prints queries per run and ms per run for each step (wall time in this one process: the loop
step's is mostly the client's CPU, the target being in its own process), then the profiles
(text, or HTML under bench/results/).

`--rounds R` measures the steady state instead, without a profiler: the same endpoints due
at R successive slots, one client kept across them (keep-alive connections, as a worker's
engine keeps them); for each step the CPU time of this process per run (`time.process_time`,
which the machine's other load does not inflate the way it does wall time), the median over
the rounds after the first, and the spread. `--jobs realistic` (the default there) makes the
endpoints as users do (bench.harness.job_object through applyjobs: POST, JSON body, bearer
token, default policies); `minimal` GETs with overlap `allow`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, Environment, Target, print_table  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--endpoints", type=int, default=500)
    parser.add_argument("--html", action="store_true")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--jobs", choices=["realistic", "minimal"], default="realistic")
    args = parser.parse_args()
    if args.rounds:
        steady_state(args)
        return
    RESULTS.mkdir(parents=True, exist_ok=True)
    try:
        from pyinstrument import Profiler
    except ImportError:  # the bench extra not installed: time the steps, no profiles
        print("pyinstrument is not installed (pip install -e '.[bench]'): timings only")
        Profiler = _NoProfiler  # noqa: N806

    target = Target(0)
    rows: list[tuple] = []
    profiles: list[tuple] = []
    n = args.endpoints
    with Environment("profile", args.db, args.redis, None):
        from django.conf import settings
        from django.db import connection
        from django.test.utils import CaptureQueriesContext
        from django.utils import timezone

        from bench.scenarios import make_endpoints
        from calls.client import Client
        from runs import dispatcher, executor, services
        from runs.recording import record_many

        slot = datetime.now(UTC).replace(microsecond=0)
        urls = [target.url(f"/e/{i}") for i in range(n)]
        # A slot that has just come: its runs are due at once (no holding for it).
        make_endpoints(urls, "* * * * * *", slot, overlap_policy="allow")

        def measure(name: str, fn):
            profiler = Profiler(interval=0.0005)
            with CaptureQueriesContext(connection) as queries:
                started = time.perf_counter()
                profiler.start()
                result = fn()
                profiler.stop()
                elapsed = time.perf_counter() - started
            per_run = round(elapsed * 1000 / n, 3)
            rows.append((name, n, per_run, round(len(queries) / n, 2), len(queries)))
            profiles.append((name, profiler))
            return result

        async def perform_all(logs):
            client = Client(max_in_flight=settings.SCHEDULER_MAX_IN_FLIGHT)
            try:
                return await asyncio.gather(
                    *(executor.perform_finished(log, client) for log in logs)
                )
            finally:
                await client.close()

        logs = measure("dispatch_due", lambda: dispatcher.dispatch_due(slot, limit=10**6).to_run)
        measure("enqueue_many", lambda: services.enqueue_many(logs))
        ids = [log.pk for log in logs]
        claimed = measure("claim", lambda: executor.claim(ids, timezone.now()))
        finished = measure("perform (one loop)", lambda: asyncio.run(perform_all(claimed)))
        measure("record_many", lambda: record_many(list(finished)))
        failed = sum(1 for _, outcome, _ in finished if not outcome.ok)
    target.close()
    print_table(
        f"profile ({args.db}{' + redis' if args.redis else ''}), one process, no cluster"
        f" — {len(claimed)} claimed, {failed} failed",
        rows,
        ("step", "runs", "ms/run", "queries/run", "queries"),
    )
    for name, profiler in profiles:
        if args.html:
            path = RESULTS / f"profile_{name.split(' ')[0]}_{args.db}.html"
            path.write_text(profiler.output_html())
            print(f"{name}: {path}")
        else:
            print(f"\n===== {name}")
            print(profiler.output_text(unicode=True, color=False, show_all=False))


def steady_state(args) -> None:
    """CPU a run of each step at successive slots, warm (see the module docstring)."""
    import statistics
    from datetime import timedelta

    target = Target(0)
    n = args.endpoints
    steps = ("dispatch_due", "enqueue_many", "claim", "perform", "record_many")
    cpu: dict[str, list[float]] = {step: [] for step in steps}
    wall: dict[str, list[float]] = {step: [] for step in steps}
    with Environment("profile", args.db, args.redis, None) as env:
        from django.conf import settings
        from django.utils import timezone

        from bench.harness import make_jobs
        from bench.scenarios import make_endpoints
        from calls.client import Client
        from endpoints.models import Endpoint
        from runs import dispatcher, executor, services
        from runs.recording import record_many

        first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        urls = [target.url(f"/e/{i}") for i in range(n)]
        if args.jobs == "minimal":
            make_endpoints(urls, "* * * * * *", first, overlap_policy="allow")
        else:
            specs = [
                {"name": f"p-{i:06d}", "url": url, "cron": "* * * * * *"}
                for i, url in enumerate(urls)
            ]
            make_jobs(env, specs, "realistic")
        Endpoint.objects.update(next_run_at=first)
        gc.freeze()  # as workers and the dispatcher do (runs/engine.py)

        def timed(step: str, fn):
            started, wall_started = time.process_time(), time.perf_counter()
            result = fn()
            cpu[step].append((time.process_time() - started) * 1000 / n)
            wall[step].append((time.perf_counter() - wall_started) * 1000 / n)
            return result

        async def make_client():
            return Client(max_in_flight=settings.SCHEDULER_MAX_IN_FLIGHT)

        async def perform_all(claimed, client):
            calls = (executor.perform_finished(log, client) for log in claimed)
            return await asyncio.gather(*calls)

        loop = asyncio.new_event_loop()
        client = loop.run_until_complete(make_client())
        failed = 0

        def one_slot(slot: datetime) -> int:
            logs = timed("dispatch_due", lambda: dispatcher.dispatch_due(slot, limit=10**6))
            timed("enqueue_many", lambda: services.enqueue_many(logs.to_run))
            ids = [log.pk for log in logs.to_run]
            claimed = timed("claim", lambda: executor.claim(ids, timezone.now()))
            done = timed("perform", lambda: loop.run_until_complete(perform_all(claimed, client)))
            timed("record_many", lambda: record_many(list(done)))
            if os.environ.get("PROFILE_CONNECTIONS"):
                timings = [outcome.timing or {} for _, outcome, _ in done]
                opened = sum(1 for timing in timings if timing.get("connections"))
                print(f"slot {slot:%H:%M:%S}: {opened} of {len(done)} calls opened a connection")
            return sum(1 for _, outcome, _ in done if not outcome.ok)

        try:
            for k in range(args.rounds):
                failed += one_slot(first + timedelta(seconds=k))
        finally:
            loop.run_until_complete(client.close())
            loop.close()
    target.close()
    rows = []
    for step in (*steps, "total"):
        if step == "total":
            values = [sum(cpu[s][k] for s in steps) for k in range(args.rounds)]
            walls = [sum(wall[s][k] for s in steps if s != "perform") for k in range(args.rounds)]
        else:
            values, walls = cpu[step], wall[step]
        warm, warm_walls = values[1:] or values, walls[1:] or walls
        rows.append((
            step, round(statistics.median(warm), 3), round(min(warm), 3), round(max(warm), 3),
            "–" if step == "perform" else round(statistics.median(warm_walls), 3),
        ))  # fmt: skip
    print_table(
        f"steady state ({args.db}{' + redis' if args.redis else ''}, jobs: {args.jobs}),"
        f" one process: {n} runs x {args.rounds} slots, {failed} failed — CPU ms a run,"
        " median (min–max) of the rounds after the first (wall: the database's and broker's"
        " time included; perform's is mostly waiting for its slot)",
        rows,
        ("step", "CPU ms/run", "min", "max", "wall ms/run"),
    )


class _NoProfiler:
    def __init__(self, **_) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def output_text(self, **_) -> str:
        return "(no profile: pyinstrument is not installed)"

    def output_html(self) -> str:
        return "<p>pyinstrument is not installed</p>"


if __name__ == "__main__":
    main()
