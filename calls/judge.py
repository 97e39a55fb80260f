"""The verdict on a response: the endpoint's expected status ranges, its must-contain text (the
`text contains` shorthand) and its assertions (calls.assertions)."""

from __future__ import annotations

from time import perf_counter

from calls.assertions import Response, first_failure
from calls.errors import ErrorClass
from calls.spec import CallSpec, Outcome
from calls.timing import current_call


def judge(outcome: Outcome, spec: CallSpec, body: bytes) -> None:
    code = outcome.status_code or 0
    if not any(low <= code <= high for low, high in spec.success_ranges):
        expected = ",".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in spec.success_ranges)
        outcome.ok = False
        outcome.error_class = ErrorClass.HTTP_STATUS
        outcome.error_message = f"HTTP {code}; expected {expected}"
    elif spec.must_contain and spec.must_contain.encode() not in body:
        outcome.ok = False
        outcome.error_class = ErrorClass.ASSERTION
        outcome.error_message = (
            f"The response does not contain {spec.must_contain!r} "
            f"(checked the first {len(body)} bytes)"
        )
    elif spec.assertions:
        failure = first_failure(spec.assertions, _response(outcome, body))
        if failure is not None:
            outcome.ok = False
            outcome.error_class = ErrorClass.ASSERTION
            outcome.error_message = failure


def _response(outcome: Outcome, body: bytes) -> Response:
    """The response as assertions read it. During a call (the client judges as the body ends)
    every header that arrived and the time so far; otherwise what the outcome kept."""
    state = current_call.get()
    headers, duration = outcome.response_headers, outcome.duration_ms
    if state is not None:
        if state.response is not None:
            headers = state.response.headers
        duration = int((perf_counter() - state.started) * 1000)
    received = outcome.response_bytes
    return Response(
        status_code=outcome.status_code,
        headers=headers,
        text=outcome.excerpt,
        duration_ms=duration,
        truncated=received is not None and received > len(body),
    )
