"""Chains: when a run's final attempt ends, the jobs that run after its job run once for it.

The record path (runs/recording.py: `record()` for every run, `record_many()` for its bulk
successes) calls `follow(runs, now)` inside the transaction that writes their verdicts, with
the runs that ended for good: not dry runs, and no retry planned. A downstream run is created
there and then, so a verdict and the chain it starts commit together or not at all.

- One upstream: the downstream runs once per upstream run that ended the way its link's `on`
  says (trigger `chain`, `triggered_by` and `caused_by` the upstream run). The unique
  constraint log_one_per_upstream_run makes that exactly once, however many processes record.
- Several upstreams: each matching run is recorded as a ChainArrival (one per downstream and
  run); the downstream runs when every upstream has one not yet used, within
  SCHEDULER_CHAIN_WINDOW_SECONDS, and that run uses them all. Deciding locks the downstream's
  links, so that two upstreams ending at once in two clusters cannot both miss (or both take)
  the moment the set is complete.

The downstream's own policies hold: paused or disabled, its run is recorded `skipped` with the
reason; its overlap policy skips, queues behind or allows it like a slot; its retries and
notifications follow, as for any run. A queued one goes to the broker when the transaction
commits (runs.services.enqueue_within_limits: its flow key's limits hold too).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction

from calls import jsonpath
from endpoints.models import Endpoint
from endpoints.run_after import FAILURE, FINISHED, SUCCESS, ChainLink
from runs.models import ChainArrival, Log, new_idempotency_key

logger = logging.getLogger(__name__)
# Which `on` of a link a run's final state answers.
ANSWERS = {
    Log.State.SUCCESS: (SUCCESS, FINISHED),
    Log.State.FAILED: (FAILURE, FINISHED),
}


def follow(ended: list[Log], now: datetime) -> list[Log]:
    """Start the runs of the jobs that run after these runs' jobs; return them (skipped ones
    too). Called in the record transaction, with runs that ended for good.

    1. One read of the links from these runs' endpoints whose `on` their end answers (most
       endpoints have none: that read is all this costs them).
    2. Each (run, link): with one upstream, its downstream runs for it; with several, the run
       arrives and the downstream runs when the set is complete (`_join`).
    3. Each run to start is created with its state decided by the downstream's pause and
       overlap policy (`_start`).
    """
    ended = [run for run in ended if run.state in ANSWERS and not run.dry_run]
    if not ended:
        return []
    links = list(
        ChainLink.objects.filter(upstream_id__in={run.endpoint_id for run in ended})
        .select_related("downstream")
        .order_by("downstream_id", "id")
    )
    if not links:
        return []
    by_upstream: dict[int, list[ChainLink]] = defaultdict(list)
    for link in links:
        by_upstream[link.upstream_id].append(link)
    several = _with_several_upstreams({link.downstream_id for link in links})
    started = []
    for run in ended:
        for link in by_upstream.get(run.endpoint_id, []):
            if link.on not in ANSWERS[run.state]:
                continue
            joined = None
            if link.downstream_id in several:
                joined = _join(link, run, now)
                if joined is None:
                    continue
            if (log := _start(link.downstream, run, now, joined=joined)) is not None:
                started.append(log)
    return started


def _with_several_upstreams(downstream_ids: set[int]) -> set[int]:
    counts: dict[int, int] = defaultdict(int)
    for downstream_id in ChainLink.objects.filter(downstream_id__in=downstream_ids).values_list(
        "downstream_id", flat=True
    ):
        counts[downstream_id] += 1
    return {pk for pk, count in counts.items() if count > 1}


def _join(link: ChainLink, run: Log, now: datetime) -> list[int] | None:
    """Record `run` as arrived for `link`'s downstream; when every upstream has an unused
    arrival within the window, return their ids (the run to start uses them), else None."""
    try:
        with transaction.atomic():
            ChainArrival.objects.create(
                downstream_id=link.downstream_id,
                upstream_id=link.upstream_id,
                run=run,
                arrived_at=now,
            )
    except IntegrityError:
        return None  # this run already arrived (recorded twice): it counts once
    # The lock: a second upstream ending now waits here, then sees this arrival.
    upstreams = set(
        ChainLink.objects.filter(downstream_id=link.downstream_id)
        .select_for_update()
        .order_by("pk")
        .values_list("upstream_id", flat=True)
    )
    window = timedelta(seconds=settings.SCHEDULER_CHAIN_WINDOW_SECONDS)
    waiting = list(
        ChainArrival.objects.filter(
            downstream_id=link.downstream_id,
            consumed_by__isnull=True,
            arrived_at__gte=now - window,
        ).values_list("pk", "upstream_id")
    )
    if not upstreams <= {upstream_id for _, upstream_id in waiting}:
        return None
    return [pk for pk, upstream_id in waiting if upstream_id in upstreams]


def _start(
    downstream: Endpoint, cause: Log, now: datetime, *, joined: list[int] | None = None
) -> Log | None:
    """Create the downstream's run for `cause` (None if it already has one)."""
    log = Log(
        endpoint=downstream,
        trigger=Log.Trigger.CHAIN,
        triggered_by=cause.run_id,
        caused_by=cause,
        upstream=passed_on(cause),
        due_at=now,
        created_at=now,
        idempotency_key=new_idempotency_key(),
    )
    _decide(log, downstream, now)
    try:
        with transaction.atomic():
            log.save(force_insert=True)
    except IntegrityError:
        logger.info("%s already started %s's run; not again", cause.run_id, downstream.name)
        return None
    if joined:
        ChainArrival.objects.filter(pk__in=joined).update(consumed_by=log)
    if log.state == Log.State.QUEUED:
        from runs.services import enqueue_within_limits

        enqueue_within_limits(log)  # a chained run counts against its job's flow key too
    return log


