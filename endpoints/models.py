from __future__ import annotations

from datetime import datetime
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.utils import timezone as django_timezone

from endpoints import flow, run_after, schedules, secrets
from endpoints.crypto import EncryptedJSONField, EncryptedListField, EncryptedTextField
from endpoints.secrets import EndpointSecrets
from endpoints.timetable import EndpointTimetable
from endpoints.validation import (  # noqa: F401 (description_length: migration 0009)
    MAX_DESCRIPTION_LENGTH,
    MAX_GRACE_SECONDS,
    EndpointValidation,
    description_length,
    parse_status_spec,
)
from scheduler_site.loading import FastFromDb

# Written by the scheduler, each by its one owner module (docs/architecture.md: who writes a
# derived field), never by an edit.
DERIVED_FIELDS = frozenset(
    {
        "signing_keys_replaced_at",
        "next_run_at",
        "last_run_at",
        "last_status",
        "run_count",
        "success_count",
        "failure_count",
        "consecutive_failures",
        "tls_expires_at",
        "tls_warned_expiry",
        "expected_at",
        "overdue_at",
        "last_ping_at",
        "failure_alerted_at",
    }
)
MAX_JITTER_SECONDS = 3600


def default_time_zone() -> str:
    return settings.SCHEDULER_DEFAULT_TIME_ZONE


class EndpointQuerySet(models.QuerySet):
    def due(self, now: datetime) -> EndpointQuerySet:
        return self.filter(enabled=True, next_run_at__lte=now)

    def by_public_id(self, value: object) -> EndpointQuerySet:
        """The endpoint whose `uuid` is `value` or, as before there were uuids, whose numeric
        id is; matches nothing for anything else (never raises on a malformed id)."""
        text = str(value).strip()
        if text.isascii() and text.isdigit() and len(text) <= 18:
            return self.filter(pk=int(text))
        try:
            return self.filter(uuid=UUID(text))
        except ValueError:
            return self.none()


