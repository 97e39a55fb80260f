"""What a user writes for a schedule, read and checked: cron expressions (macros, names, an
optional 6th field of seconds, last), intervals (`5m`, `hourly`) and time zone names.
ScheduleError says what is wrong and which input; endpoints/schedules.py does the math."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter

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
MAX_YEARS_BETWEEN_MATCHES = 10


class ScheduleError(ValueError):
    """An invalid schedule; `field` names the input that is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


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
            max_years_between_matches=MAX_YEARS_BETWEEN_MATCHES,
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
