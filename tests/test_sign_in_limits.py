"""Issue 20.5: lockout by username+address through the real sign-in views, a proxy setting
that works, a per-address pause for password spraying, and rate limits kept in the shared cache
(two server processes count as one)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from django.contrib.auth.models import User
from django.test import Client

from tests.processes import ROOT, manage_env
from tests.target import free_port

pytest_plugins = ["tests.api_support"]

PROXY = "127.0.0.1"  # the reverse proxy: every request reaches us from it
ATTACKER, ADMIN_HOME = "203.0.113.66", "198.51.100.7"
PASSWORD = "pw-real-admin-123!"
SIGN_INS = ["/accounts/login/", "/admin/login/"]


@pytest.fixture
def admin_user(db) -> User:
    return User.objects.create_superuser("admin", password=PASSWORD)


@pytest.fixture
def behind_a_proxy(settings):
    settings.AXES_IPWARE_PROXY_COUNT = 1


def sign_in(path: str, username: str, password: str, forwarded: str):
    return Client().post(
        path,
        {"username": username, "password": password},
        REMOTE_ADDR=PROXY,
        HTTP_X_FORWARDED_FOR=forwarded,
    )


@pytest.mark.parametrize("path", SIGN_INS)
def test_a_third_party_cannot_lock_the_admin_out_from_elsewhere(
    path, admin_user, behind_a_proxy, settings
):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        sign_in(path, "admin", "guess", ATTACKER)
    assert sign_in(path, "admin", PASSWORD, ATTACKER).status_code == 429  # that pair is locked

    assert sign_in(path, "admin", PASSWORD, ADMIN_HOME).status_code == 302


def test_a_forged_forwarded_for_is_not_believed(admin_user, behind_a_proxy, settings):
    # The attacker writes the admin's address first; the proxy appends the attacker's own.
    forged = f"{ADMIN_HOME}, {ATTACKER}"
    for _ in range(settings.AXES_FAILURE_LIMIT + 1):
        sign_in("/accounts/login/", "admin", "guess", forged)

    assert sign_in("/accounts/login/", "admin", PASSWORD, ADMIN_HOME).status_code == 302


def test_password_spraying_from_one_address_is_paused(admin_user, behind_a_proxy, settings):
    limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
    answers = [
        sign_in("/accounts/login/", f"user{n}", "Winter2026!", ATTACKER).status_code
        for n in range(40)
    ]

    assert answers[:limit] == [200] * limit and set(answers[limit:]) == {429}
    paused = sign_in("/admin/login/", "admin", PASSWORD, ATTACKER)
    assert paused.status_code == 429 and "from this address" in paused.content.decode()
    assert sign_in("/accounts/login/", "admin", PASSWORD, ADMIN_HOME).status_code == 302


# --- rate limits shared by processes --------------------------------------------------------

CRON_SECRET = "s" * 40


def _serve(port: int) -> subprocess.Popen:
    env = manage_env(CRON_SECRET=CRON_SECRET, API_RATE_CRON_FAILURES="5/min")
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "1", "-b", f"127.0.0.1:{port}",
         "scheduler_site.wsgi"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _wait_for(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"no server on port {port}")


def _cron(port: int, secret: str) -> int:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/v1/cron/process", headers={"x-cron-secret": secret}
    )
    try:
        with urllib.request.urlopen(request, timeout=20) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.django_db(transaction=True)
def test_two_server_processes_share_one_rate_limit():
    ports = [free_port(), free_port()]
    servers = [_serve(port) for port in ports]
    try:
        deadline = time.monotonic() + 60
        for port in ports:
            _wait_for(port, deadline)
        wrong = [_cron(ports[n % 2], "wrong-secret") for n in range(6)]
        assert wrong == [401] * 5 + [429]  # five failures in all, not five per process
        # The guesser shares the real caller's address and still does not limit it.
        assert _cron(ports[0], CRON_SECRET) == 200
    finally:
        for server in servers:
            server.terminate()
        for server in servers:
            server.wait(timeout=10)
