"""Performs one run: claim its Log, call the target or handler, record the outcome, plan a retry.

`execute(log_id)` is idempotent: a Log that is no longer pending/queued (already claimed by
another worker, or re-delivered by the broker after it ran) is left alone.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F
from django.utils import timezone

from calls import signing, templating
from calls.masking import mask_headers
from endpoints.models import Endpoint
from endpoints.registry import get_handler
from runs import http, notifications
from runs.models import Log, Notification

logger = logging.getLogger(__name__)
# Retry-After beyond this is capped: a target cannot park a run for days.
MAX_RETRY_AFTER_SECONDS = 6 * 3600


def execute(log_id: int) -> Log | None:
    """Run the Log with this id if it is still waiting; return it finished, or None."""
    now = timezone.now()
    log = Log.objects.select_related("endpoint").filter(pk=log_id).first()
    if log is None:
        return None
    claimed = Log.objects.filter(pk=log_id, state__in=(Log.State.PENDING, Log.State.QUEUED)).update(
        state=Log.State.RUNNING, started_at=now, lease_expires_at=log.lease_for(now)
    )
    if not claimed:
        return None
    log.state, log.started_at = Log.State.RUNNING, now
    try:
        outcome = perform(log)
    except Exception as exc:  # a bug in our code must still end the run, not leave it running
        logger.exception("run %s crashed", log.run_id)
        outcome = http.Outcome(ok=False, error_class="handler", error_message=_describe(exc))
    record(log, outcome)
    return log


def perform(log: Log) -> http.Outcome:
    endpoint = log.endpoint
    if endpoint.kind == Endpoint.Kind.HANDLER:
        return run_handler(endpoint, log)
    try:
        spec = build_call(endpoint, log)
    except templating.TemplateError as exc:
        return http.Outcome(ok=False, error_class="invalid", error_message=f"Template: {exc}")
    if log.dry_run:
        return http.Outcome(
            ok=True,
            request=spec.snapshot(),
            result_summary={"dry_run": True, "would_send": spec.snapshot()},
        )
    return http.call(spec)


@dataclass
class RenderedCall(http.CallSpec):
    """A call whose shown form differs from what is sent (templated environment values)."""

    shown: dict | None = None

    def snapshot(self) -> dict:
        snapshot = super().snapshot()
        if self.shown is not None:
            snapshot.update(
                url=self.shown["url"],
                headers=mask_headers(self.shown["headers"], self.secret_headers),
                body=self.shown["body"][: settings.SCHEDULER_RESPONSE_EXCERPT_BYTES],
            )
        return snapshot


def build_call(endpoint: Endpoint, log: Log | None = None) -> http.CallSpec:
    """The request a run of `endpoint` sends: templates rendered for `log` (a sample run when
    None, for previews), then the Idempotency-Key and, with a signing secret, the signature."""
    context = _template_context(endpoint, log)
    url, headers, body = _render(endpoint, context, display=False)
    shown = None
    if context is not None:
        shown_url, shown_headers, shown_body = _render(endpoint, context, display=True)
        shown = {"url": shown_url, "headers": shown_headers, "body": shown_body}
    extra = {}
    if not any(name.lower() == "idempotency-key" for name in headers):
        extra["Idempotency-Key"] = (
            log.idempotency_key or log.derive_idempotency_key()
            if log is not None
            else templating.sample_context().idempotency_key
        )
    if body and not any(name.lower() == "content-type" for name in headers):
        if _is_json(body):
            extra["Content-Type"] = "application/json"
    encoded = body.encode() if body else None
    extra |= signing.headers(
        [endpoint.signing_secret, endpoint.signing_secret_next], endpoint.method, url, encoded
    )
    headers |= extra
    if shown is not None:
        shown["headers"] |= extra
    return RenderedCall(
        method=endpoint.method,
        url=url,
        headers=headers,
        body=encoded,
        timeout=endpoint.timeout_seconds,
        success_ranges=endpoint.success_ranges(),
        must_contain=endpoint.response_must_contain,
        secret_headers=list(endpoint.secret_headers or []),
        shown=shown,
    )


def _template_context(endpoint: Endpoint, log: Log | None) -> templating.Context | None:
    """The values for the endpoint's templates, or None when it has none (the common case)."""
    texts = [endpoint.url, endpoint.body, *(endpoint.headers or {}).values()]
    if not any(templating.has_tags(text) for text in texts):
        return None
    if log is None:
        return templating.sample_context(endpoint.name)
    return templating.Context(
        scheduled_at=log.scheduled_at,
        run_id=log.run_id,
        attempt=log.attempt,
        idempotency_key=log.idempotency_key or log.derive_idempotency_key(),
        endpoint_name=endpoint.name,
    )


def _render(
    endpoint: Endpoint, context: templating.Context | None, *, display: bool
) -> tuple[str, dict[str, str], str]:
    headers = dict(endpoint.headers or {})
    body = endpoint.body or ""
    if context is None:
        return endpoint.url, headers, body
    url = templating.render(endpoint.url, context, where="url", display=display)
    headers = {
        name: templating.render(value, context, where="header", display=display)
        for name, value in headers.items()
    }
    where = templating.body_kind(body, headers)
    return url, headers, templating.render(body, context, where=where, display=display)


