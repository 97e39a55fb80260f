"""Template filters for times, durations and bodies."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from django import template
from django.utils import timezone

from calls.masking import mask_headers
from dashboard import charts
from endpoints import schedules

register = template.Library()


@register.filter
def relative(value: datetime | None) -> str:
    """'in 4 min', '3 h ago', 'just now'; '' for None."""
    if value is None:
        return ""
    delta = value - timezone.now()
    future = delta > timedelta(0)
    seconds = abs(delta.total_seconds())
    if seconds < 5:
        return "just now" if not future else "in a moment"
    if seconds < 60:
        amount = f"{int(seconds)} s"
    elif seconds < 3600:
        amount = f"{int(seconds // 60)} min"
    elif seconds < 86400:
        amount = f"{int(seconds // 3600)} h"
    elif seconds < 86400 * 60:
        amount = f"{int(seconds // 86400)} d"
    else:
        return f"{value:%Y-%m-%d}"
    return f"in {amount}" if future else f"{amount} ago"


@register.filter
def in_zone(value: datetime | None, zone: str = "UTC") -> str:
    """An instant on a zone's wall clock, with the zone's abbreviation."""
    if value is None:
        return ""
    try:
        local = value.astimezone(ZoneInfo(zone or "UTC"))
    except (ValueError, KeyError):
        local = value
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname()}"


@register.filter
def duration(ms: int | None) -> str:
    if ms is None:
        return "–"
    if ms < 1000:
        return f"{ms} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes, seconds = divmod(ms // 1000, 60)
    return f"{minutes} min {seconds} s"


@register.filter
def pretty(value: Any) -> str:
    """A body or JSON value for a <pre>: JSON indented, anything else as it is (escaped later)."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except ValueError:
            return value
        if not isinstance(parsed, dict | list):
            return value
        value = parsed
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False)


@register.filter
def is_json(value: Any) -> bool:
    if not isinstance(value, str) or not value.strip():
        return False
    try:
        return isinstance(json.loads(value), dict | list)
    except ValueError:
        return False


@register.filter
def masked(headers: dict | None, endpoint: Any = None) -> list[tuple[str, str]]:
    """Header items, secret values masked (again: a stored snapshot is masked already)."""
    secret_names = getattr(endpoint, "secret_headers", None) or []
    return sorted(mask_headers(headers or {}, secret_names).items(), key=lambda i: i[0].lower())


@register.filter
def get(mapping: dict | None, key: str) -> Any:
    return (mapping or {}).get(key)


@register.filter
def host(url: str) -> str:
    """The host[:port] of a URL, for compact display."""
    return urlsplit(url or "").netloc or url


@register.filter
def schedule_words(endpoint: Any) -> str:
    """Endpoint.schedule_description, remembered: describing a cron loads cron-descriptor's
    translations on every call, and a list page (refreshed every 10 s) describes 25 of them."""
    return _describe(
        endpoint.schedule_type,
        endpoint.cron_expression,
        endpoint.interval_seconds,
        endpoint.run_at,
        endpoint.timezone,
    )


@lru_cache(maxsize=4096)
def _describe(
    kind: str, cron: str, interval: int | None, run_at: datetime | None, zone: str
) -> str:
    return schedules.describe(
        schedules.Schedule(
            kind=kind, cron=cron, interval_seconds=interval, run_at=run_at, timezone=zone
        )
    )


@register.filter(name="phase_ms")
def phase_ms_filter(value: float | None) -> str:
    """A call phase's milliseconds (tenths below 10 ms)."""
    return charts.phase_ms(value)
