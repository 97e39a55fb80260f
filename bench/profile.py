"""Where the time of a run goes: the engine's steps profiled in one process, no cluster.

    python bench/profile.py [--db sqlite|postgres] [--endpoints 500] [--html]

Makes N endpoints due against the loopback target, then times and profiles (pyinstrument) each
step the cluster would take: dispatch_due, handing the Logs to the broker, and executing them
(one `execute(log_id)` per run, and the batch path when it exists). Prints queries per run and
ms per run for each step, then the profiles (text, or HTML under bench/results/).
"""

from __future__ import annotations

import argparse
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
    from pyinstrument import Profiler

    target = Target(0)
    rows: list[tuple] = []
    profiles: list[tuple] = []
    n = args.endpoints
    with Environment("profile", args.db, args.redis, None):
        from django.db import connection
        from django.test.utils import CaptureQueriesContext

        from bench.scenarios import make_endpoints
        from endpoints.models import Endpoint
        from runs import dispatcher, executor, services
        from runs.models import Log

        def due_now() -> datetime:
            Log.objects.all().delete()
            Endpoint.objects.all().delete()
            # A slot that has just come: its runs are due at once (no holding for it).
            slot = datetime.now(UTC).replace(microsecond=0)
            urls = [target.url(f"/e/{i}") for i in range(n)]
            make_endpoints(urls, "* * * * * *", slot, overlap_policy="allow")
            return slot

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

        slot = due_now()
        logs = measure("dispatch_due", lambda: dispatcher.dispatch_due(slot, limit=10**6).to_run)
        measure("enqueue_many", lambda: services.enqueue_many(logs))
        measure("execute each", lambda: [executor.execute(log.pk) for log in logs])
        batch = _batch_step()
        if batch:
            slot = due_now()
            logs = dispatcher.dispatch_due(slot, limit=10**6).to_run
            measure("run_batch", lambda: batch([log.pk for log in logs]))
    target.close()
    print_table(
        f"profile ({args.db}{' + redis' if args.redis else ''}), one process, no cluster",
        rows,
        ("step", "runs", "ms/run", "queries/run", "queries"),
    )
    for name, profiler in profiles:
        if args.html:
            path = RESULTS / f"profile_{name.replace(' ', '_')}_{args.db}.html"
            path.write_text(profiler.output_html())
            print(f"{name}: {path}")
        else:
            print(f"\n===== {name}")
            print(profiler.output_text(unicode=True, color=False, show_all=False))


def _batch_step():
    try:
        from runs import batch
    except ImportError:
        return None
    return batch.run_batch


if __name__ == "__main__":
    main()
