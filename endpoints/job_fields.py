"""The job object's fields, declared once: job files, exportjobs, the Nightly Scheduler API's
request and response, and its OpenAPI schema are all made from FIELDS.

A field says what it is called in a job object, which Endpoint field holds it, which jobs take
it (GROUPS), how a JSON value becomes the model's (`convert`, raising ValueError with the message
a user sees), how the model's value is written back (`export`), and what the schema says of it
(`schema`, a JSON type the API turns into a serializer field, and `help`). The model validates
what a conversion leaves (ranges, choices, cross-field rules), the same for every door.

To add a field, see docs/contributing.md ("How to add a job field").
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from calls.masking import MASK
from endpoints import channels, run_after
from endpoints.storable import parse_instant

# The jobs a field applies to. A job object is the whole truth about the fields of its group (a
# field left out takes its default); POLICY fields left out keep their value on an existing job.
COMMON, SCHEDULE, HTTP, HANDLER, HEARTBEAT, POLICY = (
    "common", "schedule", "http", "handler", "heartbeat", "policy",
)  # fmt: skip
# JSON types of the schema (api/job_fields.py makes them serializer fields).
STRING, INTEGER, NUMBER, BOOLEAN, OBJECT, NAMES, INSTANT, CHOICE, OBJECTS = (
    "string", "integer", "number", "boolean", "object", "names", "instant", "choice", "objects",
)  # fmt: skip
BODY, STATUS_SPEC = "body", "status_spec"  # a string, or JSON the conversion turns into one
SKIP = object()  # export's answer for a field that is not written for this endpoint


# --- conversions: each takes a JSON value and returns the Endpoint value or raises ValueError ----


def string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("Must be a string.")
    return value


def boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError("Must be true or false.")
    return value


def integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError("Must be a whole number.")
    return value


def number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("Must be a number.")
    return float(value)


def json_object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ValueError("Must be a JSON object.")
    return value


def header_names(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError("Must be a list of header names.")
    return value


def json_objects(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ValueError("Must be a list of JSON objects.")
    return value


def method(value: Any) -> str:
    return string(value).upper()


def body(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    if not isinstance(value, str):
        raise ValueError("Must be a string, or a JSON object or array (sent as JSON).")
    return value


def status_spec(value: Any) -> str:
    """'200-299,304', 204 or [200, 201] → the model's spec string (validated by the model)."""
    if isinstance(value, str):
        return value
    codes = value if isinstance(value, list) else [value]
    if not codes or any(isinstance(code, bool) or not isinstance(code, int) for code in codes):
        raise ValueError("Must be a spec like '200-299,304', a status code or a list of codes.")
    return ",".join(str(code) for code in codes)


def instant(value: Any) -> datetime:
    parsed, problem = parse_instant(string(value))
    if problem:
        raise ValueError(problem)
    return parsed


def at_least(low: int, convert: Callable[[Any], Any] = integer) -> Callable[[Any], Any]:
    def converted(value: Any) -> Any:
        value = convert(value)
        if value < low:
            raise ValueError(f"Ensure this value is greater than or equal to {low}.")
        return value

    converted.low = low  # type: ignore[attr-defined]  # the bound a contract's schema states
    return converted


CONVERSIONS: dict[str, Callable[[Any], Any]] = {
    STRING: string, INTEGER: integer, NUMBER: number, BOOLEAN: boolean, OBJECT: json_object,
    NAMES: header_names, OBJECTS: json_objects, INSTANT: instant, CHOICE: string, BODY: body,
    STATUS_SPEC: status_spec,
}  # fmt: skip


# --- how a stored value is written in a job object ---


