"""Who changed what: every create, change and delete of an endpoint, from any door.

django-auditlog records them (a LogEntry with the changed fields old → new, the user, the
time), from the model's own signals, so no door can forget to. What this module adds:

1. The door and the API token: AuditMiddleware notes whether a request came through the
   dashboard, the admin or the API; an API token's name is added once DRF has authenticated it
   (`attribute`); commands name themselves (`acting`).
2. Secrets never stored: the secret fields are masked by auditlog before the entry is written
   (`hidden`), then shown as their masked views (headers and payload with secret values masked,
   Apprise URLs as Apprise masks them), so a reader sees which header changed but never a value.
3. Derived fields (run statistics, next_run_at) are not edits and are not recorded.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import socket
from collections.abc import Iterator
from typing import Any

from auditlog.context import auditlog_value, set_extra_data
from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import post_log
from django.db.models import QuerySet

from calls.masking import MASK, mask_headers
from endpoints import channels, secrets
from endpoints.models import DERIVED_FIELDS, Endpoint

SECRET_FIELDS = ("headers", "payload", "signing_secret", "signing_secret_next", "notify_urls")
# Derived fields are the scheduler's, not edits; the id and creation stamp never change (and the
# entry itself says who created it and when).
NOT_AUDITED = (*sorted(DERIVED_FIELDS), "updated_at", "id", "created_at", "created_by")
EMPTY = ("", "{}", "[]", "None")
EMPTY_VALUES = (None, "", {}, [])
DOORS = (("/admin/", "admin"), ("/api/", "api"))
SECRET_CHANGED = " (a secret value changed)"


def register() -> None:
    auditlog.register(
        Endpoint,
        exclude_fields=list(NOT_AUDITED),
        mask_fields=list(SECRET_FIELDS),
        mask_callable="endpoints.audit.hidden",
    )
    post_log.connect(show_masked, sender=Endpoint, dispatch_uid="endpoints.audit.show_masked")


def hidden(value: str) -> str:
    """auditlog's mask for a secret field: whether it is set, nothing of its value."""
    return "" if value in EMPTY else MASK


def show_masked(sender, instance, instance_old, action, log_entry, **kwargs) -> None:
    """Replace each secret field's mask with its masked view, or drop it when only the
    stored form differed (a JSON object's key order); drop an entry left with no change."""
    if log_entry is None:
        return
    old = None if action == LogEntry.Action.CREATE else instance_old
    new = None if action == LogEntry.Action.DELETE else instance
    names = set()
    for endpoint in (old, new):
        if endpoint is not None:
            names |= secrets.secret_names(endpoint.secret_headers)
    changes = dict(log_entry.changes or {})
    for field in SECRET_FIELDS:
        if field not in changes:
            continue
        before, after = _value(old, field), _value(new, field)
        if before == after or (before in EMPTY_VALUES and after in EMPTY_VALUES):
            del changes[field]
            continue
        shown = [_masked(old, field, names), _masked(new, field, names)]
        if shown[0] == shown[1]:
            shown[1] += SECRET_CHANGED
        changes[field] = shown
    if not changes:
        log_entry.delete()
        return
    if changes != log_entry.changes:
        log_entry.changes = changes
        log_entry.save(update_fields=["changes"])


def _value(endpoint: Endpoint | None, field: str) -> Any:
    return getattr(endpoint, field) if endpoint is not None else None


def _masked(endpoint: Endpoint | None, field: str, secret_names: set[str]) -> str:
    value = _value(endpoint, field)
    if value in EMPTY_VALUES:
        return ""
    if field == "headers" and isinstance(value, dict):
        return json.dumps(mask_headers(value, list(secret_names)), sort_keys=True)
    if field == "payload":
        return json.dumps(endpoint.masked_payload, sort_keys=True)
    if field == "notify_urls":
        return json.dumps(channels.mask_urls(value))
    return MASK


# --- who ---------------------------------------------------------------------------------------


class AuditMiddleware(AuditlogMiddleware):
    """auditlog's middleware (the signed-in user, the address), plus the door."""

    def get_extra_data(self, request) -> dict[str, Any]:
        data = super().get_extra_data(request)
        door = next((name for prefix, name in DOORS if request.path.startswith(prefix)), None)
        data["additional_data"] = {"via": door or "dashboard"}
        return data


def attribute(user, *, token: str) -> None:
    """An API request authenticated by a token: its changes are the token user's, through it
    (the middleware saw no session user)."""
    with contextlib.suppress(LookupError):
        context = auditlog_value.get()
        context["actor"] = user
        context["additional_data"] = {"via": "api", "token": token}


@contextlib.contextmanager
def acting(command: str) -> Iterator[None]:
    """Changes made inside are a command's, run by this operating-system user on this host."""
    by = f"{getpass.getuser()}@{socket.gethostname()}"
    with set_extra_data({"actor": None, "additional_data": {"via": command, "by": by}}):
        yield


def who(entry: LogEntry) -> str:
    """'alice (dashboard)', 'ci-bot (API token “deploy”)', 'applyjobs (root@web-1)'."""
    data = entry.additional_data if isinstance(entry.additional_data, dict) else {}
    user = entry.actor.get_username() if entry.actor_id and entry.actor else ""
    via = data.get("via", "")
    if data.get("token"):
        return f"{user} (API token “{data['token']}”)"
    if user:
        return f"{user} ({via})" if via else user
    if data.get("by"):
        return f"{via} ({data['by']})"
    return "cronplane (the scheduler itself)"


def history(endpoint: Endpoint) -> QuerySet[LogEntry]:
    return LogEntry.objects.get_for_object(endpoint).select_related("actor").order_by("-timestamp")


def changed_fields(entry: LogEntry) -> list[tuple[str, str, str]]:
    """(field label, old, new) for each field the entry changed, in the model's order; a field
    empty before and after (a new endpoint's unused settings) is left out."""
    changes = entry.changes_dict or {}
    rows = []
    for field in Endpoint._meta.concrete_fields:
        if field.name in changes:
            old, new = (shown(value) for value in (list(changes[field.name]) + ["", ""])[:2])
            if old or new:
                rows.append((str(field.verbose_name), old, new))
    return rows


def shown(value: Any) -> str:
    return "" if value in EMPTY else str(value)
