"""One Markdown table per setup from the latest bench/results/*.json (for the README).

python bench/summary.py [--db sqlite|postgres] [--redis]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, describe_ceilings  # noqa: E402
from bench.run import lookup, ratio  # noqa: E402

# (scenario, label, path into the figures, which way is better, the bar)
LINES = [
    ("precision_single", "lag p99 (s)", "lag_s.p99", "low", "≤ 0.25"),
    ("precision", "lag p50 (s)", "lag_s.p50", "low", ""),
    ("precision", "lag p99 (s)", "lag_s.p99", "low", "≤ 1"),
    ("burst", "logged within 5 s", "logged_within_5s", "high", "1,000"),
    ("burst", "all logged after (s)", "all_logged_s", "low", "≤ 5"),
    ("throughput", "offered runs/s", "offered_per_s", None, ""),
    ("throughput", "runs finished/s", "runs_per_s", "high", "≥ 200 / ≥ 500"),
    ("throughput", "start lag p99 (s)", "start_lag_s.p99", "low", ""),
    ("throughput", "cluster CPU per run (ms)", "cluster_cpu_ms_per_run", "low", ""),
    ("catalog", "dashboard list p95 (ms)", "dashboard_ms.p95", "low", "< 200"),
    ("catalog", "API jobs list p95 (ms)", "api_jobs_ms.p95", "low", "< 200"),
    ("catalog", "API schedules list p95 (ms)", "api_schedules_ms.p95", "low", "< 200"),
    ("catalog", "idle dispatcher tick p95 (ms)", "idle_tick_ms.p95", "low", "< 20"),
    ("memory", "processes", "load.processes", None, ""),
    ("memory", "idle: RSS summed / PSS (MB)", "idle", None, "< 400"),
    ("memory", "under load: RSS summed / PSS (MB)", "load", None, "< 400"),
    ("neighbours", "fast slots run (%)", "fast.share_pct", "high", "≥ 99.5"),
    ("neighbours", "fast lag p99 (s)", "fast.lag_s.p99", "low", "≤ 0.25"),
    ("neighbours", "hostile runs started / ended `timeout`", "hostile", None, "all"),
    ("neighbours", "hostile worst overrun (s)", "hostile.worst_overrun_s", "low", "≤ 1"),
]


def cell(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, dict) and "rss_mb" in value:
        return f"{value['rss_mb']:.0f} / {value['pss_mb']:.0f}"
    if isinstance(value, dict) and "timeouts" in value:
        return f"{value['runs']} / {value['timeouts']}"
    if isinstance(value, float):
        return f"{value:,.3f}" if value < 10 else f"{value:,.1f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--redis", action="store_true")
    args = parser.parse_args()
    suffix = f"_{args.db}{'_redis' if args.redis else ''}"
    ceilings = None
    print("| scenario | figure | bar | cronplane | django-q2 Schedule | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for scenario, label, path, better, bar in LINES:
        file = RESULTS / f"{scenario}{suffix}.json"
        if not file.exists():
            continue
        figures = json.loads(file.read_text())
        ceilings = figures.get("ceilings") or ceilings
        ours, theirs = lookup(figures.get("ours"), path), lookup(figures.get("baseline"), path)
        shown = ratio(ours, theirs, better) or ""
        if bar == "≥ 200 / ≥ 500":
            bar = "≥ 500" if args.db == "postgres" else "≥ 200"
        print(f"| {scenario} | {label} | {bar} | {cell(ours)} | {cell(theirs)} | {shown} |")
    print(f"\n{describe_ceilings(ceilings)} (from the last results file that has them)")


if __name__ == "__main__":
    main()
