"""The handler registry: Python callables that jobs of kind `handler` run.

    @handler("billing:check-renewals")
    def check_renewals(payload: dict, *, dry_run: bool, log) -> dict:
        ...
        return {"renewals_checked": 12}   # becomes the run's result_summary

Handlers live in any installed app's `handlers.py`, imported when Django starts. A handler whose
payload carries secrets names their keys, `@handler("crm:sync", secret_keys=("api_token",))`:
they are then encrypted at rest with the payload and masked wherever it is shown.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.utils.module_loading import autodiscover_modules

Handler = Callable[..., dict[str, Any] | None]
_registry: dict[str, Handler] = {}
_secret_keys: dict[str, tuple[str, ...]] = {}


def handler(name: str, *, secret_keys: tuple[str, ...] = ()) -> Callable[[Handler], Handler]:
    """Register `fn` under `name`; a second registration of one name is an error."""

    def register(fn: Handler) -> Handler:
        existing = _registry.get(name)
        if existing is not None and existing is not fn:
            raise ValueError(f"Handler '{name}' is already registered by {existing.__module__}")
        _registry[name] = fn
        _secret_keys[name] = tuple(secret_keys)
        return fn

    return register


def get_handler(name: str) -> Handler | None:
    return _registry.get(name)


def secret_keys_of(name: str) -> tuple[str, ...]:
    """The payload keys the handler `name` declares secret."""
    return _secret_keys.get(name, ())


def registered_names() -> list[str]:
    return sorted(_registry)


def unregister(name: str) -> None:
    _registry.pop(name, None)
    _secret_keys.pop(name, None)


def autodiscover() -> None:
    autodiscover_modules("handlers")
