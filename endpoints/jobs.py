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
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from calls.masking import MASK, mask_headers
from endpoints import channels, schedules
from endpoints.models import Endpoint
from endpoints.registry import secret_keys_of
from endpoints.secrets import mask_payload

# Job field → Endpoint field, in the order an exported job lists them.
JOB_FIELDS = {
    "job_name": "name",
    "description": "description",
    "kind": "kind",
    "cron_expression": "cron_expression",
    "interval_seconds": "interval_seconds",
    "run_at": "run_at",
    "timezone": "timezone",
    "is_active": "enabled",
    "url": "url",
    "method": "method",
    "headers": "headers",
    "secret_headers": "secret_headers",
    "body": "body",
    "expected_status": "expected_status",
    "response_must_contain": "response_must_contain",
    "handler": "handler",
    "payload": "payload",
    "timeout_seconds": "timeout_seconds",
    "max_attempts": "max_attempts",
    "jitter_seconds": "jitter_seconds",
    "signing_secret": "signing_secret",
    "signing_secret_next": "signing_secret_next",
    "grace_seconds": "grace_seconds",
}
# Job field = Endpoint field; in the order an exported job lists them, after JOB_FIELDS.
POLICY_FIELDS = (
    "retry_backoff_seconds", "retry_backoff_max_seconds", "overlap_policy", "missed_policy",
    "catch_up_window_seconds", "starts_at", "ends_at", "max_runs", "auto_disable_after",
    "notify_emails", "notify_webhook_url", "notify_urls", "notify_on_failure",
    "notify_after_failures", "notify_on_recovery",
)  # fmt: skip
# Written as the mask on export; the mask on apply keeps the stored value.
SECRET_FIELDS = ("signing_secret", "signing_secret_next")
MODEL_TO_JOB = {model: job for job, model in JOB_FIELDS.items()}
HTTP_ONLY = (
    "url",
    "method",
    "headers",
    "secret_headers",
    "body",
    "expected_status",
    "response_must_contain",
    *SECRET_FIELDS,
)
HANDLER_ONLY = ("payload",)
HEARTBEAT_ONLY = ("grace_seconds",)
SCHEDULE_FIELDS = {
    "cron_expression": Endpoint.ScheduleType.CRON,
    "interval_seconds": Endpoint.ScheduleType.INTERVAL,
    "run_at": Endpoint.ScheduleType.ONCE,
}
COMMON_FIELDS = (
    "job_name",
    "description",
    "timezone",
    "is_active",
    "timeout_seconds",
    "max_attempts",
    "jitter_seconds",
)


def endpoint_to_job(endpoint: Endpoint) -> dict[str, Any]:
    """The writable fields of an endpoint as a job object, secret header values masked."""
    job: dict[str, Any] = {"job_name": endpoint.name, "description": endpoint.description}
    if endpoint.schedule_type == Endpoint.ScheduleType.CRON:
        job["cron_expression"] = endpoint.cron_expression
    elif endpoint.schedule_type == Endpoint.ScheduleType.INTERVAL:
        job["interval_seconds"] = endpoint.interval_seconds
    elif endpoint.schedule_type == Endpoint.ScheduleType.ONCE and endpoint.run_at:
        job["run_at"] = endpoint.run_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
    job["timezone"] = endpoint.timezone
    job["is_active"] = endpoint.enabled
    if endpoint.kind == Endpoint.Kind.HEARTBEAT:
        job["kind"] = endpoint.kind
        job["grace_seconds"] = endpoint.grace_seconds
    elif endpoint.kind == Endpoint.Kind.HANDLER:
        job["handler"] = endpoint.handler
        job["payload"] = endpoint.masked_payload
    else:
        job["url"] = endpoint.url
        job["method"] = endpoint.method
        job["headers"] = endpoint.masked_headers
        if endpoint.secret_headers:
            job["secret_headers"] = endpoint.secret_headers
        job["body"] = endpoint.body
        job["expected_status"] = endpoint.expected_status
        if endpoint.response_must_contain:
            job["response_must_contain"] = endpoint.response_must_contain
        for field in SECRET_FIELDS:
            if getattr(endpoint, field):
                job[field] = MASK
    timeout = endpoint.timeout_seconds
    job["timeout_seconds"] = int(timeout) if float(timeout).is_integer() else timeout
    job["max_attempts"] = endpoint.max_attempts
    if endpoint.jitter_seconds:
        job["jitter_seconds"] = endpoint.jitter_seconds
    for field in POLICY_FIELDS:
        job[field] = _exported(getattr(endpoint, field))
    job["notify_urls"] = endpoint.masked_notify_urls
    return job


