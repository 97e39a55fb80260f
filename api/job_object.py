"""The Nightly Scheduler job object (seed 001 and our extensions), made from the one job field
declaration (endpoints/job_fields.FIELDS): `JobRequest`, the schema of what a client sends, and
`JOB`, the representation every job answer shows (`JOB(endpoint)`, schema `JOB.schema`)."""

from __future__ import annotations

from typing import Any

from django.db.models import PositiveIntegerField
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from api.fields import JSONObjectField, StrictCharField, StrictIntegerField, iso
from api.representation import SKIP, Key, Representation
from endpoints import job_fields as jf
from endpoints.jobs import applies
from endpoints.models import Endpoint


@extend_schema_field({"oneOf": [{"type": "string"}, {"type": "object"}, {"type": "array"}]})
class BodyField(serializers.JSONField):
    pass


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "integer"},
            {"type": "array", "items": {"type": "integer"}},
        ]
    }
)
class ExpectedStatusField(serializers.JSONField):
    pass


def schema_field(field: jf.JobField, *, request: bool, **options: Any) -> serializers.Field:
    """The serializer field that documents a job field, as sent (request) or as shown."""
    options = {"allow_null": field.nullable, "help_text": field.help or None, **options}
    model = Endpoint._meta.get_field(field.field)
    kind = field.schema
    if kind == jf.CHOICE:
        return serializers.ChoiceField(model.choices, **options)
    if kind in (jf.BODY, jf.STATUS_SPEC) and request:
        return (BodyField if kind == jf.BODY else ExpectedStatusField)(**options)
    if kind in (jf.STRING, jf.BODY, jf.STATUS_SPEC):
        if request and model.max_length:
            options["max_length"] = model.max_length
        return serializers.CharField(allow_blank=True, **options)
    if kind == jf.OBJECT:
        child = serializers.CharField(allow_blank=not request) if field.name == "headers" else None
        return serializers.DictField(**({"child": child} if child else {}), **options)
    if kind == jf.NAMES:
        return serializers.ListField(child=serializers.CharField(), **options)
    if kind == jf.OBJECTS:
        return serializers.ListField(child=serializers.DictField(), **options)
    simple = {
        jf.INTEGER: serializers.IntegerField,
        jf.NUMBER: serializers.FloatField,
        jf.BOOLEAN: serializers.BooleanField,
        jf.INSTANT: serializers.DateTimeField,
    }
    return simple[kind](**options)


# A text field without a bound of its own (an encrypted key): longer than any value it accepts.
TEXT_LIMIT = 500


def strict_field(field: jf.JobField, **options: Any) -> serializers.Field:
    """A job field as a contract's request takes it, optional: strict JSON types (no "5" for 5)
    and the bounds of the model field or the field's conversion; `options` add a contract's."""
    model = Endpoint._meta.get_field(field.field)
    options = {
        "required": False, "help_text": field.help or None, "write_only": field.secret, **options,
    }  # fmt: skip
    if field.nullable:
        options["allow_null"] = True
    if field.schema == jf.STRING:
        options.setdefault("max_length", model.max_length or TEXT_LIMIT)
        return StrictCharField(allow_blank=True, **options)
    if field.schema == jf.INTEGER:
        low = getattr(field.convert, "low", 0 if isinstance(model, PositiveIntegerField) else None)
        return StrictIntegerField(min_value=low, **options)
    if field.schema == jf.NAMES:
        return serializers.ListField(**{"child": StrictCharField(), **options})
    if field.schema == jf.OBJECTS:
        return serializers.ListField(**{"child": JSONObjectField(), **options})
    raise ValueError(f"No strict request field for {field.name} ({field.schema}) yet.")


JobRequest = type(
    "JobRequest",
    (serializers.Serializer,),
    {
        "__doc__": "A job: `handler` (a registered Python handler, with `payload`) or an HTTP "
        "target (`url`, `method`, `headers`, `body`, `expected_status`…). One of "
        "`cron_expression`, `interval_seconds`, `run_at` schedules it; none means manual only.",
        "__module__": __name__,
        **{
            field.name: schema_field(
                field, request=True, required=field.name == "job_name", write_only=field.secret
            )
            for field in jf.FIELDS
        },
    },
)


