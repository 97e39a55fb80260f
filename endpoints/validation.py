"""An Endpoint's validation, shared by every door (forms, the admin, job files, the APIs): the
model's `clean` (EndpointValidation, mixed into Endpoint) and the checks it is made of, which
webhook:send's payload and the dashboard's header lines use too."""

from __future__ import annotations

import json
import re
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone as django_timezone

from calls import signing
from calls.masking import MASK
from endpoints import channels, flow, run_after, schedule_syntax, schedules, secrets, storable
from endpoints.registry import get_handler, secret_keys_of

MAX_HEADERS_BYTES = 8 * 1024
MAX_BODY_BYTES = 256 * 1024
MAX_DESCRIPTION_LENGTH = 1000
MAX_PAYLOAD_DEPTH = 32
MAX_GRACE_SECONDS = 366 * 86400


def description_length(value: str) -> None:
    """A description stays a description (a million characters broke the dashboard list)."""
    if len(value) > MAX_DESCRIPTION_LENGTH:
        raise ValidationError(
            f"At most {MAX_DESCRIPTION_LENGTH} characters; this one has {len(value)}."
        )


_HEADER_NAME_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
# RFC 9110 field values: visible ASCII, space, tab and Latin-1 text (obs-text) — no C0/C1
# controls (U+0085 is one), nothing past U+00FF (U+2028, U+2029 and what HTTP cannot encode).
_HEADER_VALUE_BAD_RE = re.compile(r"[^\t\x20-\x7e\xa0-\xff]")
_STATUS_SPEC_RE = re.compile(r"^\d{3}(-\d{3})?$")


def parse_status_spec(spec: str) -> list[tuple[int, int]]:
    """'200-299,304' → [(200, 299), (304, 304)]; raises ValueError on anything else."""
    ranges = []
    for part in (spec or "").replace(" ", "").split(","):
        if not _STATUS_SPEC_RE.match(part):
            raise ValueError(f"'{part}' is not a status code or range like 200-299")
        low, _, high = part.partition("-")
        low_code, high_code = int(low), int(high or low)
        if not (100 <= low_code <= high_code <= 599):
            raise ValueError(f"'{part}' is not within 100-599")
        ranges.append((low_code, high_code))
    return ranges


