"""The "job object" of job files and the REST API (seed 001 and its HTTP extensions) ↔ Endpoint.

    {"job_name": "nightly-report", "cron_expression": "0 2 * * *", "timezone": "Europe/Paris",
     "is_active": true, "url": "https://example.com/hook", "method": "POST",
     "headers": {"Authorization": "Bearer …"}, "body": {"full": true},
     "expected_status": "200-299,304", "timeout_seconds": 10, "max_attempts": 3}

A job object is the whole truth about the fields that apply to it: one left out takes its default
(so no cron_expression, interval_seconds or run_at means manual only). `handler` present makes a
handler job; `"kind": "heartbeat"` a heartbeat (a schedule and `grace_seconds`, nothing to call:
its job pings /ping/<uuid>); otherwise it is an HTTP job.

The policy fields (POLICY_FIELDS: retry backoff, overlap and missed-run policies, the window and
maximum number of runs, auto-disable, notifications) are optional: left out, a new job takes the
default and an existing one keeps its value (the job API takes them beside the job object).
exportjobs writes every one of them, so export → wipe → apply → export gives the same file.
"""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone

from calls.masking import MASK, mask_headers
from endpoints import channels, schedules
from endpoints.job_fields import (
    BY_NAME,
    COMMON,
    FIELDS,
    HANDLER,
    HEARTBEAT,
    HTTP,
    POLICY,
    SCHEDULE,
    SKIP,
    JobField,
)
from endpoints.models import Endpoint
from endpoints.registry import secret_keys_of
from endpoints.secrets import mask_payload

# Job field → Endpoint field, for the fields of a job's kind and schedule (job_fields.FIELDS).
JOB_FIELDS = {field.name: field.field for field in FIELDS if field.group != POLICY}
# Job field = Endpoint field; optional (see the module docstring).
POLICY_FIELDS = tuple(field.name for field in FIELDS if field.group == POLICY)
# Written as the mask on export; the mask on apply keeps the stored value.
SECRET_FIELDS = tuple(field.name for field in FIELDS if field.secret)
MODEL_TO_JOB = {model: job for job, model in JOB_FIELDS.items()}
HTTP_ONLY = tuple(field.name for field in FIELDS if field.group == HTTP)
HANDLER_ONLY = ("payload",)
HEARTBEAT_ONLY = tuple(field.name for field in FIELDS if field.group == HEARTBEAT)
SCHEDULE_FIELDS = {
    "cron_expression": Endpoint.ScheduleType.CRON,
    "interval_seconds": Endpoint.ScheduleType.INTERVAL,
    "run_at": Endpoint.ScheduleType.ONCE,
}
COMMON_FIELDS = tuple(
    field.name for field in FIELDS if field.group == COMMON and field.name != "kind"
)
GROUP_OF_KIND = {
    Endpoint.Kind.HTTP: HTTP,
    Endpoint.Kind.HANDLER: HANDLER,
    Endpoint.Kind.HEARTBEAT: HEARTBEAT,
}


def applies(field: JobField, endpoint: Endpoint) -> bool:
    """Whether a job object of this endpoint's kind and schedule has this field."""
    if field.group == SCHEDULE:
        return SCHEDULE_FIELDS[field.name] == endpoint.schedule_type
    return field.group in (COMMON, POLICY, GROUP_OF_KIND[endpoint.kind])


def endpoint_to_job(endpoint: Endpoint) -> dict[str, Any]:
    """The writable fields of an endpoint as a job object, secrets masked."""
    job = {}
    for field in FIELDS:
        if applies(field, endpoint) and (value := field.export(endpoint)) is not SKIP:
            job[field.name] = value
    return job


def apply_job(
    job: Any, existing: Endpoint | None = None, *, now: datetime | None = None
) -> tuple[Endpoint, dict[str, tuple[Any, Any]]]:
    """Build (from `existing`, which is left untouched) an unsaved, validated Endpoint.

    Returns it with the changes as {job field: (old, new)}, header values masked; for a new
    endpoint every field counts as changed. Raises ValidationError keyed by job field names.
    A secret left as the mask keeps the value stored on `existing` as the secret-audience rule
    allows (Endpoint.clean, endpoints.secrets). An active one-time
    job whose run_at is set (new, changed or turned on) at or before `now` is refused
    (schedules.one_time_problem); an unchanged one is left alone.
    """
    if not isinstance(job, dict):
        raise ValidationError({NON_FIELD_ERRORS: ["A job must be a JSON object."]})
    errors: dict[str, list[str]] = {}
    values = _model_values(job, errors)
    endpoint = copy.copy(existing) if existing is not None else Endpoint()
    for field, value in values.items():
        setattr(endpoint, field, value)
    try:
        endpoint.full_clean()
    except ValidationError as exc:
        for field, messages in exc.message_dict.items():
            # A value we could not even convert explains the model's complaint about it.
            errors.setdefault(MODEL_TO_JOB.get(field, field), list(messages))
    if "run_at" not in errors and sets_one_time_instant(existing, endpoint):
        if problem := schedules.one_time_problem(endpoint.run_at, now or timezone.now()):
            errors["run_at"] = [problem]
    if errors:
        raise ValidationError(errors)
    return endpoint, _changes(existing, endpoint, list(values))


