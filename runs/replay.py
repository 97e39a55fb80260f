"""Bulk replay: run failed runs again, each as the next attempt of its own slot.

A `Selection` (endpoints, a range of when the runs finished, error classes) picks the failed
runs that are the last attempt of their slot: a run already retried or replayed has a next
attempt and is left out, and so are dry runs and heartbeats (nothing calls a heartbeat).

`preview` counts them ("312 failed runs, 4 endpoints") and writes nothing. `replay` creates the
next attempt of each (trigger `replay`: same slot, attempt + 1, the same Idempotency-Key, so a
target that saw the first attempt can tell), oldest first, at most
SCHEDULER_MAX_REPLAY_RUNS at a time: replaying the same selection again takes the next ones.
The attempts are `pending` and due now; the dispatcher's `dispatch_pending` starts them under
each endpoint's overlap policy, as it starts retries and backfills.

Once per failed run, whoever asks: the new attempt points at the run it replays through
`Log.retry_of`, a one-to-one field (unique in the database), so a second replay of the same
selection — later, or racing this one from another process — creates nothing twice.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction

from endpoints.models import Endpoint
from runs.models import Log, LogQuerySet

INSERT_BATCH = 500


@dataclass(frozen=True)
class Selection:
    """Which failed runs: of these endpoints (all when empty), finished in [start, end), with
    one of these error classes (any when empty)."""

    endpoints: tuple[int, ...] = ()
    start: datetime | None = None
    end: datetime | None = None
    error_classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        errors = {}
        if self.start and self.end and self.end <= self.start:
            errors["end"] = "The end of the range must be after its start."
        known = set(Log.ErrorClass.values)
        unknown = [name for name in self.error_classes if name not in known]
        if unknown:
            errors["error_class"] = (
                f"Unknown error class {unknown[0]!r}; one of {', '.join(sorted(known))}."
            )
        if errors:
            raise ValidationError(errors)

    def runs(self) -> LogQuerySet:
        """The failed runs to replay, oldest first."""
        logs = Log.objects.filter(
            state=Log.State.FAILED, dry_run=False, next_attempt__isnull=True
        ).exclude(endpoint__kind=Endpoint.Kind.HEARTBEAT)
        if self.endpoints:
            logs = logs.filter(endpoint_id__in=self.endpoints)
        if self.start:
            logs = logs.filter(finished_at__gte=self.start)
        if self.end:
            logs = logs.filter(finished_at__lt=self.end)
        if self.error_classes:
            logs = logs.filter(error_class__in=self.error_classes)
        return logs.order_by("id")


@dataclass
class Preview:
    """What a replay of a selection does: `runs` failed runs over `endpoints` (name → count),
    of which the first `limit` are replayed by one replay."""

    runs: int = 0
    endpoints: dict[str, int] = field(default_factory=dict)
    error_classes: dict[str, int] = field(default_factory=dict)
    limit: int = 0
    created: int = 0  # attempts created (0 for a preview)
    oldest: datetime | None = None  # when the first and the last of them finished
    newest: datetime | None = None

    @property
    def this_time(self) -> int:
        return min(self.runs, self.limit)

    def summary(self) -> str:
        """'312 failed runs, 4 endpoints' (and how many one replay takes, when capped)."""
        text = f"{_count(self.runs, 'failed run')}, {_count(len(self.endpoints), 'endpoint')}"
        if self.runs > self.limit:
            text += f"; a replay starts the oldest {self.limit}, replay again for the rest"
        return text


def preview(selection: Selection) -> Preview:
    """Count the selection; writes nothing."""
    rows = list(selection.runs().values_list("endpoint__name", "error_class", "finished_at"))
    finished = [when for _, _, when in rows if when is not None]
    return Preview(
        runs=len(rows),
        endpoints=dict(Counter(name for name, _, _ in rows).most_common()),
        error_classes=dict(Counter(error or "unknown" for _, error, _ in rows).most_common()),
        limit=settings.SCHEDULER_MAX_REPLAY_RUNS,
        oldest=min(finished, default=None),
        newest=max(finished, default=None),
    )


def replay(selection: Selection, *, by: str = "", now: datetime) -> Preview:
    """Create the next attempt of each selected run (the oldest SCHEDULER_MAX_REPLAY_RUNS);
    returns the preview as it was, with `created` set."""
    result = preview(selection)
    if not result.runs:
        return result
    with transaction.atomic():
        failed = list(selection.runs()[: result.limit])
        attempts = [
            log.following_attempt(
                trigger=Log.Trigger.REPLAY, by=by, due_at=now, state=Log.State.PENDING,
                created_at=now,
            )
            for log in failed
        ]  # fmt: skip
        for start in range(0, len(attempts), INSERT_BATCH):
            # A run replayed meanwhile (by a racing replay or retry) conflicts on retry_of.
            Log.objects.bulk_create(attempts[start : start + INSERT_BATCH], ignore_conflicts=True)
        result.created = Log.objects.filter(
            retry_of__in=[log.pk for log in failed], trigger=Log.Trigger.REPLAY, created_at=now
        ).count()
    return result


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
