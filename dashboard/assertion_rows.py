"""Response assertions in the endpoint form: one row of inputs each (source, property,
comparison, target, remove), and the live check of the rows as typed against the endpoint's
last response (an htmx fragment, as the schedule preview is).

The rows post as `assertions-<n>-<field>`; a row with neither a property nor a target, or
ticked *remove*, is dropped. The
form only converts what was typed: Endpoint.clean validates (the same rules as the API and job
files), and its message names the row.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django import forms
from django.template.loader import render_to_string

from calls import assertions
from calls.spec import KEPT_RESPONSE_HEADERS
from runs.models import Log

ROW_FIELDS = ("source", "property", "comparison", "target")
SPARE_ROWS = 2  # blank rows under the stored ones: room to add without a script
_KEY = re.compile(r"^assertions-(\d+)-(source|property|comparison|target|remove)$")
_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")


def rows_from(data: Mapping[str, Any], name: str = "assertions") -> list[dict[str, Any]]:
    """The rows as typed, in order, without empty and removed ones; targets typed as numbers
    become numbers (the comparison treats "200" and 200 alike either way)."""
    typed: dict[int, dict[str, str]] = {}
    for key in data:
        match = _KEY.match(key.replace(name, "assertions", 1))
        if match:
            typed.setdefault(int(match[1]), {})[match[2]] = str(data.get(key) or "").strip()
    rows = []
    for _, fields in sorted(typed.items()):
        if fields.get("remove") or not (fields.get("property") or fields.get("target")):
            continue  # removed, or nothing typed in it (a spare row)
        row: dict[str, Any] = {f: fields.get(f, "") for f in ROW_FIELDS}
        if row["comparison"] in assertions.UNARY and row["target"] == "":
            del row["target"]
        elif _NUMBER.match(row["target"]):
            row["target"] = float(row["target"]) if "." in row["target"] else int(row["target"])
        rows.append(row)
    return rows


def shown_target(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class AssertionRowsWidget(forms.Widget):
    """Renders the rows (stored ones plus SPARE_ROWS blank ones); reads them back."""

    def value_from_datadict(self, data, files, name) -> list[dict[str, Any]]:
        return rows_from(data, name)

    def value_omitted_from_data(self, data, files, name) -> bool:
        return False  # no row posted means none: every assertion was removed

    def render(self, name, value, attrs=None, renderer=None) -> str:
        rows = [
            {**row, "target": shown_target(row.get("target"))}
            for row in (value if isinstance(value, list) else [])
            if isinstance(row, Mapping)
        ]
        rows += [{"source": "json", "comparison": "equals"} for _ in range(SPARE_ROWS)]
        return render_to_string(
            "dashboard/partials/assertion_rows.html",
            {
                "rows": rows,
                "sources": assertions.SOURCES,
                "comparisons": assertions.COMPARISONS,
                "endpoint_pk": self.attrs.get("data-endpoint", ""),
            },
        )


class AssertionRowsField(forms.Field):
    widget = AssertionRowsWidget

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def prepare_value(self, value: Any) -> Any:
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        return (initial or []) != (data or [])


# --- the live check ---------------------------------------------------------------------------


@dataclass
class RowCheck:
    number: int
    outcome: str  # holds, fails, invalid, unknown
    message: str = ""


def last_response(endpoint_pk: Any) -> Log | None:
    """The endpoint's latest run that got a response (a status code)."""
    if not str(endpoint_pk or "").isdigit():
        return None
    return (
        Log.objects.filter(endpoint_id=int(endpoint_pk), status_code__isnull=False, dry_run=False)
        .only(
            "id",
            "status_code",
            "response_headers",
            "response_excerpt",
            "response_bytes",
            "duration_ms",
            "finished_at",
        )  # fmt: skip
        .order_by("-id")
        .first()
    )


def check_rows(rows: list[dict[str, Any]], log: Log | None) -> list[RowCheck]:
    """Each row checked on its own: refused (invalid), or held against `log`'s response."""
    response = _stored_response(log) if log is not None else None
    checks = []
    for number, row in enumerate(rows, start=1):
        try:
            (assertion,) = assertions.parse([row])
        except assertions.InvalidAssertion as error:
            message = str(error).removeprefix("Assertion 1: ")
            checks.append(RowCheck(number, "invalid", message))
            continue
        if response is None:
            checks.append(RowCheck(number, "unknown", "No response yet to check against."))
        elif _not_kept(assertion, response):
            checks.append(
                RowCheck(
                    number,
                    "unknown",
                    f"Runs do not keep the {assertion.property} header: each run checks it.",
                )
            )
        else:
            failure = assertion.failure(response)
            checks.append(RowCheck(number, "fails" if failure else "holds", failure or ""))
    return checks


def _stored_response(log: Log) -> assertions.Response:
    excerpt = log.response_excerpt or ""
    return assertions.Response(
        status_code=log.status_code,
        headers=log.response_headers or {},
        text=excerpt,
        duration_ms=log.duration_ms,
        truncated=(log.response_bytes or 0) > len(excerpt.encode()),
    )


def _not_kept(assertion: assertions.Assertion, response: assertions.Response) -> bool:
    return (
        assertion.source == "header"
        and assertion.property.lower() not in KEPT_RESPONSE_HEADERS
        and response.header(assertion.property) is assertions.MISSING
    )
