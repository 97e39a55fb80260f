"""Schedule math: parse and validate cron, intervals and one-time schedules; list their next runs.

Every function here is pure and takes the instant it reasons about (`after`) as a parameter.

Cron is evaluated on the wall clock of the schedule's IANA time zone (DESIGN §5.3):
- a wall time that does not exist (spring forward) runs once, at the instant the gap ends;
- a wall time that occurs twice (fall back) runs once, at its first occurrence.
Intervals are absolute (every N seconds from an anchor) and so are unaffected by DST.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from cron_descriptor import FormatError, Options, get_description
from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

CRON = "cron"
INTERVAL = "interval"
ONCE = "once"
MANUAL = "none"

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

# Named intervals, as seed 003's `recurringInterval` spells them.
NAMED_INTERVALS = {
    "minutely": 60,
    "hourly": 3600,
    "daily": 86400,
    "weekly": 7 * 86400,
}
_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_INTERVAL_RE = re.compile(
    r"^(?:every\s+)?([0-9]+)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?|d|days?)$"
)
MAX_INTERVAL_SECONDS = 366 * 86400


def small_number(text: str) -> int | None:
    """'42' → 42; None for anything but ASCII digits ('²' and '①' pass str.isdigit() and fail
    int()); a number of more than 12 digits counts as 10**12 (int() refuses 4,300 digits)."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 12 else 10**12


# A slot that croniter cannot find within this many years is a schedule that never fires.
_MAX_YEARS_BETWEEN_MATCHES = 10
# Bound on candidates examined per call: a repeated (fall-back) hour of an every-second schedule
# costs 3,600; anything beyond this is a bug, not a schedule.
_MAX_CANDIDATES = 100_000


class ScheduleError(ValueError):
    """An invalid schedule; `field` names the input that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


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


def normalize_cron(expression: str) -> str:
    """Return the canonical 5- or 6-field form of a cron expression, or raise ScheduleError.

    Accepts the macros @hourly…@yearly, names (MON-FRI, JAN) and an optional 6th field of seconds
    (croniter's convention: seconds come last). Rejects expressions that can never fire.
    """
    text = " ".join((expression or "").split())
    if not text:
        raise ScheduleError("cron_expression", "Enter a cron expression, e.g. '0 9 * * MON-FRI'.")
    if text.startswith("@"):
        if text.lower() not in MACROS:
            known = ", ".join(sorted(MACROS))
            raise ScheduleError("cron_expression", f"Unknown macro '{text}'; use one of {known}.")
        text = MACROS[text.lower()]
    fields = text.split(" ")
    if len(fields) not in (5, 6):
        raise ScheduleError(
            "cron_expression",
            f"A cron expression has 5 fields (minute hour day-of-month month day-of-week), "
            f"or 6 with seconds last; '{text}' has {len(fields)}.",
        )
    for index, value in enumerate(fields):
        if problem := _cron_field_problem(value, _CRON_FIELDS[index]):
            raise ScheduleError("cron_expression", f"Invalid cron expression '{text}': {problem}.")
    try:
        probe = croniter(
            text,
            datetime(2000, 1, 1),
            max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES,
        )
        probe.get_next(datetime)
    except CroniterBadDateError:
        raise ScheduleError(
            "cron_expression", f"'{text}' never fires (no such date, e.g. 30 February)."
        ) from None
    except (CroniterBadCronError, CroniterError, ValueError, KeyError):
        # What our field check lets through and croniter still refuses (e.g. '5L', 'H'): its
        # own text quotes the expression back in brackets, so say what each field takes.
        raise ScheduleError(
            "cron_expression", f"Invalid cron expression '{text}': {_CRON_SYNTAX}."
        ) from None
    return text


@dataclass(frozen=True)
class _CronField:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    # Letters croniter reads in this field beyond names: L (last day), W (weekday), # (nth).
    specials: str = ""

    @property
    def allowed(self) -> str:
        spelled = f" or {self.names[0]}–{self.names[-1]}" if self.names else ""
        return f"{self.low}–{self.high}{spelled}"


_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_DAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
# In order; the optional 6th field is seconds (croniter's convention: last).
_CRON_FIELDS = (
    _CronField("minute", 0, 59),
    _CronField("hour", 0, 23),
    _CronField("day-of-month", 1, 31, specials="LW"),
    _CronField("month", 1, 12, _MONTHS),
    _CronField("day-of-week", 0, 7, _DAYS, specials="L#"),
    _CronField("second", 0, 59),
)
_CRON_SYNTAX = (
    "the fields are "
    + ", ".join(f"{field.name} {field.allowed}" for field in _CRON_FIELDS[:5])
    + ", and optionally second 0–59 last; each is *, a value, a range a-b, a list a,b or a step */n"
)


def _cron_field_problem(text: str, field: _CronField) -> str | None:
    """What is wrong with one field, in the user's terms ('minute must be 0–59; got 61')."""
    for part in text.split(","):
        base, slash, step = part.partition("/")
        if slash and not ((small_number(step) or 0) >= 1):
            return f"the {field.name} step must be a whole number from 1; got '/{step}'"
        if base in ("*", "?"):
            continue
        for value in base.split("-"):
            if not value:
                return f"{field.name} has an empty value in '{text}'"
            if (number := small_number(value)) is not None:
                if not field.low <= number <= field.high:
                    return f"{field.name} must be {field.allowed}; got {value}"
            elif value.upper() in field.names:
                continue
            elif not any(letter in field.specials for letter in value.upper()):
                return f"{field.name} must be {field.allowed}; got '{value}'"
    return None


def validate_timezone(name: str) -> ZoneInfo:
    """Return the ZoneInfo for an IANA name, or raise ScheduleError."""
    if not name or name not in _timezone_names():
        raise ScheduleError(
            "timezone", f"Unknown time zone '{name}'; use an IANA name such as 'Europe/Paris'."
        )
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ScheduleError("timezone", f"Unknown time zone '{name}'.") from None


def _timezone_names() -> set[str]:
    global _TIMEZONES
    if _TIMEZONES is None:
        _TIMEZONES = available_timezones() | {"UTC"}
    return _TIMEZONES


_TIMEZONES: set[str] | None = None


def parse_interval(value: str | int) -> int:
    """Seconds in an interval given as seconds, '90s', '5m', 'every 2 hours' or 'daily'."""
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value
    else:
        text = str(value).strip().lower()
        if text in NAMED_INTERVALS:
            return NAMED_INTERVALS[text]
        if (number := small_number(text)) is not None:
            seconds = number
        else:
            match = _INTERVAL_RE.match(text)
            if not match:
                named = ", ".join(NAMED_INTERVALS)
                raise ScheduleError(
                    "interval",
                    f"Invalid interval '{value}'; use seconds, '5m', '2h', '1d' or one of {named}.",
                )
            seconds = small_number(match.group(1)) * _INTERVAL_UNITS[match.group(2)[0]]
    if not 1 <= seconds <= MAX_INTERVAL_SECONDS:
        raise ScheduleError("interval", "An interval must be between 1 second and 366 days.")
    return seconds


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
        expression, wall_after, max_years_between_matches=_MAX_YEARS_BETWEEN_MATCHES
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
