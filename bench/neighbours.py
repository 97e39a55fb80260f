"""The neighbours scenario (DESIGN §9): fast jobs must not suffer from slow and hostile ones.

For --seconds (default 60), beside each other on one cluster:

- fast: --endpoints (default 200) endpoints every second, to an instant target;
- slow: 20 endpoints every --slow-every seconds (default 5), whose target answers in 20 s
  (timeout 30 s; with the default overlap policy `skip`, each runs one call at a time);
- hostile: three endpoints every second with a 5 s timeout, to a target that trickles
  (Content-Length: 1000, then a byte every 0.5 s), sends a chunked body that never ends, or
  accepts the connection and never answers.

The fast endpoints' target is its own process; the slow and hostile ones share another.
Figures: the share of the fast slots in the window that ran (a slot counts when a request with
its Idempotency-Key arrived at the target), their lag (slot → request arriving) and their Logs'
states; every hostile run's end (count, how many ended `timeout`, the worst finished_at −
started_at − timeout, how many are still open past their deadline + 1 s, and when the target saw
the client hang up); slow runs started/finished; the cluster's CPU over the window.
Bars: ≥ 99.5 % of the fast slots, fast lag p99 ≤ 250 ms, every hostile run `timeout` within
its deadline + 1 s.

Baseline: django-q2's cron has minute slots, so every slot of ours becomes one django-q2
`Schedule.ONCE` at that instant (fast: each second; slow and hostile: every --slow-every
seconds), calling the same request with `requests` and the same timeout.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime, timedelta

from bench import baseline as q2
from bench.harness import (
    RESULTS,
    Environment,
    Target,
    make_jobs,
    next_second,
    percentiles,
    sleep_until,
    tree_cpu_seconds,
    wait_for,
)

SLOW_COUNT = 20
SLOW_SECONDS = 20
SLOW_TIMEOUT = 30
HOSTILE_TIMEOUT = 5
HOSTILE_MODES = ("trickle", "endless", "silent")
BASELINE_GRACE_SECONDS = 35
BARS = {"fast_share_pct": 99.5, "fast_lag_p99_s": 0.25, "hostile_overrun_s": 1.0}


def specs(fast: Target, hostile: Target, n: int, slow_every: int, jobs: str) -> list[dict]:
    # Minimal jobs keep the earlier benchmarks' overlap `allow`; realistic ones the default.
    extra = {"fields": {"overlap_policy": "allow"}} if jobs == "minimal" else {}
    rows = [
        {"name": f"fast-{i:04d}", "url": fast.url(f"/e/{i}"), "cron": "* * * * * *", **extra}
        for i in range(n)
    ]
    rows += [
        {
            "name": f"slow-{i:02d}",
            "url": hostile.url(f"/slow/{SLOW_SECONDS}/{i}"),
            "cron": f"* * * * * */{slow_every}",
            "timeout": SLOW_TIMEOUT,
            **extra,
        }
        for i in range(SLOW_COUNT)
    ]
    rows += [
        {
            "name": f"hostile-{mode}",
            "url": hostile.url(f"/{mode}/0"),
            "cron": "* * * * * *",
            "timeout": HOSTILE_TIMEOUT,
            **extra,
        }
        for mode in HOSTILE_MODES
    ]
    return rows


def neighbours(args, baseline: bool) -> dict:
    seconds = args.seconds or 60
    n = args.endpoints or 200
    slow_every = args.slow_every
    fast, hostile = Target(0), Target(0)
    figures: dict = {
        "seconds": seconds,
        "fast_endpoints": n,
        "slow": f"{SLOW_COUNT} every {slow_every} s, answer in {SLOW_SECONDS} s, timeout "
        f"{SLOW_TIMEOUT} s",
        "hostile": f"{', '.join(HOSTILE_MODES)}: every second, timeout {HOSTILE_TIMEOUT} s",
        "bars": BARS,
    }
    with Environment("neighbours", args.db, args.redis, args.workers) as env:
        if baseline:
            figures.update(_baseline(env, args, fast, hostile, seconds, n, slow_every))
        else:
            figures.update(_ours(env, args, fast, hostile, seconds, n, slow_every))
    fast.close()
    hostile.close()
    figures["bars_met"] = {
        "fast_share": (figures["fast"]["share_pct"] or 0) >= BARS["fast_share_pct"],
        "fast_lag_p99": (figures["fast"]["lag_s"]["p99"] or 99) <= BARS["fast_lag_p99_s"],
        "hostile_timeouts": figures["hostile"]["all_timeout_in_deadline"],
    }
    return figures


def _ours(env, args, fast, hostile, seconds, n, slow_every) -> dict:
    from runs.models import Heartbeat

    cluster = env.start_cluster()
    assert wait_for(Heartbeat.objects.exists, 60), "qcluster did not start"
    created = time.time()
    make_jobs(env, specs(fast, hostile, n, slow_every, args.jobs), args.jobs)
    # The window starts once every endpoint exists and the first hostile and slow runs are out.
    t0 = next_second(2)
    sleep_until(t0)
    cpu = tree_cpu_seconds(cluster.pid)
    end = t0 + timedelta(seconds=seconds)
    sleep_until(end)
    cpu = tree_cpu_seconds(cluster.pid) - cpu
    # The last fast slots' requests; the hostile runs started in the window reach their deadline.
    time.sleep(2)
    wait_for(lambda: not _open_hostile(end, HOSTILE_TIMEOUT + 1.5), timeout=HOSTILE_TIMEOUT + 2)
    # Outcomes may be recorded a moment after the call (a recorder writes them in bulk).
    wait_for(lambda: not _open_fast(t0, end), timeout=5)
    figures = {
        "fast": _fast(fast, n, t0, seconds),
        "hostile": _hostile(hostile, created, end),
        "slow": _slow(created, end),
        "cluster_cpu_s": round(cpu, 2),
        "cluster_cpu_cores": round(cpu / seconds, 2),
    }
    code = env.stop_cluster(cluster, timeout=45)
    figures["cluster_exit_code"] = code
    return figures


def _open_fast(t0: datetime, end: datetime) -> bool:
    from runs.models import Log

    return Log.objects.filter(
        endpoint__name__startswith="fast-",
        scheduled_for__gte=t0,
        scheduled_for__lt=end,
        state="running",
    ).exists()


def _open_hostile(before: datetime, older_than: float):
    """Hostile runs started before `before`, still running (within `older_than` of starting)."""
    from runs.models import Log

    now = datetime.now(UTC)
    return Log.objects.filter(
        endpoint__name__startswith="hostile-",
        started_at__lt=before,
        started_at__gt=now - timedelta(seconds=older_than),
        finished_at=None,
    ).exists()


def _fast(target: Target, n: int, t0: datetime, seconds: int) -> dict:
    from runs.models import Log, idempotency_key_for_slot

    arrivals = target.keyed_arrivals()
    end = t0 + timedelta(seconds=seconds)
    rows = Log.objects.filter(
        endpoint__name__startswith="fast-",
        scheduled_for__gte=t0,
        scheduled_for__lt=end,
        attempt=1,
    ).values_list("endpoint_id", "scheduled_for", "idempotency_key", "state")
    lags, states, ran_states = [], Counter(), Counter()
    for endpoint_id, slot, key, state in rows:
        states[state] += 1
        at = arrivals.get(key or idempotency_key_for_slot(endpoint_id, slot))
        if at is not None:
            lags.append(at - slot.timestamp())
            ran_states[state] += 1
    expected = n * seconds
    return {
        "slots_expected": expected,
        "logged": sum(states.values()),
        "ran": len(lags),
        "share_pct": round(100 * len(lags) / expected, 2),
        "lag_s": percentiles(lags),
        "states": dict(states),
        "ran_not_success": sum(v for k, v in ran_states.items() if k != "success"),
        "retries": Log.objects.filter(endpoint__name__startswith="fast-", attempt__gt=1).count(),
    }


def _hostile(target: Target, since: float, end: datetime) -> dict:
    """Every hostile run started by the end of the window (retries included)."""
    from runs.models import Log

    now = datetime.now(UTC)
    rows = Log.objects.filter(
        endpoint__name__startswith="hostile-", started_at__isnull=False, started_at__lt=end
    ).values_list(
        "endpoint__name", "started_at", "finished_at", "state", "error_class",
        "endpoint__timeout_seconds",
    )  # fmt: skip
    per_mode: dict[str, dict] = {}
    overruns: list[float] = []
    open_late = 0
    for name, started, finished, state, error, timeout in rows:
        mode = per_mode.setdefault(
            name.removeprefix("hostile-"),
            {"runs": 0, "ended": 0, "timeout": 0, "other": Counter(), "worst_overrun_s": None},
        )
        mode["runs"] += 1
        if finished is None:
            if (now - started).total_seconds() > float(timeout) + 1:
                open_late += 1
                mode["open_past_deadline"] = mode.get("open_past_deadline", 0) + 1
                overruns.append((now - started).total_seconds() - float(timeout))
            continue
        mode["ended"] += 1
        if error == "timeout":
            mode["timeout"] += 1
        else:
            mode["other"][f"{state}:{error or '-'}"] += 1
        overrun = (finished - started).total_seconds() - float(timeout)
        overruns.append(overrun)
        mode["worst_overrun_s"] = round(max(mode["worst_overrun_s"] or -99.0, overrun), 3)
    for mode in per_mode.values():
        mode["other"] = dict(mode["other"])
    runs = sum(m["runs"] for m in per_mode.values())
    ended = sum(m["ended"] for m in per_mode.values())
    timeouts = sum(m["timeout"] for m in per_mode.values())
    worst = round(max(overruns), 3) if overruns else None
    return {
        "runs": runs,
        "ended": ended,
        "timeouts": timeouts,
        "open_past_deadline": open_late,
        "worst_overrun_s": worst,
        "all_timeout_in_deadline": bool(runs)
        and timeouts == runs
        and worst is not None
        and worst <= BARS["hostile_overrun_s"],
        "modes": per_mode,
        "target_saw": _hangups(target.hangups(), since),
    }


def _hangups(rows: list, since: float) -> dict:
    """The target's side: how long after each hostile request the client hung up."""
    seen: dict[str, dict] = {}
    for path, _key, arrived, gone in rows:
        if arrived < since:
            continue
        mode = seen.setdefault(path.strip("/").split("/")[0], {"requests": 0, "connected": 0})
        mode["requests"] += 1
        if gone is None:
            mode["connected"] += 1
        else:
            held = round(gone - arrived, 3)
            mode["longest_held_s"] = max(mode.get("longest_held_s", 0), held)
    return seen


