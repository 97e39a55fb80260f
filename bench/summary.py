"""One Markdown table per setup from the latest bench/results/*.json (for the README).

python bench/summary.py [--db sqlite|postgres] [--redis] [--sustained N]

Reads, per setup: precision_single, precision (1,000 at once; 10,000 at once from
precision_…_n10000 where it was run), burst, throughput at the bar's rate (throughput_…_n3000 on
PostgreSQL, _n2000 on SQLite) and at --sustained N (a lower rate tried: the highest kept up), the
minimal-jobs precision and throughput, neighbours, memory (idle and every second; 10,000 at
once from memory_…_n10000_at_once) and catalog. A file that is missing is left out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import RESULTS, describe_ceilings  # noqa: E402
from bench.run import lookup, ratio  # noqa: E402

# (results file, with {s} the setup's suffix, {bar} the throughput bar's rate, {n} --sustained;
#  the scenario as shown; label; path into the figures; which way is better; the bar)
# fmt: off
LINES = [
    ("precision_single{s}", "precision_single", "lag p99 (s)", "lag_s.p99", "low", "≤ 0.05"),
    ("precision{s}", "precision (1,000 at once)", "lag p50 (s)", "lag_s.p50", "low", ""),
    ("precision{s}", "precision (1,000 at once)", "lag p99 (s)", "lag_s.p99", "low", "≤ 0.2"),
    ("precision{s}_minimal", "precision, minimal jobs", "lag p99 (s)", "lag_s.p99", "low", "≤ 0.2"),
    ("precision{s}_n10000", "precision (10,000 at once)", "lag p99 (s)", "lag_s.p99", "low", "≤ 2"),
    ("burst{s}", "burst (1,000 × 1 s calls)", "all logged after (s)", "all_logged_s", "low",
     "≤ 1.5"),
    ("burst{s}", "burst (1,000 × 1 s calls)", "logged within 5 s", "logged_within_5s", "high",
     "1,000"),
    ("throughput{s}_n{bar}", "throughput at the bar", "runs finished/s", "runs_per_s", "high",
     "≥ {bar:,}"),
    ("throughput{s}_n{bar}", "throughput at the bar", "start lag p99 (s)", "start_lag_s.p99",
     "low", "≤ 0.5"),
    ("throughput{s}_n{bar}", "throughput at the bar", "due, not done 2 s after",
     "open_or_behind_at_end", "low", "0"),
    ("throughput{s}_n{bar}", "throughput at the bar", "cluster CPU per run (ms)",
     "cluster_cpu_ms_per_run", "low", "≤ 0.4"),
    ("throughput{s}_minimal_n{bar}", "throughput at the bar, minimal jobs", "runs finished/s",
     "runs_per_s", "high", "≥ {bar:,}"),
    ("throughput{s}_minimal_n{bar}", "throughput at the bar, minimal jobs",
     "start lag p99 (s)", "start_lag_s.p99", "low", "≤ 0.5"),
    ("throughput{s}_minimal_n{bar}", "throughput at the bar, minimal jobs",
     "cluster CPU per run (ms)", "cluster_cpu_ms_per_run", "low", "≤ 0.4"),
    ("throughput{s}_n{n}", "throughput at {n:,}/s offered", "runs finished/s",
     "runs_per_s", "high", ""),
    ("throughput{s}_n{n}", "throughput at {n:,}/s offered",
     "start lag p99 (s)", "start_lag_s.p99", "low", "≤ 0.5"),
    ("throughput{s}_n{n}", "throughput at {n:,}/s offered",
     "cluster CPU per run (ms)", "cluster_cpu_ms_per_run", "low", "≤ 0.4"),
    ("neighbours{s}", "neighbours", "fast slots run (%)", "fast.share_pct", "high", "≥ 99.5"),
    ("neighbours{s}", "neighbours", "fast lag p99 (s)", "fast.lag_s.p99", "low", "≤ 0.25"),
    ("neighbours{s}", "neighbours", "hostile runs started / ended `timeout`", "hostile", None,
     "all"),
    ("neighbours{s}", "neighbours", "hostile worst overrun (s)", "hostile.worst_overrun_s", "low",
     "≤ 1"),
    ("memory{s}", "memory", "idle: RSS summed / PSS (MB)", "idle", None, ""),
    ("memory{s}", "memory", "100 every second: RSS summed / PSS (MB)", "load", None, ""),
    ("memory{s}_n10000_at_once", "memory", "10,000 due at once: RSS summed / PSS (MB)", "load",
     None, "< 400"),
    ("catalog{s}", "catalog", "dashboard list p95 (ms)", "dashboard_ms.p95", "low", "< 200"),
    ("catalog{s}", "catalog", "API jobs list p95 (ms)", "api_jobs_ms.p95", "low", "< 200"),
    ("catalog{s}", "catalog", "idle dispatcher tick p95 (ms)", "idle_tick_ms.p95", "low", "< 20"),
]
# fmt: on


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
    parser.add_argument("--sustained", type=int, default=0, help="throughput rate to show")
    args = parser.parse_args()
    suffix = f"_{args.db}{'_redis' if args.redis else ''}"
    bar_rate = 3000 if args.db == "postgres" else 2000
    ceilings = None
    measured: list[str] = []
    seen: list[dict] = []
    print("| scenario | figure | bar | cronplane | django-q2 Schedule | ratio |")
    print("| --- | --- | --- | --- | --- | --- |")
    for template, scenario, label, path, better, bar in LINES:
        if "{n" in template and (not args.sustained or args.sustained == bar_rate):
            continue
        names = {"s": suffix, "bar": bar_rate, "n": args.sustained}
        file = RESULTS / f"{template.format(**names)}.json"
        if not file.exists():
            continue
        figures = json.loads(file.read_text())
        ceilings = figures.get("ceilings") or ceilings
        if figures.get("ceilings") and figures["ceilings"] not in seen:
            seen.append(figures["ceilings"])
        measured += [at for at in (figures.get("measured_at") or {}).values() if "T" in at]
        ours, theirs = lookup(figures.get("ours"), path), lookup(figures.get("baseline"), path)
        shown = ratio(ours, theirs, better) or ""
        row = (scenario.format(**names), label, bar.format(**names), cell(ours), cell(theirs))
        print("| " + " | ".join(row) + f" | {shown} |")
    if measured:
        print(f"\nmeasured {min(measured)} – {max(measured)} (UTC)")
    if seen:
        target = [c["target"]["requests_per_s"] for c in seen]
        client = [c["client"]["requests_per_s"] for c in seen]
        print(
            f"\nceilings over these runs: target alone {min(target):,}–{max(target):,} req/s, "
            f"aiohttp client alone {min(client):,}–{max(client):,} req/s on one core"
        )
    print(f"\n{describe_ceilings(ceilings)} (from the last results file that has them)")


if __name__ == "__main__":
    main()
