"""Keeping a stored secret: one rule for every door (the admin, the dashboard, job files, the
three APIs).

Secret values (secret headers, a handler's secret payload keys, signing keys, the secrets in
notification URLs) are shown as the mask (••••••) everywhere, and an edit sends back:

- the mask: the stored value is kept (Endpoint.clean does it, for every door);
- empty: the secret is removed (a header or URL left out, a signing key "": unsigned);
- anything else: it replaces the stored one.

A form that never shows a secret at all (the dashboard's signing-key password inputs) sends the
mask for a field left blank, and offers "remove" beside it.

The secret-audience rule: a header or payload secret left as the mask is kept only while it goes
where it went before:

1. the header (or payload key) was secret when stored and is still secret now — un-marking a
   secret header drops its stored value, so it can never be shown back unmasked;
2. the target's host (and non-default port) did not change — a stored secret is never sent to a
   new host unless someone types it again.

Anything else left as the mask is refused with a message that says which of the two it was.
The same rule covers an HTTP job's headers and a handler's payload (its `headers` object, the
names in its `secret_headers` list, and the keys its handler declares secret).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from calls.masking import ALWAYS_SECRET_HEADERS, MASK, mask_headers
from endpoints import channels
from endpoints.registry import secret_keys_of

DEFAULT_PORTS = {"http": 80, "https": 443}


def audience(url: object) -> tuple[str, int | None] | str:
    """Where a URL sends things: its host and any non-default port (http → https on the
    default ports is the same audience, as in requests' redirect rule)."""
    if not isinstance(url, str):
        return ""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return url.strip()
    host = (parts.hostname or "").rstrip(".").lower()
    if port == DEFAULT_PORTS.get(parts.scheme.lower()):
        port = None
    return (host, port)


def secret_names(listed: object) -> set[str]:
    """The always-secret header names and those listed, lower-cased."""
    names = listed if isinstance(listed, list | tuple) else []
    return ALWAYS_SECRET_HEADERS | {name.lower() for name in names if isinstance(name, str)}


def mask_payload(payload: Any, secret_keys: tuple[str, ...] = ()) -> Any:
    """A handler payload safe to show: its `headers` object masked like an HTTP job's headers
    (by its own `secret_headers` list), and the keys its handler declares secret."""
    if not isinstance(payload, dict):
        return payload
    shown = {
        key: MASK if key in secret_keys and value not in ("", None) else value
        for key, value in payload.items()
    }
    headers = payload.get("headers")
    if isinstance(headers, dict):
        shown["headers"] = mask_headers(
            headers, sorted(secret_names(payload.get("secret_headers")))
        )
    return shown


@dataclass
class Stored:
    """The secrets of an endpoint as loaded, to judge an edit against."""

    audience: object = ""
    headers: dict[str, Any] = field(default_factory=dict)
    secret: set[str] = field(default_factory=set)
    payload_audience: object = ""
    payload: dict[str, Any] = field(default_factory=dict)
    payload_secret: set[str] = field(default_factory=set)

    @classmethod
    def of(cls, endpoint) -> Stored:
        # From the loaded values only: reading a deferred field here would query for it.
        loaded = endpoint.__dict__
        headers, payload = loaded.get("headers"), loaded.get("payload")
        payload = payload if isinstance(payload, dict) else {}
        return cls(
            audience=audience(loaded.get("url")),
            headers=dict(headers) if isinstance(headers, dict) else {},
            secret=secret_names(loaded.get("secret_headers")),
            payload_audience=audience(payload.get("url")),
            payload=dict(payload),
            payload_secret=secret_names(payload.get("secret_headers")),
        )


def keep_masked_headers(
    headers: dict[Any, Any],
    *,
    secret: set[str],
    stored: dict[str, Any],
    stored_secret: set[str],
    same_audience: bool,
) -> tuple[dict[Any, Any], list[str]]:
    """`headers` with each value left as the mask replaced by its stored value, where the rule
    allows; and a message for each one it does not."""
    stored_values = {name.lower(): value for name, value in stored.items() if isinstance(name, str)}
    kept, problems = {}, []
    for name, value in headers.items():
        if value == MASK:
            key = name.lower() if isinstance(name, str) else name
            if key not in stored_values or key not in stored_secret:
                problems.append(
                    f"'{name}' is masked ({MASK}) but has no stored value to keep; give its value."
                )
                continue
            if key not in secret:
                problems.append(
                    f"'{name}' is no longer marked secret, so its stored value was dropped; "
                    "give its value."
                )
                continue
            if not same_audience:
                problems.append(
                    f"The target's host changed, so the stored value of '{name}' is not sent "
                    "there; type it again."
                )
                continue
            value = stored_values[key]
        kept[name] = value
    return kept, problems


def keep_masked_payload(
    payload: dict[str, Any], stored: Stored | None, secret_keys: tuple[str, ...]
) -> tuple[dict[str, Any], list[str]]:
    """A payload with its masked values resolved by the rule (see the module docstring)."""
    before = stored or Stored()
    same = audience(payload.get("url")) == before.payload_audience
    problems: list[str] = []
    kept = dict(payload)
    for key in secret_keys:
        if kept.get(key) != MASK:
            continue
        if key not in before.payload or not same:
            reason = "has no stored value to keep" if same else "was for another host"
            problems.append(f"'{key}' is masked ({MASK}) but {reason}; give its value.")
        else:
            kept[key] = before.payload[key]
    stored_headers = before.payload.get("headers")
    if isinstance(payload.get("headers"), dict):
        kept["headers"], header_problems = keep_masked_headers(
            payload["headers"],
            secret=secret_names(payload.get("secret_headers")),
            stored=stored_headers if isinstance(stored_headers, dict) else {},
            stored_secret=before.payload_secret,
            same_audience=same,
        )
        problems += header_problems
    return kept, problems


def loaded_urls(endpoint) -> list[str]:
    # From the loaded values only: reading a deferred field here would query for it.
    urls = endpoint.__dict__.get("notify_urls")
    return list(urls) if isinstance(urls, list) else []


SIGNING_KEYS = frozenset({"signing_secret", "signing_secret_next"})


class EndpointSecrets:
    """An Endpoint's secrets as every door shows them (masked), and the signing keys' notice (a
    mixin of Endpoint)."""

    @property
    def masked_headers(self) -> dict[str, str]:
        return mask_headers(self.headers or {}, self.secret_headers)

    @property
    def masked_payload(self) -> Any:
        return mask_payload(self.payload, secret_keys_of(self.handler))

    @property
    def masked_notify_urls(self) -> list[str]:
        return channels.mask_urls(self.notify_urls or [])

    def _signing_keys(self) -> tuple:
        return (self.__dict__.get("signing_secret"), self.__dict__.get("signing_secret_next"))

    def _end_signing_notice_on_new_keys(self, kwargs: dict) -> None:
        """Whoever sets a key from any door holds it: the replaced-keys notice has done its job."""
        fields = kwargs.get("update_fields")
        if self._state.adding or fields is not None and not SIGNING_KEYS & set(fields):
            return
        if self._signing_keys() == getattr(self, "_saved_signing_keys", self._signing_keys()):
            return
        if self.signing_keys_replaced_at is None:
            return
        self.signing_keys_replaced_at = None
        if fields is not None:
            kwargs["update_fields"] = [*fields, "signing_keys_replaced_at"]

    def acknowledge_signing_keys(self) -> None:
        """The keys were revealed to someone who can give them to the receiver."""
        if self.signing_keys_replaced_at is not None:
            self.signing_keys_replaced_at = None
            self.save(update_fields=["signing_keys_replaced_at"])
