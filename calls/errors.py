"""What went wrong with a run, by name: calls/ writes these on an Outcome, and runs.models.Log's
ErrorClass takes its values from here (calls/ may not import a model)."""

from __future__ import annotations

from enum import StrEnum


class ErrorClass(StrEnum):
    TIMEOUT = "timeout"
    CONNECTION = "connection"
    DNS = "dns"
    TLS = "tls"
    HTTP_STATUS = "http_status"
    ASSERTION = "assertion"
    HANDLER = "handler"
    STUCK = "stuck"
    INVALID = "invalid"
    BLOCKED = "blocked"


# Network trouble is worth another attempt; an HTTP status only when it is 5xx or 429.
RETRYABLE = frozenset(
    {
        ErrorClass.TIMEOUT,
        ErrorClass.CONNECTION,
        ErrorClass.DNS,
        ErrorClass.TLS,
        ErrorClass.STUCK,
    }
)