def _decide(log: Log, downstream: Endpoint, now: datetime) -> None:
    """Set the new run's state: skipped (with why), pending (queue_one) or queued."""
    from runs import cluster  # it records (runs.recording), which follows chains

    state, reason = _state_for(downstream)
    log.state, log.reason = state, reason[:300]
    if state == Log.State.SKIPPED:
        log.finished_at = now
    elif state == Log.State.QUEUED:
        log.queued_at, log.cluster = now, cluster.current()
        log.lease_expires_at = now + cluster.QUEUED_LEASE


def _state_for(downstream: Endpoint) -> tuple[str, str]:
    """Skipped while paused; then the overlap policy against its open runs, as the dispatcher
    decides a slot's. Returns (state, reason)."""
    if not downstream.enabled:
        why = downstream.pause_description or "Paused"
        return (
            Log.State.SKIPPED,
            f"{downstream.name} is paused ({why}), so this chain run did not happen.",
        )
    open_runs = list(
        Log.objects.filter(endpoint=downstream, state__in=Log.OPEN_STATES).values_list(
            "pk", "state", "trigger"
        )
    )
    active = [pk for pk, state, _ in open_runs if state != Log.State.PENDING]
    waiting = any(
        state == Log.State.PENDING and trigger != Log.Trigger.RETRY
        for _, state, trigger in open_runs
    )
    policy = downstream.overlap_policy
    if active and policy == Endpoint.OverlapPolicy.SKIP:
        return Log.State.SKIPPED, f"Previous run run-{active[-1]:04d} was still going."
    if active and policy == Endpoint.OverlapPolicy.QUEUE_ONE:
        if waiting:
            return Log.State.SKIPPED, "A run was already queued behind the running one."
        return Log.State.PENDING, ""  # dispatch_pending starts it when the other ends
    return Log.State.QUEUED, ""


def passed_on(run: Log) -> dict:
    """What a downstream run sees of `run` as {{ upstream.… }}: its id, final state, result
    summary and, when its response was JSON, that JSON (the stored excerpt, parsed)."""
    response = jsonpath.parse_body(run.response_excerpt) if run.response_excerpt else None
    return {
        "run_id": run.run_id,
        "job_name": run.endpoint.name,
        "status": run.state,
        "status_code": run.status_code,
        "result": run.result_summary,
        "response": None if response is jsonpath.MISSING else response,
    }


# --- what the pages show ---------------------------------------------------------------------


def attach_caused(logs) -> None:
    """Give each of these runs `caused_runs`, the chained runs it started: one query."""
    logs = list(logs)
    caused: dict[int, list[Log]] = defaultdict(list)
    for run in (
        Log.objects.filter(caused_by__in=[log.pk for log in logs])
        .select_related("endpoint")
        .only("id", "state", "caused_by", "endpoint__name")
        .order_by("id")
    ):
        caused[run.caused_by_id].append(run)
    for log in logs:
        log.caused_runs = caused.get(log.pk, [])


def cause_of(log: Log) -> Log | None:
    """The upstream run that started this chained run (or the first attempt of its retries)."""
    if log.caused_by_id is None and log.upstream is None:
        return None  # not a chained run, nor a retry of one
    first = log
    while first.retry_of_id is not None and first.caused_by_id is None:
        first = Log.objects.only("id", "retry_of", "caused_by").get(pk=first.retry_of_id)
    if first.caused_by_id is None:
        return None
    return Log.objects.select_related("endpoint").filter(pk=first.caused_by_id).first()


def joined_runs(log: Log) -> list[Log]:
    """The upstream runs that together started this run (a job with several upstreams)."""
    return [
        arrival.run
        for arrival in ChainArrival.objects.filter(consumed_by=log)
        .select_related("run__endpoint")
        .order_by("run__endpoint__name")
    ]


def caused_by(log: Log) -> list[Log]:
    """The chained runs this run started."""
    return list(Log.objects.filter(caused_by=log).select_related("endpoint").order_by("id"))
