"""Fixtures for the API tests (loaded with `pytest_plugins = ["tests.api_support"]`).

Each role calls the API the way a script does: through the whole stack with a real API token.
"""

from __future__ import annotations

import pytest
from django.core.cache import caches
from django.core.cache.backends.redis import RedisCache
from rest_framework.test import APIClient

from api.models import ApiToken
from endpoints import registry


def clear_shared_cache() -> None:
    """Empty the shared cache; on Redis only cronplane's keys (the broker shares the database)."""
    cache = caches["default"]
    if isinstance(cache, RedisCache):
        client = cache._cache.get_client(None, write=True)
        for key in client.scan_iter(f"{cache.key_prefix}:*"):
            client.delete(key)
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def fresh_rate_limits(db):
    """Throttle counters live in the shared cache, which can outlive a test's database."""
    clear_shared_cache()
    yield
    clear_shared_cache()


def client_for(user, *, header: str = "bearer") -> APIClient:
    _, raw = ApiToken.issue(user, "tests")
    client = APIClient()
    if header == "bearer":
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    else:
        client.credentials(HTTP_X_API_KEY=raw)
    return client


@pytest.fixture
def token_client():
    """A client authenticating as a given user with a new token of theirs."""
    return client_for


@pytest.fixture
def anonymous(db) -> APIClient:
    return APIClient()


@pytest.fixture
def as_viewer(viewer) -> APIClient:
    return client_for(viewer)


@pytest.fixture
def as_operator(operator) -> APIClient:
    return client_for(operator)


@pytest.fixture
def as_editor(editor) -> APIClient:
    return client_for(editor)


@pytest.fixture
def as_outsider(outsider) -> APIClient:
    return client_for(outsider)


@pytest.fixture
def report_handler():
    """Seed 001's example handler, registered for the test."""
    calls = []

    @registry.handler("generateWeeklyExpiryReport")
    def report(payload, *, dry_run, log):
        calls.append((payload, dry_run))
        return {"mentors_checked": 87, "expired_found": 2, "errors": 0}

    yield calls
    registry.unregister("generateWeeklyExpiryReport")


@pytest.fixture
def renewals_handler():
    """Seed 003's billing:check-renewals, registered for the test."""
    calls = []

    @registry.handler("billing:check-renewals")
    def check_renewals(payload, *, dry_run, log):
        calls.append(payload)
        if payload.get("explode"):
            raise RuntimeError("ledger unavailable")
        return {"renewals_checked": 12}

    yield calls
    registry.unregister("billing:check-renewals")
