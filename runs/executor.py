"""Performs one run: claim its Log, call the target or handler, record the outcome, plan a retry.

`execute(log_id)` is idempotent: a Log that is no longer pending/queued (already claimed by
another worker, or re-delivered by the broker after it ran) is left alone.
"""

from __future__ import annotations

import json
import logging
import random
import time
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

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
    spec = build_call(endpoint)
    if log.dry_run:
        return http.Outcome(
            ok=True,
            request=spec.snapshot(),
            result_summary={"dry_run": True, "would_send": spec.snapshot()},
        )
    return http.call(spec)


def build_call(endpoint: Endpoint) -> http.CallSpec:
    headers = dict(endpoint.headers or {})
    body = endpoint.body or None
    if body and not any(name.lower() == "content-type" for name in headers):
        if _is_json(body):
            headers["Content-Type"] = "application/json"
    return http.CallSpec(
        method=endpoint.method,
        url=endpoint.url,
        headers=headers,
        body=body.encode() if body else None,
        timeout=endpoint.timeout_seconds,
        success_ranges=endpoint.success_ranges(),
        must_contain=endpoint.response_must_contain,
        secret_headers=list(endpoint.secret_headers or []),
    )


def run_handler(endpoint: Endpoint, log: Log) -> http.Outcome:
    fn = get_handler(endpoint.handler)
    request = {"handler": endpoint.handler, "payload": endpoint.payload}
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
    log.state = Log.State.SUCCESS if outcome.ok else Log.State.FAILED
    log.finished_at = now
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
    fields = [
        "state", "finished_at", "duration_ms", "status_code", "response_headers",
        "response_excerpt", "response_bytes", "error_class", "error_message",
        "result_summary", "request", "lease_expires_at",
    ]  # fmt: skip
    with transaction.atomic():
        applied = Log.objects.filter(pk=log.pk, state=Log.State.RUNNING).update(
            **{name: getattr(log, name) for name in fields}
        )
        if not applied:
            logger.warning("%s finished after it was given up on; result dropped", log.run_id)
            return False
        retry = None
        if not outcome.ok and not log.dry_run and outcome.retryable:
            retry = plan_retry(log, outcome.retry_after, now=now)
        if not log.dry_run:
            events = update_endpoint_stats(log, chain_finished=retry is None)
            if events:
                log.endpoint.refresh_from_db()
                notifications.queue(log, events, now=now)
    return True


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
            enabled=False, next_run_at=None, disabled_reason=reason[:300]
        ):
            events.append(Notification.Event.AUTO_DISABLED)
    return events


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
