"""Seed 001, "Nightly Scheduler": /api/v1/scheduler/jobs, keyed by job name.

A job is an Endpoint; its JSON is the job object of job files (endpoints/job_fields.py declares
its fields, endpoints/jobs.py validates them for every door), plus the run fields (last_run_at,
last_run_status, next_run_at, created_at): api/job_object.py.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.errors import Conflict, ErrorSerializer, InvalidInput, django_details
from api.fields import (
    InstantField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    body_of,
    iso,
    query_int,
    timing_field,
)
from api.job_object import JOB, JobRequest
from endpoints.jobs import apply_job
from endpoints.models import Endpoint
from runs import verbs
from runs.models import Log

TAG = "Nightly Scheduler jobs"
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
EXECUTED = (Log.State.RUNNING, Log.State.SUCCESS, Log.State.FAILED)
ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 429)}


def build_job(data: dict[str, Any]) -> Endpoint:
    """A new, validated, unsaved Endpoint from a job object; InvalidInput lists every problem."""
    try:
        endpoint, _ = apply_job(data)
    except ValidationError as exc:
        raise InvalidInput(django_details(exc)) from None
    return endpoint


def get_job(job_name: str) -> Endpoint:
    endpoint = Endpoint.objects.filter(name=job_name).first()
    if endpoint is None:
        raise exceptions.NotFound("Job not found")
    return endpoint


# --- the schema ---


class Pagination(serializers.Serializer):
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    total = serializers.IntegerField()


class JobList(serializers.Serializer):
    data = JOB.schema(many=True)
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
    timing = timing_field()


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
                "data": [JOB(endpoint) for endpoint in jobs[start : start + limit]],
                "pagination": {"page": page, "limit": limit, "total": jobs.count()},
            }
        )

    @extend_schema(
        tags=[TAG],
        operation_id="createJob",
        summary="Register a new scheduler job",
        request=JobRequest,
        responses={201: JOB.schema, 409: ErrorSerializer, **ERRORS},
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
                verbs.save(endpoint, by=request.user.get_username())
        except IntegrityError:  # the same name registered by a concurrent request
            raise Conflict(f"A job named '{name}' already exists") from None
        return Response(JOB(endpoint), status=201)


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
        verbs.delete(endpoint)
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
        log = verbs.trigger(
            endpoint, by=by, trigger=Log.Trigger.API, dry_run=dry_run, as_of=as_of,
            actor=verbs.Actor.of(request),
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