def _exported(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


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
    for field in SECRET_FIELDS:
        if getattr(endpoint, field) == MASK:
            stored = getattr(existing, field, "") if existing is not None else ""
            if not stored:
                errors.setdefault(field, []).append(
                    f"'{field}' is masked ({MASK}) but has no stored value to keep; give it."
                )
            setattr(endpoint, field, stored)
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


def save_job(endpoint: Endpoint, changes: dict[str, tuple[Any, Any]], *, reason: str) -> None:
    """Save an endpoint built by apply_job; turning it on or off goes through set_enabled.

    set_enabled clears (or records) disabled_reason and forgives past failures, which a plain
    save() leaves alone since the run statistics are not an edit's to write.
    """
    endpoint.save()
    was_enabled = changes.get("is_active", (None, None))[0]
    if was_enabled is not None:
        endpoint.set_enabled(endpoint.enabled, now=timezone.now(), reason=reason)


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
                values[JOB_FIELDS[key]] = CONVERTERS.get(key, _string)(value)
            except ValueError as exc:
                errors[key] = [str(exc)]
    for key in POLICY_FIELDS:
        if key not in job:
            continue  # kept as it is (see the module docstring)
        if job[key] is None and Endpoint._meta.get_field(key).null:
            values[key] = None
            continue
        try:
            values[key] = CONVERTERS.get(key, _string)(job[key])
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


# --- conversions: each takes a JSON value and returns the Endpoint value or raises ValueError ----


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Must be a string.")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Must be true or false.")
    return value


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Must be a whole number.")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Must be a number.")
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("Must be a JSON object.")
    return value


def _names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("Must be a list of header names.")
    return value


def _method(value: Any) -> str:
    return _string(value).upper()


def _body(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValueError("Must be a string, or a JSON object or array (sent as JSON).")
    return value


def _expected_status(value: Any) -> str:
    """'200-299,304', 204 or [200, 201] → the model's spec string (validated by the model)."""
    if isinstance(value, str):
        return value
    codes = value if isinstance(value, list) else [value]
    if not codes or any(isinstance(code, bool) or not isinstance(code, int) for code in codes):
        raise ValueError("Must be a spec like '200-299,304', a status code or a list of codes.")
    return ",".join(str(code) for code in codes)


def _instant(value: Any) -> datetime:
    parsed = parse_datetime(_string(value))
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(
            "Must be an ISO 8601 date and time with an offset, e.g. 2026-04-01T09:00Z."
        )
    return parsed


CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "grace_seconds": _integer,
    "interval_seconds": _integer,
    "run_at": _instant,
    "is_active": _boolean,
    "method": _method,
    "headers": _object,
    "secret_headers": _names,
    "body": _body,
    "expected_status": _expected_status,
    "payload": _object,
    "timeout_seconds": _number,
    "max_attempts": _integer,
    "jitter_seconds": _integer,
    "retry_backoff_seconds": _number,
    "retry_backoff_max_seconds": _number,
    "catch_up_window_seconds": _integer,
    "starts_at": _instant,
    "ends_at": _instant,
    "max_runs": _integer,
    "auto_disable_after": _integer,
    "notify_on_failure": _boolean,
    "notify_on_recovery": _boolean,
    "notify_urls": channels.parse_urls,
    "notify_after_failures": _integer,
}
