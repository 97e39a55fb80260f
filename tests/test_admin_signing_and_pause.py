"""The admin and the fields beyond the seed: signing keys masked like secret headers (never
rendered, the mask keeps them), jitter, the pause in the list, as_of and the Idempotency-Key on
a run (read-only)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.urls import reverse

from calls import signing
from calls.masking import MASK
from endpoints.models import Endpoint
from runs import verbs
from runs.models import Log
from tests.test_admin import ENDPOINTS, change_url, form_data, login, staff

pytestmark = pytest.mark.django_db

SECRET = signing.new_secret()
NEXT_SECRET = signing.new_secret()
TYPED = signing.new_secret()


@pytest.fixture
def signed(make_endpoint) -> Endpoint:
    return make_endpoint(
        name="signed", signing_secret=SECRET, signing_secret_next=NEXT_SECRET, jitter_seconds=10
    )


@pytest.mark.parametrize("who", ["editor", "viewer"])
def test_the_change_page_never_contains_a_signing_key(request, who, signed):
    response = login(staff(request.getfixturevalue(who))).get(change_url(signed))

    assert response.status_code == 200
    page = response.content.decode()
    assert SECRET not in page and NEXT_SECRET not in page
    assert (MASK in page) if who == "editor" else ("set (never shown)" in page)


def test_saving_the_form_as_rendered_keeps_the_signing_keys_and_jitter(editor, signed):
    client = login(staff(editor))
    data = form_data(client.get(change_url(signed)))
    data["description"] = "edited"

    response = client.post(change_url(signed), data)

    assert response.status_code == 302, response.context["adminform"].form.errors
    signed.refresh_from_db()
    assert (signed.signing_secret, signed.signing_secret_next) == (SECRET, NEXT_SECRET)
    assert signed.jitter_seconds == 10 and signed.description == "edited"


def test_a_typed_key_replaces_the_stored_one_and_empty_removes_it(editor, signed):
    client = login(staff(editor))
    data = form_data(client.get(change_url(signed)))
    data.update(signing_secret=TYPED, signing_secret_next="")

    client.post(change_url(signed), data)

    signed.refresh_from_db()
    assert (signed.signing_secret, signed.signing_secret_next) == (TYPED, "")


def test_a_masked_key_with_nothing_stored_is_a_form_error(editor, make_endpoint):
    endpoint = make_endpoint()
    client = login(staff(editor))
    data = form_data(client.get(change_url(endpoint)))
    data["signing_secret"] = MASK

    response = client.post(change_url(endpoint), data)

    assert response.status_code == 200
    assert "no stored key" in str(response.context["adminform"].form.errors)


def test_the_list_shows_why_and_until_when_an_endpoint_is_paused(editor, make_endpoint):
    endpoint = make_endpoint(timezone="America/New_York")
    until = datetime(2099, 12, 1, 14, tzinfo=UTC)
    verbs.disable(endpoint, by="alice", reason="vendor maintenance", until=until)

    page = login(staff(editor)).get(ENDPOINTS).content.decode()

    assert "Paused until 2099-12-01 09:00 EST by alice: vendor maintenance" in page


def test_a_run_shows_its_as_of_instant_and_idempotency_key_read_only(editor, make_endpoint):
    endpoint = make_endpoint()
    log = verbs.trigger(endpoint, by="x", as_of=datetime(2026, 1, 1, 9, tzinfo=UTC))

    response = login(staff(editor)).get(reverse("admin:runs_log_change", args=[log.pk]))

    page = response.content.decode()
    assert response.status_code == 200
    assert log.idempotency_key in page and "As of" in page
    assert 'name="idempotency_key"' not in page
    assert Log.objects.get(pk=log.pk).idempotency_key == log.idempotency_key
