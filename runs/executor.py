"""A run after the dispatcher queued it: claimed, performed, recorded.

1. `claim(log_ids, now, cluster=…)` — the one claim path: the still-waiting Logs become
   `running`, held by `cluster`, in one transaction (on PostgreSQL `FOR UPDATE SKIP LOCKED`, so
   a second delivery of the same batch racing this one claims none of them; arriving later, it
   finds them running and claims none either).
2. `perform(log, client)` — `prepare` (the request built before the run's start), then at the
   start `send`: an HTTP call through `calls.client` (which ends by the call's own total
   deadline), or a Python handler in a thread of its own, given up on at the endpoint's
   timeout; a dry run or a template that cannot render ends at once.
3. `runs.recording.record_many` — the one record path, in bulk, outside the event loop.

In the cluster, `runs.engine` does 2 and 3 in each worker process (the batch task returns as
soon as 1 is done). `execute` and `execute_many` do all three in the calling thread, on a loop
of their own, for `runjob`, `/api/v1/cron/process` and tests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connections, transaction
from django.db.models import Q
from django.utils import timezone

from calls import templating
from calls.build import build_call
from calls.client import Client
from calls.spec import CallSpec, Outcome
from endpoints.models import Endpoint
from endpoints.registry import get_handler
from runs.models import Log
from runs.recording import record_many

logger = logging.getLogger(__name__)
WAITING = Log.WAITING_STATES
# What performing and recording a run never read: its outcome (written, not read) and what its
# endpoint says about notifications. Left in the database, a worker holding the thousands of
# runs of one instant holds a third less (and no change-tracking copies, see Endpoint.from_db).
_NOT_READ_BY_A_RUN = (
    "finished_at", "duration_ms", "status_code", "response_headers", "response_excerpt",
    "response_bytes", "error_class", "error_message", "result_summary", "request", "timing",
    "tls_expires_at", "endpoint__description", "endpoint__notify_emails",
    "endpoint__notify_webhook_url", "endpoint__notify_urls", "endpoint__signing_keys_replaced_at",
)  # fmt: skip
Finished = tuple[Log, Outcome, datetime]


def claim(
    log_ids: list[int],
    now: datetime,
    *,
    cluster: str = "",
    until: datetime | None = None,
) -> list[Log]:
    """Mark the still-waiting Logs among `log_ids` that are due by `until` (default: now)
    running and held by `cluster` (and within it by this process, `Log.worker`: the sentinel
    recovers a dead worker's runs at once); return them. A Log not due by then stays queued.

    A Log claimed ahead of its due_at starts then (`started_at`): the engine sends it at that
    instant, with the claim already done.

    The Logs are read before the transaction and only their ids locked and checked in it: on
    SQLite a transaction holds the database's one write lock from its first statement, and
    turning rows into Logs was most of a claim (the dispatcher, the other worker's claims and
    both recorders waited behind it)."""
    until = until or now
    worker = os.getpid() if cluster else None
    waiting = Q(state__in=WAITING, due_at__lte=until)
    loaded = {
        log.pk: log
        for log in Log.objects.select_related("endpoint")
        .defer(*_NOT_READ_BY_A_RUN)
        .filter(waiting, pk__in=log_ids)
    }
    if not loaded:
        return []
    with transaction.atomic():
        ids = (
            Log.objects.filter(waiting, pk__in=list(loaded))
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)
        )
        logs = [loaded[pk] for pk in sorted(ids)]
        starts: dict[tuple[datetime, datetime], list[int]] = {}
        for log in logs:
            log.state, log.cluster, log.worker = Log.State.RUNNING, cluster, worker
            log.started_at = max(now, log.due_at)
            log.lease_expires_at = log.lease_for(log.started_at)
            starts.setdefault((log.started_at, log.lease_expires_at), []).append(log.pk)
        # One statement per distinct start and timeout (usually one or two); the rows are ours
        # until commit.
        for (started_at, lease), ids in starts.items():
            Log.objects.filter(pk__in=ids).update(
                state=Log.State.RUNNING,
                started_at=started_at,
                lease_expires_at=lease,
                cluster=cluster,
                worker=worker,
            )
    return logs


def execute(log_id: int) -> Log | None:
    """Run the Log with this id here if it is still waiting; return it finished, or None."""
    finished = execute_many([log_id])
    return finished[0] if finished else None


def execute_many(log_ids: list[int]) -> list[Log]:
    """Claim, perform (concurrently, on a loop of this thread's own) and record these Logs."""
    logs = claim(log_ids, timezone.now())
    if not logs:
        return []
    record_many(asyncio.run(_perform_all(logs)))
    return logs


async def _perform_all(logs: list[Log]) -> list[Finished]:
    client = Client(max_in_flight=settings.SCHEDULER_MAX_IN_FLIGHT)
    try:
        return list(await asyncio.gather(*(perform_finished(log, client) for log in logs)))
    finally:
        await client.close()


async def perform_finished(log: Log, client: Client) -> Finished:
    """perform(), never raising, with the instant it finished. A run claimed ahead of its start
    has its request built first, then waits for the instant: only the send is left then."""
    try:
        outcome = await perform(log, client)
    except Exception as exc:  # a bug in our code must still end the run, not leave it running
        outcome = crashed(log, exc)
    return log, outcome, timezone.now()


async def perform(log: Log, client: Client) -> Outcome:
    prepared = prepare(log, client)
    if isinstance(prepared, Outcome):
        return prepared
    await _until(log.started_at)
    return await send(prepared, client)


@dataclass(slots=True)
class Prepared:
    """A run ready to go at its start: its request built (`spec`; None for a handler)."""

    log: Log
    spec: CallSpec | None


def prepare(log: Log, client: Client) -> Prepared | Outcome:
    """What can be done before a run's start: its request built, and its connection announced
    to the client (opened just before the start). The Outcome of a run that ends here: a
    template that cannot render, a dry run."""
    endpoint = log.endpoint
    if endpoint.kind == Endpoint.Kind.HANDLER:
        return Prepared(log, None)
    try:
        spec = build_call(endpoint, log)
    except templating.TemplateError as exc:
        return Outcome(
            ok=False, error_class=Log.ErrorClass.INVALID, error_message=f"Template: {exc}"
        )
    if log.dry_run:
        return Outcome(
            ok=True,
            request=spec.snapshot(),
            result_summary={"dry_run": True, "would_send": spec.snapshot()},
        )
    if log.started_at is not None:
        client.expect(spec.url, log.started_at)  # its connection is opened just before
    return Prepared(log, spec)


async def send(prepared: Prepared, client: Client) -> Outcome:
    """The run, at its start: the call sent, or the handler run."""
    if prepared.spec is None:
        return await run_handler(prepared.log)
    return await client.send(prepared.spec)


async def send_finished(prepared: Prepared, client: Client) -> Finished:
    """send(), never raising, with the instant it finished."""
    try:
        outcome = await send(prepared, client)
    except Exception as exc:  # a bug in our code must still end the run, not leave it running
        outcome = crashed(prepared.log, exc)
    return prepared.log, outcome, timezone.now()


def crashed(log: Log, exc: Exception) -> Outcome:
    logger.exception("run %s crashed", log.run_id, exc_info=exc)
    return Outcome(ok=False, error_class=Log.ErrorClass.HANDLER, error_message=_describe(exc))


async def _until(instant: datetime | None) -> None:
    if instant is not None:
        wait = (instant - timezone.now()).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)


async def run_handler(log: Log) -> Outcome:
    """The handler in a thread of its own, so that it holds no other run; given up on (recorded
    `timeout`) at the endpoint's timeout. A thread cannot be stopped: one that never returns
    keeps running, and its late result is dropped."""
    endpoint = log.endpoint
    timeout = min(endpoint.timeout_seconds, settings.SCHEDULER_MAX_TIMEOUT_SECONDS)
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Outcome] = loop.create_future()

    def settle(outcome: Outcome) -> None:
        if not done.done():
            done.set_result(outcome)

    def work() -> None:
        try:
            outcome = call_handler(log)
        except BaseException as exc:  # noqa: BLE001 — reported as the run's failure
            outcome = Outcome(
                ok=False, error_class=Log.ErrorClass.HANDLER, error_message=_describe(exc)
            )
        finally:
            connections.close_all()  # this thread's own connections
        try:
            loop.call_soon_threadsafe(settle, outcome)
        except RuntimeError:
            pass  # the loop is gone: the run was given up on long ago

    threading.Thread(target=work, name=f"cronplane-handler-{log.pk}", daemon=True).start()
    try:
        return await asyncio.wait_for(asyncio.shield(done), timeout)
    except TimeoutError:
        return Outcome(
            ok=False,
            error_class=Log.ErrorClass.TIMEOUT,
            error_message=f"The handler did not return within {timeout:g} s",
            duration_ms=int(timeout * 1000),
            request=handler_request(log),
        )