def _declared(field: jf.JobField) -> Key:
    """A job field as the job object shows it (exportjobs' value), where it applies."""
    always = field.group in (jf.COMMON, jf.POLICY) and not field.only_when_set

    def value(endpoint: Endpoint) -> Any:
        return field.export(endpoint) if applies(field, endpoint) else SKIP

    return Key(schema_field(field, request=False, required=always), value)


def _key(field: serializers.Field, value) -> Key:
    return Key(field, value)


# Shown beside the job fields; written once here, for every job answer.
_HEAD = {
    "job_name": _key(serializers.CharField(), lambda e: e.name),
    "uuid": _key(
        serializers.UUIDField(help_text="The public id: seed 002's workflowId, seed 003's id"),
        lambda e: str(e.uuid),
    ),
    "cron_expression": _key(
        serializers.CharField(allow_null=True),
        lambda e: e.cron_expression if e.schedule_type == Endpoint.ScheduleType.CRON else None,
    ),
    "is_active": _key(serializers.BooleanField(), lambda e: e.enabled),
    "last_run_at": _key(serializers.DateTimeField(allow_null=True), lambda e: iso(e.last_run_at)),
    "last_run_status": _key(
        serializers.CharField(allow_null=True), lambda e: e.last_status or None
    ),
    "next_run_at": _key(serializers.DateTimeField(allow_null=True), lambda e: iso(e.upcoming_at)),
    "created_at": _key(serializers.DateTimeField(), lambda e: iso(e.created_at)),
    "disabled_reason": _key(
        serializers.CharField(
            allow_null=True, help_text="Why the job is off (paused, auto-disabled, one-time done)."
        ),
        lambda e: e.disabled_reason or None,
    ),
}
_TAIL = {
    "jitter_seconds": _key(
        serializers.IntegerField(help_text=jf.BY_NAME["jitter_seconds"].help),
        lambda e: e.jitter_seconds,
    ),
    "signing_enabled": _key(
        serializers.BooleanField(help_text="Requests are signed."), lambda e: bool(e.signing_secret)
    ),
    "signing_next_key_set": _key(
        serializers.BooleanField(
            help_text="A next signing key is set: requests are signed with both."
        ),
        lambda e: bool(e.signing_secret_next),
    ),
    "paused_until": _key(
        serializers.DateTimeField(
            allow_null=True, help_text="A paused job resumes by itself at this time."
        ),
        lambda e: iso(e.paused_until),
    ),
    "paused_by": _key(serializers.CharField(allow_null=True), lambda e: e.paused_by or None),
    "pause_description": _key(
        serializers.CharField(
            allow_null=True, help_text="'Paused until … by alice: vendor maintenance'"
        ),
        lambda e: e.pause_description or None,
    ),
    "kind": _key(serializers.ChoiceField(Endpoint.Kind.choices), lambda e: e.kind),
    "ping_url": _key(
        serializers.CharField(required=False, help_text="A heartbeat's ping URL."),
        lambda e: _ping_url(e) if e.is_heartbeat else SKIP,
    ),
    "last_ping_at": _key(
        serializers.DateTimeField(required=False, allow_null=True),
        lambda e: iso(e.last_ping_at) if e.is_heartbeat else SKIP,
    ),
    "late": _key(
        serializers.BooleanField(
            required=False, help_text="A heartbeat past its expected time, within its grace."
        ),
        lambda e: e.is_late(timezone.now()) if e.is_heartbeat else SKIP,
    ),
}


def _ping_url(endpoint: Endpoint) -> str:
    from runs.heartbeats import ping_url

    return ping_url(endpoint)


JOB = Representation(
    "Job",
    {
        **_HEAD,
        **{
            field.name: _declared(field)
            for field in jf.FIELDS
            if field.name not in _HEAD and field.name not in _TAIL and not field.secret
        },
        **_TAIL,
    },
)
