"""Small server-rendered charts: the list's sparklines and the endpoint page's run chart.

Only geometry is computed here; templates draw the SVG (and escape every text in it).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from endpoints.models import Endpoint
from runs.models import Log

SPARK_RUNS = 50
SPARK_WIDTH = 100
SPARK_HEIGHT = 20
CHART_RUNS = 60
CHART_WIDTH = 600
CHART_HEIGHT = 120
# Runs that executed (a dry run proves nothing about the target and is left out).
EXECUTED_STATES = (Log.State.SUCCESS, Log.State.FAILED)
EXECUTED = Q(state__in=EXECUTED_STATES, dry_run=False)


@dataclass
class RunPoint:
    log_id: int
    state: str
    duration_ms: int | None
    started_at: datetime | None = None

    @property
    def run_id(self) -> str:
        return f"run-{self.log_id:04d}"


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    state: str
    title: str
    log_id: int = 0


@dataclass
class Sparkline:
    runs: int = 0
    success_rate: int | None = None
    median_ms: int | None = None
    max_ms: int | None = None
    bars: list[Bar] = field(default_factory=list)
    latency_points: str = ""
    width: int = SPARK_WIDTH
    height: int = SPARK_HEIGHT

    @property
    def bars_svg(self) -> SafeString:
        """The outcome strip's <rect>s, built in one pass: a list page shows 25 × 50 of them,
        and resolving each attribute through the template engine costs more than the queries."""
        return mark_safe(  # noqa: S308 — numbers formatted here, the two texts escaped
            "".join(
                f'<rect x="{bar.x:g}" y="0" width="{bar.width:g}" height="{bar.height:g}" '
                f'class="s-{escape(bar.state)}"><title>{escape(bar.title)}</title></rect>'
                for bar in self.bars
            )
        )


def with_spark_cutoff(queryset: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
    """Annotate each endpoint with the id of its 50th most recent executed run (0 if fewer).

    With it, one query fetches the last 50 runs of every endpoint on a page, each an index range
    on (endpoint, -id) — where a window function would number every run each endpoint ever had.
    """
    nth = (
        Log.objects.filter(EXECUTED, endpoint=OuterRef("pk"))
        .order_by("-id")
        .values("id")[SPARK_RUNS - 1 : SPARK_RUNS]
    )
    return queryset.annotate(spark_cutoff=Coalesce(Subquery(nth), Value(0)))


def recent_runs(endpoints: Sequence[Endpoint]) -> dict[int, list[RunPoint]]:
    """The last SPARK_RUNS executed runs of each endpoint, oldest first, in one query."""
    if not endpoints:
        return {}
    ranges = Q()
    for endpoint in endpoints:
        ranges |= Q(endpoint_id=endpoint.pk, id__gte=getattr(endpoint, "spark_cutoff", 0))
    # The state test is done here, not in SQL: given `state IN (...)`, SQLite's planner walks the
    # state index over every run ever made instead of the 25 small (endpoint, id) ranges.
    rows = (
        Log.objects.filter(ranges, dry_run=False)
        .order_by("id")
        .values_list("endpoint_id", "id", "state", "duration_ms")
    )
    runs: dict[int, list[RunPoint]] = defaultdict(list)
    for endpoint_id, log_id, state, duration_ms in rows:
        if state in EXECUTED_STATES:
            runs[endpoint_id].append(RunPoint(log_id, state, duration_ms))
    return {key: points[-SPARK_RUNS:] for key, points in runs.items()}


def attach_sparklines(endpoints: Sequence[Endpoint]) -> None:
    """Set `endpoint.sparkline` on each endpoint (one query for all of them)."""
    runs = recent_runs(endpoints)
    for endpoint in endpoints:
        endpoint.sparkline = sparkline(runs.get(endpoint.pk, []))


def sparkline(points: Sequence[RunPoint]) -> Sparkline:
    """Outcome strip (one bar per run, newest right) and a latency line, both 100×20."""
    if not points:
        return Sparkline()
    slot = SPARK_WIDTH / SPARK_RUNS
    offset = SPARK_WIDTH - slot * len(points)  # right-aligned: the newest run is at the edge
    bars = [
        Bar(
            x=round(offset + i * slot, 2),
            y=0,
            width=round(slot * 0.8, 2),
            height=SPARK_HEIGHT,
            state=point.state,
            title=f"{point.run_id} {point.state} {_ms(point.duration_ms)}",
            log_id=point.log_id,
        )
        for i, point in enumerate(points)
    ]
    durations = [p.duration_ms for p in points if p.duration_ms is not None]
    peak = max(durations, default=0) or 1
    line = [
        (round(offset + (i + 0.4) * slot, 2), round(_y(p.duration_ms or 0, peak, SPARK_HEIGHT), 2))
        for i, p in enumerate(points)
    ]
    succeeded = sum(1 for p in points if p.state == Log.State.SUCCESS)
    return Sparkline(
        runs=len(points),
        success_rate=round(100 * succeeded / len(points)),
        median_ms=int(statistics.median(durations)) if durations else None,
        max_ms=max(durations) if durations else None,
        bars=bars,
        latency_points=" ".join(f"{x},{y}" for x, y in line),
    )


@dataclass
class RunChart:
    bars: list[Bar]
    max_ms: int
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    gridlines: list[tuple[float, str]] = field(default_factory=list)


def run_chart(logs: Iterable[Log]) -> RunChart | None:
    """Duration (bar height) and outcome (colour) of the given runs, oldest left."""
    logs = list(logs)
    if not logs:
        return None
    peak = max((log.duration_ms or 0 for log in logs), default=0) or 1
    top = axis_top(peak)
    slot = CHART_WIDTH / CHART_RUNS
    offset = CHART_WIDTH - slot * len(logs)
    bars = []
    for i, log in enumerate(logs):
        duration = log.duration_ms or 0
        # Runs that never executed (skipped, missed, cancelled) still get a sliver to be seen.
        height = max(2.0, CHART_HEIGHT - _y(duration, top, CHART_HEIGHT))
        when = f"{log.started_at:%Y-%m-%d %H:%M:%S}" if log.started_at else ""
        bars.append(
            Bar(
                x=round(offset + i * slot + 1, 2),
                y=round(CHART_HEIGHT - height, 2),
                width=round(slot - 2, 2),
                height=round(height, 2),
                state=log.state,
                title=f"{log.run_id} · {log.state} · {_ms(log.duration_ms)} · {when}".strip(" ·"),
                log_id=log.pk,
            )
        )
    return RunChart(bars=bars, max_ms=peak, gridlines=axis_gridlines(top))


# An axis ends at the first of these (times a power of ten) at or above the longest value, and
# both gridlines are labelled with the same formatter in the top's unit: a 5 ms top has its mid
# line at "2.5 ms", never "2 ms" (half of 5, truncated to an int).
AXIS_STEPS = (1, 1.5, 2, 3, 4, 5, 6, 8, 10)


def axis_top(peak: float) -> float:
    """The value at the top of a chart whose longest value is `peak` ms (> 0)."""
    power = 10.0 ** math.floor(math.log10(peak))
    for step in AXIS_STEPS:
        if step * power >= peak * (1 - 1e-9):
            return step * power
    return 10 * power


def axis_gridlines(top: float) -> list[tuple[float, str]]:
    """(y, label) of the mid and top gridlines, both labelled in the top's unit."""
    return [(round(CHART_HEIGHT * (1 - f), 2), axis_label(top * f, top)) for f in (0.5, 1.0)]


