"""The Schedules API's objects (seed 002 and our extensions): `SCHEDULE`, a schedule as every
answer shows it (`SCHEDULE(endpoint, zone)`, schema `SCHEDULE.schema`), and `TOGGLED`, what
enable and disable answer. Times are written in the schedule's own zone, as the seed does."""

from __future__ import annotations

from typing import Any

from django.utils import timezone
from rest_framework import serializers

from api import run_after
from api.fields import iso
from api.representation import SKIP, Key, Representation
from endpoints.models import Endpoint
from endpoints.timetable import zone_of

PREFIX = "sched-"


def input_data(endpoint: Endpoint) -> list[dict[str, Any]]:
    return [{"json": endpoint.masked_payload}] if endpoint.payload else []


def _heartbeat(value):
    """A heartbeat's key (its schedule is when pings are expected; nextRun the one it waits
    for): left out for anything else."""
    return lambda endpoint, zone: value(endpoint, zone) if endpoint.is_heartbeat else SKIP


def _ping_url(endpoint: Endpoint) -> str:
    from runs.heartbeats import ping_url

    return ping_url(endpoint)


def _pause_reason(endpoint: Endpoint, zone) -> str | None:
    return (endpoint.disabled_reason or None) if not endpoint.enabled else None


PAUSE = {
    "pausedUntil": Key(
        serializers.DateTimeField(
            allow_null=True, help_text="A paused schedule resumes by itself at this time."
        ),
        lambda e, zone: iso(e.paused_until, zone),
    ),
    "pausedBy": Key(serializers.CharField(allow_null=True), lambda e, zone: e.paused_by or None),
    "pauseReason": Key(serializers.CharField(allow_null=True), _pause_reason),
    "pauseDescription": Key(
        serializers.CharField(
            allow_null=True, help_text="'Paused until 2026-12-01 09:00 EST by alice: maintenance'"
        ),
        lambda e, zone: e.pause_description or None,
    ),
}
SCHEDULE = Representation(
    "Schedule",
    {
        "id": Key(serializers.CharField(), lambda e, zone: f"{PREFIX}{e.pk}"),
        "workflowId": Key(serializers.UUIDField(), lambda e, zone: str(e.uuid)),
        "workflowName": Key(serializers.CharField(), lambda e, zone: e.name),
        "cronExpression": Key(
            serializers.CharField(allow_null=True),
            lambda e, zone: (
                e.cron_expression if e.schedule_type == Endpoint.ScheduleType.CRON else None
            ),
        ),
        "timezone": Key(serializers.CharField(), lambda e, zone: e.timezone),
        "enabled": Key(serializers.BooleanField(), lambda e, zone: e.enabled),
        "inputData": Key(
            serializers.ListField(child=serializers.DictField()),
            lambda e, zone: input_data(e),
        ),
        "nextRun": Key(
            serializers.DateTimeField(allow_null=True), lambda e, zone: iso(e.upcoming_at, zone)
        ),
        "lastRun": Key(
            serializers.DateTimeField(allow_null=True), lambda e, zone: iso(e.last_run_at, zone)
        ),
        "lastStatus": Key(
            serializers.CharField(allow_null=True), lambda e, zone: e.last_status or None
        ),
        "runCount": Key(serializers.IntegerField(), lambda e, zone: e.run_count),
        "successCount": Key(serializers.IntegerField(), lambda e, zone: e.success_count),
        "failureCount": Key(serializers.IntegerField(), lambda e, zone: e.failure_count),
        "createdAt": Key(serializers.DateTimeField(), lambda e, zone: iso(e.created_at)),
        "updatedAt": Key(serializers.DateTimeField(), lambda e, zone: iso(e.updated_at)),
        "scheduleType": Key(
            serializers.ChoiceField(Endpoint.ScheduleType.choices),
            lambda e, zone: e.schedule_type,
        ),
        "description": Key(
            serializers.CharField(help_text="The schedule in words"),
            lambda e, zone: e.schedule_description,
        ),
        "jitterSeconds": Key(serializers.IntegerField(), lambda e, zone: e.jitter_seconds),
        "flowKey": Key(
            serializers.CharField(help_text="Its flow key ('' for none)."),
            lambda e, zone: e.flow_key,
        ),
        "flowParallelism": Key(
            serializers.IntegerField(allow_null=True), lambda e, zone: e.flow_parallelism
        ),
        "flowRate": Key(
            serializers.CharField(help_text='e.g. "10/s"; "" for none.'),
            lambda e, zone: e.flow_rate,
        ),
        "assertions": Key(
            serializers.ListField(
                child=serializers.DictField(),
                help_text="Checks the response must pass: source, property, comparison, target.",
            ),
            lambda e, zone: e.assertions or [],
        ),
        "signingEnabled": Key(
            serializers.BooleanField(help_text="Requests are signed."),
            lambda e, zone: bool(e.signing_secret),
        ),
        "signingNextKeySet": Key(
            serializers.BooleanField(help_text="A next signing key is set."),
            lambda e, zone: bool(e.signing_secret_next),
        ),
        "notifyUrls": Key(
            serializers.ListField(
                child=serializers.CharField(), help_text="Apprise URLs, secrets masked."
            ),
            lambda e, zone: e.masked_notify_urls,
        ),
        "notifyAfterFailures": Key(
            serializers.IntegerField(), lambda e, zone: e.notify_after_failures
        ),
        "runAfter": Key(run_after.schema_field(), lambda e, zone: run_after.shown(e)),
        **PAUSE,
        "kind": Key(
            serializers.ChoiceField(
                Endpoint.Kind.choices,
                help_text="`heartbeat`: pinged by its job (nextRun: expected).",
            ),
            lambda e, zone: e.kind,
        ),
        "graceSeconds": Key(
            serializers.IntegerField(required=False), _heartbeat(lambda e, zone: e.grace_seconds)
        ),
        "pingUrl": Key(
            serializers.CharField(required=False), _heartbeat(lambda e, zone: _ping_url(e))
        ),
        "lastPingAt": Key(
            serializers.DateTimeField(required=False, allow_null=True),
            _heartbeat(lambda e, zone: iso(e.last_ping_at, zone)),
        ),
        "late": Key(
            serializers.BooleanField(required=False),
            _heartbeat(lambda e, zone: e.is_late(timezone.now())),
        ),
    },
)
TOGGLED = Representation(
    "Toggled",
    {
        "id": Key(serializers.CharField(), lambda e, zone, schedule_id: schedule_id),
        "enabled": Key(serializers.BooleanField(), lambda e, zone, schedule_id: e.enabled),
        "nextRun": Key(
            serializers.DateTimeField(allow_null=True),
            lambda e, zone, schedule_id: iso(e.upcoming_at, zone),
        ),
        **{
            name: Key(key.field, lambda e, zone, schedule_id, value=key.value: value(e, zone))
            for name, key in PAUSE.items()
        },
    },
)


def schedule_json(endpoint: Endpoint) -> dict[str, Any]:
    return SCHEDULE(endpoint, zone_of(endpoint.timezone))
