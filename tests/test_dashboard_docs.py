"""What a new user reads beside the dashboard: the README's metric names as /metrics serves
them, no promise of what already exists, and every setting in .env.example."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.test import Client

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
# Read by the settings, or by the Procfile's web process.
SETTING = re.compile(r'env(?:\.[a-z_]+)?\("([A-Z][A-Z0-9_]+)"|env_secret\("([A-Z][A-Z0-9_]+)"')
PROCFILE = re.compile(r"\$\{([A-Z][A-Z0-9_]+):-")
NOT_FOR_USERS = {"TEST_DATABASE_NAME"}


def configured_names() -> set[str]:
    settings_text = (ROOT / "scheduler_site" / "settings.py").read_text()
    names = {a or b for a, b in SETTING.findall(settings_text)}
    names |= set(PROCFILE.findall((ROOT / "Procfile").read_text()))
    return names - NOT_FOR_USERS


def test_env_example_lists_every_setting():
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, re.MULTILINE))
    missing = configured_names() - listed
    assert not missing, f".env.example lacks {sorted(missing)}"
    for name in (
        "SCHEDULER_TEMPLATE_ENV", "SCHEDULER_MAX_BACKFILL_SLOTS", "SCHEDULER_CA_BUNDLE",
        "SCHEDULER_TLS_WARNING_DAYS", "WEB_WORKERS", "PORT", "BEHIND_TLS_PROXY",
        "AXES_IPWARE_PROXY_COUNT",
    ):  # fmt: skip
        assert name in listed


@pytest.mark.django_db
def test_the_readme_names_the_metrics_as_the_server_serves_them(viewer: User):
    client = Client()
    client.force_login(viewer)
    served = set(re.findall(r"^# TYPE (\S+)", client.get("/metrics").content.decode(), re.M))
    section = README[README.index("`GET /metrics`") :].split("\n\n")[0]
    named = set(re.findall(r"`(cronplane_[a-z_]+)", section))
    # A histogram or summary is served under its own name; a counter gains _total on its samples.
    samples = {f"{name}_total" for name in served} | served
    assert named and named <= samples, named - samples
    assert "cronplane_runs_finished_total" in named


def test_the_readme_does_not_promise_what_is_there():
    assert "soon the dashboard" not in README