class EndpointValidation:
    """Endpoint.clean and its parts (a mixin: the fields are Endpoint's)."""

    def success_ranges(self) -> list[tuple[int, int]]:
        return parse_status_spec(self.expected_status)

    def response_assertions(self) -> tuple:
        """The checks a response must pass (calls.assertions), as validated on save."""
        from calls import assertions

        return assertions.parse(self.assertions) if self.assertions else ()

    def clean(self) -> None:
        errors: dict[str, str] = self._unstorable_values()
        self._keep_stored_secrets(errors)
        self._clean_schedule(errors)
        if self.kind != self.Kind.HTTP and self.assertions:
            errors["assertions"] = "Only HTTP jobs take assertions: they check a response."
        if self.kind == self.Kind.HTTP:
            self._clean_http(errors)
            if not (self.url or "").strip():
                # A job given neither is an HTTP job by default: say what is missing.
                errors["url"] = "Give a url to call, or a handler to run."
        elif self.kind == self.Kind.HANDLER:
            if not self.handler:
                errors["handler"] = "Choose a registered handler."
            elif get_handler(self.handler) is None:
                errors["handler"] = f"No handler named '{self.handler}' is registered."
            if not isinstance(self.payload, dict):
                errors["payload"] = "The payload must be a JSON object."
            elif json_depth(self.payload) > MAX_PAYLOAD_DEPTH:
                errors["payload"] = f"Nests deeper than {MAX_PAYLOAD_DEPTH} levels."
            elif problem := _payload_problem(self.handler, self.payload):
                errors["payload"] = problem
        elif self.kind == self.Kind.HEARTBEAT:
            if self.schedule_type not in (self.ScheduleType.CRON, self.ScheduleType.INTERVAL):
                errors.setdefault(
                    "cron_expression",
                    "A heartbeat expects pings on a schedule: give a cron expression or an "
                    "interval.",
                )
        self._clean_notifications(errors)
        self._clean_run_after(errors)
        self._clean_jitter(errors)
        self._clean_flow(errors)
        for field in ("signing_secret", "signing_secret_next"):
            if getattr(self, field) and field not in errors:
                if problem := signing.secret_problem(getattr(self, field)):
                    errors[field] = problem
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = "The end of the window must be after its start."
        if errors:
            raise ValidationError(errors)

    def _unstorable_values(self) -> dict[str, str]:
        """Text no database can keep (NUL, lone surrogates) and instants out of range."""
        errors = {}
        for field in self._meta.concrete_fields:
            value = getattr(self, field.attname)
            if isinstance(value, datetime) and not storable.within_range(value):
                errors[field.name] = storable.OUT_OF_RANGE
            elif storable.has_unstorable_text(value):
                errors[field.name] = "Contains a NUL character or invalid Unicode."
        return errors

    def _keep_stored_secrets(self, errors: dict[str, str]) -> None:
        """Values left as the mask become the stored secrets, where the secret-audience rule
        (endpoints.secrets) allows; the others are refused, saying why. The one rule of every
        door (endpoints.secrets): the mask keeps, empty removes, anything else replaces."""
        saved_keys = getattr(self, "_saved_signing_keys", ("", "")) if self.pk else ("", "")
        for field, saved in zip(("signing_secret", "signing_secret_next"), saved_keys, strict=True):
            if getattr(self, field) == MASK:
                if not saved:
                    errors[field] = f"Masked ({MASK}) but there is no stored key to keep; give one."
                setattr(self, field, saved or "")
        stored = getattr(self, "_stored_secrets", None) if self.pk else None
        if isinstance(self.headers, dict):
            self.headers, problems = secrets.keep_masked_headers(
                self.headers,
                secret=secrets.secret_names(self.secret_headers),
                stored=stored.headers if stored else {},
                stored_secret=stored.secret if stored else set(),
                same_audience=stored is not None and secrets.audience(self.url) == stored.audience,
            )
            if problems:
                errors.setdefault("headers", " ".join(problems))
        if isinstance(self.payload, dict):
            self.payload, problems = secrets.keep_masked_payload(
                self.payload, stored, secret_keys_of(self.handler)
            )
            if problems:
                errors.setdefault("payload", " ".join(problems))

    def _clean_schedule(self, errors: dict[str, str]) -> None:
        try:
            schedule_syntax.validate_timezone(self.timezone)
        except schedule_syntax.ScheduleError as exc:
            errors["timezone"] = exc.message
        if self.schedule_type == self.ScheduleType.CRON:
            try:
                self.cron_expression = schedule_syntax.normalize_cron(self.cron_expression)
            except schedule_syntax.ScheduleError as exc:
                errors["cron_expression"] = exc.message
        elif self.schedule_type == self.ScheduleType.INTERVAL:
            try:
                schedule_syntax.parse_interval(self.interval_seconds or 0)
            except schedule_syntax.ScheduleError as exc:
                errors["interval_seconds"] = exc.message
        elif self.schedule_type == self.ScheduleType.ONCE and not self.run_at:
            errors["run_at"] = "Choose when the one-time run happens."

    def _clean_jitter(self, errors: dict[str, str]) -> None:
        if not self.jitter_seconds or errors.get("cron_expression") or errors.get("timezone"):
            return
        if self.schedule_type not in (self.ScheduleType.CRON, self.ScheduleType.INTERVAL):
            errors["jitter_seconds"] = "Jitter applies to cron and interval schedules only."
            return
        try:
            slots = schedules.next_runs(self.schedule, django_timezone.now(), 50)
        except (schedule_syntax.ScheduleError, ValueError, TypeError):
            return
        gaps = [(b - a).total_seconds() for a, b in zip(slots, slots[1:], strict=False)]
        if gaps and self.jitter_seconds >= min(gaps):
            errors["jitter_seconds"] = (
                f"The jitter window must be shorter than the time between runs ({min(gaps):g} s)."
            )

    def _clean_run_after(self, errors: dict[str, str]) -> None:
        entries, problem = run_after.normalized(self.run_after)
        if problem is None and "name" not in errors:
            problem = run_after.problem(self, entries)
        if problem:
            errors["run_after"] = problem
        else:
            self.run_after = entries

    def _clean_flow(self, errors: dict[str, str]) -> None:
        if self.flow_rate:
            try:
                self.flow_rate = str(flow.parse_rate(self.flow_rate))
            except flow.RateError as exc:
                errors["flow_rate"] = str(exc)
        if not self.flow_key:
            for field in ("flow_parallelism", "flow_rate"):
                if getattr(self, field) and field not in errors:
                    errors[field] = "Give a flow key too: limits are shared by the jobs of a key."
        elif self.kind == self.Kind.HEARTBEAT:
            errors["flow_key"] = "A heartbeat is not run by cronplane: it has no flow to limit."

    @property
    def flow_limits(self) -> flow.Limits:
        """This job's own limits (its key holds the strictest of all its jobs')."""
        return flow.Limits.strictest([(self.flow_parallelism, self.flow_rate)])

    @property
    def notification_emails(self) -> list[str]:
        return [a.strip() for a in re.split(r"[,\s;]+", self.notify_emails or "") if a.strip()]

    def _clean_notifications(self, errors: dict[str, str]) -> None:
        from django.core.validators import validate_email

        from calls.guard import url_problem

        for address in self.notification_emails:
            try:
                validate_email(address)
            except ValidationError:
                errors["notify_emails"] = f"'{address}' is not an email address."
                break
        if self.notify_webhook_url and (problem := url_problem(self.notify_webhook_url)):
            errors["notify_webhook_url"] = problem
        try:
            urls = channels.parse_urls(self.notify_urls)
        except ValueError as exc:
            errors["notify_urls"] = str(exc)
        else:
            # A URL left as its mask (an edit form, an exported job, an API read-modify-write)
            # is the stored URL: the mask shows its host, so it still goes where it went.
            stored = getattr(self, "_stored_notify_urls", []) if self.pk else []
            self.notify_urls = channels.keep_masked_urls(urls, stored)
            if problem := channels.urls_problem(self.notify_urls):
                errors["notify_urls"] = problem

    def _clean_http(self, errors: dict[str, str]) -> None:
        from calls import templating
        from calls.guard import url_problem

        if len(self.url or "") > 2048:
            errors["url"] = "The URL is longer than 2048 characters."
        elif problem := templating.problem(self.url):
            errors["url"] = problem
        elif problem := url_problem(
            templating.render(self.url, templating.sample_context(self.name), where="url")
        ):
            errors["url"] = problem
        if problem := templating.problem(self.body):
            errors["body"] = problem
        if not isinstance(self.headers, dict):
            errors["headers"] = "Headers must be a JSON object of name → value."
        else:
            problem = header_problem(self.headers) or next(
                (p for value in self.headers.values() if (p := templating.problem(value))), None
            )
            if problem:
                errors["headers"] = problem
        if len((self.body or "").encode()) > MAX_BODY_BYTES:
            errors["body"] = f"The body is larger than {MAX_BODY_BYTES // 1024} KB."
        try:
            parse_status_spec(self.expected_status)
        except ValueError as exc:
            errors["expected_status"] = str(exc)
        self._clean_assertions(errors)

    def _clean_assertions(self, errors: dict[str, str]) -> None:
        """Refuse what cannot be checked (a bad JSONPath, an unknown comparison…) and store the
        rest in one shape: every field present."""
        from calls import assertions

        try:
            parsed = assertions.parse(self.assertions)
        except assertions.InvalidAssertion as exc:
            errors["assertions"] = str(exc)
            return
        self.assertions = [assertion.as_dict() for assertion in parsed]


