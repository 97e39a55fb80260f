"""Clusters: which one this process belongs to, and recovering the runs of one that died.

Every run in flight is held by a cluster (`Log.cluster`): the one whose dispatcher queued it,
then the one whose worker claimed it. Each cluster keeps a Heartbeat. When a cluster's heartbeat
is older than CLUSTER_STALE, any live dispatcher takes its runs back at once (`recover_stuck`):
running ones are failed `stuck` (and retried per their policy), queued ones are handed out
again. Runs held by no cluster (a foreground `runjob`, `/api/v1/cron/process`, a run queued by a
web process) fall back on their lease: the timeout plus LEASE_GRACE for a running one,
SCHEDULER_QUEUED_LEASE_SECONDS for a queued one.

A cluster presumed dead that was only slow cannot overwrite what was recovered: its verdicts are
written only while the Log is still running and held by it (`runs.recording`).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q

from calls.spec import Outcome
from runs.models import CLUSTER_STALE, Heartbeat, Log
from runs.recording import record

logger = logging.getLogger("runs.dispatcher")
ENV = "CRONPLANE_CLUSTER_ID"
OPEN = (Log.State.QUEUED, Log.State.RUNNING)
# A dead cluster's heartbeat stays this long (the status page shows it as not answering).
FORGET_AFTER = timedelta(minutes=10)
# A queued Log whose task has not started by then is handed to the broker again (idempotent).
QUEUED_LEASE = timedelta(seconds=settings.SCHEDULER_QUEUED_LEASE_SECONDS)


def current() -> str:
    """The id of the cluster this process is part of ('' outside a cluster)."""
    return os.environ.get(ENV, "")


def live_clusters(now: datetime) -> set[str]:
    return set(Heartbeat.objects.fresh(now).values_list("cluster_id", flat=True))


def _lost(now: datetime, live: set[str]) -> Q:
    """Open runs nobody will finish: held by a cluster that is not live, or past their lease."""
    dead_holder = ~Q(cluster="") & ~Q(cluster__in=live)
    return Q(state__in=OPEN) & (dead_holder | Q(lease_expires_at__lt=now))


def needs_recovery(now: datetime, cluster: str = "") -> bool:
    """Whether recover_stuck has anything to do (reads of log_open_cluster_idx and
    log_open_lease_idx)."""
    live = live_clusters(now) | ({cluster} if cluster else set())
    return Log.objects.filter(_lost(now, live)).exists()


def recover_stuck(now: datetime, *, cluster: str = "") -> tuple[list[Log], list[Log]]:
    """Fail the lost running runs and hand the lost queued runs out again, held by `cluster`.

    Returns (failed, requeued): a failed run gets its retry like any other failure; the caller
    enqueues the requeued ones.
    """
    live = live_clusters(now) | ({cluster} if cluster else set())
    lost = Log.objects.filter(_lost(now, live))

    def why(log: Log) -> str:
        if log.cluster and log.cluster not in live:
            return (
                f"Its cluster stopped answering (no heartbeat for {CLUSTER_STALE.seconds} s): "
                "the worker running it was lost."
            )
        return (
            f"No result within the {log.endpoint.timeout_seconds:g} s timeout plus grace: "
            "the worker running it stopped or was killed."
        )

    failed = fail_stuck(lost.filter(state=Log.State.RUNNING), why, now)
    requeued = list(lost.filter(state=Log.State.QUEUED).select_related("endpoint"))
    for log in requeued:
        log.lease_expires_at, log.cluster = now + QUEUED_LEASE, cluster
    Log.objects.bulk_update(requeued, ["lease_expires_at", "cluster"])
    return failed, requeued


def fail_stuck(running, why: Callable[[Log], str], now: datetime) -> list[Log]:
    """Fail these running runs `stuck` (each retried per its policy), unless a verdict came
    first; the slots they held in their flow keys go to the runs waiting for them."""
    failed = []
    for log in running.select_related("endpoint"):
        message = why(log)
        outcome = Outcome(
            ok=False, error_class=Log.ErrorClass.STUCK, error_message=message, request=log.request
        )
        if record(log, outcome, now=now):
            logger.warning("%s was stuck (%s); marked failed", log.run_id, message)
            failed.append(log)
    if any(log.flow_key for log in failed):
        from runs import flow

        flow.release({log.flow_key for log in failed}, now)
    return failed


def forget_dead_neighbours(now: datetime) -> int:
    """Clusters of this host whose process is gone (a restart after kill -9) count as dead now,
    not CLUSTER_STALE later: their runs are recovered on the first pass."""
    host = socket.gethostname()
    dead = [
        beat.pk for beat in Heartbeat.objects.filter(host=host) if not _process_exists(beat.pid)
    ]
    return Heartbeat.objects.filter(pk__in=dead).update(last_seen_at=now - CLUSTER_STALE * 2)


def forget_long_gone(now: datetime) -> int:
    """Heartbeats of clusters dead for a while (their runs long recovered): gone from the
    status page and /healthz after FORGET_AFTER."""
    return Heartbeat.objects.filter(last_seen_at__lt=now - FORGET_AFTER).delete()[0]


def release(cluster: str, now: datetime) -> int:
    """A stopping cluster's queued runs, left for any live dispatcher to hand out at once."""
    return Log.objects.filter(cluster=cluster, state=Log.State.QUEUED).update(
        cluster="", lease_expires_at=now
    )


def holds_queued(cluster: str) -> bool:
    return Log.objects.filter(cluster=cluster, state=Log.State.QUEUED).exists()


def abandon(cluster: str, now: datetime) -> list[Log]:
    """A stopped cluster's leftovers: queued runs released, running ones (a worker died while
    the cluster stopped) failed `stuck` and retried per policy, at once."""
    release(cluster, now)
    running = Log.objects.filter(cluster=cluster, state=Log.State.RUNNING)
    return fail_stuck(
        running, lambda log: "Its worker ended before the run did (the cluster was stopping).", now
    )


def recover_worker(cluster: str, pid: int, now: datetime) -> list[Log]:
    """The running runs of a live cluster's worker that died (kill -9, the OOM killer): failed
    `stuck` at once, not after their lease (the cluster's heartbeat stays fresh)."""
    running = Log.objects.filter(cluster=cluster, worker=pid, state=Log.State.RUNNING)
    message = f"Its worker process (pid {pid}) died while the run was in flight."
    return fail_stuck(running, lambda log: message, now)


def touch_heartbeat(name: str, now: datetime) -> None:
    Heartbeat.objects.filter(name=name).update(last_seen_at=now)


def remove_heartbeat(name: str) -> None:
    Heartbeat.objects.filter(name=name).delete()


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
