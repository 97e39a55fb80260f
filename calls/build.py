"""Build the request a run sends: templates rendered, Idempotency-Key, Content-Type, signature
(Standard Webhooks, `calls.signing`).

Takes an endpoint and a run as plain objects (their attributes only, no queries), so the same
function serves the engine, the foreground `runjob`, the preview on the form and tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.conf import settings

from calls import signing, templating
from calls.masking import mask_headers
from calls.spec import CallSpec


@dataclass
class RenderedCall(CallSpec):
    """A call whose shown form differs from what is sent (templated environment values)."""

    shown: dict | None = None

    def snapshot(self) -> dict:
        snapshot = super().snapshot()
        if self.shown is not None:
            snapshot.update(
                url=self.shown["url"],
                headers=mask_headers(self.shown["headers"], self.secret_headers),
                body=self.shown["body"][: settings.SCHEDULER_RESPONSE_EXCERPT_BYTES],
            )
        return snapshot


def build_call(endpoint, log=None) -> CallSpec:
    """The request a run of `endpoint` sends: templates rendered for `log` (a sample run when
    None, for previews), then the Idempotency-Key and, with a signing secret, the signature."""
    context = _template_context(endpoint, log)
    url, headers, body = _render(endpoint, context, display=False)
    shown = None
    if context is not None:
        shown_url, shown_headers, shown_body = _render(endpoint, context, display=True)
        shown = {"url": shown_url, "headers": shown_headers, "body": shown_body}
    extra = {}
    if not any(name.lower() == "idempotency-key" for name in headers):
        extra["Idempotency-Key"] = (
            log.idempotency_key or log.derive_idempotency_key()
            if log is not None
            else templating.sample_context().idempotency_key
        )
    if body and not any(name.lower() == "content-type" for name in headers):
        if _is_json(body):
            extra["Content-Type"] = "application/json"
    encoded = body.encode() if body else None
    headers |= extra
    if shown is not None:
        shown["headers"] |= extra
    _sign(endpoint, headers, encoded, shown)
    return RenderedCall(
        method=endpoint.method,
        url=url,
        headers=headers,
        body=encoded,
        timeout=endpoint.timeout_seconds,
        success_ranges=endpoint.success_ranges(),
        must_contain=endpoint.response_must_contain,
        assertions=endpoint.response_assertions(),
        secret_headers=list(endpoint.secret_headers or []),
        shown=shown,
    )


def _sign(endpoint, headers: dict[str, str], body: bytes | None, shown: dict | None) -> None:
    """Add the Standard Webhooks headers; webhook-id is the Idempotency-Key the call sends."""
    keys = [endpoint.signing_secret, endpoint.signing_secret_next]
    if not any(keys):
        return
    for target in [headers] + ([shown["headers"]] if shown is not None else []):
        # The signature is ours to set: an endpoint header of the same name would contradict it.
        for name in [n for n in target if n.lower() in signing.HEADERS]:
            del target[name]
    signed = signing.headers(keys, _idempotency_key(headers), body)
    headers |= signed
    if shown is not None:
        shown["headers"] |= signed | {signing.ID_HEADER: _idempotency_key(shown["headers"])}


def _idempotency_key(headers: dict[str, str]) -> str:
    return next(value for name, value in headers.items() if name.lower() == "idempotency-key")


def _template_context(endpoint, log) -> templating.Context | None:
    """The values for the endpoint's templates, or None when it has none (the common case)."""
    texts = [endpoint.url, endpoint.body, *(endpoint.headers or {}).values()]
    if not any(templating.has_tags(text) for text in texts):
        return None
    if log is None:
        return templating.sample_context(endpoint.name)
    return templating.Context(
        scheduled_at=log.scheduled_at,
        run_id=log.run_id,
        attempt=log.attempt,
        idempotency_key=log.idempotency_key or log.derive_idempotency_key(),
        endpoint_name=endpoint.name,
        # An HTTP endpoint's payload is its runs' input (a workflow's inputData).
        input=endpoint.payload if isinstance(endpoint.payload, dict) else None,
        upstream=getattr(log, "upstream", None),
    )


def _render(
    endpoint, context: templating.Context | None, *, display: bool
) -> tuple[str, dict[str, str], str]:
    headers = dict(endpoint.headers or {})
    body = endpoint.body or ""
    if context is None:
        return endpoint.url, headers, body
    url = templating.render(endpoint.url, context, where="url", display=display)
    headers = {
        name: templating.render(value, context, where="header", display=display)
        for name, value in headers.items()
    }
    where = templating.body_kind(body, headers)
    return url, headers, templating.render(body, context, where=where, display=display)


def _is_json(body: str) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True
