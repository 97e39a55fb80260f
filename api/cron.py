"""Seed 003, GET /api/v1/cron/process: for hosts with no persistent worker, an external cron
calls this every minute with `x-cron-secret`; it dispatches what is due and runs it inline, within
a time budget. Off (404) while CRON_SECRET is unset or shorter than 32 characters."""

from __future__ import annotations

import hmac
import time

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.permissions import AllowAny
from rest_framework.response import Response

from api.base import ApiView
from api.errors import ErrorSerializer
from api.throttling import CronRate
from endpoints.models import Endpoint
from runs import services
from runs.models import Log

TAG = "Scheduled actions"
MIN_SECRET_LENGTH = 32


class CronSecretInvalid(exceptions.AuthenticationFailed):
    """Seed 003's own 401 body: {"error": "Unauthorized", "message": "Invalid or missing …"}."""

    default_detail = "Invalid or missing cron secret"


class CronResult(serializers.Serializer):
    actionId = serializers.UUIDField(help_text="The endpoint's public id")
    actionType = serializers.CharField(help_text="The handler, or 'http' for an HTTP call")
    success = serializers.BooleanField()
    duration = serializers.IntegerField(required=False, help_text="Milliseconds")
    error = serializers.CharField(required=False)
    runId = serializers.CharField()
    jobName = serializers.CharField()


class Processed(serializers.Serializer):
    success = serializers.BooleanField()
    processed = serializers.IntegerField()
    results = CronResult(many=True)
    duration = serializers.IntegerField(help_text="Milliseconds")


def result_json(log: Log) -> dict:
    endpoint = log.endpoint
    handler = endpoint.kind == Endpoint.Kind.HANDLER
    result = {
        "actionId": str(endpoint.uuid),
        "actionType": endpoint.handler if handler else "http",
        "success": log.state == Log.State.SUCCESS,
    }
    if log.duration_ms is not None:
        result["duration"] = log.duration_ms
    if log.state != Log.State.SUCCESS:
        result["error"] = log.error_message or log.state
    result.update(runId=log.run_id, jobName=endpoint.name)
    return result


class CronProcessView(ApiView):
    authentication_classes: list = []
    permission_classes = [AllowAny]
    throttle_classes = [CronRate]

    @extend_schema(
        tags=[TAG],
        operation_id="processCron",
        summary="Process due scheduled actions (called by an external cron)",
        auth=[{"cronSecret": []}],
        responses={
            200: Processed,
            401: ErrorSerializer,
            404: ErrorSerializer,
            429: ErrorSerializer,
        },
    )
    def get(self, request):
        self.check_secret(request)
        started = time.monotonic()
        finished = services.run_due_inline(
            timezone.now(),
            budget_seconds=settings.SCHEDULER_CRON_BUDGET_SECONDS,
            batch_size=settings.SCHEDULER_CRON_BATCH_SIZE,
        )
        return Response(
            {
                "success": True,
                "processed": len(finished),
                "results": [result_json(log) for log in finished],
                "duration": int((time.monotonic() - started) * 1000),
            }
        )

    def check_secret(self, request) -> None:
        if len(settings.CRON_SECRET or "") < MIN_SECRET_LENGTH:
            raise exceptions.NotFound(
                "The cron route is off: set CRON_SECRET (at least 32 characters) to turn it on"
            )
        if not self.secret_matches(request):
            raise CronSecretInvalid()

    @staticmethod
    def secret_matches(request) -> bool:
        secret = settings.CRON_SECRET or ""
        given = request.headers.get("x-cron-secret", "")
        return len(secret) >= MIN_SECRET_LENGTH and hmac.compare_digest(
            given.encode(), secret.encode()
        )

    def get_authenticate_header(self, request) -> str:
        return 'CronSecret header="x-cron-secret"'