def _payload_problem(handler: str, payload: dict) -> str | None:
    """webhook:send's control keys, checked on save like an HTTP job's fields."""
    if handler != "webhook:send":
        return None
    headers = payload.get("headers", {})
    if not isinstance(headers, dict):
        return "payload.headers must be a JSON object of name → value."
    if problem := header_problem(headers):
        return f"payload.headers: {problem}"
    timeout = payload.get("timeout_seconds", 30)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        return "payload.timeout_seconds must be a number of seconds."
    if not 0.1 <= timeout <= settings.SCHEDULER_MAX_TIMEOUT_SECONDS:
        return (
            "payload.timeout_seconds must be between 0.1 and "
            f"{settings.SCHEDULER_MAX_TIMEOUT_SECONDS:g} seconds."
        )
    return None


def json_depth(value: object) -> int:
    """How deeply JSON objects and arrays nest in `value` (a scalar is 0)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list | tuple):
            depth += 1
            deepest = max(deepest, depth)
            stack += [
                (child, depth) for child in (item.values() if isinstance(item, dict) else item)
            ]
    return deepest


def header_problem(headers: dict) -> str | None:
    """What makes these headers unsendable, the same at every door (and for webhook:send)."""
    for name, value in headers.items():
        if not isinstance(name, str) or not _HEADER_NAME_RE.match(name):
            return f"'{name}' is not a valid header name."
        if not isinstance(value, str):
            return f"The value of '{name}' must be a string."
        if "\r" in value or "\n" in value or "\0" in value:
            return f"The value of '{name}' contains a line break."
        if bad := _HEADER_VALUE_BAD_RE.search(value):
            return (
                f"The value of '{name}' contains U+{ord(bad.group()):04X}: header values are "
                "Latin-1 text without control characters or line separators."
            )
    if len(json.dumps(headers).encode()) > MAX_HEADERS_BYTES:
        return f"Headers are larger than {MAX_HEADERS_BYTES // 1024} KB."
    return None
