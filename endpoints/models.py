from __future__ import annotations

import hashlib
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID, uuid4

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models, transaction
from django.utils import timezone as django_timezone

from calls import signing
from calls.masking import MASK, mask_headers
from endpoints import channels, flow, run_after, schedules, secrets, storable
from endpoints.crypto import EncryptedJSONField, EncryptedListField, EncryptedTextField
from endpoints.registry import get_handler, secret_keys_of
from scheduler_site.loading import FastFromDb

MAX_HEADERS_BYTES = 8 * 1024
MAX_BODY_BYTES = 256 * 1024
MAX_DESCRIPTION_LENGTH = 1000
MAX_PAYLOAD_DEPTH = 32
MAX_GRACE_SECONDS = 366 * 86400


def description_length(value: str) -> None:
    """A description stays a description (a million characters broke the dashboard list)."""
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError(
            f"At most {MAX_DESCRIPTION_LENGTH} characters; this one has {len(value)}."
        )


_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 9110 field values: visible ASCII, space, tab and Latin-1 text (obs-text) — no C0/C1
# controls (U+0085 is one), nothing past U+00FF (U+2028, U+2029 and what HTTP cannot encode).
_HEADER_VALUE_BAD_RE = re.compile(r"[^\t\x20-\x7e\xa0-\xff]")
_STATUS_SPEC_RE = re.compile(r"^\d{3}(-\d{3})?$")
# Written only by the dispatcher and executor (and the signing notice by its own verbs), never by
# an edit.
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
SIGNING_KEYS = frozenset({"signing_secret", "signing_secret_next"})


def disabled_by(by: str) -> str:
    """The disabled_reason of a job disabled without a reason (runs.verbs.wording)."""
    return f"Disabled by {by}." if by else "Disabled."


def default_time_zone() -> str:
    return settings.SCHEDULER_DEFAULT_TIME_ZONE


def parse_status_spec(spec: str) -> list[tuple[int, int]]:
    """'200-299,304' → [(200, 299), (304, 304)]; raises ValueError on anything else."""
    ranges = []
    for part in (spec or "").replace(" ", "").split(","):
        if not _STATUS_SPEC_RE.match(part):
            raise ValueError(f"'{part}' is not a status code or range like 200-299")
        low, _, high = part.partition("-")
        low_code, high_code = int(low), int(high or low)
        if not (100 <= low_code <= high_code <= 599):
            raise ValueError(f"'{part}' is not within 100-599")
        ranges.append((low_code, high_code))
    return ranges


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


