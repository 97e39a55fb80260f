"""The one record path: a finished run's outcome written to its Log and endpoint, and its retry.

A verdict is written only while its Log is still `running` and held by the cluster that claimed
it (`Log.cluster`): a run recovered from a cluster presumed dead (failed `stuck`, or handed out
again) is never overwritten by a verdict that arrives late from that cluster.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta

from django.db import DatabaseError, connections, transaction
from django.db.models import F
from django.utils import timezone

from calls.spec import Outcome
from endpoints.models import Endpoint
from runs import chains, notifications
from runs.models import Log, Notification

logger = logging.getLogger(__name__)
# Retry-After beyond this is capped: a target cannot park a run for days.
MAX_RETRY_AFTER_SECONDS = 6 * 3600


def record(log: Log, outcome: Outcome, *, now: datetime | None = None) -> bool:
    """Write the outcome to the running Log and its endpoint, and plan a retry if one is due.

    Returns False (and changes nothing) when the Log is no longer running, or no longer held
    by the cluster that claimed it: it was recovered, and a verdict arriving that late must not
    overwrite that.
    """
    now = now or timezone.now()
    _apply_outcome(log, outcome, now)
    with transaction.atomic():
        held = Log.objects.filter(pk=log.pk, state=Log.State.RUNNING, cluster=log.cluster)
        applied = held.update(**{name: getattr(log, name) for name in OUTCOME_FIELDS})
        if not applied:
            logger.warning("%s finished after it was given up on; result dropped", log.run_id)
            return False
        retry = None
        if not outcome.ok and not log.dry_run and outcome.retryable:
            retry = plan_retry(log, outcome.retry_after, now=now)
        if not log.dry_run:
            events = update_endpoint_stats(log, chain_finished=retry is None)
            if log.tls_expires_at and notifications.track_certificates([log]):
                events.append(Notification.Event.TLS_EXPIRING)
            if events:
                log.endpoint.refresh_from_db()
                notifications.queue(log, events, now=now)
            if retry is None:
                chains.follow([log], now)
    return True


def record_many(finished: list[tuple[Log, Outcome, datetime]]) -> None:
    """Record many finished runs (Log, outcome, finished at) at once: the one record path.

    Keep in step with record() and update_endpoint_stats(): this is their bulk form for the
    common case only — a successful, real (not dry) run of an endpoint with no failing streak
    and no other run in this call, which causes no retry and no notification (other than a
    certificate about to expire). Those are written in a few statements: their Logs in one bulk
    UPDATE (only rows still `running`, as record() checks), their endpoints' counters in one
    UPDATE per start time, a changed certificate expiry in one UPDATE per expiry. Every other
    run (failures, dry runs, recoveries) goes through record() itself.
    """
    per_endpoint: dict[int, int] = {}
    for log, _, _ in finished:
        per_endpoint[log.endpoint_id] = per_endpoint.get(log.endpoint_id, 0) + 1
    simple = [
        item
        for item in finished
        if item[1].ok and not item[0].dry_run and per_endpoint[item[0].endpoint_id] == 1
    ]
    chosen = {id(item) for item in simple}
    rest = [item for item in finished if id(item) not in chosen]
    if simple:
        rest += _record_successes(simple)
    for log, outcome, finished_at in rest:
        record(log, outcome, now=finished_at)
    if any(log.flow_key for log, _, _ in finished):
        _release_flow_keys(finished)


def _release_flow_keys(finished: list[tuple[Log, Outcome, datetime]]) -> None:
    from runs import flow  # only runs of keyed jobs go there (and it imports runs.cluster)

    try:
        flow.ended(finished)
    except DatabaseError as exc:
        # The runs are recorded: a failed release must not have them recorded again. The runs
        # waiting for these keys are admitted by the dispatcher's next look instead.
        logger.warning("flow keys not released after %d runs (%s)", len(finished), exc)


def _record_successes(
    items: list[tuple[Log, Outcome, datetime]],
) -> list[tuple[Log, Outcome, datetime]]:
    """Write these successes in bulk; return those that need record() (a failing streak ends)."""
    # Their rows are prepared before the transaction: on SQLite it holds the database's one
    # write lock from its first statement.
    for log, outcome, finished_at in items:
        _apply_outcome(log, outcome, finished_at)
    rows = {row[-1]: row for row in _outcome_rows(items)}
    with transaction.atomic():
        # Lock order as in record(): the Logs first, then their endpoints.
        running = set(
            Log.objects.filter(pk__in=[log.pk for log, _, _ in items], state=Log.State.RUNNING)
            .select_for_update()
            .values_list("pk", "cluster")
        )
        calm = set(
            Endpoint.objects.filter(
                pk__in=[log.endpoint_id for log, _, _ in items if (log.pk, log.cluster) in running],
                consecutive_failures=0,
            )
            # NO KEY: a chained run inserted meanwhile (a Log referring to one of these rows)
            # need not wait for this transaction.
            .select_for_update(no_key=True)
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        written, recovering = [], []
        for item in items:
            log, outcome, finished_at = item
            if (log.pk, log.cluster) not in running:
                logger.warning("%s finished after it was given up on; result dropped", log.run_id)
            elif log.endpoint_id not in calm:
                recovering.append(item)
            else:
                written.append(log)
        _write_outcomes([rows[log.pk] for log in written])
        by_start: dict[datetime, list[int]] = {}
        for log in written:
            by_start.setdefault(log.started_at or log.finished_at, []).append(log.endpoint_id)
        for started_at, endpoint_ids in by_start.items():
            Endpoint.objects.filter(pk__in=endpoint_ids).update(
                last_run_at=started_at,
                last_status=Log.State.SUCCESS,
                run_count=F("run_count") + 1,
                success_count=F("success_count") + 1,
            )
        for log in notifications.track_certificates(written):
            notifications.queue(log, [Notification.Event.TLS_EXPIRING], now=log.finished_at)
        if written:
            chains.follow(written, max(log.finished_at for log in written))
    return recovering


# The Log fields an outcome sets: what record() writes.
OUTCOME_FIELDS = [
    "state", "finished_at", "duration_ms", "status_code", "response_headers",
    "response_excerpt", "response_bytes", "error_class", "error_message",
    "result_summary", "request", "lease_expires_at", "timing", "tls_expires_at",
]  # fmt: skip


def _outcome_rows(items: list[tuple[Log, Outcome, datetime]]) -> list[list]:
    """Each Log's OUTCOME_FIELDS as the database takes them, then its id: _write_outcomes' rows."""
    connection = connections[Log.objects.db]
    fields = [Log._meta.get_field(name) for name in OUTCOME_FIELDS]
    return [
        [field.get_db_prep_save(getattr(log, field.attname), connection) for field in fields]
        + [log.pk]
        for log, _, _ in items
    ]


def _write_outcomes(rows: list[list]) -> None:
    """UPDATE each Log's OUTCOME_FIELDS: one statement prepared once, sent with executemany.

    bulk_update() builds a CASE expression per field and row (about 6 ms a run, profiled); this
    costs a small fraction of that. The caller holds the rows (they were checked `running`).
    """
    if not rows:
        return
    connection = connections[Log.objects.db]
    quote = connection.ops.quote_name
    fields = [Log._meta.get_field(name) for name in OUTCOME_FIELDS]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(Log._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _apply_outcome(log: Log, outcome: Outcome, finished_at: datetime) -> None:
    """Set OUTCOME_FIELDS on `log` from `outcome`, as record() does."""
    log.state = Log.State.SUCCESS if outcome.ok else Log.State.FAILED
    log.finished_at = finished_at
    log.duration_ms = outcome.duration_ms
    log.status_code = outcome.status_code
    log.response_headers = outcome.response_headers
    log.response_excerpt = outcome.excerpt
    log.response_bytes = outcome.response_bytes
    log.error_class = outcome.error_class
    log.error_message = outcome.error_message
    log.result_summary = outcome.result_summary
    log.request = outcome.request
    log.lease_expires_at = None
    log.timing = outcome.timing
    log.tls_expires_at = outcome.tls_expires_at


def plan_retry(log: Log, retry_after: float | None, *, now: datetime) -> Log | None:
    """Create the next attempt as its own pending Log, due after an exponential backoff."""
    endpoint = log.endpoint
    if log.attempt >= endpoint.max_attempts:
        return None
    delay = backoff_delay(
        log.attempt, endpoint.retry_backoff_seconds, endpoint.retry_backoff_max_seconds
    )
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER_SECONDS))
    return Log.objects.create(
        endpoint=endpoint,
        trigger=Log.Trigger.RETRY,
        triggered_by=log.triggered_by,
        scheduled_for=log.scheduled_for,
        due_at=now + timedelta(seconds=delay),
        attempt=log.attempt + 1,
        retry_of=log,
        as_of=log.as_of,
        upstream=log.upstream,
        idempotency_key=log.idempotency_key or log.derive_idempotency_key(),
        state=Log.State.PENDING,
    )


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Exponential backoff with 'equal jitter': half fixed, half random, never above the cap."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def update_endpoint_stats(log: Log, *, chain_finished: bool) -> list[str]:
    """last_* follow every attempt; counts follow whole runs (a slot and its retries count once).

    Returns the notification events the run caused. Conditional UPDATEs decide them, so two
    runs finishing at once cannot both claim one transition.
    """
    changes: dict = {"last_run_at": log.started_at or log.finished_at, "last_status": log.state}
    endpoint = Endpoint.objects.filter(pk=log.endpoint_id)
    if not chain_finished:
        endpoint.update(**changes)
        return []
    changes["run_count"] = F("run_count") + 1
    if log.state == Log.State.SUCCESS:
        changes["success_count"] = F("success_count") + 1
        if endpoint.filter(consecutive_failures__gt=0).update(consecutive_failures=0, **changes):
            return [Notification.Event.RECOVERY]
        endpoint.update(**changes)
        return []
    changes["failure_count"] = F("failure_count") + 1
    changes["consecutive_failures"] = F("consecutive_failures") + 1
    endpoint.update(**changes)
    current = endpoint.values("consecutive_failures", "auto_disable_after").get()
    failures, limit = current["consecutive_failures"], current["auto_disable_after"]
    # Every failure may alert: notifications.queue alerts the streak's Nth (its threshold) once.
    events = [Notification.Event.FAILURE]
    if limit and failures >= limit:
        reason = f"Auto-disabled after {failures} consecutive failed runs (last: {log.run_id}"
        reason += f", {log.error_message[:120]})" if log.error_message else ")"
        if Endpoint.switch_off(endpoint, reason):
            events.append(Notification.Event.AUTO_DISABLED)
    return events


def forgive(endpoint: Endpoint) -> None:
    """Past failures forgotten (a job enabled again): its streak ends, and so does its alert."""
    Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=0)
    endpoint.consecutive_failures = 0
    notifications.claim_recovery(endpoint)
