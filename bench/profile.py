"""Where the time of a run goes: the engine's steps profiled in one process, no cluster.

    python bench/profile.py [--db sqlite|postgres] [--redis] [--endpoints 500] [--html]

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
"""

from __future__ import annotations

import argparse
import asyncio
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
    args = parser.parse_args()
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
