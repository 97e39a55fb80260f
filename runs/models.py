from __future__ import annotations

import functools
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import models
from django.utils import timezone

from calls.errors import ErrorClass as CallError
from endpoints.models import Endpoint
from runs.lag import lag_seconds
from scheduler_site.loading import FastFromDb

# How long past its own timeout a claimed run may stay unfinished before it counts as stuck.
LEASE_GRACE = timedelta(seconds=30)
# A cluster whose heartbeat is older than this is presumed dead: its runs are recovered. Beats
# come every 3 s from a thread of their own (runs/dispatcher_loop.py): three in a row missed.
CLUSTER_STALE = timedelta(seconds=10)


class LogQuerySet(models.QuerySet):
    def by_run_id(self, run_id: str) -> LogQuerySet:
        """`run-0042` (or plain `42`) → that Log; an unparsable id matches nothing."""
        number = str(run_id).removeprefix("run-")
        return self.filter(pk=int(number)) if number.isdigit() else self.none()

    def latest_for(self, endpoint: Endpoint) -> LogQuerySet:
        return self.filter(endpoint=endpoint).order_by("-id")


class Log(FastFromDb, models.Model):
    """One execution (or one accounted-for slot) of an endpoint."""

    class Trigger(models.TextChoices):
        SCHEDULE = "schedule"
        MANUAL = "manual"
        API = "api"
        RETRY = "retry"
        CATCH_UP = "catch_up", "Catch-up"
        CRON_ENDPOINT = "cron_endpoint", "Cron endpoint"
        BACKFILL = "backfill"
        PING = "ping"  # a heartbeat's run, reported by the job itself (runs/heartbeats.py)
        CHAIN = "chain"  # run after an upstream run ended (runs/chains.py)
        REPLAY = "replay"  # a failed run's next attempt, asked for in bulk (runs/replay.py)

    class State(models.TextChoices):
        PENDING = "pending"
        QUEUED = "queued"
        RUNNING = "running"
        SUCCESS = "success"
        FAILED = "failed"
        SKIPPED = "skipped"
        MISSED = "missed"
        CANCELLED = "cancelled"

    class ErrorClass(models.TextChoices):
        # The values are calls.errors.ErrorClass's (tests/test_error_classes.py: the same set).
        TIMEOUT = CallError.TIMEOUT
        CONNECTION = CallError.CONNECTION
        DNS = CallError.DNS
        TLS = CallError.TLS, "TLS"
        HTTP_STATUS = CallError.HTTP_STATUS, "HTTP status"
        ASSERTION = CallError.ASSERTION
        HANDLER = CallError.HANDLER
        STUCK = CallError.STUCK
        INVALID = CallError.INVALID
        BLOCKED = CallError.BLOCKED, "Blocked (SSRF guard)"

    FINAL_STATES = (State.SUCCESS, State.FAILED, State.SKIPPED, State.MISSED, State.CANCELLED)
    # Not started yet: what may still be cancelled.
    WAITING_STATES = (State.PENDING, State.QUEUED)
    OPEN_STATES = (*WAITING_STATES, State.RUNNING)

    # No index of its own: log_endpoint_latest_idx (endpoint, -id) serves every lookup by endpoint,
    # and each index is written again by every state change (a run changes state twice).
    endpoint = models.ForeignKey(
        Endpoint, on_delete=models.CASCADE, related_name="logs", db_index=False
    )
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.SCHEDULE)
    triggered_by = models.CharField(max_length=150, blank=True)
    # Who asked, as authenticated (beside triggered_by, which a caller may write freely).
    actor = models.CharField(max_length=150, blank=True)
    actor_token = models.CharField(
        max_length=100, blank=True, help_text="The API token's name, when a token asked."
    )
    scheduled_for = models.DateTimeField(
        null=True, blank=True, help_text="The schedule slot this run belongs to."
    )
    due_at = models.DateTimeField(
        default=timezone.now, help_text="Earliest start (later than the slot for a retry)."
    )
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    reason = models.CharField(max_length=300, blank=True, help_text="Why skipped or missed.")
    attempt = models.PositiveSmallIntegerField(default=1)
    retry_of = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="next_attempt"
    )
    dry_run = models.BooleanField(default=False)
    idempotency_key = models.CharField(
        max_length=64, blank=True, help_text="Sent as Idempotency-Key; shared by a slot's retries."
    )
    as_of = models.DateTimeField(
        null=True, blank=True, help_text="The instant a manual run acts as of."
    )
    # A chained run: the upstream run whose end started it (its first attempt only: one per
    # upstream run, log_one_per_upstream_run), and what that run passed on, which its retries
    # copy — templates read it there, without a query from the engine's loop.
    caused_by = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="caused",
        db_index=False,  # log_caused_by_idx, partial: no cost to the runs no chain started
    )
    upstream = models.JSONField(
        null=True,
        blank=True,
        help_text="The upstream run, as templates see it: run_id, status, result, response.",
    )

    created_at = models.DateTimeField(default=timezone.now)
    queued_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    cluster = models.CharField(
        max_length=36,
        blank=True,
        help_text="The qcluster that queued or claimed this run.",
    )
    worker = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="The process id of the cluster's worker that claimed this run.",
    )

    # Flow control (runs/flow.py): the key this run counts against once it passed its limits
    # (queued) or while it waits for them (pending), and since when it has waited.
    flow_key = models.CharField(max_length=100, blank=True)
    held_since = models.DateTimeField(
        null=True, blank=True, help_text="When it would have started but for its flow key."
    )

    request = models.JSONField(default=dict, blank=True, help_text="As sent, secrets masked.")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    response_headers = models.JSONField(default=dict, blank=True)
    response_excerpt = models.TextField(blank=True)
    response_bytes = models.PositiveBigIntegerField(null=True, blank=True)
    error_class = models.CharField(max_length=16, choices=ErrorClass.choices, blank=True)
    error_message = models.TextField(blank=True)
    result_summary = models.JSONField(null=True, blank=True)
    timing = models.JSONField(
        null=True, blank=True, help_text="Phases of the call in ms: dns, connect, tls, ttfb, total."
    )
    tls_expires_at = models.DateTimeField(null=True, blank=True)

    objects = LogQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        constraints = [
            # Exactly once per slot (DESIGN §5.1): the database is the last word on races.
            models.UniqueConstraint(
                fields=["endpoint", "scheduled_for", "attempt"],
                condition=models.Q(scheduled_for__isnull=False),
                name="log_one_per_slot_attempt",
            ),
            # Exactly once per upstream run: a chain's run, like a slot's, is the database's word.
            models.UniqueConstraint(
                fields=["endpoint", "caused_by"],
                condition=models.Q(caused_by__isnull=False),
                name="log_one_per_upstream_run",
            ),
        ]
        indexes = [
            models.Index(fields=["endpoint", "-id"], name="log_endpoint_latest_idx"),
            models.Index(
                fields=["due_at"],
                name="log_pending_due_idx",
                condition=models.Q(state="pending"),
            ),
            models.Index(
                fields=["lease_expires_at"],
                name="log_open_lease_idx",
                condition=models.Q(state__in=["queued", "running"]),
            ),
            models.Index(fields=["state", "-id"], name="log_state_latest_idx"),
            models.Index(
                fields=["caused_by"],
                name="log_caused_by_idx",
                condition=models.Q(caused_by__isnull=False),
            ),
            models.Index(
                fields=["cluster"],
                name="log_open_cluster_idx",
                condition=models.Q(state__in=["queued", "running"]),
            ),
            # A flow key's runs in flight and waiting (runs/flow.py), and its recent starts.
            models.Index(
                fields=["flow_key", "state"],
                name="log_flow_state_idx",
                condition=~models.Q(flow_key=""),
            ),
            models.Index(
                fields=["flow_key", "due_at"],
                name="log_flow_starts_idx",
                condition=~models.Q(flow_key=""),
            ),
        ]
        permissions = [("retry_log", "Can retry a run")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.endpoint_id} {self.state}"

    @property
    def requested_by(self) -> str:
        """'coordinator-007, via operator1's token': the free text and who really asked."""
        if not self.actor:
            return self.triggered_by
        via = f"{self.actor}'s token" if self.actor_token else self.actor
        if self.triggered_by in ("", self.actor):
            return via
        return f"{self.triggered_by}, via {via}"

    @property
    def run_id(self) -> str:
        return f"run-{self.pk:04d}" if self.pk else ""

    @property
    def scheduled_at(self) -> datetime:
        """The instant this run is for: its as-of instant, its slot, or when it was asked for.
        Templates ({{ scheduled_at }}) and handlers (log.scheduled_at) see this."""
        return self.as_of or self.scheduled_for or self.created_at

    def derive_idempotency_key(self) -> str:
        """A slot's key (the same for each of its retries); a manual run's, from its chain."""
        if self.scheduled_for is not None:
            return idempotency_key_for_slot(self.endpoint_id, self.scheduled_for)
        root = self
        while root.retry_of_id is not None and root.retry_of is not None:
            root = root.retry_of
        return _key(f"{self.endpoint_id}:run:{root.pk}")

    def following_attempt(
        self, *, trigger: str, by: str, due_at: datetime, state: str, **fields
    ) -> Log:
        """This run's next attempt, unsaved: the same slot, instant, upstream run and
        Idempotency-Key, linked to it through `retry_of` (unique: a run has one next attempt,
        whoever makes it)."""
        return Log(
            endpoint_id=self.endpoint_id,
            trigger=trigger,
            triggered_by=by[:150],
            scheduled_for=self.scheduled_for,
            due_at=due_at,
            attempt=self.attempt + 1,
            retry_of=self,
            dry_run=self.dry_run,
            as_of=self.as_of,
            upstream=self.upstream,
            idempotency_key=self.idempotency_key or self.derive_idempotency_key(),
            state=state,
            **fields,
        )

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES

    @property
    def flow_wait_ms(self) -> int | None:
        """How long it waited for its flow key: part of its lag."""
        if self.held_since is None:
            return None
        until = self.started_at or self.due_at
        return max(0, int((until - self.held_since).total_seconds() * 1000))

    @property
    def lag_ms(self) -> int | None:
        """Its dispatch lag (`lag_seconds`), in ms; None before it starts."""
        if not self.started_at:
            return None
        endpoint = self.endpoint
        seconds = lag_seconds(
            self.started_at, self.scheduled_for or self.created_at, endpoint,
            schedule_type=endpoint.schedule_type if self.scheduled_for else None,
            created_at=endpoint.created_at,
        )  # fmt: skip
        return int(seconds * 1000)

    def lease_for(self, now: datetime) -> datetime:
        timeout = min(self.endpoint.timeout_seconds, settings.SCHEDULER_MAX_TIMEOUT_SECONDS)
        return now + timedelta(seconds=timeout) + LEASE_GRACE


