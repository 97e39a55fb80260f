"""When an Endpoint runs, and its switch: the schedule's slots, the next run, a heartbeat's
expected ping, jitter, and the on/off transition (runs/verbs.py words and checks it), as a mixin
of Endpoint (endpoints/models.py holds the fields); and how its zone and interval are shown."""

from __future__ import annotations

import hashlib
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from endpoints import schedule_syntax, schedules


def zone_of(name: str) -> ZoneInfo:
    """The zone a stored schedule names, to show its times in; UTC for a name that is not one
    (every door validates it on save: only a hand-edited row gets here)."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def format_interval(seconds: int | None, *, named: bool = False) -> str:
    """300 → '5m', 90 → '90s': the short form parse_interval reads back; with `named`, 3600 →
    'hourly' as seed 003's recurringInterval spells it. '' for no interval."""
    if not seconds:
        return ""
    if named:
        for name, size in schedule_syntax.NAMED_INTERVALS.items():
            if seconds == size:
                return name
    for suffix, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{suffix}"
    return f"{seconds}s"


def disabled_by(by: str) -> str:
    """The disabled_reason of a job disabled without a reason (runs.verbs.wording)."""
    return f"Disabled by {by}." if by else "Disabled."


class EndpointTimetable:
    def _rescheduled(self) -> bool:
        return self._state.adding or (
            self._schedule_fingerprint() != getattr(self, "_saved_fingerprint", None)
        )

    def _schedule_from(self, now: datetime) -> None:
        self.next_run_at = self.compute_next_run_at(now)
        self.expect_from(now)

    def _schedule_fingerprint(self) -> tuple:
        return (
            self.enabled, self.schedule_type, self.cron_expression, self.interval_seconds,
            self.run_at, self.timezone, self.starts_at, self.ends_at, self.max_runs,
            self.kind, self.grace_seconds,
        )  # fmt: skip

    def set_enabled(self, enabled: bool, *, now: datetime, reason: str = "") -> None:
        """Enable (next slot counted from now: a pause is not downtime) or disable. The
        transition only: runs.verbs.enable and disable check and word it (and enable forgives
        past failures through their owners)."""
        self.enabled = enabled
        self.disabled_reason = "" if enabled else reason[:300]
        if enabled:
            self.paused_until, self.paused_by = None, ""
        self.next_run_at = self.compute_next_run_at(now)
        self.expect_from(now)
        self.save(
            update_fields=[
                "enabled",
                "disabled_reason",
                "paused_until",
                "paused_by",
                "next_run_at",
                "expected_at",
                "overdue_at",
                "updated_at",
            ]
        )
        self._saved_fingerprint = self._schedule_fingerprint()

    @staticmethod
    def switch_off(rows, reason: str) -> int:
        """The off transition of those of `rows` still on, as one conditional UPDATE (two runs
        ending a streak at once switch it off once); how many it switched off."""
        return rows.filter(enabled=True).update(
            enabled=False, next_run_at=None, disabled_reason=reason[:300], paused_until=None,
            paused_by="",
        )  # fmt: skip

    # --- the next run, as the dispatcher and one-time actions move it ---------------------------

    def advance_to(self, next_run_at: datetime | None) -> None:
        """The dispatcher's move past the slots it took; store_advanced writes it."""
        self.next_run_at = next_run_at

    @classmethod
    def store_advanced(cls, endpoints) -> None:
        """Write each endpoint's new next_run_at: one UPDATE per distinct value (usually a few),
        where bulk_update would send one CASE branch per endpoint and field."""
        groups: dict[tuple, list[int]] = defaultdict(list)
        for endpoint in endpoints:
            key = (endpoint.next_run_at, endpoint.enabled, endpoint.disabled_reason)
            groups[key].append(endpoint.pk)
        for (next_run_at, enabled, reason), ids in groups.items():
            cls.objects.filter(pk__in=ids).update(
                next_run_at=next_run_at, enabled=enabled, disabled_reason=reason
            )

    def make_due(self, first: datetime) -> None:
        """Due at `first` (a one-time action's first occurrence at or before now), however
        the save counted its next slot."""
        type(self).objects.filter(pk=self.pk).update(next_run_at=first)
        self.next_run_at = first

    def pause(
        self, *, now: datetime, by: str = "", reason: str = "", until: datetime | None = None
    ) -> None:
        """Stop scheduling, saying who and why; with `until`, the dispatcher resumes it then.
        The transition only: runs.verbs.disable checks and words it."""
        self.paused_until, self.paused_by = until, by[:150]
        self.set_enabled(False, now=now, reason=reason)

    @property
    def pause_description(self) -> str:
        """'Paused until 2026-12-01 09:00 EST by alice: vendor maintenance', or why it is
        disabled; empty while enabled."""
        if self.enabled:
            return ""
        if not (self.paused_until or self.paused_by):
            return self.disabled_reason or "Paused"
        text = "Paused"
        if self.paused_until:
            local = self.paused_until.astimezone(self.zone)
            text += f" until {local:%Y-%m-%d %H:%M} {local.tzname()}"
        if self.paused_by:
            text += f" by {self.paused_by}"
        reason = self.disabled_reason if self.disabled_reason != disabled_by(self.paused_by) else ""
        return f"{text}: {reason}" if reason else text

    @property
    def zone(self):
        return zone_of(self.timezone)

    def jitter_for(self, slot: datetime) -> timedelta:
        """This slot's start delay within the jitter window: the same every time it is asked,
        so a re-dispatch or a retry keeps it, and spread evenly over the slots."""
        if not self.jitter_seconds:
            return timedelta(0)
        basis = f"{self.pk}:{slot.astimezone(UTC).isoformat()}".encode()
        fraction = int.from_bytes(hashlib.sha256(basis).digest()[:8], "big") / 2**64
        return timedelta(milliseconds=int(fraction * self.jitter_seconds * 1000))

    @property
    def schedule(self) -> schedules.Schedule:
        return schedules.Schedule(
            kind=self.schedule_type,
            cron=self.cron_expression,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            timezone=self.timezone,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            anchor=self.starts_at or self.created_at,
        )

    @property
    def schedule_description(self) -> str:
        return schedules.describe(self.schedule)

    def next_runs(self, after: datetime, n: int = 5) -> list[datetime]:
        return schedules.next_runs(self.schedule, after, n)

    def compute_next_run_at(self, after: datetime) -> datetime | None:
        """The next slot after `after`, or None when disabled, manual-only or used up (or a
        heartbeat: nothing to call; its slots are expected_at)."""
        if not self.enabled or self.kind == self.Kind.HEARTBEAT:
            return None
        if self.max_runs is not None and self.run_count >= self.max_runs:
            return None
        return schedules.next_run(self.schedule, after)

    @property
    def is_heartbeat(self) -> bool:
        return self.kind == self.Kind.HEARTBEAT

    def expect_from(self, now: datetime) -> None:
        """A heartbeat waits for the first slot after `now` (an edit or a resume starts afresh:
        a pause is not downtime); anything else expects nothing."""
        slot = None
        if self.is_heartbeat and self.enabled:
            slot = schedules.next_run(self.schedule, now)
        self.expect(slot)

    def expect(self, slot: datetime | None) -> None:
        self.expected_at = slot
        self.overdue_at = slot + timedelta(seconds=self.grace_seconds) if slot else None

    def store_expectation(self) -> None:
        """Write expected_at and overdue_at as expect() left them (a heartbeat's slot moved)."""
        type(self).objects.filter(pk=self.pk).update(
            expected_at=self.expected_at, overdue_at=self.overdue_at
        )

    @property
    def upcoming_at(self) -> datetime | None:
        """When it next runs, or for a heartbeat when its next ping is expected (the slot it is
        waiting on, which is past while it is late)."""
        if self.is_heartbeat:
            return self.expected_at if self.enabled else None
        return self.next_run_at

    def is_late(self, now: datetime) -> bool:
        """A heartbeat whose expected slot has come without a ping, still within its grace."""
        if not (self.is_heartbeat and self.enabled and self.expected_at and self.overdue_at):
            return False
        return self.expected_at <= now < self.overdue_at
