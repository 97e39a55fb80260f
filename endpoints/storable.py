"""What every door may store, one rule each: instants within 1970-3000 (and the one reader of an
instant given as text), and text without NUL characters or lone surrogates (PostgreSQL refuses
NUL, and UTF-8 has no lone surrogates: JSON's "\\ud800")."""

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


def unstorable_text(value: Any) -> tuple[str, str] | None:
    """(where, why) of the first string or key in `value` no database can store, or None;
    `where` is its path ("headers.X-A", "0.json"), "" for `value` itself.

    A loop, not recursion: a payload nested 400 levels deep is an input error, not a crash.
    """
    stack = [("", value)]
    while stack:
        place, item = stack.pop()
        texts = [item] if isinstance(item, str) else list(item) if isinstance(item, dict) else []
        for text in texts:
            if isinstance(text, str) and (problem := _text_problem(text)):
                return place, problem
        if isinstance(item, dict):
            stack += [(f"{place}.{key}" if place else str(key), v) for key, v in item.items()]
        elif isinstance(item, list | tuple):
            stack += [(f"{place}.{i}" if place else str(i), v) for i, v in enumerate(item)]
    return None


def has_unstorable_text(value: Any) -> bool:
    return unstorable_text(value) is not None


def _text_problem(text: str) -> str | None:
    if "\x00" in text:
        return "Must not contain NUL characters."
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:
            return "Must not contain lone surrogate characters."
    return None
