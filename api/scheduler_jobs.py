"""Seed 001, "Nightly Scheduler": /api/v1/scheduler/jobs, keyed by job name.

A job is an Endpoint; its JSON is the job object of job files (endpoints/jobs.py), which also
does the validation, plus the run fields (last_run_at, last_run_status, next_run_at, created_at)
and the policy fields job files leave alone (retries' backoff, overlap and missed-run policies,
window, maximum runs).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.errors import Conflict, ErrorSerializer, InvalidInput, django_details, flatten
from api.fields import (
    InstantField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    body_of,
    iso,
    parse_instant,
    query_int,
)
from endpoints.jobs import JOB_FIELDS, SECRET_FIELDS, apply_job, endpoint_to_job, save_job
from endpoints.models import MAX_DESCRIPTION_LENGTH, Endpoint
from runs import services
from runs.models import Log

TAG = "Nightly Scheduler jobs"
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
EXECUTED = (Log.State.RUNNING, Log.State.SUCCESS, Log.State.FAILED)
# A description is a line or a paragraph shown in lists; a megabyte of it is a mistake.
ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 429)}


class StrictNumberField(serializers.FloatField):
    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool) or not isinstance(data, int | float):
            raise serializers.ValidationError("Must be a number.")
        return super().to_internal_value(data)


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be a whole number.")
        return super().to_internal_value(data)


class PolicySerializer(StrictSerializer):
    """Policy fields of a job (Endpoint field names); the model validates their ranges."""

    retry_backoff_seconds = StrictNumberField(required=False)
    retry_backoff_max_seconds = StrictNumberField(required=False)
    overlap_policy = serializers.ChoiceField(Endpoint.OverlapPolicy.choices, required=False)
    missed_policy = serializers.ChoiceField(Endpoint.MissedPolicy.choices, required=False)
    catch_up_window_seconds = StrictIntegerField(required=False, min_value=0)
    max_runs = StrictIntegerField(required=False, allow_null=True, min_value=1)
    starts_at = InstantField(required=False, allow_null=True)
    ends_at = InstantField(required=False, allow_null=True)
    auto_disable_after = StrictIntegerField(required=False, min_value=0)
    notify_emails = serializers.CharField(required=False, allow_blank=True, max_length=2000)
    notify_webhook_url = serializers.CharField(required=False, allow_blank=True, max_length=2048)
    notify_urls = serializers.ListField(
        child=serializers.CharField(max_length=2048), required=False, max_length=20
    )
    notify_on_failure = serializers.BooleanField(required=False)
    notify_after_failures = StrictIntegerField(required=False, min_value=1)
    notify_on_recovery = serializers.BooleanField(required=False)


POLICY_FIELDS = tuple(PolicySerializer().fields)
ALL_FIELDS = (*JOB_FIELDS, *POLICY_FIELDS)


def job_json(endpoint: Endpoint) -> dict[str, Any]:
    """The job as seed 001 shows it, then our extensions; secret header values masked."""
    job = endpoint_to_job(endpoint)
    shown = {
        "job_name": job.pop("job_name"),
        "uuid": str(endpoint.uuid),
        "cron_expression": job.pop("cron_expression", None),
        "is_active": job.pop("is_active"),
        "last_run_at": iso(endpoint.last_run_at),
        "last_run_status": endpoint.last_status or None,
        "next_run_at": iso(endpoint.upcoming_at),
        "created_at": iso(endpoint.created_at),
        "disabled_reason": endpoint.disabled_reason or None,
    }
    shown.update(job)
    for field in SECRET_FIELDS:  # write-only: shown as whether they are set
        shown.pop(field, None)
    shown.update(
        jitter_seconds=endpoint.jitter_seconds,
        signing_enabled=bool(endpoint.signing_secret),
        signing_next_key_set=bool(endpoint.signing_secret_next),
        paused_until=iso(endpoint.paused_until),
        paused_by=endpoint.paused_by or None,
        pause_description=endpoint.pause_description or None,
    )
    for field in POLICY_FIELDS:
        value = getattr(endpoint, field)
        shown[field] = iso(value) if field in ("starts_at", "ends_at") else value
    shown["notify_urls"] = endpoint.masked_notify_urls
    shown["kind"] = endpoint.kind
    if endpoint.is_heartbeat:
        shown.update(heartbeat_json(endpoint))
    return shown


def heartbeat_json(endpoint: Endpoint) -> dict[str, Any]:
    """What a heartbeat adds to a job: where to ping it, when it last did, whether it is late."""
    from runs.heartbeats import ping_url

    return {
        "grace_seconds": endpoint.grace_seconds,
        "ping_url": ping_url(endpoint),
        "last_ping_at": iso(endpoint.last_ping_at),
        "late": endpoint.is_late(timezone.now()),
    }


def build_job(data: dict[str, Any]) -> Endpoint:
    """A new, validated, unsaved Endpoint from a job object; InvalidInput lists every problem."""
    job = {key: value for key, value in data.items() if key not in POLICY_FIELDS}
    policies = PolicySerializer(data={k: v for k, v in data.items() if k in POLICY_FIELDS})
    details = {} if policies.is_valid() else flatten(policies.errors)
    if isinstance(job.get("run_at"), str) and (problem := parse_instant(job["run_at"])[1]):
        details["run_at"] = problem  # before apply_job: its dates are not bounded
        job.pop("run_at")
    # apply_job starts from this unsaved endpoint, so the model validates the policies too.
    base = Endpoint(**policies.validated_data) if not details else Endpoint()
    try:
        endpoint, _ = apply_job(job, base)
    except ValidationError as exc:
        details.update(django_details(exc))
        endpoint = None
    if details:
        known = ", ".join(ALL_FIELDS)
        for key in details:
            if key not in ALL_FIELDS and key != "non_field_errors":
                details[key] = f"Unknown field; the fields are {known}."
        raise InvalidInput(details)
    return endpoint


def get_job(job_name: str) -> Endpoint:
    endpoint = Endpoint.objects.filter(name=job_name).first()
    if endpoint is None:
        raise exceptions.NotFound("Job not found")
    return endpoint


# --- the schema ---


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]})
class BodyField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "integer"},
            {"type": "array", "items": {"type": "integer"}},
        ]
    }
)
class ExpectedStatusField(serializers.JSONField):
    pass


class JobRequest(serializers.Serializer):
    """A job: `handler` (a registered Python handler, with `payload`) or an HTTP target (`url`,
    `method`, `headers`, `body`, `expected_status`…). One of `cron_expression`,
    `interval_seconds`, `run_at` schedules it; none means manual only."""

    job_name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, max_length=MAX_DESCRIPTION_LENGTH)
    kind = serializers.ChoiceField(
        Endpoint.Kind.choices,
        required=False,
        help_text="`heartbeat`: cronplane calls nothing; the job pings /ping/<uuid> on its "
        "schedule (default: `handler` if a handler is named, else `http`).",
    )
    grace_seconds = serializers.IntegerField(
        required=False, help_text="A heartbeat's: how late a ping may come (default 3600)."
    )
    cron_expression = serializers.CharField(required=False, allow_null=True)
    interval_seconds = serializers.IntegerField(required=False, allow_null=True)
    run_at = serializers.DateTimeField(required=False, allow_null=True)
    timezone = serializers.CharField(required=False, help_text="IANA time zone")
    is_active = serializers.BooleanField(required=False, default=True)
    handler = serializers.CharField(required=False)
    payload = serializers.DictField(required=False)
    url = serializers.CharField(required=False)
    method = serializers.ChoiceField(Endpoint.Method.choices, required=False)
    headers = serializers.DictField(child=serializers.CharField(), required=False)
    secret_headers = serializers.ListField(child=serializers.CharField(), required=False)
    body = BodyField(required=False)
    expected_status = ExpectedStatusField(required=False)
    response_must_contain = serializers.CharField(required=False)
    timeout_seconds = serializers.FloatField(required=False)
    max_attempts = serializers.IntegerField(required=False)
    jitter_seconds = serializers.IntegerField(
        required=False, help_text="Start each run up to this many seconds after its slot."
    )
    signing_secret = serializers.CharField(
        required=False,
        write_only=True,
        help_text="Signs every request by Standard Webhooks (webhook-id, webhook-timestamp, "
        "webhook-signature): whsec_ + base64 of 24-64 random bytes. Write-only; the mask keeps "
        "the stored one.",
    )
    signing_secret_next = serializers.CharField(
        required=False, write_only=True, help_text="The key to rotate to (write-only)."
    )
    retry_backoff_seconds = serializers.FloatField(required=False)
    retry_backoff_max_seconds = serializers.FloatField(required=False)
    overlap_policy = serializers.ChoiceField(Endpoint.OverlapPolicy.choices, required=False)
    missed_policy = serializers.ChoiceField(Endpoint.MissedPolicy.choices, required=False)
    catch_up_window_seconds = serializers.IntegerField(required=False)
    max_runs = serializers.IntegerField(required=False, allow_null=True)
    starts_at = serializers.DateTimeField(required=False, allow_null=True)
    ends_at = serializers.DateTimeField(required=False, allow_null=True)
    auto_disable_after = serializers.IntegerField(required=False)
    notify_emails = serializers.CharField(required=False, allow_blank=True)
    notify_webhook_url = serializers.CharField(required=False, allow_blank=True)
    notify_urls = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Apprise URLs (slack://…, tgram://…, json://host/path); an unknown service is "
        "refused.",
    )
    notify_on_failure = serializers.BooleanField(required=False)
    notify_after_failures = serializers.IntegerField(
        required=False, help_text="Alert on this many consecutive failed runs (default 1)."
    )
    notify_on_recovery = serializers.BooleanField(required=False)


class Job(serializers.Serializer):
    job_name = serializers.CharField()
    uuid = serializers.UUIDField(help_text="The public id: seed 002's workflowId, seed 003's id")
    cron_expression = serializers.CharField(allow_null=True)
    is_active = serializers.BooleanField()
    last_run_at = serializers.DateTimeField(allow_null=True)
    last_run_status = serializers.CharField(allow_null=True)
    next_run_at = serializers.DateTimeField(allow_null=True)
    created_at = serializers.DateTimeField()
    disabled_reason = serializers.CharField(
        allow_null=True, help_text="Why the job is off (paused, auto-disabled, one-time done)."
    )
    description = serializers.CharField(allow_blank=True)
    interval_seconds = serializers.IntegerField(required=False)
    run_at = serializers.DateTimeField(required=False)
    timezone = serializers.CharField()
    handler = serializers.CharField(required=False)
    payload = serializers.DictField(required=False)
    url = serializers.CharField(required=False, allow_blank=True)
    method = serializers.CharField(required=False)
    headers = serializers.DictField(
        child=serializers.CharField(allow_blank=True), required=False, help_text="Secrets masked."
    )
    secret_headers = serializers.ListField(child=serializers.CharField(), required=False)
    body = serializers.CharField(required=False, allow_blank=True)
    expected_status = serializers.CharField(required=False)
    response_must_contain = serializers.CharField(required=False)
    timeout_seconds = serializers.FloatField()
    max_attempts = serializers.IntegerField()
    jitter_seconds = serializers.IntegerField()
    signing_enabled = serializers.BooleanField(help_text="Requests are signed.")
    signing_next_key_set = serializers.BooleanField(
        help_text="A next signing key is set: requests are signed with both."
    )
    paused_until = serializers.DateTimeField(
        allow_null=True, help_text="A paused job resumes by itself at this time."
    )
    paused_by = serializers.CharField(allow_null=True)
    pause_description = serializers.CharField(
        allow_null=True, help_text="'Paused until … by alice: vendor maintenance'"
    )
    retry_backoff_seconds = serializers.FloatField()
    retry_backoff_max_seconds = serializers.FloatField()
    overlap_policy = serializers.CharField()
    missed_policy = serializers.CharField()
    catch_up_window_seconds = serializers.IntegerField()
    max_runs = serializers.IntegerField(allow_null=True)
    starts_at = serializers.DateTimeField(allow_null=True)
    ends_at = serializers.DateTimeField(allow_null=True)
    notify_urls = serializers.ListField(
        child=serializers.CharField(), help_text="Apprise URLs, secrets masked."
    )
    notify_after_failures = serializers.IntegerField()
    kind = serializers.ChoiceField(Endpoint.Kind.choices)
    grace_seconds = serializers.IntegerField(required=False)
    ping_url = serializers.CharField(required=False, help_text="A heartbeat's ping URL.")
    last_ping_at = serializers.DateTimeField(required=False, allow_null=True)
    late = serializers.BooleanField(
        required=False, help_text="A heartbeat past its expected time, within its grace."
    )


class Pagination(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()


class JobList(serializers.Serializer):
    data = Job(many=True)
    pagination = Pagination()


class TriggerRequest(StrictSerializer):
    triggered_by = StrictCharField(required=False, max_length=150, allow_blank=True)
    dry_run = StrictBooleanField(required=False, default=False)
    as_of = InstantField(
        required=False,
        allow_null=True,
        help_text="Run as of this instant (templates and handlers see it as the slot).",
    )


class Triggered(serializers.Serializer):
    job_name = serializers.CharField()
    triggered_at = serializers.DateTimeField()
    run_id = serializers.CharField()
    status = serializers.ChoiceField(["running"])
    as_of = serializers.DateTimeField(allow_null=True)
    idempotency_key = serializers.CharField()


class LastResult(serializers.Serializer):
    job_name = serializers.CharField()
    run_id = serializers.CharField()
    started_at = serializers.DateTimeField(allow_null=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    status = serializers.ChoiceField([state.value for state in EXECUTED])
    result_summary = serializers.JSONField(allow_null=True)
    dry_run = serializers.BooleanField()
    duration_ms = serializers.IntegerField(allow_null=True)
    error = serializers.CharField(allow_null=True)
    trigger = serializers.CharField(required=False)
    as_of = serializers.DateTimeField(allow_null=True, required=False)
    idempotency_key = serializers.CharField(required=False)
    triggered_by = serializers.CharField(
        required=False, help_text="What the trigger said it was (free text, as given)."
    )
    requested_by = serializers.CharField(
        required=False,
        help_text="Who really asked: the free text and the authenticated user or token "
        '("coordinator-007, via operator1\'s token").',
    )
    timing = serializers.JSONField(
        required=False,
        help_text="The call's phases in ms (dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms; null "
        "when not taken, e.g. over a reused connection), reused, requests, connections. Only "
        "for runs that made an HTTP call.",
    )


class Deleted(serializers.Serializer):
    deleted = serializers.BooleanField()
    job_name = serializers.CharField()
    cancelled_at = serializers.DateTimeField()


PAGE_PARAMETERS = [
    OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1"),
    OpenApiParameter("limit", OpenApiTypes.INT, description="Jobs per page (default 20, max 100)"),
]


# --- the routes ---


class JobsView(ApiView):
    required_perms = {"GET": perms.VIEW, "POST": perms.ADD}

    @extend_schema(
        tags=[TAG],
        operation_id="listJobs",
        summary="List all registered scheduler jobs",
        parameters=PAGE_PARAMETERS,
        responses={200: JobList, **ERRORS},
    )
    def get(self, request):
        page = query_int(request.query_params, "page", 1)
        limit = query_int(request.query_params, "limit", PAGE_SIZE, high=MAX_PAGE_SIZE)
        jobs = Endpoint.objects.order_by("name")
        start = (page - 1) * limit
        return Response(
            {
                "data": [job_json(endpoint) for endpoint in jobs[start : start + limit]],
                "pagination": {"page": page, "limit": limit, "total": jobs.count()},
            }
        )

    @extend_schema(
        tags=[TAG],
        operation_id="createJob",
        summary="Register a new scheduler job",
        request=JobRequest,
        responses={201: Job, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request):
        data = body_of(request)
        name = data.get("job_name")
        if isinstance(name, str) and Endpoint.objects.filter(name=name).exists():
            raise Conflict(f"A job named '{name}' already exists")
        endpoint = build_job(data)
        endpoint.created_by = request.user
        try:
            with transaction.atomic():
                save_job(
                    endpoint, {"is_active": (True, endpoint.enabled)}, reason="Registered inactive."
                )
        except IntegrityError:  # the same name registered by a concurrent request
            raise Conflict(f"A job named '{name}' already exists") from None
        return Response(job_json(endpoint), status=201)


class JobView(ApiView):
    required_perms = {"DELETE": perms.DELETE}

    @extend_schema(
        tags=[TAG],
        operation_id="deleteJob",
        summary="Cancel and deregister a scheduler job",
        responses={200: Deleted, 404: ErrorSerializer, **ERRORS},
    )
    def delete(self, request, job_name: str):
        endpoint = get_job(job_name)
        endpoint.delete()
        return Response(
            {"deleted": True, "job_name": job_name, "cancelled_at": iso(timezone.now())}
        )


class TriggerView(ApiView):
    required_perms = {"POST": perms.TRIGGER}

    @extend_schema(
        tags=[TAG],
        operation_id="triggerJob",
        summary="Manually trigger a registered job immediately",
        description="Queues a run on the workers now. `status` is `running` once accepted; "
        "follow it with last-result. `triggered_by` defaults to the caller's username. "
        "`as_of` (an instant with its offset) runs it as of that instant: templates see it as "
        "`scheduled_at` and handlers as their slot.",
        request=TriggerRequest,
        responses={200: Triggered, 404: ErrorSerializer, **ERRORS},
    )
    def post(self, request, job_name: str):
        endpoint = get_job(job_name)
        given = TriggerRequest(data=body_of(request))
        given.is_valid(raise_exception=True)
        by = given.validated_data.get("triggered_by") or request.user.get_username()
        dry_run = given.validated_data["dry_run"]
        as_of = given.validated_data.get("as_of")
        log = services.trigger(
            endpoint, by=by, trigger=Log.Trigger.API, dry_run=dry_run, as_of=as_of,
            actor=services.Actor.of(request),
        )  # fmt: skip
        return Response(
            {
                "job_name": endpoint.name,
                "triggered_at": iso(log.created_at),
                "run_id": log.run_id,
                "status": "running",
                "as_of": iso(log.as_of),
                "idempotency_key": log.idempotency_key,
            }
        )


class LastResultView(ApiView):
    required_perms = {"GET": perms.VIEW}

    @extend_schema(
        tags=[TAG],
        operation_id="getJobLastResult",
        summary="Get the result of the most recent execution of a job",
        description="The latest run that started (running, success or failed); dry runs are "
        "rehearsals, not executions, and are never shown here.",
        responses={200: LastResult, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request, job_name: str):
        endpoint = get_job(job_name)
        executions = Log.objects.latest_for(endpoint).filter(state__in=EXECUTED, dry_run=False)
        log = executions.first()
        if log is None:
            raise exceptions.NotFound("This job has not run yet")
        result = {
            "job_name": endpoint.name,
            "run_id": log.run_id,
            "started_at": iso(log.started_at),
            "completed_at": iso(log.finished_at),
            "status": log.state,
            "result_summary": log.result_summary,
            "dry_run": log.dry_run,
            "duration_ms": log.duration_ms,
            "error": log.error_message or None,
            "trigger": log.trigger,
            "as_of": iso(log.as_of),
            "idempotency_key": log.idempotency_key,
            "triggered_by": log.triggered_by,
            "requested_by": log.requested_by,
        }
        if log.timing:
            result["timing"] = log.timing
        return Response(result)