def written(value: Any) -> Any:
    """An instant in UTC with Z; a whole float as an integer (10, not 10.0)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


@dataclass(frozen=True)
class JobField:
    name: str  # in a job object
    group: str
    schema: str  # its JSON type (above)
    model: str = ""  # the Endpoint field; the same name if empty
    help: str = ""
    nullable: bool = False
    convert: Callable[[Any], Any] | None = None  # default: CONVERSIONS[schema]
    # Written on export only when set (a job without it reads the same).
    only_when_set: bool = False
    secret: bool = False  # exported as the mask, which keeps the stored value on apply
    show: Callable[[Any], Any] | None = None  # the exported value; default: the model's, written

    @property
    def field(self) -> str:
        return self.model or self.name

    def to_model(self, value: Any) -> Any:
        return (self.convert or CONVERSIONS[self.schema])(value)

    def export(self, endpoint) -> Any:
        """The value a job object shows for `endpoint`, or SKIP."""
        value = getattr(endpoint, self.field)
        if self.only_when_set and not value:
            return SKIP
        if self.secret:
            return MASK
        return self.show(endpoint) if self.show else written(value)


def _run_at(endpoint) -> Any:
    return written(endpoint.run_at) if endpoint.run_at else SKIP


def _kind(endpoint) -> Any:
    # HTTP and handler jobs say what they are by their fields; a heartbeat has none.
    return endpoint.kind if endpoint.is_heartbeat else SKIP


# In the order an exported job lists them.
FIELDS: tuple[JobField, ...] = (
    JobField("job_name", COMMON, STRING, model="name"),
    JobField("description", COMMON, STRING),
    JobField("cron_expression", SCHEDULE, STRING, nullable=True),
    JobField("interval_seconds", SCHEDULE, INTEGER, nullable=True),
    JobField("run_at", SCHEDULE, INSTANT, nullable=True, show=_run_at),
    JobField("timezone", COMMON, STRING, help="IANA time zone"),
    JobField("is_active", COMMON, BOOLEAN, model="enabled"),
    JobField(
        "kind", COMMON, CHOICE, show=_kind,
        help="`heartbeat`: cronplane calls nothing; the job pings /ping/<uuid> on its schedule "
        "(default: `handler` if a handler is named, else `http`).",
    ),
    JobField(
        "grace_seconds", HEARTBEAT, INTEGER,
        help="A heartbeat's: how late a ping may come (default 3600).",
    ),
    JobField("url", HTTP, STRING),
    JobField("method", HTTP, CHOICE, convert=method),
    JobField("headers", HTTP, OBJECT, show=lambda endpoint: endpoint.masked_headers),
    JobField("secret_headers", HTTP, NAMES, only_when_set=True),
    JobField("body", HTTP, BODY),
    JobField("expected_status", HTTP, STATUS_SPEC),
    JobField("response_must_contain", HTTP, STRING, only_when_set=True),
    JobField(
        "assertions", HTTP, OBJECTS, only_when_set=True,
        help="Checks the response must pass, all of them: [{source: status_code|json|header|"
        "text|duration_ms, property: a JSONPath ($.data.state) or a header name, comparison: "
        "equals|not_equals|contains|not_contains|less_than|greater_than|exists|not_exists|"
        "matches, target}]. The first that does not hold fails the run (`assertion`).",
    ),
    JobField(
        "signing_secret", HTTP, STRING, only_when_set=True, secret=True,
        help="Signs every request by Standard Webhooks (webhook-id, webhook-timestamp, "
        "webhook-signature): whsec_ + base64 of 24-64 random bytes. Write-only; the mask keeps "
        "the stored one.",
    ),
    JobField(
        "signing_secret_next", HTTP, STRING, only_when_set=True, secret=True,
        help="The key to rotate to (write-only).",
    ),
    JobField("handler", HANDLER, STRING),
    JobField("payload", HANDLER, OBJECT, show=lambda endpoint: endpoint.masked_payload),
    JobField("timeout_seconds", COMMON, NUMBER),
    JobField("max_attempts", COMMON, INTEGER),
    JobField(
        "jitter_seconds", COMMON, INTEGER, only_when_set=True,
        help="Start each run up to this many seconds after its slot.",
    ),
    JobField("retry_backoff_seconds", POLICY, NUMBER),
    JobField("retry_backoff_max_seconds", POLICY, NUMBER),
    JobField("overlap_policy", POLICY, CHOICE),
    JobField("missed_policy", POLICY, CHOICE),
    JobField("catch_up_window_seconds", POLICY, INTEGER, convert=at_least(0)),
    JobField("starts_at", POLICY, INSTANT, nullable=True),
    JobField("ends_at", POLICY, INSTANT, nullable=True),
    JobField("max_runs", POLICY, INTEGER, nullable=True, convert=at_least(1)),
    JobField("auto_disable_after", POLICY, INTEGER, convert=at_least(0)),
    JobField("notify_emails", POLICY, STRING),
    JobField("notify_webhook_url", POLICY, STRING),
    JobField(
        "notify_urls", POLICY, NAMES, convert=channels.parse_urls,
        show=lambda endpoint: endpoint.masked_notify_urls,
        help="Apprise URLs (slack://…, tgram://…, json://host/path); an unknown service is "
        "refused.",
    ),
    JobField("notify_on_failure", POLICY, BOOLEAN),
    JobField(
        "notify_after_failures", POLICY, INTEGER, convert=at_least(1),
        help="Alert on this many consecutive failed runs (default 1).",
    ),
    JobField("notify_on_recovery", POLICY, BOOLEAN),
    JobField(
        "flow_key", POLICY, STRING, only_when_set=True,
        help="Jobs sharing a flow key share its limits, across every worker (e.g. the target's "
        "host); empty: none.",
    ),
    JobField(
        "flow_parallelism", POLICY, INTEGER, nullable=True, only_when_set=True,
        convert=at_least(1), help="Most runs of the flow key in flight at once.",
    ),
    JobField(
        "flow_rate", POLICY, STRING, only_when_set=True,
        help='Most runs of the flow key started in any second, minute or hour: "10/s", '
        '"600/min" (up to that many at once).',
    ),
    JobField(
        "run_after", POLICY, OBJECTS, convert=run_after.entries,
        help='Run after these jobs: [{"job_name": "extract", "on": "success" | "failure" | '
        '"finished"}] (a job name alone means on success). docs/chains.md',
    ),
)  # fmt: skip
BY_NAME = {field.name: field for field in FIELDS}
