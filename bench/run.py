"""Benchmarks of DESIGN §9 (not tests): one command per scenario, a table, and JSON.

    python bench/run.py precision         # 1,000 endpoints due at one instant, instant target
    python bench/run.py precision_single  # 1 endpoint every second for 60 s
    python bench/run.py burst             # 1,000 due at once, target answers after 1 s
    python bench/run.py throughput        # N endpoints every second for 60 s, runs/s, CPU/run
    python bench/run.py catalog           # 100,000 endpoints, 1,000,000 logs: list p95, idle tick
    python bench/run.py memory            # RSS of the whole qcluster, idle and under load
    python bench/run.py neighbours        # 200 fast every second beside 20 slow and 3 hostile

Options: --db sqlite|postgres (default sqlite), --redis (the Redis broker; with postgres),
--jobs realistic|minimal (default realistic: endpoints made through `manage.py applyjobs` as
users make them — POST, a JSON body, JSON and Bearer headers, default policies; minimal: the
earlier bulk_create of GETs with overlap `allow`),
--baseline (the same load through django-q2's own cron Schedule + a requests task, for the
ratio; --baseline-only runs just that, --reuse-baseline takes it from the scenario's last
results file: it does not depend on cronplane's code), --endpoints N, --seconds S,
--workers W (default: the WORKERS default), --slow-every S (neighbours: the slow endpoints'
period, default 5), --at-once (memory: the --endpoints all due at one instant),
--flow-key (throughput: every endpoint shares one flow key whose limit is never reached: what
flow control costs a run; results: throughput_…_flow), --ceiling-seconds S (the ceilings'
measuring time, default 5; 0 takes them from the scenario's last results file).
The machine's ceilings (the target alone, an aiohttp client alone) are measured once per
invocation, before the phases, and printed under every table.
Each phase runs in its own process against a fresh database; results go to
bench/results/<scenario>_<db>[_redis][_minimal][_n<N> with --endpoints N][_at_once].json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import (  # noqa: E402
    JOBS,
    RESULTS,
    code_version,
    describe_ceilings,
    measure_ceilings,
    print_table,
)

# (label, path into the figures, "low" or "high" is better) per scenario.
ROWS = {
    "precision": [
        ("requests arrived", "arrived", "high"),
        ("lag p50 (s)", "lag_s.p50", "low"),
        ("lag p99 (s)", "lag_s.p99", "low"),
        ("lag max (s)", "lag_s.max", "low"),
        ("all logged after (s)", "all_logged_s", "low"),
        ("cluster CPU (s)", "cluster_cpu_s", "low"),
        ("duplicated slots", "duplicated_slots", "low"),
    ],
    "precision_single": [
        ("slots expected", "slots_expected", None),
        ("requests arrived", "arrived", "high"),
        ("lag p50 (s)", "lag_s.p50", "low"),
        ("lag p99 (s)", "lag_s.p99", "low"),
        ("lag max (s)", "lag_s.max", "low"),
    ],
    "burst": [
        ("requests arrived", "arrived", "high"),
        ("lag p99 (s)", "lag_s.p99", "low"),
        ("logged within 5 s", "logged_within_5s", "high"),
        ("all logged after (s)", "all_logged_s", "low"),
        ("cluster CPU (s)", "cluster_cpu_s", "low"),
        ("duplicated slots", "duplicated_slots", "low"),
    ],
    "throughput": [
        ("offered runs/s", "offered_per_s", None),
        ("runs finished/s", "runs_per_s", "high"),
        ("requests/s", "requests_per_s", "high"),
        ("cluster CPU ms/run", "cluster_cpu_ms_per_run", "low"),
        ("cluster CPU (cores)", "cluster_cpu_cores", None),
        ("start lag p99 (s)", "start_lag_s.p99", "low"),
        ("due, not done 2 s after", "open_or_behind_at_end", "low"),
        ("cluster RSS (MB)", "cluster_memory_mb.rss_mb", "low"),
    ],
    "catalog": [
        ("endpoints", "endpoints", None),
        ("logs", "logs", None),
        ("dashboard list p95 (ms)", "dashboard_ms.p95", "low"),
        ("API jobs list p95 (ms)", "api_jobs_ms.p95", "low"),
        ("API schedules list p95 (ms)", "api_schedules_ms.p95", "low"),
        ("idle dispatcher tick p95 (ms)", "idle_tick_ms.p95", "low"),
    ],
    "memory": [
        ("load endpoints", "load_endpoints", None),
        ("requests arrived", "requests", None),
        ("processes", "load.processes", None),
        ("idle RSS (MB)", "idle.rss_mb", "low"),
        ("idle PSS (MB)", "idle.pss_mb", "low"),
        ("under load RSS (MB)", "load.rss_mb", "low"),
        ("under load PSS (MB)", "load.pss_mb", "low"),
    ],
    # (label, path, better, bar)
    "neighbours": [
        ("fast slots in the window", "fast.slots_expected", None),
        ("fast slots run (%)", "fast.share_pct", "high", "≥ 99.5"),
        ("fast runs not `success`", "fast.ran_not_success", "low", "0"),
        ("fast lag p50 (s)", "fast.lag_s.p50", "low"),
        ("fast lag p99 (s)", "fast.lag_s.p99", "low", "≤ 0.25"),
        ("fast lag max (s)", "fast.lag_s.max", "low"),
        ("hostile runs started", "hostile.runs", None),
        ("hostile runs ended", "hostile.ended", None),
        ("hostile ended `timeout`", "hostile.timeouts", None, "= started"),
        ("hostile open past deadline + 1 s", "hostile.open_past_deadline", "low", "0"),
        ("hostile worst overrun (s)", "hostile.worst_overrun_s", "low", "≤ 1"),
        ("slow runs started", "slow.started", None),
        ("slow runs finished", "slow.finished", None),
        ("cluster CPU (cores)", "cluster_cpu_cores", None),
    ],
}


def lookup(figures: dict | None, path: str):
    value = figures
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def ratio(ours, theirs, better: str | None) -> str | None:
    if better is None or not isinstance(ours, int | float) or not isinstance(theirs, int | float):
        return None
    if better == "low":
        if ours <= 0 or theirs <= 0:
            return None
        return f"{theirs / ours:.1f}× better" if theirs >= ours else f"{ours / theirs:.1f}× worse"
    if ours <= 0 or theirs <= 0:
        return None
    return f"{ours / theirs:.1f}× more" if ours >= theirs else f"{theirs / ours:.1f}× fewer"


def run_phase(args) -> dict:
    from bench.catalog import catalog
    from bench.neighbours import neighbours
    from bench.scenarios import SCENARIOS

    scenarios = {**SCENARIOS, "catalog": catalog, "neighbours": neighbours}
    return scenarios[args.scenario](args, args.phase == "baseline")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("scenario", choices=list(ROWS))
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--endpoints", type=int, default=0)
    parser.add_argument("--seconds", type=int, default=0)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--jobs", choices=JOBS, default="realistic")
    parser.add_argument("--slow-every", type=int, default=5)
    parser.add_argument("--ceiling-seconds", type=float, default=5)
    parser.add_argument(
        "--at-once",
        action="store_true",
        help="memory: the --endpoints are all due at one instant (results: memory_…_at_once)",
    )
    parser.add_argument(
        "--reuse-baseline",
        action="store_true",
        help="take the django-q2 figures from this scenario's last results file (they do not "
        "depend on cronplane's code) and run only ours",
    )
    parser.add_argument(
        "--flow-key",
        action="store_true",
        help="throughput: every endpoint shares one flow key, its limit never reached (the cost "
        "of flow control; results: throughput_…_flow)",
    )
    parser.add_argument("--baseline-only", action="store_true", help="run only django-q2's")
    parser.add_argument("--phase", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if args.phase:
        print(json.dumps(run_phase(args), default=str))
        return
    setup = f"{args.db} + {'redis' if args.redis else 'orm broker'}"
    figures: dict = {
        "scenario": args.scenario, "setup": setup, "jobs": args.jobs, "code": code_version(),
    }  # fmt: skip
    name = f"{args.scenario}_{args.db}{'_redis' if args.redis else ''}"
    if args.jobs != "realistic":
        name += f"_{args.jobs}"
    if args.endpoints:
        # A load other than the scenario's default keeps its own file (and its own baseline).
        name += f"_n{args.endpoints}"
    if args.at_once:
        name += "_at_once"
    if args.flow_key:
        name += "_flow"
    earlier_file = RESULTS / f"{name}.json"
    if args.ceiling_seconds > 0:
        figures["ceilings"] = measure_ceilings(args.ceiling_seconds)
    elif earlier_file.exists():
        figures["ceilings"] = json.loads(earlier_file.read_text()).get("ceilings")
    flags = ("--baseline", "--reuse-baseline", "--baseline-only")
    argv = [a for a in sys.argv[1:] if a not in flags]
    phases = ["ours", "baseline"] if args.baseline else ["ours"]
    measured: dict[str, str] = {}
    if args.baseline_only:
        phases = ["baseline"]
    elif args.reuse_baseline:
        earlier = json.loads((RESULTS / f"{name}.json").read_text())
        figures["baseline"] = earlier["baseline"]
        measured["baseline"] = earlier.get("measured_at", {}).get("baseline", "earlier")
        phases = ["ours"]
    args.baseline = args.baseline or args.reuse_baseline or args.baseline_only
    for phase in phases:
        measured[phase] = datetime.now(UTC).isoformat(timespec="seconds")
        out = subprocess.run(
            [sys.executable, __file__, *argv, "--phase", phase], capture_output=True, text=True
        )
        if out.returncode != 0:
            sys.stderr.write(out.stdout + out.stderr)
            raise SystemExit(f"{args.scenario} ({phase}) failed")
        figures[phase] = json.loads(out.stdout.strip().splitlines()[-1])
    figures["measured_at"] = measured
    (RESULTS / f"{name}.json").write_text(json.dumps(figures, indent=2, default=str))
    rows = []
    with_bars = any(len(row) > 3 for row in ROWS[args.scenario])
    for label, path, better, *bar in ROWS[args.scenario]:
        ours = lookup(figures.get("ours"), path)
        theirs = lookup(figures.get("baseline"), path)
        row = (label, *bar[:1], *([""] if with_bars and not bar else []), ours)
        rows.append((*row, theirs, ratio(ours, theirs, better)))
    headers = ("", *(["bar"] if with_bars else []), "cronplane", "django-q2 Schedule", "ratio")
    if not args.baseline:
        rows, headers = [row[:-2] for row in rows], headers[:-2]
    print_table(f"{args.scenario} ({setup}, jobs: {args.jobs})", rows, headers)
    print(describe_ceilings(figures.get("ceilings")))
    plans = figures.get("ours", {}).get("plans") or []
    if plans:
        print_table(
            "EXPLAIN: the dispatcher's reads at this size",
            [
                (plan["query"][7:60] + "…", plan["uses"], "yes" if plan["full_scan"] else "no")
                for plan in plans
            ],
            ("query", "index", "full scan"),
        )
    print(f"\nJSON: {RESULTS / (name + '.json')}")


if __name__ == "__main__":
    main()
