"""Seed 003, "Scheduled Actions" DevTools: /api/v1/devtools/scheduled-actions.

Every answer is wrapped as {"success": true, "data": …} (errors: {"success": false, "error", …}).
An action is a handler endpoint with a one-time or interval schedule (runs/actions.py); its id is
the endpoint's public uuid (the old numeric id is accepted too). `teamId` is a label the caller
chooses (seed 003's "Team scope"): stored, shown, and a filter of the list; it grants nothing.
"""

from __future__ import annotations

import math
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from api import permissions as perms
from api import run_after
from api.action_object import ACTION
from api.base import ApiView
from api.errors import ActionErrorSerializer, Conflict, InvalidInput, django_details
from api.fields import (
    InstantField,
    JSONObjectField,
    StrictCharField,
    StrictSerializer,
    body_of,
    query_int,
)
from endpoints.models import Endpoint
from endpoints.registry import registered_names
from runs import actions, verbs

TAG = "Scheduled actions"
PAGE_SIZE, MAX_PAGE_SIZE = 20, 100
# Python API parameter → seed 003 field, for validation errors.
NAMES = {
    "action_type": "actionType",
    "scheduled_at": "scheduledAt",
    "interval": "recurringInterval",
    "run_after": "runAfter",
}
ERRORS = {code: ActionErrorSerializer for code in (400, 401, 403, 429)}
NOT_FOUND = {404: ActionErrorSerializer}


def get_action(action_id: str):
    """The action whose uuid (or old numeric id) is `action_id`."""
    endpoint = actions.actions().by_public_id(action_id).first()
    if endpoint is None:
        raise exceptions.NotFound("Action not found")
    return endpoint


# --- the schema ---


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "integer"}], "nullable": True})
class IntervalField(serializers.Field):
    def to_internal_value(self, data: Any) -> str | int:
        if isinstance(data, bool) or not isinstance(data, str | int):
            raise serializers.ValidationError("Must be 'hourly', 'daily', '15m'… or seconds.")
        return data


class ActionRequest(StrictSerializer):
    actionType = StrictCharField(max_length=200, help_text="A registered action type (handler)")
    payload = JSONObjectField(help_text="Action-specific data, given to the handler")
    teamId = StrictCharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=Endpoint._meta.get_field("team_id").max_length,
        help_text="Team scope: stored, shown, and a filter of the list",
    )
    scheduledAt = InstantField(required=False, allow_null=True, help_text="Default: now")
    recurringInterval = IntervalField(required=False, allow_null=True)
    runAfter = run_after.request_field()


class ActionPagination(serializers.Serializer):
    total = serializers.IntegerField()
    page = serializers.IntegerField()
    limit = serializers.IntegerField()
    totalPages = serializers.IntegerField()


class ActionMeta(serializers.Serializer):
    registeredActionTypes = serializers.ListField(child=serializers.CharField())


class ActionPage(serializers.Serializer):
    actions = ACTION.schema(many=True)
    pagination = ActionPagination()
    meta = ActionMeta()


class Created(serializers.Serializer):
    id = serializers.UUIDField()
    actionType = serializers.CharField()
    status = serializers.ChoiceField(actions.STATUSES)