def axis_label(value: float, top: float) -> str:
    """'0.5 ms', '3 ms', '250 ms', '1.5 s': seconds when the axis reaches a second."""
    if top >= 1000:
        return f"{round(value / 1000, 3):g} s"
    return f"{round(value, 3):g} ms"


def _y(value: float, peak: float, height: float) -> float:
    """SVG y of a value (0 at the bottom), leaving a pixel of headroom."""
    return height - (value / peak) * (height - 1)


def _ms(duration_ms: int | None) -> str:
    if duration_ms is None:
        return "–"
    if duration_ms < 1000:
        return f"{duration_ms} ms"
    return f"{duration_ms / 1000:.1f} s"


# The phases of a call as Log.timing records them, in order; "rest" is the total less the others
# (reading the body, redirects' own overhead, our client's work).
PHASES = (
    ("dns", "DNS"),
    ("connect", "Connect"),
    ("tls", "TLS"),
    ("ttfb", "Waiting (TTFB)"),
    ("rest", "Body and rest"),
)


@dataclass
class Phase:
    key: str
    label: str
    ms: float | None
    start: float = 0.0  # as a share of the total, 0–100
    share: float = 0.0


def phases(timing: dict | None) -> list[Phase]:
    """The phases of one call, each with its place on a 0–100 bar; [] without timing."""
    if not timing or not timing.get("total_ms"):
        return []
    total = float(timing["total_ms"])
    measured = {key: timing.get(f"{key}_ms") for key, _ in PHASES[:-1]}
    known = sum(value for value in measured.values() if value)
    measured["rest"] = round(max(0.0, total - known), 1)
    result, start = [], 0.0
    for key, label in PHASES:
        value = measured[key]
        share = round(min(100.0 - start, 100 * (value or 0) / total), 2)
        result.append(Phase(key, label, value, round(start, 2), share))
        start += share
    return result