def _slow(since: float, end: datetime) -> dict:
    from runs.models import Log

    rows = Log.objects.filter(endpoint__name__startswith="slow-", scheduled_for__lt=end)
    states = Counter(rows.values_list("state", flat=True))
    ran = rows.exclude(state__in=("skipped", "missed", "cancelled"))
    return {
        "started": ran.filter(started_at__isnull=False, started_at__lt=end).count(),
        "finished": ran.filter(state__in=("success", "failed"), finished_at__lt=end).count(),
        "success": states["success"],
        "states": dict(states),
    }


# --- django-q2 alone -------------------------------------------------------------------------


def _baseline(env, args, fast, hostile, seconds, n, slow_every) -> dict:
    done = str(RESULTS / f"{env.name}_baseline_done.txt")
    (RESULTS / f"{env.name}_baseline_done.txt").unlink(missing_ok=True)
    t0 = next_second(12)
    end = t0 + timedelta(seconds=seconds)
    slots, fast_keys = [], {}
    for k in range(seconds):
        slot = t0 + timedelta(seconds=k)
        for i in range(n):
            key = f"fast-{i:04d}:{int(slot.timestamp())}"
            fast_keys[key] = slot.timestamp()
            slots.append((f"fast-{i:04d}", fast.url(f"/e/{i}"), slot, key, 30))
        if k % slow_every == 0:
            for i in range(SLOW_COUNT):
                url = hostile.url(f"/slow/{SLOW_SECONDS}/{i}")
                slots.append((f"slow-{i:02d}", url, slot, f"slow-{i}:{k}", SLOW_TIMEOUT))
            for mode in HOSTILE_MODES:
                url = hostile.url(f"/{mode}/0")
                slots.append((f"hostile-{mode}", url, slot, f"{mode}:{k}", HOSTILE_TIMEOUT))
    q2.make_once(slots, done, args.jobs)
    created = time.time()
    cluster = env.start_cluster(baseline=True)
    sleep_until(t0)
    cpu = tree_cpu_seconds(cluster.pid)
    sleep_until(end)
    cpu = tree_cpu_seconds(cluster.pid) - cpu
    # django-q2's scheduler looks at schedules every 30 s: give it one more look at the window.
    time.sleep(BASELINE_GRACE_SECONDS)
    lines, now, seen = q2.outcomes(done), time.time(), hostile.hangups()
    slow_started = sum(1 for path, _at in hostile.arrivals() if path.startswith("/slow/"))
    env.stop_cluster(cluster, timeout=15)
    arrivals = fast.keyed_arrivals()
    lags = [arrivals[key] - at for key, at in fast_keys.items() if key in arrivals]
    fast_ok = Counter(
        row["outcome"] for row in lines if row["key"] in fast_keys and row["key"] in arrivals
    )
    hostile_rows = [
        row for row in lines if "/slow/" not in row["url"] and row["key"] not in fast_keys
    ]
    ended_keys = {row["key"] for row in hostile_rows}
    overruns = [row["finished"] - row["started"] - row["timeout"] for row in hostile_rows]
    # Requests that reached the hostile target and whose task has still not ended.
    open_late = [
        now - at - HOSTILE_TIMEOUT
        for _path, key, at, _gone in seen
        if at >= created and key not in ended_keys and now - at > HOSTILE_TIMEOUT + 1
    ]
    timeouts = sum(1 for row in hostile_rows if row["outcome"] == "timeout")
    runs = len(hostile_rows) + len(open_late)
    worst = round(max(overruns + open_late), 3) if overruns or open_late else None
    slow_rows = [row for row in lines if "/slow/" in row["url"]]
    return {
        "fast": {
            "slots_expected": len(fast_keys),
            "logged": sum(1 for row in lines if row["key"] in fast_keys),
            "ran": len(lags),
            "share_pct": round(100 * len(lags) / len(fast_keys), 2),
            "lag_s": percentiles(lags),
            "states": {str(k): v for k, v in fast_ok.items()},
            "ran_not_success": sum(v for k, v in fast_ok.items() if k != 200),
        },
        "hostile": {
            "runs": runs,
            "ended": len(hostile_rows),
            "timeouts": timeouts,
            "open_past_deadline": len(open_late),
            "worst_overrun_s": worst,
            "all_timeout_in_deadline": bool(runs)
            and timeouts == runs
            and worst is not None
            and worst <= BARS["hostile_overrun_s"],
            "target_saw": _hangups(seen, created),
        },
        "slow": {
            "started": slow_started,
            "finished": sum(1 for row in slow_rows if row["finished"] < end.timestamp()),
            "success": sum(1 for row in slow_rows if row["outcome"] == 200),
        },
        "cluster_cpu_s": round(cpu, 2),
        "cluster_cpu_cores": round(cpu / seconds, 2),
    }
