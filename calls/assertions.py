"""Response assertions (DESIGN §10, Checkly's model): what a response must show to count as a
success, beyond its status code.

    {"source": "json", "property": "$.data.state", "comparison": "equals", "target": "ok"}

An assertion reads one value of the response — its status code, a JSON value (RFC 9535
JSONPath through calls.jsonpath), a header, the body's text or the call's duration — and
compares it with its target. All must hold; the first that does not fails the run
(`assertion`), saying what it found: `$.data.state is "failed", expected equals "ok"`.

What a value is compared as:
- a JSON path reads the first value it selects; `exists` holds when it selects anything (a
  `null` is a value), `not_exists` when it selects nothing;
- `equals` compares numbers as numbers and anything else by its text, so the target "true"
  equals JSON true, "null" equals null and 200 equals "200";
- `contains` looks for the target in a text, among the items of a list or the keys of an
  object; `matches` is a Python regular expression searched in the value's text;
- `less_than`/`greater_than` need numbers on both sides (a numeric string counts);
- a value that is not there fails every comparison but `not_exists`, `not_equals` and
  `not_contains`.

The body is what the client keeps of it: the first SCHEDULER_RESPONSE_EXCERPT_BYTES (16 KiB by
default). A JSON document longer than that cannot be parsed, and text beyond it is not seen; the
failure message says so.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from calls import jsonpath

SOURCES = ("status_code", "json", "header", "text", "duration_ms")
COMPARISONS = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "less_than",
    "greater_than",
    "exists",
    "not_exists",
    "matches",
)
# What each source can be compared by: a status code or a duration is a number.
ALLOWED = {
    "status_code": ("equals", "not_equals", "less_than", "greater_than"),
    "duration_ms": ("less_than", "greater_than"),
    "json": COMPARISONS,
    "header": COMPARISONS,
    "text": ("equals", "not_equals", "contains", "not_contains", "matches"),
}
UNARY = ("exists", "not_exists")
NUMERIC = ("less_than", "greater_than")
# Negations hold for a value that is not there: no error field is an error field not "x".
HOLD_WHEN_MISSING = ("not_exists", "not_equals", "not_contains")
MAX_ASSERTIONS = 20
MAX_TARGET = 500
FIELDS = ("source", "property", "comparison", "target")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,200}$")
_SHOWN = 100  # characters of a found value a message shows

MISSING = jsonpath.MISSING


class InvalidAssertion(ValueError):
    """An assertion that cannot be checked; the message names the row and what is wrong."""


@dataclass
class Response:
    """What an assertion reads: a response as it arrived (the client) or as stored (a Log).

    `headers` maps names to values; looked up without regard to case. `truncated`: the body
    was longer than `text`."""

    status_code: int | None
    headers: Mapping[str, str]
    text: str
    duration_ms: int | None
    truncated: bool = False

    @cached_property
    def document(self) -> Any:
        return jsonpath.parse_body(self.text)

    @cached_property
    def _lower_headers(self) -> dict[str, str]:
        return {name.lower(): value for name, value in self.headers.items()}

    def header(self, name: str) -> Any:
        getall = getattr(self.headers, "getall", None)  # aiohttp's multidict: every occurrence
        if getall is not None:
            found = getall(name, None)
            return ", ".join(found) if found else MISSING
        return self._lower_headers.get(name.lower(), MISSING)


@dataclass(frozen=True)
class Assertion:
    source: str
    property: str
    comparison: str
    target: Any = None

    def as_dict(self) -> dict[str, Any]:
        """The stored and shown form (job files, the APIs)."""
        return {
            "source": self.source,
            "property": self.property,
            "comparison": self.comparison,
            "target": self.target,
        }

    @property
    def label(self) -> str:
        if self.source == "json":
            return self.property
        if self.source == "header":
            return f"header {self.property}"
        return {"status_code": "status code", "text": "the body", "duration_ms": "duration"}[
            self.source
        ]

    def expectation(self) -> str:
        if self.comparison in UNARY:
            return self.comparison
        return f"{self.comparison} {_shown(self.target)}"

    def failure(self, response: Response) -> str | None:
        """None if the assertion holds, else what was found: `$.x is 1, expected equals 2`."""
        found = self.read(response)
        if found is _NOT_JSON:
            more = " (only its first part was kept)" if response.truncated else ""
            return f"{self.label}: the body is not JSON{more}, expected {self.expectation()}"
        if _holds(self.comparison, found, self.target):
            return None
        shown = "missing" if found is MISSING else _shown(found, unit=self._unit)
        message = f"{self.label} is {shown}, expected {self.expectation()}"
        if response.truncated and self.source in ("json", "text"):
            message += " (the body was longer than the part kept)"
        return message

    @property
    def _unit(self) -> str:
        return " ms" if self.source == "duration_ms" else ""

    def read(self, response: Response) -> Any:
        """The value this assertion looks at (MISSING when the response has none)."""
        if self.source == "status_code":
            return MISSING if response.status_code is None else response.status_code
        if self.source == "duration_ms":
            return MISSING if response.duration_ms is None else response.duration_ms
        if self.source == "header":
            return response.header(self.property)
        if self.source == "text":
            return response.text
        document = response.document
        if document is MISSING:
            return _NOT_JSON
        return jsonpath.first(self.property, document)


_NOT_JSON = object()


def first_failure(assertions: tuple[Assertion, ...], response: Response) -> str | None:
    """The message of the first assertion that does not hold, or None when all hold."""
    for assertion in assertions:
        failure = assertion.failure(response)
        if failure is not None:
            return failure
    return None


# --- validation: the same rules for the form, the APIs and job files ---------------------------


def parse(rows: Any) -> tuple[Assertion, ...]:
    """Assertions from their stored or submitted form (a list of objects). Raises
    InvalidAssertion naming the row ("Assertion 2: …") for anything that cannot be checked."""
    if rows in (None, ""):
        return ()
    if not isinstance(rows, list | tuple):
        raise InvalidAssertion("A list of assertions, each an object with source, comparison…")
    if len(rows) > MAX_ASSERTIONS:
        raise InvalidAssertion(f"At most {MAX_ASSERTIONS} assertions.")
    return tuple(_parse_row(row, number) for number, row in enumerate(rows, start=1))


def _parse_row(row: Any, number: int) -> Assertion:
    where = f"Assertion {number}"
    if not isinstance(row, Mapping):
        raise InvalidAssertion(f"{where}: an object with source, property, comparison, target.")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise InvalidAssertion(f"{where}: unknown field {unknown[0]!r} (use {', '.join(FIELDS)}).")
    source = row.get("source")
    if source not in SOURCES:
        raise InvalidAssertion(f"{where}: source must be one of {', '.join(SOURCES)}.")
    comparison = row.get("comparison")
    if comparison not in COMPARISONS:
        raise InvalidAssertion(f"{where}: comparison must be one of {', '.join(COMPARISONS)}.")
    if comparison not in ALLOWED[source]:
        raise InvalidAssertion(
            f"{where}: {source} can be compared by {', '.join(ALLOWED[source])}, not {comparison}."
        )
    prop = _property(source, row.get("property"), where)
    target = _target(comparison, row.get("target"), where, required="target" in row)
    return Assertion(source, prop, comparison, target)


def _property(source: str, value: Any, where: str) -> str:
    value = "" if value is None else value
    if not isinstance(value, str):
        raise InvalidAssertion(f"{where}: property must be text.")
    value = value.strip()
    if source == "json":
        if not value:
            raise InvalidAssertion(f"{where}: a json assertion needs a JSONPath, e.g. $.data.ok.")
        try:
            jsonpath.compile_path(value)
        except jsonpath.InvalidPath as error:
            raise InvalidAssertion(f"{where}: {error}") from None
    elif source == "header":
        if not _HEADER_NAME.match(value):
            raise InvalidAssertion(f"{where}: property must be a header name, e.g. Content-Type.")
    elif value:
        raise InvalidAssertion(f"{where}: a {source} assertion takes no property.")
    return value


def _target(comparison: str, value: Any, where: str, *, required: bool) -> Any:
    if comparison in UNARY:
        if value not in (None, ""):
            raise InvalidAssertion(f"{where}: {comparison} takes no target.")
        return None
    if not required:
        raise InvalidAssertion(f"{where}: {comparison} needs a target.")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidAssertion(f"{where}: the target must be a finite number.")
    if not isinstance(value, str | int | float | bool) and value is not None:
        raise InvalidAssertion(f"{where}: the target must be text, a number, true, false or null.")
    if isinstance(value, str) and len(value) > MAX_TARGET:
        raise InvalidAssertion(f"{where}: the target is longer than {MAX_TARGET} characters.")
    if comparison in NUMERIC and _number(value) is None:
        raise InvalidAssertion(f"{where}: {comparison} needs a number as its target.")
    if comparison == "matches":
        if not isinstance(value, str):
            raise InvalidAssertion(f"{where}: matches needs a regular expression as its target.")
        try:
            re.compile(value)
        except re.error as error:
            raise InvalidAssertion(
                f"{where}: {value!r} is not a regular expression: {error}."
            ) from None
    return value


# --- comparing ---------------------------------------------------------------------------------


def _holds(comparison: str, found: Any, target: Any) -> bool:
    if found is MISSING:
        return comparison in HOLD_WHEN_MISSING
    if comparison == "exists":
        return True
    if comparison == "not_exists":
        return False
    if comparison == "equals":
        return _same(found, target)
    if comparison == "not_equals":
        return not _same(found, target)
    if comparison == "contains":
        return _contains(found, target)
    if comparison == "not_contains":
        return not _contains(found, target)
    if comparison == "matches":
        return _matches(found, target)
    number, limit = _number(found), _number(target)
    if number is None or limit is None:
        return False
    return number < limit if comparison == "less_than" else number > limit


def _same(found: Any, target: Any) -> bool:
    number, other = _number(found, text=False), _number(target)
    if number is not None and other is not None:
        return number == other
    return _text(found) == _text(target)


def _contains(found: Any, target: Any) -> bool:
    if isinstance(found, list):
        return any(_same(item, target) for item in found)
    if isinstance(found, dict):
        return _text(target) in found
    return _text(target) in _text(found)


def _matches(found: Any, target: str) -> bool:
    return re.search(target, _text(found)) is not None


def _number(value: Any, *, text: bool = True) -> float | None:
    """A number, or a numeric string when `text`; booleans are not numbers."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if text and isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _text(value: Any) -> str:
    """A value as text: strings as they are, anything else as JSON (true, null, 3, [1])."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _shown(value: Any, unit: str = "") -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value}{unit}"
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= _SHOWN else shown[: _SHOWN - 1] + "…"