def idempotency_key_for_slot(endpoint_id: int, slot: datetime) -> str:
    return _key(f"{endpoint_id}:slot:{_instant_text(slot)}")


@functools.lru_cache(maxsize=256)
def _instant_text(slot: datetime) -> str:
    # One instant is every endpoint's slot at a busy second: formatted once for all of them.
    return slot.astimezone(UTC).isoformat()


def new_idempotency_key() -> str:
    """A manual run's: random (there is no slot); its retries copy it."""
    return str(uuid.uuid4())


def _key(basis: str) -> str:
    # Salted with this install's SECRET_KEY, so two installs calling one target cannot collide.
    digest = _salted(settings.SECRET_KEY).copy()
    digest.update(basis.encode())
    return str(uuid.UUID(bytes=digest.digest()[:16], version=5))


@functools.lru_cache(maxsize=4)
def _salted(secret_key: str):
    return hashlib.sha256(f"cronplane idempotency\0{secret_key}\0".encode())


class ChainArrival(models.Model):
    """A run of one of several upstreams that ended the way its downstream waits for: the
    downstream runs when every upstream has one, unconsumed, within SCHEDULER_CHAIN_WINDOW
    (runs/chains.py). One per (downstream, upstream run)."""

    downstream = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    upstream = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="+")
    run = models.ForeignKey(Log, on_delete=models.CASCADE, related_name="chain_arrivals")
    arrived_at = models.DateTimeField()
    # The downstream run it took part in (deleted with it: never waiting again).
    consumed_by = models.ForeignKey(
        Log, null=True, blank=True, on_delete=models.CASCADE, related_name="joined"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["downstream", "run"], name="arrival_one_per_run"),
        ]
        indexes = [
            models.Index(
                fields=["downstream", "arrived_at"],
                name="arrival_waiting_idx",
                condition=models.Q(consumed_by__isnull=True),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.run_id} → {self.downstream_id}"


class HeartbeatQuerySet(models.QuerySet):
    """Fresh or stale, the one definition (/healthz, the status page, stuck-run recovery): a
    cluster is alive while its heartbeat is at most CLUSTER_STALE old (Heartbeat.is_fresh)."""

    def fresh(self, now: datetime) -> HeartbeatQuerySet:
        return self.filter(last_seen_at__gte=now - CLUSTER_STALE)

    def stale(self, now: datetime) -> HeartbeatQuerySet:
        return self.filter(last_seen_at__lt=now - CLUSTER_STALE)


class Heartbeat(models.Model):
    """One running cluster (one per `qcluster` process): read by the status page and /healthz,
    and by every dispatcher, which recovers the runs of a cluster whose heartbeat went stale."""

    name = models.CharField(max_length=200, unique=True, help_text="host:pid")
    cluster_id = models.CharField(max_length=36, blank=True, db_index=True)
    host = models.CharField(max_length=150)
    pid = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    last_seen_at = models.DateTimeField(db_index=True)
    last_tick_ms = models.FloatField(default=0, help_text="Duration of the last dispatcher pass.")
    dispatched = models.PositiveBigIntegerField(default=0, help_text="Runs queued since start.")

    objects = HeartbeatQuerySet.as_manager()

    def __str__(self) -> str:
        return self.name

    def is_fresh(self, now: datetime) -> bool:
        return now - self.last_seen_at <= CLUSTER_STALE


class FlowKey(models.Model):
    """A flow key as every cluster sees it: the row its admissions lock (runs/flow.py), and a
    back-off its target asked for (a 429 or 503 with Retry-After)."""

    name = models.CharField(max_length=100, unique=True)
    backoff_until = models.DateTimeField(null=True, blank=True)
    backoff_reason = models.CharField(max_length=200, blank=True)

    def __str__(self) -> str:
        return self.name


# Defined in its own module, registered here with the app's other models.
from runs.notification_model import Notification  # noqa: E402, F401
