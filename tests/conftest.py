from __future__ import annotations

import importlib

import pytest
from django.contrib.auth.models import Group, User

from endpoints.models import Endpoint
from tests.target import Target


@pytest.fixture(autouse=True)
def loopback_targets_allowed(settings):
    """Tests call real servers on 127.0.0.1, which the SSRF guard refuses unless allowed."""
    settings.SCHEDULER_ALLOWED_NETWORKS = ["127.0.0.0/8", "::1/128"]


@pytest.fixture
def serve():
    """Start a hostile server (tests/hostile.py) for a behaviour; all closed afterwards."""
    from tests import hostile

    started: list = []

    def start(behaviour, **options):
        server = hostile.HostileServer(behaviour, **options)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


@pytest.fixture
def target():
    server = Target()
    yield server
    server.close()


def role(name: str) -> Group:
    """The role's group, as the data migration made it (a transactional test's flush removes it)."""
    from django.contrib.auth.models import Permission

    roles = importlib.import_module("runs.migrations.0002_roles").ROLES
    group, created = Group.objects.get_or_create(name=name)
    if created:
        for code in roles[name]:
            app_label, codename = code.split(".")
            group.permissions.add(
                Permission.objects.get(content_type__app_label=app_label, codename=codename)
            )
    return group


def _user(username: str, group: str | None) -> User:
    user = User.objects.create_user(username=username, password="pw-" + username + "-123!")
    if group:
        user.groups.add(role(group))
    return user


@pytest.fixture
def viewer(db) -> User:
    return _user("vera-viewer", "Viewer")


@pytest.fixture
def operator(db) -> User:
    return _user("otto-operator", "Operator")


@pytest.fixture
def editor(db) -> User:
    return _user("edith-editor", "Editor")


@pytest.fixture
def outsider(db) -> User:
    return _user("olga-outsider", None)


@pytest.fixture
def superuser(db) -> User:
    return User.objects.create_superuser("ada-admin", password="pw-ada-admin-123!")


@pytest.fixture
def make_endpoint(db):
    """Create a valid, saved Endpoint; keyword arguments override the defaults."""

    def make(**fields) -> Endpoint:
        values = {
            "name": "ping",
            "kind": Endpoint.Kind.HTTP,
            "url": "http://127.0.0.1:9/ok",
            "schedule_type": Endpoint.ScheduleType.CRON,
            "cron_expression": "*/5 * * * *",
            "timezone": "UTC",
            "retry_backoff_seconds": 0,
        }
        values.update(fields)
        endpoint = Endpoint(**values)
        endpoint.full_clean()
        endpoint.save()
        return endpoint

    return make
