"""Fault drills: real qcluster processes, a real database and broker, a loopback target.

    python bench/drills.py overload      # 3 clusters, 200 endpoints every second for 60 s
    python bench/drills.py kill9         # kill -9 a cluster in the middle of slow runs
    python bench/drills.py pg_outage     # PostgreSQL stopped for 30 s under load (needs root)
    python bench/drills.py downtime      # the worker was away 10 minutes: each missed-run policy
    python bench/drills.py all

Options: --db postgres|sqlite (default postgres), --redis (default on with postgres),
--seconds, --endpoints, --jobs realistic|minimal (default realistic: endpoints made through
`manage.py applyjobs` — POST, a JSON body, JSON and Bearer headers — with the settings a drill
needs beyond the job format set afterwards, as in the admin; minimal: bulk_create of GETs),
--ceiling-seconds S (the machine's ceilings, measured first; 0: not measured).
Each prints one line of figures and writes bench/results/drill_<drill>_<db>[_redis].json:
slots expected / executed / duplicated / missed / skipped / stuck / unaccounted.
Not tests: they take minutes and stop the shared PostgreSQL server (pg_outage).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
sys.path.insert(0, str(ROOT))

from bench import harness  # noqa: E402


class Environment(harness.Environment):
    """The benchmarks' throwaway database and clusters, named drill_*, with a short queued lease."""

    def __init__(self, name: str, db: str, redis: bool) -> None:
        super().__init__(name, db, redis)
        self.name = f"drill_{name}"
        if db == "postgres":
            self.url = harness.PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name
        else:
            self.url = f"sqlite:////tmp/{self.name}.sqlite3"
        self.env.update(DATABASE_URL=self.url, SCHEDULER_QUEUED_LEASE_SECONDS="20")

    def __enter__(self) -> Environment:
        # A drill stopped from outside must still take its clusters down with it.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return super().__enter__()


JOBS = "realistic"  # set from --jobs


def make_endpoints(
    env: Environment, count: int, url: str, cron_expression: str, prefix="drill", **fields
) -> list:
    """`count` endpoints on `cron_expression` to url?e=i, made per --jobs (harness.make_jobs);
    `timeout_seconds` and `max_attempts` go in the job, the other fields are set afterwards as a
    user would in the admin (the job format does not carry them)."""
    timeout = fields.pop("timeout_seconds", None)
    job = {"max_attempts": fields.pop("max_attempts")} if "max_attempts" in fields else {}
    glue = "&" if "?" in url else "?"
    specs = [
        {"name": f"{prefix}-{i:04d}", "url": f"{url}{glue}e={i}", "cron": cron_expression,
         "timeout": timeout, "job": job, "fields": dict(fields)}
        for i in range(count)
    ]  # fmt: skip
    return harness.make_jobs(env, specs, JOBS)


def account(start: datetime, end: datetime, expected_per_endpoint: dict, requests: int) -> dict:
    """Figures for the slots in [start, end] of the given endpoints.

    `requests` is every request the target received in the whole drill; compared with every
    attempt executed in the whole drill, any excess is a call made twice.
    """
    from runs.models import Log

    all_executed = Log.objects.filter(state__in=("success", "failed")).count()
    rows = list(
        Log.objects.filter(
            endpoint_id__in=expected_per_endpoint, scheduled_for__gte=start, scheduled_for__lte=end
        ).values_list("endpoint_id", "scheduled_for", "attempt", "state")
    )
    firsts = Counter((e, s) for e, s, attempt, _ in rows if attempt == 1)
    finals = Counter(state for *_, state in rows)
    expected = sum(expected_per_endpoint.values())
    executed_runs = sum(1 for *_, state in rows if state in ("success", "failed"))
    return {
        "slots_expected": expected,
        "slots_recorded": len(firsts),
        "executed_attempts": executed_runs,
        "success": finals["success"],
        "failed": finals["failed"],
        "duplicated": sum(n - 1 for n in firsts.values() if n > 1)
        + max(0, requests - all_executed),
        "missed": finals["missed"],
        "skipped": finals["skipped"],
        "stuck": Log.objects.filter(state="running").count(),
        "open": finals["queued"] + finals["pending"],
        "unaccounted": expected - len(firsts),
    }


