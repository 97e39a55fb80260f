"""Seed 002, "Schedules API": /api/v1/schedules.

A workflow is an Endpoint (`workflowId` its public uuid, `workflowName` its name) and its
schedule is the endpoint's own schedule: schedule "sched-42" belongs to endpoint 42 (also found
as "sched-<uuid>" or "<uuid>"), exists while that endpoint has a schedule (cron, interval or
once), and deleting it leaves the endpoint manual-only. A workflowId may also be the old numeric
id.
`inputData` is the input of each run, one item `[{"json": {…}}]`. For a handler workflow it
joins the handler's payload: the keys it names are set, every other key of the workflow's own
configuration (webhook:send's url…) is kept, and `[]` changes nothing. An HTTP workflow keeps it
in its (otherwise unused) payload, shown back as its inputData; its templates read it as
{{ input.KEY }}.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from api import permissions as perms
from api import run_after
from api.base import ApiView
from api.errors import Conflict, ErrorSerializer, InvalidInput, django_details
from api.fields import (
    InstantField,
    JSONObjectField,
    StrictBooleanField,
    StrictCharField,
    StrictSerializer,
    body_of,
    query_bool,
    query_int,
    whole_number,
)
from api.job_object import strict_field
from api.schedule_object import PREFIX, SCHEDULE, TOGGLED, schedule_json, zone_of
from endpoints import channels
from endpoints import job_fields as jf
from endpoints.models import Endpoint
from runs import verbs

TAG = "Schedules (workflows)"

# Seed 002's fields that are job fields (endpoints/job_fields.FIELDS), in its camelCase, in the
# order the request lists them: their request fields and the model fields they set come from the
# one declaration.
JOB_FIELDS = {
    "assertions": "assertions",
    "jitterSeconds": "jitter_seconds",
    "signingSecret": "signing_secret",
    "signingSecretNext": "signing_secret_next",
    "notifyUrls": "notify_urls",
    "notifyAfterFailures": "notify_after_failures",
    "flowKey": "flow_key",
    "flowParallelism": "flow_parallelism",
    "flowRate": "flow_rate",
}
# Seed 002's own bounds, beyond the model's.
BOUNDS = {
    "notifyUrls": {
        "child": StrictCharField(max_length=channels.MAX_URL_LENGTH),
        "max_length": channels.MAX_URLS,
    },
}
# Endpoint field → seed 002 field, for validation errors.
NAMES = {
    "cron_expression": "cronExpression",
    "payload": "inputData",
    "enabled": "enabled",
    "paused_until": "until",
    "run_after": "runAfter",
    **{jf.BY_NAME[name].field: camel for camel, name in JOB_FIELDS.items()},
}
ERRORS = {code: ErrorSerializer for code in (400, 401, 403, 429)}
NOT_FOUND = {404: ErrorSerializer}


def get_schedule(schedule_id: str) -> Endpoint:
    """The schedule "sched-42", "sched-<uuid>" or "<uuid>" (its workflow's public id)."""
    public_id = schedule_id.removeprefix(PREFIX)
    if public_id == schedule_id and whole_number(schedule_id) is not None:
        public_id = ""  # a bare number is an endpoint's id, not a schedule's
    scheduled = Endpoint.objects.exclude(schedule_type=Endpoint.ScheduleType.NONE)
    endpoint = scheduled.by_public_id(public_id).first() if public_id else None
    if endpoint is None:
        raise exceptions.NotFound("Schedule not found")
    return endpoint


def apply_schedule(endpoint: Endpoint, values: dict[str, Any], *, by: str) -> None:
    """Change the endpoint's schedule as `values` (seed 002 fields) say, all or nothing."""
    was_enabled = endpoint.enabled
    if "cronExpression" in values:
        endpoint.schedule_type = Endpoint.ScheduleType.CRON
        endpoint.cron_expression = values["cronExpression"]
    if "timezone" in values:
        endpoint.timezone = values["timezone"]
    if "enabled" in values:
        endpoint.enabled = values["enabled"]
    if "inputData" in values:
        endpoint.payload = _payload(endpoint, values["inputData"])
    for camel, name in JOB_FIELDS.items():
        if camel in values:  # a masked secret or URL: Endpoint.clean keeps the stored one
            setattr(endpoint, jf.BY_NAME[name].field, values[camel])
    if "runAfter" in values:
        endpoint.run_after = run_after.stored(values["runAfter"])
    try:
        endpoint.full_clean()
    except ValidationError as exc:
        raise InvalidInput(django_details(exc, NAMES)) from None
    with transaction.atomic():
        verbs.save(endpoint, by=by, was_enabled=was_enabled)


def _payload(endpoint: Endpoint, items: list[dict[str, Any]]) -> dict[str, Any]:
    """The payload with the input item's keys set on it: the input never erases the rest."""
    if len(items) > 1:
        raise InvalidInput({"inputData": "A workflow takes one input item per run."})
    given = items[0]["json"] if items else {}
    current = endpoint.payload if isinstance(endpoint.payload, dict) else {}
    return {**current, **given}


# --- the schema ---


@extend_schema_field(
    {"oneOf": [{"type": "string", "format": "uuid"}, {"type": "string"}, {"type": "integer"}]}
)
class WorkflowIdField(serializers.Field):
    """A workflow's uuid (or its old numeric id, as a number or a string): the Endpoint."""

    def to_internal_value(self, data: Any) -> Endpoint:
        if isinstance(data, bool) or not isinstance(data, int | str):
            raise serializers.ValidationError(
                'Must be a workflow id, e.g. "550e8400-e29b-41d4-a716-446655440000".'
            )
        endpoint = Endpoint.objects.by_public_id(data).first()
        if endpoint is None:
            raise serializers.ValidationError("No workflow has this id.")
        return endpoint


class InputItem(StrictSerializer):
    json = JSONObjectField()


ScheduleRequest = type(
    "ScheduleRequest",
    (StrictSerializer,),
    {
        "__module__": __name__,
        "workflowId": WorkflowIdField(
            help_text="The workflow's uuid (its old numeric id works too)"
        ),
        "cronExpression": StrictCharField(max_length=200),
        "timezone": StrictCharField(required=False, max_length=64, help_text="IANA time zone"),
        "enabled": StrictBooleanField(required=False),
        "inputData": InputItem(
            many=True,
            required=False,
            help_text="The input of each run, one item: its keys are set on a handler's payload "
            "(the workflow's other keys are kept); an HTTP workflow's templates read it as "
            "{{ input.KEY }}.",
        ),
        **{
            camel: strict_field(jf.BY_NAME[name], **BOUNDS.get(camel, {}))
            for camel, name in JOB_FIELDS.items()
        },
        "runAfter": run_after.request_field(),
    },
)


class ScheduleList(serializers.Serializer):
    data = SCHEDULE.schema(many=True)
    total = serializers.IntegerField()


class DisableRequest(StrictSerializer):
    reason = StrictCharField(required=False, allow_blank=True, max_length=300)
    until = InstantField(
        required=False, allow_null=True, help_text="Resume by itself at this instant."
    )


# --- the routes ---


class SchedulesView(ApiView):
    required_perms = {"GET": perms.VIEW, "POST": perms.CHANGE}

    @extend_schema(
        tags=[TAG],
        operation_id="listSchedules",
        summary="List schedules",
        parameters=[
            OpenApiParameter("workflowId", str, description="Filter by workflow"),
            OpenApiParameter("enabled", bool, description="Filter by enabled status"),
            OpenApiParameter("limit", OpenApiTypes.INT, description="At most this many"),
            OpenApiParameter("offset", OpenApiTypes.INT, description="Skip this many first"),
        ],
        responses={200: ScheduleList, **ERRORS},
    )
    def get(self, request):
        params = request.query_params
        schedules = Endpoint.objects.exclude(schedule_type=Endpoint.ScheduleType.NONE)
        workflow = params.get("workflowId")
        if workflow is not None:
            schedules = schedules.filter(
                pk__in=Endpoint.objects.by_public_id(workflow).values("pk")
            )
        enabled = query_bool(params, "enabled")
        if enabled is not None:
            schedules = schedules.filter(enabled=enabled)
        offset = query_int(params, "offset", 0, low=0)
        limit = query_int(params, "limit", 0)
        page = schedules.order_by("id")[offset : offset + limit if limit else None]
        return Response({"data": [schedule_json(e) for e in page], "total": schedules.count()})

    @extend_schema(
        tags=[TAG],
        operation_id="createSchedule",
        summary="Create a schedule",
        request=ScheduleRequest,
        responses={201: SCHEDULE.schema, 409: ErrorSerializer, **ERRORS},
    )
    def post(self, request):
        given = ScheduleRequest(data=body_of(request))
        given.is_valid(raise_exception=True)
        values = {"enabled": True, **given.validated_data}
        endpoint = values.pop("workflowId")
        if endpoint.schedule_type != Endpoint.ScheduleType.NONE:
            raise Conflict("Schedule already exists for this workflow")
        apply_schedule(endpoint, values, by=request.user.get_username())
        return Response(schedule_json(endpoint), status=201)


class ScheduleView(ApiView):
    required_perms = {"GET": perms.VIEW, "PUT": perms.CHANGE, "DELETE": perms.CHANGE}

    @extend_schema(
        tags=[TAG],
        operation_id="getSchedule",
        summary="Get a schedule",
        responses={200: SCHEDULE.schema, **NOT_FOUND, **ERRORS},
    )
    def get(self, request, schedule_id: str):
        return Response(schedule_json(get_schedule(schedule_id)))

    @extend_schema(
        tags=[TAG],
        operation_id="updateSchedule",
        summary="Update a schedule",
        request=ScheduleRequest(partial=True),
        description="Only the fields given change. `workflowId`, if given, must be the "
        "schedule's own.",
        responses={200: SCHEDULE.schema, **NOT_FOUND, **ERRORS},
    )
    def put(self, request, schedule_id: str):
        endpoint = get_schedule(schedule_id)
        given = ScheduleRequest(data=body_of(request), partial=True)
        given.is_valid(raise_exception=True)
        values = dict(given.validated_data)
        if values.pop("workflowId", endpoint).pk != endpoint.pk:
            raise InvalidInput({"workflowId": "A schedule cannot move to another workflow."})
        apply_schedule(endpoint, values, by=request.user.get_username())
        return Response(schedule_json(endpoint))

    @extend_schema(
        tags=[TAG],
        operation_id="deleteSchedule",
        summary="Delete a schedule",
        description="The workflow stays, manual-only.",
        responses={204: None, **NOT_FOUND, **ERRORS},
    )
    def delete(self, request, schedule_id: str):
        endpoint = get_schedule(schedule_id)
        endpoint.schedule_type = Endpoint.ScheduleType.NONE
        verbs.save(endpoint, by=request.user.get_username())
        return Response(status=204)


class ToggleView(ApiView):
    required_perms = {"POST": perms.TOGGLE}

    def toggle(self, request, schedule_id: str, enable: bool) -> Response:
        endpoint = get_schedule(schedule_id)
        if enable:
            verbs.enable(endpoint, by=request.user.get_username())
        else:
            given = DisableRequest(data=body_of(request))
            given.is_valid(raise_exception=True)
            by = request.user.get_username()
            reason = given.validated_data.get("reason", "")
            until = given.validated_data.get("until")
            try:
                verbs.disable(endpoint, by=by, reason=reason, until=until)
            except ValidationError as exc:
                raise InvalidInput(django_details(exc, NAMES)) from None
        return Response(TOGGLED(endpoint, zone_of(endpoint.timezone), schedule_id))


class EnableView(ToggleView):
    @extend_schema(
        operation_id="enableSchedule",
        tags=[TAG],
        summary="Enable a schedule",
        description="A schedule that is already enabled is left exactly as it is (its next "
        "run and failure streak included).",
        request=None,
        responses={200: TOGGLED.schema, **NOT_FOUND, **ERRORS},
    )
    def post(self, request, schedule_id: str):
        return self.toggle(request, schedule_id, True)


class DisableView(ToggleView):
    @extend_schema(
        operation_id="disableSchedule",
        tags=[TAG],
        summary="Disable a schedule",
        description="Optionally with a `reason` (shown wherever the schedule is) and `until`, "
        "an instant in the future at which it resumes by itself.",
        request=DisableRequest,
        responses={200: TOGGLED.schema, **NOT_FOUND, **ERRORS},
    )
    def post(self, request, schedule_id: str):
        return self.toggle(request, schedule_id, False)