class Retried(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.ChoiceField(actions.STATUSES)
    retryCount = serializers.IntegerField()


def envelope(name: str, data=None, message: bool = False) -> type[serializers.Serializer]:
    fields: dict[str, serializers.Field] = {"success": serializers.BooleanField()}
    if message:
        fields["message"] = serializers.CharField()
    if data is not None:
        fields["data"] = data()
    return type(name, (serializers.Serializer,), fields)


# --- the routes ---


class ActionsView(ApiView):
    required_perms = {"GET": perms.VIEW, "POST": perms.ADD}
    success_envelope = True

    @extend_schema(
        tags=[TAG],
        operation_id="listScheduledActions",
        summary="List scheduled actions",
        parameters=[
            OpenApiParameter("status", str, enum=actions.STATUSES, description="Filter by status"),
            OpenApiParameter("action_type", str, description="Filter by action type"),
            OpenApiParameter("teamId", str, description="Filter by team (also as team_id)"),
            OpenApiParameter("page", OpenApiTypes.INT, description="Page number, from 1"),
            OpenApiParameter(
                "limit", OpenApiTypes.INT, description="Per page (default 20, max 100)"
            ),
        ],
        responses={200: envelope("ActionListResponse", ActionPage), **ERRORS},
    )
    def get(self, request):
        params = request.query_params
        page = query_int(params, "page", 1)
        limit = query_int(params, "limit", PAGE_SIZE, high=MAX_PAGE_SIZE)
        found = actions.with_latest_run(actions.actions())
        status = params.get("status")
        if status:
            if status not in actions.STATUSES:
                raise InvalidInput({"status": f"Must be one of {', '.join(actions.STATUSES)}."})
            found = actions.filter_status(found, status)
        if params.get("action_type"):
            found = found.filter(handler=params["action_type"])
        team = params.get("teamId") or params.get("team_id")
        if team:
            found = found.filter(team_id=team)
        total = found.count()
        shown = list(found.order_by("-id")[(page - 1) * limit : page * limit])
        latest = actions.latest_runs(shown)
        data = {
            "actions": [ACTION(endpoint, latest.get(endpoint.pk)) for endpoint in shown],
            "pagination": {
                "total": total,
                "page": page,
                "limit": limit,
                "totalPages": math.ceil(total / limit),
            },
            "meta": {"registeredActionTypes": registered_names()},
        }
        return Response({"success": True, "data": data})

    @extend_schema(
        tags=[TAG],
        operation_id="createScheduledAction",
        summary="Create a scheduled action (one-time, or recurring)",
        request=ActionRequest,
        responses={201: envelope("ActionCreatedResponse", Created), **ERRORS},
    )
    def post(self, request):
        given = ActionRequest(data=body_of(request))
        given.is_valid(raise_exception=True)
        values = given.validated_data
        try:
            with transaction.atomic():
                action_id = actions.schedule_action(
                    values["actionType"],
                    values["payload"],
                    values.get("scheduledAt"),
                    recurring_interval=values.get("recurringInterval"),
                    created_by=request.user,
                )
                endpoint = actions.find_action(action_id)
                if values.get("teamId"):
                    endpoint.team_id = values["teamId"]
                    endpoint.save(update_fields=["team_id"])
                if values.get("runAfter"):
                    endpoint.run_after = run_after.stored(values["runAfter"])
                    endpoint.full_clean()
                    endpoint.save(update_fields=["run_after"])
        except ValidationError as exc:
            raise InvalidInput(django_details(exc, NAMES)) from None
        data = {"id": str(endpoint.uuid), "actionType": endpoint.handler, "status": "pending"}
        return Response({"success": True, "data": data}, status=201)


class ActionView(ApiView):
    required_perms = {"GET": perms.VIEW, "DELETE": perms.TOGGLE}
    success_envelope = True

    @extend_schema(
        tags=[TAG],
        operation_id="getScheduledAction",
        summary="Get a scheduled action",
        responses={200: envelope("ActionResponse", ACTION.schema), **NOT_FOUND, **ERRORS},
    )
    def get(self, request, action_id: str):
        endpoint = get_action(action_id)
        data = ACTION(endpoint, actions.latest_run(endpoint))
        return Response({"success": True, "data": data})

    @extend_schema(
        tags=[TAG],
        operation_id="cancelScheduledAction",
        summary="Cancel a pending action",
        description="Cancels its waiting run and stops it from running again; 409 when it has "
        "nothing left to run. The action stays listed, with status `cancelled`.",
        responses={
            200: envelope("ActionCancelledResponse", message=True),
            409: ActionErrorSerializer,
            **NOT_FOUND,
            **ERRORS,
        },
    )
    def delete(self, request, action_id: str):
        endpoint = get_action(action_id)
        if not actions.cancel_scheduled_action(endpoint.pk):
            raise Conflict("Only a pending action can be cancelled")
        return Response({"success": True, "message": "Action cancelled"})


class RetryView(ApiView):
    required_perms = {"POST": perms.RETRY}
    success_envelope = True

    @extend_schema(
        tags=[TAG],
        operation_id="retryScheduledAction",
        summary="Retry a failed action",
        request=None,
        responses={
            200: envelope("ActionRetriedResponse", Retried, message=True),
            409: ActionErrorSerializer,
            **NOT_FOUND,
            **ERRORS,
        },
    )
    def post(self, request, action_id: str):
        endpoint = get_action(action_id)
        try:
            attempt = actions.retry_scheduled_action(endpoint.pk, by=request.user.get_username())
        except verbs.NotRetryable as exc:
            raise Conflict(str(exc)) from None
        data = {
            "id": str(endpoint.uuid),
            "status": actions.status_of(endpoint, attempt),
            "retryCount": attempt.attempt - 1,
        }
        return Response({"success": True, "message": "Action queued for retry", "data": data})