@dataclass
class PhaseColumn:
    x: float
    width: float
    log_id: int
    title: str
    segments: list[tuple[str, float, float]]  # (phase key, y, height)


@dataclass
class PhaseChart:
    columns: list[PhaseColumn]
    max_ms: float
    medians: list[tuple[str, str, str]]  # (phase key, label, median as text)
    width: int = CHART_WIDTH
    height: int = CHART_HEIGHT
    gridlines: list[tuple[float, str]] = field(default_factory=list)


def phase_chart(logs: Iterable[Log]) -> PhaseChart | None:
    """Stacked phases (DNS at the bottom) of the given runs' calls, oldest left; None when none
    of them has timing (handlers, dry runs, runs from before timing was recorded)."""
    logs = [log for log in logs if log.timing and log.timing.get("total_ms")]
    if not logs:
        return None
    peak = max(float(log.timing["total_ms"]) for log in logs) or 1.0
    top = axis_top(peak)
    slot = CHART_WIDTH / CHART_RUNS
    offset = CHART_WIDTH - slot * len(logs)
    split = [phases(log.timing) for log in logs]
    columns = []
    for i, (log, parts) in enumerate(zip(logs, split, strict=True)):
        segments, bottom = [], float(CHART_HEIGHT)
        for phase in parts:
            height = (phase.ms or 0) / top * (CHART_HEIGHT - 1)
            if height <= 0:
                continue
            bottom -= height
            segments.append((phase.key, round(bottom, 2), round(height, 2)))
        numbers = " · ".join(f"{p.label} {phase_ms(p.ms)}" for p in parts)
        reused = " · reused connection" if log.timing.get("reused") else ""
        columns.append(
            PhaseColumn(
                x=round(offset + i * slot + 1, 2),
                width=round(slot - 2, 2),
                log_id=log.pk,
                title=f"{log.run_id} · {numbers}{reused}",
                segments=segments,
            )
        )
    medians = []
    for index, (key, label) in enumerate(PHASES):
        values = [parts[index].ms for parts in split if parts[index].ms]
        medians.append((key, label, phase_ms(statistics.median(values)) if values else "–"))
    return PhaseChart(columns=columns, max_ms=peak, medians=medians, gridlines=axis_gridlines(top))


def phase_ms(value: float | None) -> str:
    """A phase's milliseconds: tenths below 10 ms (loopback and LAN phases take less than 1)."""
    if value is None:
        return "–"
    if value < 10:
        return f"{value:.1f} ms"
    return _ms(int(value))