class Endpoint(FastFromDb, models.Model):
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
        self._stored_notify_urls = _loaded_urls(self)
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
            instance._stored_notify_urls = _loaded_urls(instance)
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

    def _rescheduled(self) -> bool:
        return self._state.adding or (
            self._schedule_fingerprint() != getattr(self, "_saved_fingerprint", None)
        )

    def _schedule_from(self, now: datetime) -> None:
        self.next_run_at = self.compute_next_run_at(now)
        self.expect_from(now)

    def _signing_keys(self) -> tuple:
        return (self.__dict__.get("signing_secret"), self.__dict__.get("signing_secret_next"))

    def _end_signing_notice_on_new_keys(self, kwargs: dict) -> None:
        """Whoever sets a key from any door holds it: the replaced-keys notice has done its job."""
        fields = kwargs.get("update_fields")
        if self._state.adding or fields is not None and not SIGNING_KEYS & set(fields):
            return
        if self._signing_keys() == getattr(self, "_saved_signing_keys", self._signing_keys()):
            return
        if self.signing_keys_replaced_at is None:
            return
        self.signing_keys_replaced_at = None
        if fields is not None:
            kwargs["update_fields"] = [*fields, "signing_keys_replaced_at"]

    def acknowledge_signing_keys(self) -> None:
        """The keys were revealed to someone who can give them to the receiver."""
        if self.signing_keys_replaced_at is not None:
            self.signing_keys_replaced_at = None
            self.save(update_fields=["signing_keys_replaced_at"])

    def _schedule_fingerprint(self) -> tuple:
        return (
            self.enabled, self.schedule_type, self.cron_expression, self.interval_seconds,
            self.run_at, self.timezone, self.starts_at, self.ends_at, self.max_runs,
            self.kind, self.grace_seconds,
        )  # fmt: skip

    def set_enabled(self, enabled: bool, *, now: datetime, reason: str = "") -> None:
        """Enable (next slot counted from now: a pause is not downtime) or disable. The
        transition only: runs.verbs.enable and disable check and word it."""
        self.enabled = enabled
        self.disabled_reason = "" if enabled else reason[:300]
        if enabled:
            self.consecutive_failures, self.failure_alerted_at = 0, None
            self.paused_until, self.paused_by = None, ""
        self.next_run_at = self.compute_next_run_at(now)
        self.expect_from(now)
        self.save(
            update_fields=[
                "enabled",
                "disabled_reason",
                "paused_until",
                "paused_by",
                "consecutive_failures",
                "failure_alerted_at",
                "next_run_at",
                "expected_at",
                "overdue_at",
                "updated_at",
            ]
        )
        self._saved_fingerprint = self._schedule_fingerprint()

    def pause(
        self, *, now: datetime, by: str = "", reason: str = "", until: datetime | None = None
    ) -> None:
        """Stop scheduling, saying who and why; with `until`, the dispatcher resumes it then.
        The transition only: runs.verbs.disable checks and words it."""
        self.paused_until, self.paused_by = until, by[:150]
        self.set_enabled(False, now=now, reason=reason)

    @property
    def pause_description(self) -> str:
        """'Paused until 2026-12-01 09:00 EST by alice: vendor maintenance', or why it is
        disabled; empty while enabled."""
        if self.enabled:
            return ""
        if not (self.paused_until or self.paused_by):
            return self.disabled_reason or "Paused"
        text = "Paused"
        if self.paused_until:
            local = self.paused_until.astimezone(self.zone)
            text += f" until {local:%Y-%m-%d %H:%M} {local.tzname()}"
        if self.paused_by:
            text += f" by {self.paused_by}"
        reason = self.disabled_reason if self.disabled_reason != disabled_by(self.paused_by) else ""
        return f"{text}: {reason}" if reason else text

    @property
    def zone(self):
        return schedules.zone_of(self.timezone)

    def jitter_for(self, slot: datetime) -> timedelta:
        """This slot's start delay within the jitter window: the same every time it is asked,
        so a re-dispatch or a retry keeps it, and spread evenly over the slots."""
        if not self.jitter_seconds:
            return timedelta(0)
        basis = f"{self.pk}:{slot.astimezone(UTC).isoformat()}".encode()
        fraction = int.from_bytes(hashlib.sha256(basis).digest()[:8], "big") / 2**64
        return timedelta(milliseconds=int(fraction * self.jitter_seconds * 1000))

    # --- what it is ---------------------------------------------------------------------------

    @property
    def schedule(self) -> schedules.Schedule:
        return schedules.Schedule(
            kind=self.schedule_type,
            cron=self.cron_expression,
            interval_seconds=self.interval_seconds,
            run_at=self.run_at,
            timezone=self.timezone,
            starts_at=self.starts_at,
            ends_at=self.ends_at,
            anchor=self.starts_at or self.created_at,
        )

    @property
    def schedule_description(self) -> str:
        return schedules.describe(self.schedule)

    @property
    def target(self) -> str:
        if self.kind == self.Kind.HANDLER:
            return f"handler {self.handler}"
        if self.kind == self.Kind.HEARTBEAT:
            return "heartbeat (pings in)"
        return f"{self.method} {urlsplit(self.url).netloc or self.url}"

    @property
    def masked_headers(self) -> dict[str, str]:
        return mask_headers(self.headers or {}, self.secret_headers)

    @property
    def masked_payload(self) -> Any:
        return secrets.mask_payload(self.payload, secret_keys_of(self.handler))

    def success_ranges(self) -> list[tuple[int, int]]:
        return parse_status_spec(self.expected_status)

    def response_assertions(self) -> tuple:
        """The checks a response must pass (calls.assertions), as validated on save."""
        from calls import assertions

        return assertions.parse(self.assertions) if self.assertions else ()

    # --- when ---------------------------------------------------------------------------------

    def next_runs(self, after: datetime, n: int = 5) -> list[datetime]:
        return schedules.next_runs(self.schedule, after, n)

    def compute_next_run_at(self, after: datetime) -> datetime | None:
        """The next slot after `after`, or None when disabled, manual-only or used up (or a
        heartbeat: nothing to call; its slots are expected_at)."""
        if not self.enabled or self.kind == self.Kind.HEARTBEAT:
            return None
        if self.max_runs is not None and self.run_count >= self.max_runs:
            return None
        return schedules.next_run(self.schedule, after)

    @property
    def is_heartbeat(self) -> bool:
        return self.kind == self.Kind.HEARTBEAT

    def expect_from(self, now: datetime) -> None:
        """A heartbeat waits for the first slot after `now` (an edit or a resume starts afresh:
        a pause is not downtime); anything else expects nothing."""
        slot = None
        if self.is_heartbeat and self.enabled:
            slot = schedules.next_run(self.schedule, now)
        self.expect(slot)

    def expect(self, slot: datetime | None) -> None:
        self.expected_at = slot
        self.overdue_at = slot + timedelta(seconds=self.grace_seconds) if slot else None

    @property
    def upcoming_at(self) -> datetime | None:
        """When it next runs, or for a heartbeat when its next ping is expected (the slot it is
        waiting on, which is past while it is late)."""
        if self.is_heartbeat:
            return self.expected_at if self.enabled else None
        return self.next_run_at

    def is_late(self, now: datetime) -> bool:
        """A heartbeat whose expected slot has come without a ping, still within its grace."""
        if not (self.is_heartbeat and self.enabled and self.expected_at and self.overdue_at):
            return False
        return self.expected_at <= now < self.overdue_at

    # --- validation (shared by forms, API serializers and applyjobs) ---------------------------

    def clean(self) -> None:
        errors: dict[str, str] = self._unstorable_values()
        self._keep_stored_secrets(errors)
        self._clean_schedule(errors)
        if self.kind != self.Kind.HTTP and self.assertions:
            errors["assertions"] = "Only HTTP jobs take assertions: they check a response."
        if self.kind == self.Kind.HTTP:
            self._clean_http(errors)
            if not (self.url or "").strip():
                # A job given neither is an HTTP job by default: say what is missing.
                errors["url"] = "Give a url to call, or a handler to run."
        elif self.kind == self.Kind.HANDLER:
            if not self.handler:
                errors["handler"] = "Choose a registered handler."
            elif get_handler(self.handler) is None:
                errors["handler"] = f"No handler named '{self.handler}' is registered."
            if not isinstance(self.payload, dict):
                errors["payload"] = "The payload must be a JSON object."
            elif json_depth(self.payload) > MAX_PAYLOAD_DEPTH:
                errors["payload"] = f"Nests deeper than {MAX_PAYLOAD_DEPTH} levels."
            elif problem := _payload_problem(self.handler, self.payload):
                errors["payload"] = problem
        elif self.kind == self.Kind.HEARTBEAT:
            if self.schedule_type not in (self.ScheduleType.CRON, self.ScheduleType.INTERVAL):
                errors.setdefault(
                    "cron_expression",
                    "A heartbeat expects pings on a schedule: give a cron expression or an "
                    "interval.",
                )
        self._clean_notifications(errors)
        self._clean_run_after(errors)
        self._clean_jitter(errors)
        self._clean_flow(errors)
        for field in ("signing_secret", "signing_secret_next"):
            if getattr(self, field) and field not in errors:
                if problem := signing.secret_problem(getattr(self, field)):
                    errors[field] = problem
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end of the window must be after its start."
        if errors:
            raise ValidationError(errors)

    def _unstorable_values(self) -> dict[str, str]:
        """Text no database can keep (NUL, lone surrogates) and instants out of range."""
        errors = {}
        for field in self._meta.concrete_fields:
            value = getattr(self, field.attname)
            if isinstance(value, datetime) and not storable.within_range(value):
                errors[field.name] = storable.OUT_OF_RANGE
            elif storable.has_unstorable_text(value):
                errors[field.name] = "Contains a NUL character or invalid Unicode."
        return errors

    def _keep_stored_secrets(self, errors: dict[str, str]) -> None:
        """Values left as the mask become the stored secrets, where the secret-audience rule
        (endpoints.secrets) allows; the others are refused, saying why. The one rule of every
        door (endpoints.secrets): the mask keeps, empty removes, anything else replaces."""
        saved_keys = getattr(self, "_saved_signing_keys", ("", "")) if self.pk else ("", "")
        for field, saved in zip(("signing_secret", "signing_secret_next"), saved_keys, strict=True):
            if getattr(self, field) == MASK:
                if not saved:
                    errors[field] = f"Masked ({MASK}) but there is no stored key to keep; give one."
                setattr(self, field, saved or "")
        stored = getattr(self, "_stored_secrets", None) if self.pk else None
        if isinstance(self.headers, dict):
            self.headers, problems = secrets.keep_masked_headers(
                self.headers,
                secret=secrets.secret_names(self.secret_headers),
                stored=stored.headers if stored else {},
                stored_secret=stored.secret if stored else set(),
                same_audience=stored is not None and secrets.audience(self.url) == stored.audience,
            )
            if problems:
                errors.setdefault("headers", " ".join(problems))
        if isinstance(self.payload, dict):
            self.payload, problems = secrets.keep_masked_payload(
                self.payload, stored, secret_keys_of(self.handler)
            )
            if problems:
                errors.setdefault("payload", " ".join(problems))

    def _clean_schedule(self, errors: dict[str, str]) -> None:
        try:
            schedules.validate_timezone(self.timezone)
        except schedules.ScheduleError as exc:
            errors["timezone"] = exc.message
        if self.schedule_type == self.ScheduleType.CRON:
            try:
                self.cron_expression = schedules.normalize_cron(self.cron_expression)
            except schedules.ScheduleError as exc:
                errors["cron_expression"] = exc.message
        elif self.schedule_type == self.ScheduleType.INTERVAL:
            try:
                schedules.parse_interval(self.interval_seconds or 0)
            except schedules.ScheduleError as exc:
                errors["interval_seconds"] = exc.message
        elif self.schedule_type == self.ScheduleType.ONCE and not self.run_at:
            errors["run_at"] = "Choose when the one-time run happens."

    def _clean_jitter(self, errors: dict[str, str]) -> None:
        if not self.jitter_seconds or errors.get("cron_expression") or errors.get("timezone"):
            return
        if self.schedule_type not in (self.ScheduleType.CRON, self.ScheduleType.INTERVAL):
            errors["jitter_seconds"] = "Jitter applies to cron and interval schedules only."
            return
        try:
            slots = schedules.next_runs(self.schedule, django_timezone.now(), 50)
        except (schedules.ScheduleError, ValueError, TypeError):
            return
        gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
        if gaps and self.jitter_seconds >= min(gaps):
            errors["jitter_seconds"] = (
                f"The jitter window must be shorter than the time between runs ({min(gaps):g} s)."
            )

    def _clean_run_after(self, errors: dict[str, str]) -> None:
        entries, problem = run_after.normalized(self.run_after)
        if problem is None and "name" not in errors:
            problem = run_after.problem(self, entries)
        if problem:
            errors["run_after"] = problem
        else:
            self.run_after = entries

    def _clean_flow(self, errors: dict[str, str]) -> None:
        if self.flow_rate:
            try:
                self.flow_rate = str(flow.parse_rate(self.flow_rate))
            except flow.RateError as exc:
                errors["flow_rate"] = str(exc)
        if not self.flow_key:
            for field in ("flow_parallelism", "flow_rate"):
                if getattr(self, field) and field not in errors:
                    errors[field] = "Give a flow key too: limits are shared by the jobs of a key."
        elif self.kind == self.Kind.HEARTBEAT:
            errors["flow_key"] = "A heartbeat is not run by cronplane: it has no flow to limit."

    @property
    def flow_limits(self) -> flow.Limits:
        """This job's own limits (its key holds the strictest of all its jobs')."""
        return flow.Limits.strictest([(self.flow_parallelism, self.flow_rate)])

    @property
    def notification_emails(self) -> list[str]:
        return [a.strip() for a in re.split(r"[,\s;]+", self.notify_emails or "") if a.strip()]

    def _clean_notifications(self, errors: dict[str, str]) -> None:
        from django.core.validators import validate_email

        from calls.guard import url_problem

        for address in self.notification_emails:
            try:
                validate_email(address)
            except ValidationError:
                errors["notify_emails"] = f"'{address}' is not an email address."
                break
        if self.notify_webhook_url and (problem := url_problem(self.notify_webhook_url)):
            errors["notify_webhook_url"] = problem
        try:
            urls = channels.parse_urls(self.notify_urls)
        except ValueError as exc:
            errors["notify_urls"] = str(exc)
        else:
            # A URL left as its mask (an edit form, an exported job, an API read-modify-write)
            # is the stored URL: the mask shows its host, so it still goes where it went.
            stored = getattr(self, "_stored_notify_urls", []) if self.pk else []
            self.notify_urls = channels.keep_masked_urls(urls, stored)
            if problem := channels.urls_problem(self.notify_urls):
                errors["notify_urls"] = problem

    @property
    def masked_notify_urls(self) -> list[str]:
        return channels.mask_urls(self.notify_urls or [])

    def _clean_http(self, errors: dict[str, str]) -> None:
        from calls import templating
        from calls.guard import url_problem

        if len(self.url or "") > 2048:
            errors["url"] = "The URL is longer than 2048 characters."
        elif problem := templating.problem(self.url):
            errors["url"] = problem
        elif problem := url_problem(
            templating.render(self.url, templating.sample_context(self.name), where="url")
        ):
            errors["url"] = problem
        if problem := templating.problem(self.body):
            errors["body"] = problem
        if not isinstance(self.headers, dict):
            errors["headers"] = "Headers must be a JSON object of name → value."
        else:
            problem = header_problem(self.headers) or next(
                (p for value in self.headers.values() if (p := templating.problem(value))), None
            )
            if problem:
                errors["headers"] = problem
        if len((self.body or "").encode()) > MAX_BODY_BYTES:
            errors["body"] = f"The body is larger than {MAX_BODY_BYTES // 1024} KB."
        try:
            parse_status_spec(self.expected_status)
        except ValueError as exc:
            errors["expected_status"] = str(exc)
        self._clean_assertions(errors)

    def _clean_assertions(self, errors: dict[str, str]) -> None:
        """Refuse what cannot be checked (a bad JSONPath, an unknown comparison…) and store the
        rest in one shape: every field present."""
        from calls import assertions

        try:
            parsed = assertions.parse(self.assertions)
        except assertions.InvalidAssertion as exc:
            errors["assertions"] = str(exc)
            return
        self.assertions = [assertion.as_dict() for assertion in parsed]


