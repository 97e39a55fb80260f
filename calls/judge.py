"""The verdict on a response: the endpoint's expected status ranges and must-contain text."""

from __future__ import annotations

from calls.spec import CallSpec, Outcome


def judge(outcome: Outcome, spec: CallSpec, body: bytes) -> None:
    code = outcome.status_code or 0
    if not any(low <= code <= high for low, high in spec.success_ranges):
        expected = ",".join(f"{lo}-{hi}" if lo != hi else str(lo) for lo, hi in spec.success_ranges)
        outcome.ok = False
        outcome.error_class = "http_status"
        outcome.error_message = f"HTTP {code}; expected {expected}"
    elif spec.must_contain and spec.must_contain.encode() not in body:
        outcome.ok = False
        outcome.error_class = "assertion"
        outcome.error_message = (
            f"The response does not contain {spec.must_contain!r} "
            f"(checked the first {len(body)} bytes)"
        )
