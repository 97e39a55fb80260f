"""Issue 20.9: tokens and deactivated users, a cap on tokens, .env's mode, Cache-Control on the
API, 6to4 and Teredo addresses that embed a private IPv4 one."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.test import Client

from api.models import MAX_TOKENS_PER_USER, ApiToken
from calls import guard
from tests.processes import ROOT

pytest_plugins = ["tests.api_support"]


def test_deactivating_a_user_revokes_their_tokens_for_good(operator, token_client):
    client = token_client(operator)
    assert client.get("/api/v1/scheduler/jobs").status_code == 200
    operator.is_active = False
    operator.save()
    assert client.get("/api/v1/scheduler/jobs").status_code == 401
    operator.is_active = True
    operator.save()
    assert client.get("/api/v1/scheduler/jobs").status_code == 401  # not brought back
    assert not ApiToken.objects.active().exists()


def test_a_password_change_keeps_tokens_working(operator, token_client):
    client = token_client(operator)
    operator.set_password("a-new-password-456!")
    operator.save()
    assert client.get("/api/v1/scheduler/jobs").status_code == 200


def test_tokens_per_user_are_capped_at_every_door(operator):
    for n in range(MAX_TOKENS_PER_USER):
        ApiToken.issue(operator, f"t{n}")
    with pytest.raises(ValidationError):
        ApiToken.issue(operator, "one too many")
    with pytest.raises(CommandError, match="revoke one"):
        call_command("createapitoken", operator.username, stdout=StringIO())
    browser = Client()
    browser.force_login(operator)
    page = browser.post("/tokens/", {"name": "one too many"})
    assert page.status_code == 200 and "revoke one" in page.content.decode()
    assert ApiToken.objects.filter(user=operator).count() == MAX_TOKENS_PER_USER
    ApiToken.objects.filter(user=operator).first().revoke()
    ApiToken.issue(operator, "room again")


def test_api_answers_are_never_cached(as_viewer, anonymous):
    for response in (
        as_viewer.get("/api/v1/scheduler/jobs"),
        anonymous.get("/api/v1/scheduler/jobs"),
        as_viewer.get("/api/v1/no-such-route"),
    ):
        assert response["Cache-Control"] == "no-store"


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",  # 6to4 around 127.0.0.1
        "2002:a00:1::1",  # 6to4 around 10.0.0.1
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_transition_addresses_are_judged_by_the_ipv4_they_embed(settings, address):
    settings.SCHEDULER_ALLOWED_NETWORKS = []
    assert "embeds" in (guard.forbidden_reason(address) or "")
    assert guard.url_problem(f"http://[{address}]/") is not None


def test_a_6to4_address_around_a_public_one_is_public(settings):
    settings.SCHEDULER_ALLOWED_NETWORKS = []
    assert guard.forbidden_reason("2002:808:808::1") is None  # 8.8.8.8


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_writes_env_readable_by_its_owner_only(tmp_path):
    venv = tmp_path / ".venv" / "bin"
    venv.mkdir(parents=True)
    (venv / "python").symlink_to(sys.executable)
    subprocess.run(
        ["make", "-f", str(ROOT / "Makefile"), ".env"],
        cwd=tmp_path, check=True, capture_output=True, timeout=30,
        env={**os.environ, "MAKEFLAGS": ""},
    )  # fmt: skip
    env_file = tmp_path / ".env"
    assert env_file.read_text().startswith("SECRET_KEY=")
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
