"""Bulk replay through the Nightly Scheduler API (seed 001's naming): POST /api/v1/scheduler/replay.

    {"job_names": ["billing-sync"], "finished_after": "2026-12-01T02:00:00Z",
     "finished_before": "2026-12-01T04:00:00Z", "error_class": ["timeout"], "dry_run": true}

Every field is optional: the failed runs of every job, of any error, at any time. A dry run
answers with what a replay would do and writes nothing; otherwise each selected run runs again
as the next attempt of its own slot (same Idempotency-Key), started by the workers under each
job's overlap policy; the oldest `limit` are taken, and asking again takes the next ones. A run
is replayed once: asking twice replays nothing twice.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.errors import InvalidInput, django_details
from api.fields import (
    InstantField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    body_of,
    iso,
)
from api.scheduler_jobs import ERRORS, TAG
from endpoints.models import Endpoint
from runs import replay
from runs.models import Log

NAMES = {"start": "finished_after", "end": "finished_before"}


class ReplayRequest(StrictSerializer):
    job_names = serializers.ListField(
        child=StrictCharField(max_length=100),
        required=False,
        max_length=1000,
        help_text="Replay the failed runs of these jobs only (default: every job).",
    )
    finished_after = InstantField(required=False, help_text="Runs that finished at or after.")
    finished_before = InstantField(required=False, help_text="Runs that finished before.")
    error_class = serializers.ListField(
        child=serializers.ChoiceField(Log.ErrorClass.values),
        required=False,
        help_text="Runs that failed with one of these error classes (default: any).",
    )
    dry_run = StrictBooleanField(
        required=False, default=False, help_text="Only say what would be replayed."
    )


class ReplayedJob(serializers.Serializer):
    job_name = serializers.CharField()
    failed_runs = serializers.IntegerField()


class ReplayResult(serializers.Serializer):
    dry_run = serializers.BooleanField()
    summary = serializers.CharField(help_text='e.g. "312 failed runs, 4 endpoints"')
    failed_runs = serializers.IntegerField(help_text="Failed runs the selection holds")
    jobs = ReplayedJob(many=True)
    error_classes = serializers.DictField(child=serializers.IntegerField())
    limit = serializers.IntegerField(help_text="Most runs one replay starts (the oldest first)")
    replayed = serializers.IntegerField(help_text="Runs started again (0 for a dry run)")
    oldest_finished_at = serializers.DateTimeField(
        allow_null=True, help_text="When the first of the selected runs finished"
    )
    newest_finished_at = serializers.DateTimeField(
        allow_null=True, help_text="When the last of them finished"
    )


class ReplayView(ApiView):
    required_perms = {"POST": perms.RETRY}

    @extend_schema(
        tags=[TAG],
        operation_id="replayFailedRuns",
        summary="Replay failed runs in bulk",
        description=__doc__.split("\n\n", 1)[1],
        request=ReplayRequest,
        responses={200: ReplayResult, 201: ReplayResult, **ERRORS},
    )
    def post(self, request):
        given = ReplayRequest(data=body_of(request))
        given.is_valid(raise_exception=True)
        data = given.validated_data
        try:
            selection = replay.Selection(
                endpoints=_endpoint_ids(data.get("job_names")),
                start=data.get("finished_after"),
                end=data.get("finished_before"),
                error_classes=tuple(data.get("error_class") or ()),
            )
            if data["dry_run"]:
                result = replay.preview(selection)
            else:
                by = request.user.get_username()
                result = replay.replay(selection, by=by, now=timezone.now())
        except ValidationError as exc:
            raise InvalidInput(django_details(exc, NAMES)) from None
        body = {
            "dry_run": data["dry_run"],
            "summary": result.summary(),
            "failed_runs": result.runs,
            "jobs": [{"job_name": name, "failed_runs": n} for name, n in result.endpoints.items()],
            "error_classes": result.error_classes,
            "limit": result.limit,
            "replayed": result.created,
            "oldest_finished_at": iso(result.oldest),
            "newest_finished_at": iso(result.newest),
        }
        return Response(body, status=201 if result.created else 200)


def _endpoint_ids(names: list[str] | None) -> tuple[int, ...]:
    if not names:
        return ()
    found = dict(Endpoint.objects.filter(name__in=names).values_list("name", "pk"))
    unknown = [name for name in names if name not in found]
    if unknown:
        raise InvalidInput({"job_names": f"No job named {unknown[0]!r}."})
    return tuple(found.values())
