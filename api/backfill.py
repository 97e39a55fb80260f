"""Backfill through the Schedules API (seed 002's naming): POST /api/v1/schedules/{id}/backfill.

    {"start": "2026-11-01T00:00", "end": "2026-11-02T00:00", "dryRun": true}

`start` and `end` are instants with an offset, or wall times (no offset) on the schedule's own
clock, read DST-safely; the range is [start, end) and must end in the past. A dry run answers
with the plan and writes nothing; otherwise the runs of the slots that have not run are created
(`backfill` runs, started by the workers oldest slot first) and the answer says how many.
Asking twice creates nothing the second time: a slot runs once.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.errors import InvalidInput, django_details
from api.fields import StrictBooleanField, StrictCharField, StrictSerializer, body_of, iso
from api.schedules import ERRORS, NOT_FOUND, TAG, get_schedule
from endpoints import schedule_syntax, schedules
from endpoints.models import Endpoint
from endpoints.storable import within_range
from endpoints.timetable import zone_of
from runs import backfill, verbs

NAMES = {"schedule_type": "scheduleType"}
SHOWN_SLOTS = 100


class BackfillRequest(StrictSerializer):
    start = StrictCharField(
        max_length=64,
        help_text="First instant of the range (included): ISO 8601 with an offset, or a wall "
        "time without one on the schedule's clock, e.g. 2026-11-01T00:00.",
    )
    end = StrictCharField(max_length=64, help_text="End of the range (excluded); in the past.")
    dryRun = StrictBooleanField(required=False, default=False, help_text="Only say what would run.")


class BackfillSlot(serializers.Serializer):
    scheduledTime = serializers.DateTimeField()
    action = serializers.ChoiceField(
        ["run", "already_ran", "reopen"],
        help_text="run: a new run; already_ran: left alone; reopen: recorded missed, skipped "
        "or cancelled, runs now.",
    )


class BackfillResult(serializers.Serializer):
    id = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    dryRun = serializers.BooleanField()
    total = serializers.IntegerField(help_text="Slots in the range")
    toRun = serializers.IntegerField(help_text="Slots that never ran: new runs")
    alreadyRan = serializers.IntegerField()
    reopened = serializers.IntegerField(help_text="Slots recorded as never run that run now")
    created = serializers.IntegerField(help_text="Runs created (0 for a dry run)")
    slots = BackfillSlot(many=True, help_text=f"The first {SHOWN_SLOTS} slots")


def parse_bound(name: str, text: str, endpoint: Endpoint) -> datetime:
    try:
        moment = schedules.parse_local_instant(text, endpoint.timezone)
    except (ValueError, OverflowError, schedule_syntax.ScheduleError) as exc:
        raise InvalidInput({name: str(getattr(exc, "message", exc))}) from None
    if not within_range(moment):
        raise InvalidInput({name: "Must be between 1970 and 3000."})
    return moment


def plan_json(endpoint: Endpoint, plan: backfill.Plan) -> list[dict[str, Any]]:
    zone = zone_of(endpoint.timezone)
    already, reopened = set(plan.already_ran), set(plan.reopened)
    return [
        {
            "scheduledTime": iso(slot, zone),
            "action": "already_ran" if slot in already else "reopen" if slot in reopened else "run",
        }
        for slot in plan.slots[:SHOWN_SLOTS]
    ]


class BackfillView(ApiView):
    required_perms = {"POST": perms.TRIGGER}

    @extend_schema(
        tags=[TAG],
        operation_id="backfillSchedule",
        summary="Backfill a schedule over a past range",
        description=__doc__.split("\n\n", 1)[1],
        request=BackfillRequest,
        responses={200: BackfillResult, 201: BackfillResult, **NOT_FOUND, **ERRORS},
    )
    def post(self, request, schedule_id: str):
        endpoint = get_schedule(schedule_id)
        given = BackfillRequest(data=body_of(request))
        given.is_valid(raise_exception=True)
        data = given.validated_data
        start = parse_bound("start", data["start"], endpoint)
        end = parse_bound("end", data["end"], endpoint)
        now, by = timezone.now(), request.user.get_username()
        try:
            if data["dryRun"]:
                plan = backfill.plan(endpoint, start, end, now=now)
            else:
                plan = verbs.backfill(endpoint, start, end, by=by, now=now)
        except ValidationError as exc:
            raise InvalidInput(django_details(exc, NAMES)) from None
        created = 0 if data["dryRun"] else len(plan.to_run) + len(plan.reopened)
        zone = zone_of(endpoint.timezone)
        body = {
            "id": schedule_id,
            "start": iso(start, zone),
            "end": iso(end, zone),
            "dryRun": data["dryRun"],
            "total": len(plan.slots),
            "toRun": len(plan.to_run),
            "alreadyRan": len(plan.already_ran),
            "reopened": len(plan.reopened),
            "created": created,
            "slots": plan_json(endpoint, plan),
        }
        return Response(body, status=201 if created else 200)
