"""`GET /api/v1/scheduler/jobs/{job_name}/history`: a job's audit log (endpoints/audit.py), newest
first, as the endpoint page shows it: who, when, and each changed field old → new, secrets
masked."""

from __future__ import annotations

from typing import Any

from auditlog.models import LogEntry
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from api import permissions as perms
from api.base import ApiView
from api.errors import ErrorSerializer
from api.fields import iso, query_int
from api.scheduler_jobs import (
    ERRORS,
    MAX_PAGE_SIZE,
    PAGE_PARAMETERS,
    PAGE_SIZE,
    TAG,
    Pagination,
    get_job,
)
from endpoints import audit

ACTIONS = {
    LogEntry.Action.CREATE: "create",
    LogEntry.Action.UPDATE: "update",
    LogEntry.Action.DELETE: "delete",
}


def change_json(entry: LogEntry) -> dict[str, Any]:
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    changes = entry.changes_dict or {}
    return {
        "at": iso(entry.timestamp),
        "action": ACTIONS.get(entry.action, "update"),
        "who": audit.who(entry),
        "user": entry.actor.get_username() if entry.actor else None,
        "token": data.get("token"),
        "via": data.get("via") or None,
        "changes": {
            name: {"old": audit.shown(values[0]), "new": audit.shown(values[1])}
            for name, values in changes.items()
            if isinstance(values, list | tuple) and len(values) == 2
        },
    }


class FieldChange(serializers.Serializer):
    old = serializers.CharField(help_text="As stored before ('' when empty); secrets masked.")
    new = serializers.CharField(help_text="As stored after; secrets masked.")


class Change(serializers.Serializer):
    at = serializers.DateTimeField()
    action = serializers.ChoiceField(["create", "update", "delete"])
    who = serializers.CharField(help_text="'edith (dashboard)', 'ci (API token “deploy”)'…")
    user = serializers.CharField(allow_null=True)
    token = serializers.CharField(allow_null=True, help_text="The API token's name")
    via = serializers.CharField(
        allow_null=True, help_text="dashboard, admin, api, applyjobs, importcrontab"
    )
    changes = serializers.DictField(child=FieldChange(), help_text="Field name → old and new")


class ChangeList(serializers.Serializer):
    data = Change(many=True)
    pagination = Pagination()


class JobHistoryView(ApiView):
    required_perms = {"GET": perms.VIEW}

    @extend_schema(
        tags=[TAG],
        operation_id="getJobHistory",
        summary="Who changed a job, when, and what",
        description="Every create and change of the job from any door, newest first; secret "
        "values are never shown (nor stored).",
        parameters=PAGE_PARAMETERS,
        responses={200: ChangeList, 404: ErrorSerializer, **ERRORS},
    )
    def get(self, request, job_name: str):
        endpoint = get_job(job_name)
        page = query_int(request.query_params, "page", 1)
        limit = query_int(request.query_params, "limit", PAGE_SIZE, high=MAX_PAGE_SIZE)
        entries = audit.history(endpoint)
        start = (page - 1) * limit
        return Response(
            {
                "data": [change_json(entry) for entry in entries[start : start + limit]],
                "pagination": {"page": page, "limit": limit, "total": entries.count()},
            }
        )
