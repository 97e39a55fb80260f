"""Templated requests: `{{ variable }}` in an endpoint's URL, header values and body.

Substitution only — no expressions, filters, loops or attribute access — so a template cannot
run code or reach anything but the values listed in VARIABLES and the environment variables
an operator allowed in SCHEDULER_TEMPLATE_ENV. Where a value lands decides how it is escaped:

- URL: percent-encoded, so a value can never change the host, path structure or query;
- header: refused when it would contain a line break (no header injection);
- JSON body: escaped as JSON string content; any other body: as is.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from django.conf import settings

from calls import jsonpath
from calls.masking import MASK

TAG = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
VARIABLES = {
    "scheduled_at": "The run's slot (or its as-of instant), ISO 8601 in UTC",
    "scheduled_at_unix": "The same instant in Unix seconds",
    "run_id": "The run's id, e.g. run-0042",
    "attempt": "1 for the first attempt, 2 for the first retry, …",
    "idempotency_key": "The run's Idempotency-Key (the same for a slot's retries)",
    "endpoint.name": "The endpoint's name",
    "input.KEY": "The value KEY of the run's input (a workflow's inputData), empty if unset",
    "env.NAME": "The environment variable NAME, if listed in SCHEDULER_TEMPLATE_ENV",
    "upstream.run_id": "In a chained run (run_after): the upstream run's id",
    "upstream.status": "In a chained run: how the upstream run ended (success or failed)",
    "upstream.result.KEY": "In a chained run: the value KEY of the upstream run's result",
    "upstream.response.$.PATH": "In a chained run: what the JSONPath selects in the upstream "
    "run's JSON response, e.g. {{ upstream.response.$.access_token }}",
}
# Whose tail is the user's (a key, a JSONPath), not a fixed name.
_PATTERNS = ("env.NAME", "input.KEY", "upstream.result.KEY", "upstream.response.$.PATH")
# A made-up run, to check a template renders (and what it renders to) before saving it.
SAMPLE_INSTANT = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)


class TemplateError(ValueError):
    pass


@dataclass(frozen=True)
class Context:
    """The values a template sees for one run."""

    scheduled_at: datetime
    run_id: str
    attempt: int
    idempotency_key: str
    endpoint_name: str
    input: dict | None = None
    # A chained run's upstream run (runs.chains.passed_on); None for any other run.
    upstream: dict | None = None

    def value(self, name: str, *, display: bool) -> str:
        if name.startswith("upstream."):
            return self._upstream_value(name)
        if name.startswith("input."):
            return _text((self.input or {}).get(name.removeprefix("input."), ""))
        if name.startswith("env."):
            variable = name.removeprefix("env.")
            # Allowed environment values may well be secrets: never shown, only sent.
            return MASK if display else os.environ.get(variable, "")
        return {
            "scheduled_at": self.scheduled_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "scheduled_at_unix": str(int(self.scheduled_at.timestamp())),
            "run_id": self.run_id,
            "attempt": str(self.attempt),
            "idempotency_key": self.idempotency_key,
            "endpoint.name": self.endpoint_name,
        }[name]

    def _upstream_value(self, name: str) -> str:
        """Empty in a run no upstream started (run by hand); an upstream that lacks the value is
        an error, rather than an empty token sent on."""
        if self.upstream is None:
            return ""
        if name in ("upstream.run_id", "upstream.status"):
            return str(self.upstream.get(name.removeprefix("upstream."), ""))
        if name.startswith("upstream.result."):
            key = name.removeprefix("upstream.result.")
            found = (self.upstream.get("result") or {}).get(key, jsonpath.MISSING)
            if found is jsonpath.MISSING:
                raise TemplateError(f"{{{{ {name} }}}}: the upstream run's result has no '{key}'.")
            return _text(found)
        path = name.removeprefix("upstream.response.")
        response = self.upstream.get("response")
        if response is None:
            raise TemplateError(f"{{{{ {name} }}}}: the upstream run's response is not JSON.")
        found = jsonpath.first(path, response)
        if found is jsonpath.MISSING:
            raise TemplateError(
                f"{{{{ {name} }}}}: {path} selects nothing in the upstream response."
            )
        return _text(found)


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def sample_context(endpoint_name: str = "my-endpoint") -> Context:
    return Context(
        SAMPLE_INSTANT, "run-0042", 1, "00000000-0000-5000-8000-000000000000", endpoint_name
    )


def has_tags(text: str) -> bool:
    return "{{" in (text or "")


def problem(text: str) -> str | None:
    """Why `text` is not a valid template (an unknown or disallowed variable), or None."""
    for match in TAG.finditer(text or ""):
        name = match.group(1).strip()
        if name.startswith("env."):
            variable = name.removeprefix("env.")
            if variable not in settings.SCHEDULER_TEMPLATE_ENV:
                allowed = ", ".join(settings.SCHEDULER_TEMPLATE_ENV) or "none are"
                return (
                    f"{{{{ {name} }}}}: {variable} is not in SCHEDULER_TEMPLATE_ENV "
                    f"(allowed: {allowed})."
                )
        elif name.startswith("input.") and name != "input.":
            continue
        elif name.startswith("upstream.result.") and name != "upstream.result.":
            continue
        elif name.startswith("upstream.response."):
            try:
                jsonpath.compile_path(name.removeprefix("upstream.response."))
            except jsonpath.InvalidPath as error:
                return f"{{{{ {name} }}}}: {error}"
        elif name not in VARIABLES or name in _PATTERNS:
            known = ", ".join(f"{{{{ {v} }}}}" for v in VARIABLES if v not in _PATTERNS)
            patterns = ", ".join(f"{{{{ {v} }}}}" for v in _PATTERNS)
            return f"Unknown variable {{{{ {name} }}}}; use {known} or {patterns}."
    if text and "{{" in TAG.sub("", text):
        return "A '{{' is not closed with '}}'."
    return None


def render(text: str, context: Context, *, where: str = "body", display: bool = False) -> str:
    """`text` with every tag replaced, escaped for where it goes ('url', 'header', 'body' or
    'json'). `display=True` masks environment values (for logs, previews and dry runs)."""
    if not has_tags(text):
        return text
    if (reason := problem(text)) is not None:
        raise TemplateError(reason)

    def substitute(match: re.Match) -> str:
        value = context.value(match.group(1).strip(), display=display)
        if where == "url":
            return quote(value, safe="")
        if where == "json":
            return json.dumps(value, ensure_ascii=False)[1:-1]
        if where == "header" and ("\r" in value or "\n" in value or "\0" in value):
            raise TemplateError(f"{match.group(0)} would put a line break in a header.")
        return value

    return TAG.sub(substitute, text)


def body_kind(body: str, headers: dict[str, str]) -> str:
    """'json' when the body is (or will render to) JSON, else 'body'."""
    content_type = next((v for k, v in headers.items() if k.lower() == "content-type"), "")
    if "json" in content_type.lower():
        return "json"
    return "json" if body.lstrip()[:1] in ("{", "[") else "body"
