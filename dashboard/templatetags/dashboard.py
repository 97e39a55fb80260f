"""Template filters for times, durations and bodies."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any
from urllib.parse import urlsplit

from django import template
from django.utils import timezone

from calls.masking import mask_headers
from dashboard import charts, states
from endpoints import schedules, timetable

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
    local = value.astimezone(timetable.zone_of(zone))
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


TARGET_PATH_CHARS = 28


@register.filter
def target(url: str) -> str:
    """Host and path, the path shortened in its middle: '127.0.0.1:8765/ok',
    'crm.example.com/api/…/sync'. Enough to tell /ok from /fail; the full URL goes in a title."""
    parts = urlsplit(url or "")
    if not parts.netloc:
        return url
    path = parts.path if parts.path != "/" else ""
    if len(path) > TARGET_PATH_CHARS:
        segments = path.strip("/").split("/")
        short = f"/{segments[0]}/…/{segments[-1]}" if len(segments) > 2 else ""
        if not short or len(short) > TARGET_PATH_CHARS:
            half = TARGET_PATH_CHARS // 2 - 1
            short = f"{path[:half]}…{path[-half:]}"
        path = short
    return f"{parts.netloc}{path}{'?…' if parts.query else ''}"


# Names that runs.actions gives scheduled actions: the action type, then a random suffix.
ACTION_NAME = re.compile(r"^(?P<type>.+)\.(?:dedup-[0-9a-f]{24}|[0-9a-f]{16})$")


@register.filter
def action_type(endpoint: Any) -> str:
    """The action type of a scheduled action named by the API ('webhook:send.d869…'), else ''."""
    if getattr(endpoint, "kind", "") != "handler":
        return ""
    match = ACTION_NAME.match(endpoint.name or "")
    return endpoint.handler if match and match["type"] == endpoint.handler else ""


@register.filter
def action_label(endpoint: Any) -> str:
    """A readable second line for a scheduled action: what it acts on, when it runs."""
    payload = endpoint.payload if isinstance(endpoint.payload, dict) else {}
    what = next(
        (str(payload[key]) for key in ("url", "name", "email", "to", "id") if payload.get(key)),
        "",
    )
    if what.startswith(("http://", "https://")):
        what = target(what)
    kind = "recurring action" if endpoint.schedule_type == "interval" else "one-time action"
    return f"{kind} · {what}" if what else kind


@register.filter
def state(endpoint: Any) -> str:
    """'active', 'paused' or 'done' (see dashboard.states)."""
    return states.state_of(endpoint)


@register.filter
def done_description(endpoint: Any) -> str:
    return states.done_description(endpoint)


@register.filter
def runs_after(endpoint: Any) -> str:
    """'after extract, enrich (failure)': the jobs it runs after, for the list (no query)."""
    names = [
        e["job_name"] if e["on"] == "success" else f"{e['job_name']} ({e['on']})"
        for e in endpoint.run_after or []
    ]
    return f"after {', '.join(names)}" if names else ""


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


@register.filter
def late(endpoint) -> bool:
    """A heartbeat past its expected time and still within its grace (Endpoint.is_late)."""
    return endpoint.is_late(timezone.now())
