"""The one rule for a stored secret, at every door (endpoints/secrets.py): sent back as the mask
it is kept, empty removes it, anything else replaces it."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.urls import reverse

from calls import signing
from calls.masking import MASK
from endpoints.jobs import endpoint_to_job
from endpoints.models import Endpoint
from tests.api_support import client_for
from tests.test_dashboard_forms import form_data
from tests.web_support import login

pytest_plugins = ["tests.api_support"]

KEY, OTHER = signing.new_secret(), signing.new_secret()


@pytest.fixture
def signed(superuser) -> Endpoint:
    login(superuser).post(reverse("dashboard:endpoint_create"), form_data(signing_secret=KEY))
    endpoint = Endpoint.objects.get(name="nightly-report")
    assert endpoint.signing_secret == KEY
    return endpoint


def job_file(user, endpoint: Endpoint, value: str) -> None:
    job = {**endpoint_to_job(Endpoint.objects.get(pk=endpoint.pk)), "signing_secret": value}
    call_command("applyjobs", "-", stdin=io.StringIO(json.dumps([job])), stdout=io.StringIO())


def schedules_api(user, endpoint: Endpoint, value: str) -> None:
    path = f"/api/v1/schedules/sched-{endpoint.pk}"
    answer = client_for(user).put(path, {"signingSecret": value}, format="json")
    assert answer.status_code == 200


def dashboard_form(user, endpoint: Endpoint, value: str) -> None:
    # Password inputs never show the key: left blank is "as shown" (the mask), and "remove"
    # is how the form says empty.
    typed = {MASK: {}, "": {"clear_signing_secret": "on"}}.get(value, {"signing_secret": value})
    login(user).post(reverse("dashboard:endpoint_edit", args=[endpoint.pk]), form_data(**typed))


@pytest.mark.parametrize("door", [job_file, schedules_api, dashboard_form])
def test_the_mask_keeps_a_secret_empty_removes_it_and_a_new_one_replaces_it(
    door, signed, superuser
):
    door(superuser, signed, MASK)
    assert Endpoint.objects.get(pk=signed.pk).signing_secret == KEY

    door(superuser, signed, OTHER)
    assert Endpoint.objects.get(pk=signed.pk).signing_secret == OTHER

    door(superuser, signed, "")
    assert Endpoint.objects.get(pk=signed.pk).signing_secret == ""


def test_the_mask_with_nothing_stored_is_refused_by_name(superuser, signed, tmp_path):
    job = {**endpoint_to_job(signed), "job_name": "another", "signing_secret": MASK}
    err = io.StringIO()
    with pytest.raises(Exception, match="nothing was changed"):
        call_command(
            "applyjobs", "-", stdin=io.StringIO(json.dumps([job])), stdout=io.StringIO(),
            stderr=err,
        )  # fmt: skip
    assert "signing_secret" in err.getvalue() and "no stored key to keep" in err.getvalue()