class Endpoint(EndpointValidation, EndpointTimetable, EndpointSecrets, FastFromDb, models.Model):
    class Kind(models.TextChoices):
        HTTP = "http", "HTTP request"
        HANDLER = "handler", "Python handler"
        HEARTBEAT = "heartbeat", "Heartbeat (pinged from elsewhere)"

    class Method(models.TextChoices):
        GET = "GET"
        POST = "POST"
        PUT = "PUT"
        PATCH = "PATCH"
        DELETE = "DELETE"
        HEAD = "HEAD"
        OPTIONS = "OPTIONS"

    class ScheduleType(models.TextChoices):
        CRON = schedules.CRON, "Cron expression"
        INTERVAL = schedules.INTERVAL, "Every N seconds"
        ONCE = schedules.ONCE, "Once, at a time"
        NONE = schedules.MANUAL, "Manual only"

    class OverlapPolicy(models.TextChoices):
        SKIP = "skip", "Skip the slot while a run is still going"
        ALLOW = "allow", "Allow runs to overlap"
        QUEUE_ONE = "queue_one", "Queue one run behind the running one"

    class MissedPolicy(models.TextChoices):
        SKIP = "skip", "Record missed slots, run none"
        RUN_ONCE = "run_once", "Run the latest missed slot once"
        RUN_ALL = "run_all", "Run every missed slot within the window"

    class Status(models.TextChoices):
        SUCCESS = "success"
        FAILED = "failed"

    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Za-z0-9\-_.:]+$",
                "Use letters, digits and - _ . : only (no spaces).",
            )
        ],
        help_text="Unique, URL-safe: letters, digits and - _ . :",
    )
    description = models.TextField(blank=True, validators=[description_length])
    # The public id (DESIGN §10): seed 002's workflowId, seed 003's action id. Stable for ever.
    uuid = models.UUIDField(unique=True, default=uuid4, editable=False)
    # Seed 003's "Team scope": a label the caller chooses, stored and filtered on, not a tenant.
    team_id = models.CharField("team id", max_length=100, blank=True, db_index=True)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.HTTP)

    # kind = http
    url = models.CharField("URL", max_length=2048, blank=True)
    method = models.CharField(max_length=7, choices=Method.choices, default=Method.GET)
    headers = EncryptedJSONField(default=dict, blank=True, help_text="Encrypted at rest.")
    secret_headers = models.JSONField(
        default=list,
        blank=True,
        help_text="Header names whose values are secret (Authorization, Cookie, X-API-Key and "
        "Proxy-Authorization always are).",
    )
    body = models.TextField(blank=True)
    timeout_seconds = models.FloatField(
        default=30,
        validators=[
            MinValueValidator(0.1),
            MaxValueValidator(settings.SCHEDULER_MAX_TIMEOUT_SECONDS),
        ],
    )
    expected_status = models.CharField(
        max_length=100,
        default="200-299",
        help_text="Codes or ranges that count as success, e.g. 200-299,304",
    )
    response_must_contain = models.CharField(max_length=500, blank=True)
    assertions = models.JSONField(
        default=list,
        blank=True,
        help_text="Checks the response must pass: [{source, property, comparison, target}] "
        "(calls/assertions.py).",
    )
    signing_secret = EncryptedTextField(
        blank=True,
        help_text="Signs every request (Standard Webhooks: webhook-id, webhook-timestamp, "
        "webhook-signature). A whsec_ secret; encrypted at rest.",
    )
    signing_secret_next = EncryptedTextField(
        blank=True,
        help_text="The key to rotate to: requests are signed with both while it is set.",
    )
    signing_keys_replaced_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the move to Standard Webhooks replaced this endpoint's signing keys: the "
        "dashboard says so until someone reveals or changes them.",
    )

    # kind = handler
    handler = models.CharField(max_length=200, blank=True)
    payload = EncryptedJSONField(
        default=dict,
        blank=True,
        help_text="Encrypted at rest; its `headers` and the handler's secret keys are masked.",
    )

    # when
    schedule_type = models.CharField(
        max_length=10, choices=ScheduleType.choices, default=ScheduleType.CRON
    )
    cron_expression = models.CharField(max_length=200, blank=True)
    interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    run_at = models.DateTimeField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default=default_time_zone)
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    max_runs = models.PositiveIntegerField(null=True, blank=True)
    jitter_seconds = models.PositiveIntegerField(
        default=0,
        validators=[MaxValueValidator(MAX_JITTER_SECONDS)],
        help_text="Start each run up to this many seconds after its slot (the same delay for "
        "a slot every time), to spread many endpoints due at one instant.",
    )
    enabled = models.BooleanField(default=True)
    paused_until = models.DateTimeField(
        null=True, blank=True, help_text="A paused endpoint resumes by itself at this time."
    )
    paused_by = models.CharField(max_length=150, blank=True)

    # policies
    max_attempts = models.PositiveSmallIntegerField(
        default=3, validators=[MinValueValidator(1), MaxValueValidator(20)]
    )
    retry_backoff_seconds = models.FloatField(
        default=10, validators=[MinValueValidator(0), MaxValueValidator(86400)]
    )
    retry_backoff_max_seconds = models.FloatField(
        default=3600, validators=[MinValueValidator(0), MaxValueValidator(86400)]
    )
    overlap_policy = models.CharField(
        max_length=10, choices=OverlapPolicy.choices, default=OverlapPolicy.SKIP
    )
    missed_policy = models.CharField(
        max_length=10, choices=MissedPolicy.choices, default=MissedPolicy.RUN_ONCE
    )
    catch_up_window_seconds = models.PositiveIntegerField(
        default=3600, help_text="How far back run_all catches up after downtime."
    )
    auto_disable_after = models.PositiveIntegerField(
        default=0, help_text="Disable after this many consecutive failed runs (0: never)."
    )

    # notifications (empty: the global NOTIFY_EMAILS / NOTIFY_WEBHOOK_URL)
    notify_emails = models.TextField(
        blank=True, help_text="Addresses to tell, separated by commas or new lines."
    )
    notify_webhook_url = models.CharField(
        "notification webhook URL",
        max_length=2048,
        blank=True,
        help_text="Receives a JSON POST (Slack-compatible `text`).",
    )
    notify_urls = EncryptedListField(
        "notification URLs",
        default=list,
        blank=True,
        help_text="Apprise URLs (slack://…, tgram://…, ntfy://…, json://host/path, mailto://…). "
        "Encrypted at rest.",
    )
    notify_on_failure = models.BooleanField(
        default=True, help_text="When a run fails after its last retry (once per failing streak)."
    )
    notify_after_failures = models.PositiveIntegerField(
        default=1,
        validators=[MinValueValidator(1), MaxValueValidator(1000)],
        help_text="Alert on this many consecutive failed runs (1: the first failure).",
    )
    notify_on_recovery = models.BooleanField(
        default=True, help_text="When a run succeeds after failures."
    )

    # chains (endpoints/run_after.py; its ChainLink rows are derived from this on save)
    run_after = models.JSONField(
        default=list,
        blank=True,
        help_text='Run after these jobs: [{"job_name": "extract", "on": "success"}] ("on": '
        "success, failure or finished).",
    )

    # flow control (endpoints/flow.py; enforced across every cluster by runs/flow.py)
    flow_key = models.CharField(
        max_length=100,
        blank=True,
        validators=[RegexValidator(flow.KEY_PATTERN, flow.KEY_MESSAGE)],
        help_text="Jobs sharing a key share its limits (e.g. the target's host).",
    )
    flow_parallelism = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1), MaxValueValidator(flow.MAX_PARALLELISM)],
        help_text="Most runs of the key in flight at once.",
    )
    flow_rate = models.CharField(
        max_length=20,
        blank=True,
        help_text='Most runs of the key started per second, minute or hour: "10/s", "600/min".',
    )

    # kind = heartbeat: nothing is called; the job pings /ping/<uuid> (runs/heartbeats.py)
    grace_seconds = models.PositiveIntegerField(
        default=3600,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_GRACE_SECONDS)],
        help_text="How long after each expected time a ping may still arrive before that run "
        "counts as missed (and how long a started run may take).",
    )

    # derived
    next_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_run_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_status = models.CharField(max_length=10, blank=True, editable=False)
    run_count = models.PositiveIntegerField(default=0, editable=False)
    success_count = models.PositiveIntegerField(default=0, editable=False)
    failure_count = models.PositiveIntegerField(default=0, editable=False)
    consecutive_failures = models.PositiveIntegerField(default=0, editable=False)
    disabled_reason = models.CharField(max_length=300, blank=True)
    tls_expires_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="Expiry of the TLS certificate."
    )
    # The certificate expiry a warning was sent for (one warning per certificate).
    tls_warned_expiry = models.DateTimeField(null=True, blank=True, editable=False)
    # A heartbeat's oldest expected slot without a ping yet, and when it becomes missed (that
    # slot + grace_seconds). Never next_run_at: the dispatcher has nothing to call.
    expected_at = models.DateTimeField(null=True, blank=True, editable=False)
    overdue_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_ping_at = models.DateTimeField(null=True, blank=True, editable=False)
    # When the current failing streak last alerted (its failure notice, then each reminder);
    # empty while it has not reached notify_after_failures.
    failure_alerted_at = models.DateTimeField(null=True, blank=True, editable=False)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, editable=False
    )
    created_at = models.DateTimeField(default=django_timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    objects = EndpointQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        indexes = [
            # "What is due": the dispatcher's one query.
            models.Index(
                fields=["next_run_at"],
                name="endpoint_due_idx",
                condition=models.Q(enabled=True),
            ),
            # What record_missed reads every sweep.
            models.Index(
                fields=["overdue_at"],
                name="endpoint_heartbeat_overdue_idx",
                condition=models.Q(enabled=True, kind="heartbeat"),
            ),
            models.Index(
                fields=["paused_until"],
                name="endpoint_paused_until_idx",
                condition=models.Q(enabled=False, paused_until__isnull=False),
            ),
            # The limits of a flow key (runs/flow.py): the jobs sharing it.
            models.Index(
                fields=["flow_key"],
                name="endpoint_flow_key_idx",
                condition=~models.Q(flow_key=""),
            ),
            # The notification sweep: failing endpoints due an alert or a reminder.
            models.Index(
                fields=["failure_alerted_at"],
                name="endpoint_failing_idx",
                condition=models.Q(consecutive_failures__gt=0),
            ),
        ]
        permissions = [
            ("trigger_endpoint", "Can run an endpoint now"),
            ("toggle_endpoint", "Can enable or disable an endpoint"),
        ]

    def __str__(self) -> str:
        return self.name

    def save(self, *args, **kwargs) -> None:
        """A plain save: every field (or every field of update_fields) is written as it is.

        A whole save of a new row, or of one whose schedule (or enabled) changed, first computes
        next_run_at and a heartbeat's expected slot from now. An edit saves with save_edit.
        """
        if kwargs.get("update_fields") is None and self._rescheduled():
            self._schedule_from(django_timezone.now())
        self._end_signing_notice_on_new_keys(kwargs)
        fields = kwargs.get("update_fields")
        links = fields is None or "run_after" in fields or "name" in fields
        with transaction.atomic():
            super().save(*args, **kwargs)
            if links:
                self._save_chain_links()
        self._saved_fingerprint = self._schedule_fingerprint()
        self._stored_secrets = secrets.Stored.of(self)
        self._stored_notify_urls = secrets.loaded_urls(self)
        self._saved_signing_keys = self._signing_keys()

    def _save_chain_links(self) -> None:
        saved_name, saved_run_after = getattr(self, "_saved_chain", (None, None))
        if saved_name is not None and saved_name != self.name:
            run_after.rename(self, saved_name)
        if self.run_after != (saved_run_after or []):
            run_after.save_links(self)
        self._saved_chain = (self.name, self.run_after)

    @classmethod
    def from_db(cls, db, field_names, values):
        instance = super().from_db(db, field_names, values)
        if "name" in field_names and "run_after" in field_names:
            instance._saved_chain = (instance.name, instance.run_after)
        # Change tracking is for whole rows: a row loaded in part (the dispatcher's) would load
        # each deferred field read here, one query each (and, through this, recurse).
        if len(field_names) == len(cls._meta.concrete_fields):
            instance._saved_fingerprint = instance._schedule_fingerprint()
            instance._stored_secrets = secrets.Stored.of(instance)
            instance._stored_notify_urls = secrets.loaded_urls(instance)
            instance._saved_signing_keys = instance._signing_keys()
        return instance

    def save_edit(self) -> None:
        """Save what an edit may change (runs.verbs.save): never the derived fields, which the
        dispatcher and workers move meanwhile (F() updates), so a form that loaded them a minute
        ago cannot write them back; next_run_at is recomputed when the schedule changed."""
        if self._state.adding:
            self.save()
            return
        fields = [
            f.name
            for f in self._meta.concrete_fields
            if not f.primary_key and f.name not in DERIVED_FIELDS
        ]
        if self._rescheduled():
            self._schedule_from(django_timezone.now())
            fields += ["next_run_at", "expected_at", "overdue_at"]
        self.save(update_fields=fields)

    # --- what it is ---------------------------------------------------------------------------

    @property
    def target(self) -> str:
        if self.kind == self.Kind.HANDLER:
            return f"handler {self.handler}"
        if self.kind == self.Kind.HEARTBEAT:
            return "heartbeat (pings in)"
        return f"{self.method} {urlsplit(self.url).netloc or self.url}"
