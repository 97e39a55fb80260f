"""Seed 002's history of a schedule: GET /api/v1/schedules/:id/history, its executions."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.fields import iso, iso_ms, query_int, timing_field
from api.scheduler_jobs import EXECUTED
from api.schedules import ERRORS, NOT_FOUND, TAG, get_schedule
from endpoints.models import Endpoint
from endpoints.timetable import zone_of

HISTORY_SIZE, MAX_HISTORY_SIZE = 20, 100


class Execution(serializers.Serializer):
    executionId = serializers.CharField()
    scheduledTime = serializers.DateTimeField()
    startedAt = serializers.DateTimeField(allow_null=True)
    finishedAt = serializers.DateTimeField(allow_null=True)
    status = serializers.CharField()
    duration = serializers.IntegerField(allow_null=True, help_text="Milliseconds")
    error = serializers.CharField(required=False)
    trigger = serializers.CharField()
    attempt = serializers.IntegerField()
    idempotencyKey = serializers.CharField(required=False)
    asOf = serializers.DateTimeField(
        required=False, help_text="For a run started as of a chosen instant: that instant."
    )
    timing = timing_field()


class History(serializers.Serializer):
    data = Execution(many=True)
    total = serializers.IntegerField()


class HistoryView(ApiView):
    required_perms = {"GET": perms.VIEW}

    @extend_schema(
        tags=[TAG],
        operation_id="getScheduleHistory",
        summary="Get schedule history",
        description="Executions, newest first: each run that started (not a dry run), shown "
        "by its latest attempt; `total` counts them. Queued runs are not executions yet.",
        parameters=[OpenApiParameter("limit", OpenApiTypes.INT, description="Maximum entries")],
        responses={200: History, **NOT_FOUND, **ERRORS},
    )
    def get(self, request, schedule_id: str):
        endpoint = get_schedule(schedule_id)
        limit = query_int(request.query_params, "limit", HISTORY_SIZE, high=MAX_HISTORY_SIZE)
        zone = zone_of(endpoint.timezone)
        runs = executions(endpoint).order_by("-id")
        return Response(
            {"data": [execution_json(log, zone) for log in runs[:limit]], "total": runs.count()}
        )


def executions(endpoint: Endpoint):
    """One Log per execution: a run that started and is not a dry run, shown by its latest
    attempt that started (a retry still waiting leaves the failed attempt before it shown)."""
    started = endpoint.logs.filter(state__in=EXECUTED, dry_run=False)
    return started.exclude(next_attempt__state__in=EXECUTED)


def execution_json(log, zone: ZoneInfo) -> dict[str, Any]:
    entry = {
        "executionId": log.run_id,
        "scheduledTime": iso(log.scheduled_for or log.created_at, zone),
        "startedAt": iso_ms(log.started_at, zone),
        "finishedAt": iso_ms(log.finished_at, zone),
        "status": log.state,
        "duration": log.duration_ms,
    }
    if log.error_message or log.reason:
        entry["error"] = log.error_message or log.reason
    entry.update(trigger=log.trigger, attempt=log.attempt)
    if log.idempotency_key:
        entry["idempotencyKey"] = log.idempotency_key
    if log.as_of:
        entry["asOf"] = iso(log.as_of, zone)
    if log.timing:
        entry["timing"] = log.timing
    return entry
