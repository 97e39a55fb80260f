"""Schedule math: a schedule's next runs, its runs between two instants, wall times and words
(what a user writes is read and checked in endpoints/schedule_syntax.py).

Every function here is pure and takes the instant it reasons about (`after`) as a parameter.

Cron is evaluated on the wall clock of the schedule's IANA time zone (DESIGN §5.3):
- a wall time that does not exist (spring forward) runs once, at the instant the gap ends;
- a wall time that occurs twice (fall back) runs once, at its first occurrence.
Intervals are absolute (every N seconds from an anchor) and so are unaffected by DST.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from cron_descriptor import FormatError, Options, get_description
from croniter import CroniterBadDateError, croniter

from endpoints.schedule_syntax import (
    MAX_YEARS_BETWEEN_MATCHES,
    ScheduleError,
    normalize_cron,
    validate_timezone,
)

CRON = "cron"
INTERVAL = "interval"
ONCE = "once"
MANUAL = "none"


# Bound on candidates examined per call: a repeated (fall-back) hour of an every-second schedule
# costs 3,600; anything beyond this is a bug, not a schedule.
_MAX_CANDIDATES = 100_000


@dataclass(frozen=True)
class Schedule:
    kind: str
    cron: str = ""
    interval_seconds: int | None = None
    run_at: datetime | None = None
    timezone: str = "UTC"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    # Interval slots are anchor + k × interval; the anchor is starts_at or the endpoint's creation.
    anchor: datetime | None = None


def next_runs(schedule: Schedule, after: datetime, n: int = 1) -> list[datetime]:
    """The next `n` instants (aware, UTC) strictly after `after` at which the schedule fires."""
    if after.tzinfo is None:
        raise ValueError("`after` must be an aware datetime")
    after = after.astimezone(UTC)
    if schedule.starts_at and after < schedule.starts_at:
        # Slots at starts_at itself count.
        after = schedule.starts_at.astimezone(UTC) - timedelta(microseconds=1)
    if schedule.kind == CRON:
        runs = _cron_runs(schedule.cron, ZoneInfo(schedule.timezone), after, n, schedule.ends_at)
    elif schedule.kind == INTERVAL:
        runs = _interval_runs(schedule, after, n)
    elif schedule.kind == ONCE:
        runs = (
            [schedule.run_at.astimezone(UTC)] if schedule.run_at and schedule.run_at > after else []
        )
    else:
        runs = []
    if schedule.ends_at:
        runs = [run for run in runs if run <= schedule.ends_at]
    return runs


def one_time_problem(run_at: datetime | None, now: datetime) -> str | None:
    """The one rule for a one-time instant, at every door that sets one on an active job (job
    files, the job API, the dashboard form): it must be in the future, since nothing would ever
    run a past one. Seed 003's scheduledAt is the exception its contract documents ("default:
    now"): runs/actions.py runs a past one at once."""
    if run_at is None or run_at > now:
        return None
    return (
        f"{run_at.astimezone(UTC):%Y-%m-%dT%H:%M:%SZ} is in the past: a one-time run must be in "
        "the future (to run the job now, trigger it)."
    )


def next_run(schedule: Schedule, after: datetime) -> datetime | None:
    runs = next_runs(schedule, after, 1)
    return runs[0] if runs else None


def runs_between(
    schedule: Schedule, after: datetime, until: datetime, limit: int
) -> list[datetime]:
    """Slots in (after, until], at most `limit` of them (the earliest)."""
    slots: list[datetime] = []
    cursor = after
    while len(slots) < limit:
        batch = next_runs(schedule, cursor, min(100, limit - len(slots)))
        fitting = [slot for slot in batch if slot <= until]
        slots.extend(fitting)
        if len(fitting) < len(batch) or not batch:
            break
        cursor = batch[-1]
    return slots