def slots_in(endpoint, start: datetime, end: datetime) -> int:
    from endpoints import schedules

    return len(
        schedules.runs_between(endpoint.schedule, start - timedelta(microseconds=1), end, 10**6)
    )


def wait_settled(seconds: float) -> None:
    """Let queued runs finish (or the sweeper reach them) before counting."""
    from runs.models import Log

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not Log.objects.filter(state__in=("queued", "running")).exists():
            return
        time.sleep(1)


# --- the drills ---------------------------------------------------------------------------------


def drill_overload(args) -> dict:
    """Three clusters, N endpoints every second, for S seconds: none twice, none unaccounted."""
    from tests.target import Target

    target = Target()
    with Environment("overload", args.db, args.redis) as env:
        endpoints = make_endpoints(env, args.endpoints, target.url("/ok"), "* * * * * *")
        clusters = [env.start_cluster() for _ in range(3)]
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        time.sleep(5 + args.seconds)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        codes = [env.stop_cluster(cluster) for cluster in clusters]
        expected = {e.pk: slots_in(e, start, end) for e in endpoints}
        figures = account(start, end, expected, _requests_in(target, start, end))
        figures["cluster_exit_codes"] = codes
    target.close()
    return figures


def _requests_in(target, start: datetime, end: datetime) -> int:
    return len(target.received)


def drill_kill9(args) -> dict:
    """kill -9 one of three clusters while runs are in flight; they end failed-then-retried."""
    from tests.target import Target

    target = Target()
    with Environment("kill9", args.db, args.redis) as env:
        from runs.models import Log

        make_endpoints(
            env, 20, target.url("/slow/4"), "* * * * * */20", timeout_seconds=6,
            max_attempts=2, retry_backoff_seconds=1, overlap_policy="allow",
        )  # fmt: skip
        # One cluster holds every run in flight; it is killed, two others carry on.
        victim = env.start_cluster()
        while not Log.objects.filter(state="running").exists():
            time.sleep(0.2)
        time.sleep(1)
        running_before = Log.objects.filter(state="running").count()
        os.killpg(victim.pid, signal.SIGKILL)
        clusters = [victim, env.start_cluster(), env.start_cluster()]
        killed_at = time.monotonic()
        # Timeout (6 s) + grace (30 s) + a sweep (5 s), then the retries' own 4 s calls.
        deadline = killed_at + 90
        detected_in = None
        while time.monotonic() < deadline:
            stuck = Log.objects.filter(error_class="stuck")
            if detected_in is None and stuck.count() >= running_before:
                detected_in = time.monotonic() - killed_at
            retried = Log.objects.filter(retry_of__in=stuck, state__in=("success", "failed"))
            if stuck.exists() and retried.count() == stuck.count():
                break
            time.sleep(0.5)
        recovered_in = time.monotonic() - killed_at
        stuck = list(Log.objects.filter(error_class="stuck"))
        retried_ok = sum(
            Log.objects.filter(retry_of=log, state="success").exists() for log in stuck
        )
        alive = [cluster.poll() is None for cluster in clusters[1:]]
        codes = [env.stop_cluster(cluster) for cluster in clusters[1:]]
        wait_settled(5)
        figures = {
            "running_when_killed": running_before,
            "stuck_detected": len(stuck),
            "stuck_retried_successfully": retried_ok,
            "stuck_detected_within_s": None if detected_in is None else round(detected_in, 1),
            "recovered_within_s": round(recovered_in, 1),
            "left_running": Log.objects.filter(state="running").count(),
            "schedules_went_on": Log.objects.filter(started_at__gte=_ago(20)).exists(),
            "other_clusters_alive": all(alive),
            "cluster_exit_codes": codes,
        }
    target.close()
    return figures


