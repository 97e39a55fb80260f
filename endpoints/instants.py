"""The one range of instants a schedule, a run or a pause may name, and the one reader of an
instant given as text (every door: the API, job files, forms)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime

# Schedules reach no further; beyond these, date arithmetic overflows Python's datetime.
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)
OUT_OF_RANGE = "Choose a date between 1970 and 3000."


def within_range(moment: datetime) -> bool:
    try:
        return EARLIEST <= moment.astimezone(UTC) <= LATEST
    except OverflowError:
        return False


def parse_instant(data: Any) -> tuple[datetime | None, str | None]:
    """(the instant, None) or (None, what is wrong with it): ISO 8601 with an offset (a naive
    time is ambiguous), a real date, within the range."""
    try:
        parsed = parse_datetime(data) if isinstance(data, str) else None
    except ValueError as exc:  # well formed but impossible, e.g. 30 February
        return None, f"Not a real date and time: {exc}."
    if parsed is None or parsed.tzinfo is None:
        return None, "Must be an ISO 8601 date and time with an offset, e.g. 2024-01-15T12:00:00Z."
    if not within_range(parsed):
        return None, "Must be between 1970 and 3000."
    return parsed, None