def _cron_runs(
    expression: str, tz: ZoneInfo, after: datetime, n: int, ends_at: datetime | None
) -> list[datetime]:
    """Map cron's wall-clock candidates to instants; the mapping is monotone, so stop at n."""
    floored = after.replace(microsecond=0)
    wall_after = floored.astimezone(tz).replace(tzinfo=None)
    candidates = croniter(
        expression, wall_after, max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES
    )
    runs: list[datetime] = []
    for _ in range(_MAX_CANDIDATES):
        try:
            wall = candidates.get_next(datetime)
        except CroniterBadDateError:
            break
        instant = wall_to_instant(wall, tz)
        if instant <= after or (runs and instant == runs[-1]):
            # A repeated wall time's second pass, or two gap times mapped to one instant.
            continue
        if ends_at and instant > ends_at:
            break
        runs.append(instant)
        if len(runs) == n:
            break
    return runs


def wall_to_instant(wall: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which a naive wall time happens in `tz` (DST rules of the docstring)."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        # Exists; for a repeated time fold=0 is its first occurrence.
        return first
    # In a gap. fold=1 applies the offset after the transition, which lands before the gap:
    # the first second whose wall time reaches `wall` is the end of the gap.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    high = first
    while (high - low) > timedelta(seconds=1):
        middle = low + (high - low) / 2
        middle = middle.replace(microsecond=0)
        if middle.astimezone(tz).replace(tzinfo=None) >= wall:
            high = middle
        else:
            low = middle
    return high


def parse_local_instant(text: str, tz_name: str) -> datetime:
    """'2026-11-01T01:30' (wall time in `tz_name`, DST rules as above) or an ISO 8601 instant
    with its offset → an aware UTC datetime. Raises ValueError with a readable message."""
    from django.utils.dateparse import parse_datetime

    try:
        moment = parse_datetime(text.strip())
    except ValueError:
        moment = None
    if moment is None:
        raise ValueError(f"'{text}' is not a date and time like 2026-11-01T01:30")
    if moment.tzinfo is None:
        return wall_to_instant(moment, validate_timezone(tz_name))
    return moment.astimezone(UTC)


def _interval_runs(schedule: Schedule, after: datetime, n: int) -> list[datetime]:
    step = schedule.interval_seconds or 0
    if step <= 0 or schedule.anchor is None:
        return []
    anchor = schedule.anchor.astimezone(UTC)
    k = max(0, math.floor((after - anchor).total_seconds() / step) + 1)
    runs = [anchor + timedelta(seconds=step * (k + i)) for i in range(n)]
    return [run for run in runs if run > after]


def describe(schedule: Schedule) -> str:
    """A human-readable description, e.g. 'At 09:00, Monday through Friday'."""
    if schedule.kind == CRON:
        return describe_cron(schedule.cron)
    if schedule.kind == INTERVAL:
        return describe_interval(schedule.interval_seconds or 0)
    if schedule.kind == ONCE:
        if not schedule.run_at:
            return "Once (no time set)"
        local = schedule.run_at.astimezone(ZoneInfo(schedule.timezone))
        return f"Once, at {local:%Y-%m-%d %H:%M:%S}"
    return "Manual only"


@functools.lru_cache(maxsize=4096)
def describe_cron(expression: str) -> str:
    """Cached: cron-descriptor reloads its translations on every call."""
    try:
        text = normalize_cron(expression)
    except ScheduleError as exc:
        return exc.message
    fields = text.split(" ")
    if len(fields) == 6:
        # cron-descriptor reads a 6-field expression with seconds first (Quartz); ours are last.
        text = " ".join([fields[5], *fields[:5]])
    options = Options()
    options.use_24hour_time_format = True
    options.verbose = False
    try:
        return get_description(text, options)
    except (FormatError, Exception):  # the describer is cosmetic: never fail a page for it
        return text


def describe_interval(seconds: int) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            return f"Every {unit}" if count == 1 else f"Every {count} {unit}s"
    return "Every second" if seconds == 1 else f"Every {seconds} seconds"
