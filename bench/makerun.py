"""cronplane as a user runs it: `make run` (web + worker under the Procfile), jobs from a job file.

    python bench/makerun.py [--db sqlite|postgres] [--redis] [--endpoints 200] [--seconds 30]
                            [--at-once 1000] [--slow 20]

Not the in-process scenarios of bench/run.py: here everything goes through the two commands a
user has. `make run` is started in its own process group, as from a terminal, against a fresh
database (bench_makerun); jobs are made the way users make them (bench.harness.job_object:
POST, a JSON body, JSON and Bearer headers, default policies) with `manage.py applyjobs`.

1. steady: --endpoints jobs every second for --seconds against an instant loopback target —
   slots that ran, lag slot → request arriving (p50/p99), duplicates;
2. instant: --at-once jobs due at the same second — lag p99, all logged;
3. stop and restart: --slow jobs every second against a target answering in 2 s, then Ctrl-C
   (SIGINT to the process group, what a terminal sends) while calls are in flight — how long
   `make run` takes to exit and its exit code, the runs left open; then `make run` again and how
   long until none of those is left `queued` or `running` (recovered or finished).

Prints a table and writes bench/results/makerun_<db>[_redis].json. The machine's ceilings are
those of bench/run.py (not measured again here).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.request import urlopen

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import (  # noqa: E402
    RESULTS,
    Environment,
    Target,
    free_port,
    job_object,
    next_second,
    percentiles,
    print_table,
    sleep_until,
    wait_for,
)
from bench.scenarios import once_at, slot_lags  # noqa: E402

STOP_GRACE = 60  # how long a Ctrl-C may take before the bench gives up on it (SIGKILL)


class MakeRun:
    """`make run` in its own process group, on a free port, logging to bench/results/."""

    def __init__(self, env: Environment, name: str) -> None:
        self.port = free_port()
        log = open(RESULTS / f"makerun_{name}.log", "w")  # noqa: SIM115 — the child's
        self.process = subprocess.Popen(
            ["make", "run"], cwd=ROOT, env=dict(env.env, PORT=str(self.port)),
            start_new_session=True, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def ready(self) -> bool:
        try:
            with urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=2) as response:
                return response.status == 200
        except OSError:
            return False

    def interrupt(self) -> tuple[float, int | None]:
        """Ctrl-C: SIGINT to the whole process group. (seconds to exit, exit code)."""
        started = time.monotonic()
        os.killpg(self.process.pid, signal.SIGINT)
        try:
            code = self.process.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            code = None
        return round(time.monotonic() - started, 2), code

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)


def dotenv() -> dict[str, str]:
    """The checkout's .env (`make run` writes it once): honcho loads it over the environment, so
    this process must use its SECRET_KEY too, or the worker cannot decrypt what applyjobs stored."""
    subprocess.run(["make", "-s", ".env"], cwd=ROOT, check=True)
    values = {}
    for line in (ROOT / ".env").read_text().splitlines():
        name, sep, value = line.partition("=")
        if sep and not name.strip().startswith("#"):
            values[name.strip()] = value.strip()
    others = sorted(set(values) - {"SECRET_KEY"})
    if others:
        raise SystemExit(
            f".env sets {', '.join(others)}: make run would use them instead of the bench's "
            "database; move .env aside while the bench runs"
        )
    return values


def apply_jobs(env: Environment, jobs: list[dict], name: str) -> None:
    path = Path(f"/tmp/makerun_{name}_jobs.json")
    path.write_text(json.dumps(jobs))
    out = env.manage("applyjobs", str(path))
    if out.returncode != 0:
        raise SystemExit(f"applyjobs failed: {out.stdout[-500:]}{out.stderr[-500:]}")


def steady(env: Environment, args, target: Target) -> dict:
    jobs = [
        job_object(f"steady-{i:04d}", target.url(f"/s/{i}"), "* * * * * *")
        for i in range(args.endpoints)
    ]
    apply_jobs(env, jobs, "steady")
    first = next_second(2)
    last = first + timedelta(seconds=args.seconds)
    sleep_until(last + timedelta(seconds=3))
    _pause("steady-")
    lags, logs = slot_lags(target, first, last)
    expected = args.endpoints * (args.seconds + 1)
    return {
        "slots_expected": expected,
        "logs": logs,
        "arrived": len(lags),
        "ran_pct": round(100 * len(lags) / expected, 2),
        "lag_s": percentiles(lags),
        "duplicated": _duplicates(target, "/s/"),
    }


def instant(env: Environment, args, target: Target) -> dict:
    from runs.models import Log

    slot = next_second(15 + 0.02 * args.at_once)
    jobs = [
        job_object(f"instant-{i:05d}", target.url(f"/i/{i}"), once_at(slot))
        for i in range(args.at_once)
    ]
    apply_jobs(env, jobs, "instant")
    sleep_until(slot)
    done = Log.objects.filter(scheduled_for=slot, state__in=Log.FINAL_STATES)
    wait_for(lambda: done.count() >= args.at_once, timeout=60)
    lags, logs = slot_lags(target, slot, slot)
    last = max(
        (log.finished_at for log in done.only("finished_at") if log.finished_at), default=None
    )
    _pause("instant-")
    rows = done.values_list("created_at", "started_at", "timing")
    return {
        "endpoints": args.at_once,
        "logs": logs,
        "arrived": len(lags),
        "lag_s": percentiles(lags),
        "all_logged_s": round((last - slot).total_seconds(), 3) if last else None,
        # Where the lag is: dispatched how early, started how late, how long connecting took.
        "dispatched_ahead_s": percentiles([(slot - made).total_seconds() for made, _, _ in rows]),
        "started_lag_s": percentiles(
            [(began - slot).total_seconds() for _, began, _ in rows if began]
        ),
        "connect_ms": percentiles(
            [t["connect_ms"] for _, _, t in rows if t and t.get("connect_ms") is not None]
        ),
        "ttfb_ms": percentiles([t["ttfb_ms"] for _, _, t in rows if t and t.get("ttfb_ms")]),
    }


def stop_and_restart(env: Environment, args, run: MakeRun, slow: Target) -> dict:
    from runs.models import Log

    jobs = [
        job_object(f"slow-{i:03d}", slow.url(f"/w/{i}"), "* * * * * *", timeout=10)
        for i in range(args.slow)
    ]
    apply_jobs(env, jobs, "slow")
    time.sleep(6)  # every slow job has a call in flight (2 s each, overlap `skip`)
    in_flight = Log.objects.filter(endpoint__name__startswith="slow-", state=Log.State.RUNNING)
    before = in_flight.count()
    stop_seconds, exit_code = run.interrupt()
    left = list(Log.objects.filter(state__in=Log.OPEN_STATES).values_list("pk", flat=True))
    again = MakeRun(env, "restart")
    restarted = time.monotonic()
    wait_for(again.ready, timeout=120)
    ready_seconds = round(time.monotonic() - restarted, 2)
    still_open = Log.objects.filter(pk__in=left, state__in=Log.OPEN_STATES)
    settled = wait_for(lambda: not still_open.exists(), timeout=120)
    settle_seconds = round(time.monotonic() - restarted, 2) if settled else None
    outcomes = _states(left)
    _pause("slow-")
    final_stop, final_code = again.interrupt()
    return {
        "running_at_ctrl_c": before,
        "ctrl_c_exit_s": stop_seconds,
        "ctrl_c_exit_code": exit_code,
        "left_open": len(left),
        "restart_ready_s": ready_seconds,
        "settled_after_restart_s": settle_seconds if left else None,
        "left_open_became": outcomes,
        "second_stop_s": final_stop,
        "second_exit_code": final_code,
    }


def _how(code: int | None) -> str:
    """make ends itself with SIGINT on Ctrl-C (as it should: its caller sees the interrupt)."""
    if code is None:
        return f"still running after {STOP_GRACE} s: killed"
    return "SIGINT, as make ends on Ctrl-C" if code == -signal.SIGINT else f"exit {code}"


def _states(ids: list[int]) -> dict[str, int]:
    from django.db.models import Count

    from runs.models import Log

    rows = Log.objects.filter(pk__in=ids).values("state").annotate(n=Count("id")).order_by()
    return {row["state"]: row["n"] for row in rows}


def _pause(prefix: str) -> None:
    """Stop a phase's jobs (as a user would: disabled), so the next phase runs alone."""
    from endpoints.models import Endpoint

    Endpoint.objects.filter(name__startswith=prefix).update(enabled=False, next_run_at=None)