def sets_one_time_instant(existing: Endpoint | None, endpoint) -> bool:
    """Whether this change makes `endpoint` (its enabled, schedule_type and run_at) wait for
    its run_at: an active one-time job, new, or whose instant changed, or turned on (a stored
    job's passed instant is history, not input). Job files and the dashboard form ask it."""
    if not endpoint.enabled or endpoint.schedule_type != Endpoint.ScheduleType.ONCE:
        return False
    if existing is None or existing._state.adding:
        return True
    return (
        not existing.enabled
        or existing.schedule_type != Endpoint.ScheduleType.ONCE
        or existing.run_at != endpoint.run_at
    )


def _model_values(job: dict[str, Any], errors: dict[str, list[str]]) -> dict[str, Any]:
    """The value of every Endpoint field that applies to this job: from `job`, or its default.

    Fields of the other kind (a handler job's url) or of another schedule type are not
    touched: they are inert, and resetting them would report changes nobody made.
    """
    for key in job:
        if key not in JOB_FIELDS and key not in POLICY_FIELDS:
            known = ", ".join((*JOB_FIELDS, *POLICY_FIELDS))
            errors[str(key)] = [f"Unknown field; the fields are {known}."]
    given = {key: value for key, value in job.items() if key in JOB_FIELDS and value is not None}
    kind = _kind(given.pop("kind", None), given, errors)
    is_handler = kind == Endpoint.Kind.HANDLER
    schedule_keys = [key for key in SCHEDULE_FIELDS if key in given]
    values = {
        "kind": kind,
        "schedule_type": SCHEDULE_FIELDS[schedule_keys[0]]
        if schedule_keys
        else Endpoint.ScheduleType.NONE,
    }
    kind_keys = {
        Endpoint.Kind.HANDLER: ("handler", *HANDLER_ONLY),
        Endpoint.Kind.HEARTBEAT: HEARTBEAT_ONLY,
    }.get(kind, HTTP_ONLY)
    for key in (*COMMON_FIELDS, *schedule_keys[:1], *kind_keys):
        values[JOB_FIELDS[key]] = _default(JOB_FIELDS[key])
    for key, value in given.items():
        if kind == Endpoint.Kind.HEARTBEAT and key in (*HTTP_ONLY, "handler", *HANDLER_ONLY):
            errors[key] = [f"A heartbeat is pinged by its job, not called: it takes no '{key}'."]
        elif kind != Endpoint.Kind.HEARTBEAT and key in HEARTBEAT_ONLY:
            errors[key] = [f'Only heartbeats take \'{key}\'; add "kind": "heartbeat".']
        elif is_handler and key in HTTP_ONLY:
            errors[key] = [f"Only HTTP jobs take '{key}'; this job runs a handler."]
        elif not is_handler and key in HANDLER_ONLY:
            errors[key] = [f"Only handler jobs take '{key}'; add 'handler' or remove '{key}'."]
        elif key in schedule_keys[1:]:
            errors[key] = ["Give only one of cron_expression, interval_seconds and run_at."]
        else:
            try:
                values[JOB_FIELDS[key]] = BY_NAME[key].to_model(value)
            except ValueError as exc:
                errors[key] = [str(exc)]
    for key in POLICY_FIELDS:
        if key not in job:
            continue  # kept as it is (see the module docstring)
        if job[key] is None and Endpoint._meta.get_field(key).null:
            values[key] = None
            continue
        try:
            values[key] = BY_NAME[key].to_model(job[key])
        except ValueError as exc:
            errors[key] = [str(exc)]
    return values


def _kind(given: Any, job: dict[str, Any], errors: dict[str, list[str]]) -> str:
    """The job's kind: as given, else a handler job if it names a handler, else HTTP."""
    if given is None:
        return Endpoint.Kind.HANDLER if "handler" in job else Endpoint.Kind.HTTP
    if given not in Endpoint.Kind.values:
        errors["kind"] = [f"Must be one of {', '.join(Endpoint.Kind.values)}."]
        return Endpoint.Kind.HANDLER if "handler" in job else Endpoint.Kind.HTTP
    return given


def _default(field: str) -> Any:
    return Endpoint._meta.get_field(field).get_default()


def _changes(
    existing: Endpoint | None, endpoint: Endpoint, fields: list[str]
) -> dict[str, tuple[Any, Any]]:
    order = ["kind", "schedule_type", *JOB_FIELDS.values(), *POLICY_FIELDS]
    changes = {}
    for field in sorted(fields, key=order.index):
        old = getattr(existing, field) if existing is not None else None
        new = getattr(endpoint, field)
        if existing is None or old != new:
            changes[MODEL_TO_JOB.get(field, field)] = (
                _shown(field, old, existing),
                _shown(field, new, endpoint),
            )
    return changes


def _shown(field: str, value: Any, endpoint: Endpoint | None) -> Any:
    if field in SECRET_FIELDS:
        return MASK if value else ""
    if field == "headers" and isinstance(value, dict) and endpoint is not None:
        return mask_headers(value, endpoint.secret_headers)
    if field == "payload" and endpoint is not None:
        return mask_payload(value, secret_keys_of(endpoint.handler))
    if field == "notify_urls" and isinstance(value, list):
        return channels.mask_urls(value)
    return value