def run_handler(endpoint: Endpoint, log: Log) -> http.Outcome:
    fn = get_handler(endpoint.handler)
    request = {
        "handler": endpoint.handler,
        "payload": _masked_payload(endpoint.payload),
        "scheduled_at": log.scheduled_at.isoformat(),
    }
    if fn is None:
        return http.Outcome(
            ok=False,
            error_class="handler",
            error_message=f"No handler named '{endpoint.handler}' is registered",
            request=request,
        )
    started = time.monotonic()
    try:
        result = fn(dict(endpoint.payload or {}), dry_run=log.dry_run, log=log)
    except Exception as exc:
        outcome = http.Outcome(ok=False, error_class="handler", error_message=_describe(exc))
        # A handler may raise an HTTP failure (webhook:send) that carries its own class.
        outcome.error_class = getattr(exc, "error_class", "handler")
        outcome.status_code = getattr(exc, "status_code", None)
    else:
        outcome = http.Outcome(ok=True, result_summary=_as_summary(result))
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.request = request
    return outcome


def record(log: Log, outcome: http.Outcome, *, now: datetime | None = None) -> bool:
    """Write the outcome to the running Log and its endpoint, and plan a retry if one is due.

    Returns False (and changes nothing) when the Log is no longer running: the stuck-run
    sweeper already failed it, and a verdict arriving that late must not overwrite that.
    """
    now = now or timezone.now()
    _apply_outcome(log, outcome, now)
    with transaction.atomic():
        applied = Log.objects.filter(pk=log.pk, state=Log.State.RUNNING).update(
            **{name: getattr(log, name) for name in OUTCOME_FIELDS}
        )
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
    return True


def record_many(finished: list[tuple[Log, http.Outcome, datetime]]) -> None:
    """record() for many finished runs (Log, outcome, finished at) at once.

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


def _record_successes(
    items: list[tuple[Log, http.Outcome, datetime]],
) -> list[tuple[Log, http.Outcome, datetime]]:
    """Write these successes in bulk; return those that need record() (a failing streak ends)."""
    with transaction.atomic():
        # Lock order as in record(): the Logs first, then their endpoints.
        running = set(
            Log.objects.filter(pk__in=[log.pk for log, _, _ in items], state=Log.State.RUNNING)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        calm = set(
            Endpoint.objects.filter(
                pk__in=[log.endpoint_id for log, _, _ in items if log.pk in running],
                consecutive_failures=0,
            )
            .select_for_update()
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        written, recovering = [], []
        for item in items:
            log, outcome, finished_at = item
            if log.pk not in running:
                logger.warning("%s finished after it was given up on; result dropped", log.run_id)
            elif log.endpoint_id not in calm:
                recovering.append(item)
            else:
                _apply_outcome(log, outcome, finished_at)
                written.append(log)
        _write_outcomes(written)
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
    return recovering


# The Log fields an outcome sets: what record() writes.
OUTCOME_FIELDS = [
    "state", "finished_at", "duration_ms", "status_code", "response_headers",
    "response_excerpt", "response_bytes", "error_class", "error_message",
    "result_summary", "request", "lease_expires_at", "timing", "tls_expires_at",
]  # fmt: skip


def _write_outcomes(logs: list[Log]) -> None:
    """UPDATE each Log's OUTCOME_FIELDS: one statement prepared once, sent with executemany.

    bulk_update() builds a CASE expression per field and row (about 6 ms a run, profiled); this
    costs a small fraction of that. The caller holds the rows (they were checked `running`).
    """
    if not logs:
        return
    connection = connections[Log.objects.db]
    quote = connection.ops.quote_name
    fields = [Log._meta.get_field(name) for name in OUTCOME_FIELDS]
    assignments = ", ".join(f"{quote(field.column)} = %s" for field in fields)
    sql = f"UPDATE {quote(Log._meta.db_table)} SET {assignments} WHERE {quote('id')} = %s"
    rows = [
        [field.get_db_prep_save(getattr(log, field.attname), connection) for field in fields]
        + [log.pk]
        for log in logs
    ]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


def _apply_outcome(log: Log, outcome: http.Outcome, finished_at: datetime) -> None:
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
    events = [Notification.Event.FAILURE] if failures == 1 else []
    if limit and failures >= limit:
        reason = f"Auto-disabled after {failures} consecutive failed runs (last: {log.run_id}"
        reason += f", {log.error_message[:120]})" if log.error_message else ")"
        if endpoint.filter(enabled=True).update(
            enabled=False,
            next_run_at=None,
            disabled_reason=reason[:300],
            paused_until=None,
            paused_by="",
        ):
            events.append(Notification.Event.AUTO_DISABLED)
    return events


def _masked_payload(payload: object) -> object:
    """A payload as it may be shown: secret values of a `headers` object (webhook:send) masked."""
    if isinstance(payload, dict) and isinstance(payload.get("headers"), dict):
        return {**payload, "headers": mask_headers(payload["headers"])}
    return payload


def _is_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def _as_summary(result: object) -> dict | None:
    """A handler's return value as storable JSON (anything odd becomes its string form)."""
    if result is None:
        return None
    if not isinstance(result, dict):
        result = {"result": result}
    return json.loads(json.dumps(result, default=str))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