def _duplicates(target: Target, prefix: str) -> int:
    keys = [key for path, _at, key in _keyed(target) if path.startswith(prefix)]
    return len(keys) - len(set(keys))


def _keyed(target: Target) -> list[tuple[str, float, str]]:
    with urlopen(target.url("/__arrivals?keys=1"), timeout=30) as response:
        return [tuple(row) for row in json.load(response)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--endpoints", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--at-once", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=20)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    target, slow = Target(0), Target(2000)
    name = f"makerun_{args.db}{'_redis' if args.redis else ''}"
    started = datetime.now(UTC)
    load = os.getloadavg()[0]
    environment = Environment("makerun", args.db, args.redis)
    environment.env["SECRET_KEY"] = dotenv()["SECRET_KEY"]
    with environment as env:
        run = MakeRun(env, "first")
        try:
            if not wait_for(run.ready, timeout=300):
                raise SystemExit("make run did not answer /healthz within 300 s")
            figures = {
                "steady": steady(env, args, target) if args.seconds else {},
                "instant": instant(env, args, target),
                "stop": stop_and_restart(env, args, run, slow),
            }
        finally:
            run.kill()
    target.close()
    slow.close()
    figures |= {"started_at": started.isoformat(), "load_at_start": round(load, 2)}
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
    s, i, stop = figures["steady"], figures["instant"], figures["stop"]
    if not s:
        s = {"arrived": 0, "slots_expected": 0, "ran_pct": None, "lag_s": {}, "duplicated": None}
    print_table(
        f"make run ({args.db}{' + redis' if args.redis else ''}, jobs from applyjobs; "
        f"1-minute load at start {load:.2f})",
        [
            (f"steady: {args.endpoints} every second, {args.seconds} s", "slots run",
             f"{s['arrived']:,} of {s['slots_expected']:,} ({s['ran_pct']} %)"),
            ("", "lag p50 / p99 (s)", f"{s['lag_s'].get('p50')} / {s['lag_s'].get('p99')}"),
            ("", "duplicated", s["duplicated"]),
            (f"instant: {args.at_once} at one second", "lag p50 / p99 (s)",
             f"{i['lag_s']['p50']} / {i['lag_s']['p99']}"),
            ("", "all logged (s)", i["all_logged_s"]),
            ("", "dispatched ahead p50 (s)", i["dispatched_ahead_s"]["p50"]),
            ("", "started late p50 / p99 (s)",
             f"{i['started_lag_s']['p50']} / {i['started_lag_s']['p99']}"),
            ("", "connect p50 / p99 (ms)", f"{i['connect_ms']['p50']} / {i['connect_ms']['p99']}"),
            ("", "ttfb p50 / p99 (ms)", f"{i['ttfb_ms']['p50']} / {i['ttfb_ms']['p99']}"),
            (f"Ctrl-C with {stop['running_at_ctrl_c']} calls in flight (2 s target)",
             "exit (s) / how", f"{stop['ctrl_c_exit_s']} / {_how(stop['ctrl_c_exit_code'])}"),
            ("", "runs left open", stop["left_open"]),
            ("", "make run again: /healthz after (s)", stop["restart_ready_s"]),
            ("", "none left open after (s)", stop["settled_after_restart_s"]),
            ("", "what they became", stop["left_open_became"] or "–"),
        ],
        ("phase", "figure", "value"),
    )  # fmt: skip
    print(f"\nJSON: {RESULTS / f'{name}.json'}")


if __name__ == "__main__":
    main()
