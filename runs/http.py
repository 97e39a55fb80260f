"""Moved to calls.client (sending) and calls.spec (the data): this shim keeps old imports working
until the execution engine no longer needs it."""

from calls.client import MAX_REDIRECTS, Client, call, classify  # noqa: F401
from calls.spec import (  # noqa: F401
    KEPT_RESPONSE_HEADERS,
    USER_AGENT,
    CallSpec,
    Outcome,
    json_body,
    parse_retry_after,
)