def _ago(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def drill_pg_outage(args) -> dict:
    """Stop PostgreSQL for 30 s under load; the cluster survives and accounts for every slot."""
    from django.db import connections

    from tests.target import Target

    target = Target()
    version = sorted(os.listdir("/etc/postgresql"))[0]
    with Environment("pg_outage", "postgres", True) as env:
        endpoints = make_endpoints(env, 50, target.url("/ok"), "* * * * * *")
        cluster = env.start_cluster()
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
        time.sleep(15)
        connections.close_all()
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "stop", "-m", "fast"],
            check=True,
        )
        outage_start = datetime.now(UTC)
        time.sleep(30)
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "start"], check=True
        )
        outage_end = datetime.now(UTC)
        time.sleep(20)
        end = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=2)
        survived = cluster.poll() is None
        code = env.stop_cluster(cluster)
        wait_settled(30)
        expected = {e.pk: slots_in(e, start, end) for e in endpoints}
        figures = account(start, end, expected, _requests_in(target, start, end))
        outage = {e.pk: slots_in(e, outage_start, outage_end) for e in endpoints}
        figures.update(
            outage_slots=sum(outage.values()),
            cluster_survived=survived,
            cluster_exit_code=code,
        )
    target.close()
    return figures


def drill_downtime(args) -> dict:
    """The worker was away 10 minutes: each missed-run policy does what it says."""
    from tests.target import Target

    target = Target()
    with Environment("downtime", args.db, args.redis) as env:
        from endpoints.models import Endpoint
        from runs.models import Log

        # Come back 40 s into a minute: every slot is then late, and no new one falls due.
        time.sleep((40 - datetime.now(UTC).second) % 60)
        away = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=10)
        policies = {"skip": {}, "run_once": {}, "run_all": {"catch_up_window_seconds": 300}}
        for policy, extra in policies.items():
            [endpoint] = make_endpoints(
                env, 1, target.url(f"/ok?p={policy}"), "* * * * *", prefix=f"down-{policy}",
                missed_policy=policy, overlap_policy="allow", **extra,
            )  # fmt: skip
            Endpoint.objects.filter(pk=endpoint.pk).update(next_run_at=away)
        cluster = env.start_cluster()
        time.sleep(8)
        env.stop_cluster(cluster)
        figures = {}
        for policy in policies:
            logs = Log.objects.filter(
                endpoint__name__startswith=f"down-{policy}-",
                scheduled_for__lt=datetime.now(UTC),
            )
            states = Counter(logs.values_list("state", flat=True))
            figures[policy] = {
                "slots_while_away": logs.count(),
                "missed": states["missed"],
                "executed": states["success"] + states["failed"],
                "catch_up_runs": logs.filter(trigger="catch_up").count(),
                "requests": sum(1 for r in target.received if f"p={policy}" in r.path),
            }
    target.close()
    return figures


DRILLS = {
    "overload": drill_overload,
    "kill9": drill_kill9,
    "pg_outage": drill_pg_outage,
    "downtime": drill_downtime,
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("drill", choices=[*DRILLS, "all"])
    parser.add_argument("--db", choices=["postgres", "sqlite"], default="postgres")
    parser.add_argument("--no-redis", dest="redis", action="store_false")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--jobs", choices=harness.JOBS, default="realistic")
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    args = parser.parse_args()
    global JOBS
    JOBS = args.jobs
    if args.db == "sqlite":
        args.redis = False
    RESULTS.mkdir(parents=True, exist_ok=True)
    names = list(DRILLS) if args.drill == "all" else [args.drill]
    if len(names) > 1:
        for name in names:  # each drill in its own process: one Django setup per database
            subprocess.run([sys.executable, __file__, name, *sys.argv[2:]], check=False)
        return
    ceilings = harness.measure_ceilings(args.ceiling_seconds) if args.ceiling_seconds else None
    figures = DRILLS[names[0]](args)
    line = " · ".join(f"{key}={value}" for key, value in figures.items())
    setup = f"{args.db}{' + redis' if args.redis else ''}, jobs: {args.jobs}"
    print(f"drill {names[0]} ({setup}): {line}")
    print(harness.describe_ceilings(ceilings))
    figures.update(
        setup=setup,
        code=harness.code_version(),
        measured_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ceilings=ceilings,
    )
    name = f"drill_{names[0]}_{args.db}{'_redis' if args.redis else ''}"
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))


if __name__ == "__main__":
    main()