def call_handler(log: Log) -> Outcome:
    endpoint = log.endpoint
    fn = get_handler(endpoint.handler)
    request = handler_request(log)
    if fn is None:
        return Outcome(
            ok=False,
            error_class=Log.ErrorClass.HANDLER,
            error_message=f"No handler named '{endpoint.handler}' is registered",
            request=request,
        )
    started = time.monotonic()
    try:
        result = fn(dict(endpoint.payload or {}), dry_run=log.dry_run, log=log)
    except Exception as exc:
        outcome = Outcome(
            ok=False, error_class=Log.ErrorClass.HANDLER, error_message=_describe(exc)
        )
        # A handler may raise an HTTP failure (webhook:send) that carries its own class.
        outcome.error_class = getattr(exc, "error_class", Log.ErrorClass.HANDLER)
        outcome.status_code = getattr(exc, "status_code", None)
    else:
        outcome = Outcome(ok=True, result_summary=_as_summary(result))
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.request = request
    return outcome


def handler_request(log: Log) -> dict:
    """What a handler run shows as its request: its payload masked as at every other door."""
    endpoint = log.endpoint
    return {
        "handler": endpoint.handler,
        "payload": endpoint.masked_payload,
        "scheduled_at": log.scheduled_at.isoformat(),
    }


def _as_summary(result: object) -> dict | None:
    """A handler's return value as storable JSON (anything odd becomes its string form)."""
    if result is None:
        return None
    if not isinstance(result, dict):
        result = {"result": result}
    return json.loads(json.dumps(result, default=str))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
