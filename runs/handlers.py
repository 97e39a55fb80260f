"""Built-in handlers."""

from __future__ import annotations

from typing import Any

from calls import client
from calls.spec import CallSpec, Outcome, json_body
from endpoints.registry import handler

_CONTROL_KEYS = ("url", "method", "headers", "secret_headers", "timeout_seconds")


class WebhookFailed(Exception):
    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.error_message)
        self.error_class = outcome.error_class
        self.status_code = outcome.status_code


@handler("webhook:send")
def send_webhook(payload: dict[str, Any], *, dry_run: bool, log) -> dict[str, Any]:
    """POST the payload (less its control keys) as JSON to payload["url"].

    Payload: {"url": "https://…", "method": "POST", "headers": {…}, "secret_headers": [names
    whose values are secret beyond Authorization, Cookie, X-API-Key, Proxy-Authorization],
    "timeout_seconds": 10, …anything else is the JSON body, e.g. eventType, entityId, data}.
    """
    url = payload.get("url")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise ValueError("webhook:send needs payload.url, an http:// or https:// URL")
    body = {key: value for key, value in payload.items() if key not in _CONTROL_KEYS}
    spec = CallSpec(
        method=str(payload.get("method", "POST")).upper(),
        url=url,
        headers={"Content-Type": "application/json", **payload.get("headers", {})},
        body=json_body(body).encode(),
        timeout=float(payload.get("timeout_seconds", 30)),
        secret_headers=[n for n in payload.get("secret_headers") or [] if isinstance(n, str)],
    )
    if dry_run:
        return {"dry_run": True, "would_send": spec.snapshot()}
    outcome = client.call(spec)
    if not outcome.ok:
        raise WebhookFailed(outcome)
    return {"url": url, "status_code": outcome.status_code, "duration_ms": outcome.duration_ms}
