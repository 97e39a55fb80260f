"""What the run verbs (runs/verbs.py) stand on: a run made outside the schedule, handed to the
broker, or run in this process (runjob, the cron route)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from endpoints.models import Endpoint
from endpoints.storable import OUT_OF_RANGE, within_range
from runs import executor, flow
from runs.models import Log, new_idempotency_key

BATCH_TASK = "runs.tasks.run_batch"
# Runs per batch task.
MAX_BATCH = 500


@dataclass(frozen=True)
class Actor:
    """Who asked for a run, as authenticated: a user, and the API token they used (if any)."""

    username: str
    token: str = ""

    @classmethod
    def of(cls, request) -> Actor | None:
        """The signed-in user (session) or the token's user (DRF: request.auth is the token)."""
        user = getattr(request, "user", None)
        if user is None or not user.is_authenticated:
            return None
        token = getattr(request, "auth", None)
        return cls(
            user.get_username(), (getattr(token, "name", "") or "API token") if token else ""
        )


def create_run(
    endpoint: Endpoint,
    *,
    trigger: str = Log.Trigger.MANUAL,
    by: str = "",
    dry_run: bool = False,
    state: str = Log.State.PENDING,
    now: datetime | None = None,
    as_of: datetime | None = None,
    actor: Actor | None = None,
) -> Log:
    """A run outside the schedule. `as_of`: the instant it acts as of (templates, handlers);
    `actor`: who asked, as authenticated (`by` is free text)."""
    refuse_heartbeat(endpoint)
    now = now or timezone.now()
    return Log.objects.create(
        endpoint=endpoint,
        trigger=trigger,
        triggered_by=by[:150],
        actor=actor.username[:150] if actor else "",
        actor_token=actor.token[:100] if actor else "",
        dry_run=dry_run,
        state=state,
        due_at=now,
        created_at=now,
        queued_at=now if state == Log.State.QUEUED else None,
        as_of=as_of,
        idempotency_key=new_idempotency_key(),
    )


HEARTBEAT_NOT_RUN = (
    "A heartbeat is not run by cronplane: its job runs elsewhere and pings /ping/<uuid>."
)


def refuse_heartbeat(endpoint: Endpoint) -> None:
    """Nothing calls a heartbeat: running one now, retrying or backfilling it is refused."""
    if endpoint.kind == Endpoint.Kind.HEARTBEAT:
        raise ValidationError({"kind": HEARTBEAT_NOT_RUN})


def enqueue_within_limits(log: Log) -> None:
    """Hand a new queued Log to the broker; one of a job with a flow key first passes its
    key's limits, or waits for them (pending, started by the dispatcher or a finishing run)."""
    if log.endpoint.flow_key:
        flow.admit([log], log.created_at)
        log.save(update_fields=flow.FIELDS)
        if log.state != Log.State.QUEUED:
            return
    enqueue(log)


def enqueue(log: Log) -> None:
    """Hand a queued Log to the django-q2 broker after the current transaction commits."""
    from django_q.tasks import async_task

    transaction.on_commit(lambda: async_task(BATCH_TASK, [log.pk], task_name=log.run_id))


def enqueue_many(logs: list[Log]) -> None:
    """Hand already-committed queued Logs to the broker.

    Runs go in batches, one task each (claimed together, then performed by the worker's engine)
    per due instant, spread so that every worker gets one.
    """
    from django.conf import settings
    from django_q.tasks import async_task

    due: dict[datetime, list[Log]] = {}
    for log in logs:
        due.setdefault(log.due_at, []).append(log)
    chunks: list[list[Log]] = []
    for due_at in sorted(due):
        chunks += split(due[due_at], settings.Q_CLUSTER["workers"])
    for chunk in chunks:
        name = f"{chunk[0].run_id} (+{len(chunk) - 1})" if len(chunk) > 1 else chunk[0].run_id
        async_task(BATCH_TASK, [log.pk for log in chunk], task_name=name)


def split(logs: list[Log], workers: int) -> list[list[Log]]:
    """Batches for `workers` worker processes: every worker busy, none above MAX_BATCH."""
    if not logs:
        return []
    count = max(math.ceil(len(logs) / MAX_BATCH), min(len(logs), workers))
    size = math.ceil(len(logs) / count)
    return [logs[start : start + size] for start in range(0, len(logs), size)]


def run_in_foreground(
    endpoint: Endpoint,
    *,
    by: str = "",
    dry_run: bool = False,
    as_of: datetime | None = None,
    on_attempt: Callable[[Log, Log | None], None] | None = None,
) -> Log:
    """Run now in this process, following retries (waiting out their backoff); return the last."""
    log = create_run(endpoint, by=by, dry_run=dry_run, as_of=as_of)
    while True:
        if endpoint.flow_key:
            wait_for_flow_key(log)
        finished = executor.execute(log.pk)
        if finished is None:
            # Someone else (a cluster worker) claimed it first: wait for their verdict.
            finished = wait_until_final(log)
        retry = Log.objects.filter(retry_of=finished).first()
        if on_attempt:
            on_attempt(finished, retry)
        if retry is None:
            return finished
        time.sleep(max(0.0, (retry.due_at - timezone.now()).total_seconds()))
        log = retry


def wait_for_flow_key(log: Log, poll: float = 0.2) -> None:
    """Until the pending `log` may start within its key's limits. It admits itself (no
    dispatcher may be running here); one a dispatcher admitted meanwhile is left to it."""
    while True:
        with transaction.atomic():
            log.refresh_from_db()
            if log.state != Log.State.PENDING:
                return
            flow.admit([log], timezone.now())
            log.save(update_fields=flow.FIELDS)
        if log.state == Log.State.QUEUED:
            return
        time.sleep(poll)


def wait_until_final(log: Log, poll: float = 0.2) -> Log:
    while True:
        log.refresh_from_db()
        if log.is_final:
            return log
        time.sleep(poll)


def check_as_of(as_of: datetime | None) -> None:
    """A run may act as of any instant a schedule could have (1970-3000)."""
    if as_of is not None and not within_range(as_of):
        raise ValidationError({"as_of": OUT_OF_RANGE})


def run_due_inline(now: datetime, *, budget_seconds: float, batch_size: int) -> list[Log]:
    """Dispatch what is due and execute it in this process, for hosts with no worker.

    1. Recover stuck runs, dispatch due slots and due pending runs (the dispatcher's passes),
       and record the heartbeat slots missed by now (the dispatcher loop's sweep does that).
    2. Execute the queued runs that are due (the oldest `batch_size`) together, each within its
       own timeout, if the passes left any of `budget_seconds`; the rest wait for the next call.
       A run a worker claims first is left to it (the claim is conditional), so a cluster
       running beside this changes nothing.
    Returns the runs executed here, finished.
    """
    from runs import cluster, dispatcher, heartbeats

    started = time.monotonic()
    cluster.recover_stuck(now)
    heartbeats.record_missed(now)
    dispatcher.dispatch_due(now, trigger=Log.Trigger.CRON_ENDPOINT)
    dispatcher.dispatch_pending(now)
    due = Log.objects.filter(state=Log.State.QUEUED, due_at__lte=now).order_by("due_at", "id")
    if time.monotonic() - started >= budget_seconds:
        return []
    return executor.execute_many(list(due.values_list("pk", flat=True)[:batch_size]))
