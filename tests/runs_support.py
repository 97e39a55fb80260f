"""Helpers shared by the tests of the execution path: queued runs as the dispatcher makes them,
and waiting (bounded) for something another thread or process does."""

from __future__ import annotations

import time
from collections.abc import Callable

from django.utils import timezone

from runs import dispatcher
from runs.models import Log


def queued(make_endpoint, urls: dict[str, str], **fields) -> list[Log]:
    """One queued scheduled Log per (name, url), as the dispatcher makes them."""
    now = timezone.now()
    for name, url in urls.items():
        endpoint = make_endpoint(name=name, url=url, **fields)
        endpoint.next_run_at = now
        endpoint.save(update_fields=["next_run_at"])
    return dispatcher.dispatch_due(now).to_run


def wait_for(predicate: Callable[[], bool], timeout: float = 60, poll: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()
