"""The schedule preview shown beside the form: what a schedule means and when it runs next."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from endpoints import schedule_syntax, schedules
from endpoints.models import Endpoint

NEXT_RUNS = 5
# What to say while the field a schedule type needs is still empty (not an error yet).
BLANK_HINTS = {
    schedules.CRON: ("cron_expression", "Type a cron expression, e.g. 0 9 * * MON-FRI, to see "
                     "what it means and when it runs."),
    schedules.INTERVAL: ("interval_seconds", "Type an interval, e.g. 90s, 5m, 2h or daily."),
    schedules.ONCE: ("run_at", "Choose when the one-time run happens."),
}  # fmt: skip


@dataclass
class SchedulePreview:
    description: str = ""
    timezone: str = "UTC"
    runs: list[datetime] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    manual: bool = False
    hint: str = ""


def preview_schedule(
    values: Mapping[str, str], *, now: datetime, anchor: datetime | None = None
) -> SchedulePreview:
    """Validate the schedule fields as typed and list the next runs on the chosen wall clock.

    `values` holds the form's raw strings (schedule_type, cron_expression, interval_seconds,
    run_at, timezone, starts_at, ends_at); `anchor` is when an interval counts from.
    """
    kind = values.get("schedule_type") or schedules.CRON
    blank = BLANK_HINTS.get(kind)
    if blank and not (values.get(blank[0]) or "").strip():
        return SchedulePreview(timezone=values.get("timezone") or "", hint=blank[1])
    tz_name = (values.get("timezone") or "").strip()
    errors: dict[str, str] = {}
    zone: ZoneInfo | None = None
    try:
        zone = schedule_syntax.validate_timezone(tz_name)
    except schedule_syntax.ScheduleError as exc:
        errors["timezone"] = exc.message
    cron = interval = run_at = None
    if kind == schedules.CRON:
        try:
            cron = schedule_syntax.normalize_cron(values.get("cron_expression") or "")
        except schedule_syntax.ScheduleError as exc:
            errors["cron_expression"] = exc.message
    elif kind == schedules.INTERVAL:
        try:
            interval = schedule_syntax.parse_interval(values.get("interval_seconds") or "")
        except schedule_syntax.ScheduleError as exc:
            errors["interval_seconds"] = exc.message
    elif kind == schedules.ONCE:
        run_at = _local(values.get("run_at"), zone)
        if run_at is None:
            errors["run_at"] = "Choose when the one-time run happens."
    elif kind != schedules.MANUAL:
        errors["schedule_type"] = f"Unknown schedule type '{kind}'."
    if errors:
        return SchedulePreview(timezone=tz_name, errors=errors)
    if kind == schedules.MANUAL:
        return SchedulePreview(description="Manual only", timezone=tz_name, manual=True)
    starts_at = _local(values.get("starts_at"), zone)
    schedule = schedules.Schedule(
        kind=kind,
        cron=cron or "",
        interval_seconds=interval,
        run_at=run_at,
        timezone=tz_name,
        starts_at=starts_at,
        ends_at=_local(values.get("ends_at"), zone),
        anchor=starts_at or anchor or now,
    )
    return SchedulePreview(
        description=schedules.describe(schedule),
        timezone=tz_name,
        runs=schedules.next_runs(schedule, now, NEXT_RUNS),
    )


def anchor_of(endpoint: Endpoint | None) -> datetime | None:
    return endpoint.created_at if endpoint is not None and endpoint.pk else None


def _local(text: str | None, zone: ZoneInfo | None) -> datetime | None:
    """A datetime-local value ('2025-03-30T02:30') read on `zone`'s wall clock."""
    if not text or zone is None:
        return None
    try:
        wall = datetime.fromisoformat(text.strip())
    except ValueError:
        return None
    if wall.tzinfo is not None:
        return wall
    return schedules.wall_to_instant(wall, zone)
