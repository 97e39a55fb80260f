"""The Scheduled Actions API's action (seed 003 and our extensions): `ACTION`, an action as every
answer shows it (`ACTION(endpoint, its latest run)`, schema `ACTION.schema`)."""

from __future__ import annotations

from rest_framework import serializers

from api import run_after
from api.fields import iso
from api.representation import Key, Representation
from endpoints.timetable import format_interval
from runs import actions
from runs.models import Log


def _scheduled_at(endpoint, latest: Log | None):
    """The slot the status is about: the latest run's, or the one to come."""
    if latest is not None:
        return latest.scheduled_for or latest.due_at
    return endpoint.next_run_at or endpoint.run_at or endpoint.starts_at


def _attempts(endpoint, latest: Log | None) -> int:
    if latest is None:
        return 0
    return latest.attempt if latest.started_at else latest.attempt - 1


def _error_message(endpoint, latest: Log | None) -> str | None:
    if latest is None:
        return endpoint.disabled_reason or None if not endpoint.enabled else None
    return latest.error_message or latest.reason or None


def _updated_at(endpoint, latest: Log | None) -> str | None:
    moments = [endpoint.updated_at]
    if latest is not None:
        moments += [latest.created_at, latest.started_at, latest.finished_at]
    return iso(max(moment for moment in moments if moment is not None))


def _of_latest(value):
    return lambda endpoint, latest: value(latest) if latest is not None else None


ACTION = Representation(
    "Action",
    {
        "id": Key(serializers.UUIDField(), lambda e, latest: str(e.uuid)),
        "actionType": Key(serializers.CharField(), lambda e, latest: e.handler),
        "status": Key(serializers.ChoiceField(actions.STATUSES), actions.status_of),
        "payload": Key(serializers.DictField(), lambda e, latest: e.masked_payload),
        "teamId": Key(
            serializers.CharField(allow_null=True, help_text="Team scope, as given"),
            lambda e, latest: e.team_id or None,
        ),
        "runAfter": Key(run_after.schema_field(), lambda e, latest: run_after.shown(e)),
        "scheduledAt": Key(
            serializers.DateTimeField(allow_null=True),
            lambda e, latest: iso(_scheduled_at(e, latest)),
        ),
        "startedAt": Key(
            serializers.DateTimeField(allow_null=True), _of_latest(lambda log: iso(log.started_at))
        ),
        "completedAt": Key(
            serializers.DateTimeField(allow_null=True), _of_latest(lambda log: iso(log.finished_at))
        ),
        "errorMessage": Key(serializers.CharField(allow_null=True), _error_message),
        "attempts": Key(serializers.IntegerField(), _attempts),
        "retryCount": Key(
            serializers.IntegerField(), lambda e, latest: latest.attempt - 1 if latest else 0
        ),
        "recurringInterval": Key(
            serializers.CharField(allow_null=True),
            lambda e, latest: format_interval(e.interval_seconds, named=True) or None,
        ),
        "nextRunAt": Key(
            serializers.DateTimeField(allow_null=True), lambda e, latest: iso(e.next_run_at)
        ),
        "createdAt": Key(serializers.DateTimeField(), lambda e, latest: iso(e.created_at)),
        "updatedAt": Key(serializers.DateTimeField(), _updated_at),
        "idempotencyKey": Key(
            serializers.CharField(
                allow_null=True,
                help_text="The Idempotency-Key of the latest run (ours, beyond the seed)",
            ),
            _of_latest(lambda log: log.idempotency_key or None),
        ),
    },
)