def _loaded_urls(endpoint: Endpoint) -> list[str]:
    # From the loaded values only: reading a deferred field here would query for it.
    urls = endpoint.__dict__.get("notify_urls")
    return list(urls) if isinstance(urls, list) else []


def _payload_problem(handler: str, payload: dict) -> str | None:
    """webhook:send's control keys, checked on save like an HTTP job's fields."""
    if handler != "webhook:send":
        return None
    headers = payload.get("headers", {})
    if not isinstance(headers, dict):
        return "payload.headers must be a JSON object of name → value."
    if problem := header_problem(headers):
        return f"payload.headers: {problem}"
    timeout = payload.get("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return "payload.timeout_seconds must be a number of seconds."
    if not 0.1 <= timeout <= settings.SCHEDULER_MAX_TIMEOUT_SECONDS:
        return (
            "payload.timeout_seconds must be between 0.1 and "
            f"{settings.SCHEDULER_MAX_TIMEOUT_SECONDS:g} seconds."
        )
    return None


def json_depth(value: object) -> int:
    """How deeply JSON objects and arrays nest in `value` (a scalar is 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            stack += [
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            ]
    return deepest


def header_problem(headers: dict) -> str | None:
    """What makes these headers unsendable, the same at every door (and for webhook:send)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            return f"'{name}' is not a valid header name."
        if not isinstance(value, str):
            return f"The value of '{name}' must be a string."
        if "\r" in value or "\n" in value or "\0" in value:
            return f"The value of '{name}' contains a line break."
        if bad := _HEADER_VALUE_BAD_RE.search(value):
            return (
                f"The value of '{name}' contains U+{ord(bad.group()):04X}: header values are "
                "Latin-1 text without control characters or line separators."
            )
    if len(json.dumps(headers).encode()) > MAX_HEADERS_BYTES:
        return f"Headers are larger than {MAX_HEADERS_BYTES // 1024} KB."
    return None
