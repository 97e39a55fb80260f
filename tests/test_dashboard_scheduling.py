"""Dashboard surfaces of pauses with a reason and an end, backfill, runs as of an instant, jitter
and signing keys: real views through the test client, every role."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from calls import signing
from endpoints.models import Endpoint
from runs.models import Log
from tests.test_dashboard_forms import form_data
from tests.web_support import login

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
SECRET = signing.new_secret()
NEXT_SECRET = signing.new_secret()
TYPED = signing.new_secret()


@pytest.fixture(autouse=True)
def frozen():
    with time_machine.travel(NOW, tick=False) as traveller:
        yield traveller


def url(name: str, obj) -> str:
    return reverse(f"dashboard:{name}", args=[obj.pk])


@pytest.fixture
def hourly(make_endpoint) -> Endpoint:
    with time_machine.travel(datetime(2026, 10, 1, tzinfo=UTC), tick=False):
        return make_endpoint(
            name="hourly", cron_expression="0 * * * *", timezone="America/New_York"
        )


# --- pause ---------------------------------------------------------------------------------------


def test_the_endpoint_page_offers_a_pause_form_with_reason_and_until_in_its_zone(operator, hourly):
    page = login(operator).get(url("endpoint", hourly)).content.decode()
    assert 'name="reason"' in page and 'name="until"' in page
    assert 'type="datetime-local"' in page and "America/New_York clock" in page


def test_an_operator_pauses_with_a_reason_until_a_local_time(operator, viewer, hourly):
    response = login(operator).post(
        url("endpoint_pause", hourly),
        {"reason": "vendor maintenance", "until": "2026-12-01T09:00"},
        follow=True,
    )

    assert response.redirect_chain[-1][0] == url("endpoint", hourly)
    hourly.refresh_from_db()
    assert not hourly.enabled
    assert hourly.paused_until == datetime(2026, 12, 1, 14, tzinfo=UTC)  # 09:00 EST
    description = "Paused until 2026-12-01 09:00 EST by otto-operator: vendor maintenance"
    assert hourly.pause_description == description
    assert description in login(viewer).get(url("endpoint", hourly)).content.decode()
    assert description in login(viewer).get(reverse("dashboard:index")).content.decode()


def test_a_pause_until_a_past_time_is_an_inline_error_and_saves_nothing(operator, hourly):
    response = login(operator).post(
        url("endpoint_pause", hourly), {"reason": "oops", "until": "2026-11-01T09:00"}
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Not paused" in page and "Choose a time in the future" in page
    assert 'value="oops"' in page  # what was typed stays
    hourly.refresh_from_db()
    assert hourly.enabled and hourly.paused_until is None and hourly.disabled_reason == ""


def test_a_pause_until_that_is_not_a_date_is_an_inline_error(operator, hourly):
    response = login(operator).post(url("endpoint_pause", hourly), {"until": "next tuesday"})
    assert response.status_code == 200 and "is not a date and time" in response.content.decode()
    hourly.refresh_from_db()
    assert hourly.enabled


def test_a_viewer_cannot_pause(viewer, hourly):
    client = login(viewer)
    assert client.get(url("endpoint_pause", hourly)).status_code == 403
    assert client.post(url("endpoint_pause", hourly), {"reason": "x"}).status_code == 403
    hourly.refresh_from_db()
    assert hourly.enabled
    assert 'name="until"' not in client.get(url("endpoint", hourly)).content.decode()


# --- backfill ------------------------------------------------------------------------------------

RANGE = {"start": "2026-11-01T00:00", "end": "2026-11-01T05:00"}


def test_a_backfill_preview_counts_and_lists_the_slots_and_writes_nothing(operator, hourly):
    Log.objects.create(
        endpoint=hourly,
        scheduled_for=datetime(2026, 11, 1, 5, tzinfo=UTC),  # 01:00 EDT
        due_at=NOW,
        created_at=NOW,
        state="success",
    )
    Log.objects.create(
        endpoint=hourly,
        scheduled_for=datetime(2026, 11, 1, 7, tzinfo=UTC),  # 02:00 EST
        due_at=NOW,
        created_at=NOW,
        state="missed",
    )

    response = login(operator).get(url("endpoint_backfill", hourly), RANGE)

    page = response.content.decode()
    assert response.status_code == 200
    assert "5 slots: 3 to run, 1 already ran, 1 missed slot will run" in page
    assert "2026-11-01 00:00:00 EDT" in page and "2026-11-01 04:00:00 EST" in page
    assert Log.objects.count() == 2 and not Log.objects.filter(trigger="backfill").exists()


def test_confirming_a_backfill_creates_exactly_the_planned_runs_once(operator, hourly):
    client = login(operator)
    preview = client.get(url("endpoint_backfill", hourly), RANGE).content.decode()
    assert "Run 5 slots" in preview

    response = client.post(url("endpoint_backfill", hourly), RANGE, follow=True)

    assert response.redirect_chain[-1][0] == url("endpoint", hourly)
    assert "5 runs queued" in response.content.decode()
    runs = Log.objects.filter(endpoint=hourly, trigger="backfill")
    assert runs.count() == 5 and {log.state for log in runs} == {"pending"}
    client.post(url("endpoint_backfill", hourly), RANGE)
    assert Log.objects.filter(endpoint=hourly).count() == 5
    page = client.get(url("endpoint", hourly)).content.decode()
    assert 'badge-dry">backfill</span>' in page


@pytest.mark.parametrize(
    "data, words",
    [
        ({"start": "2026-11-01T00:00", "end": "2026-12-01T00:00"}, "choose an end before now"),
        ({"start": "2026-11-01T05:00", "end": "2026-11-01T00:00"}, "must be after its start"),
        ({"start": "garbage", "end": "2026-11-01T00:00"}, "is not a date and time"),
        ({"start": "2026-11-01T00:00", "end": ""}, "This field is required"),
    ],
)
def test_a_bad_backfill_range_is_an_inline_error_and_writes_nothing(operator, hourly, data, words):
    client = login(operator)
    preview = client.get(url("endpoint_backfill", hourly), data)
    confirm = client.post(url("endpoint_backfill", hourly), data)

    for response in (preview, confirm):
        assert response.status_code == 200 and words in response.content.decode()
    assert not Log.objects.exists()


def test_a_viewer_cannot_backfill(viewer, hourly):
    client = login(viewer)
    assert client.get(url("endpoint_backfill", hourly), RANGE).status_code == 403
    assert client.post(url("endpoint_backfill", hourly), RANGE).status_code == 403
    assert not Log.objects.exists()


# --- run now as of -------------------------------------------------------------------------------


def test_run_now_as_of_a_local_instant_and_the_log_page_says_so(operator, hourly):
    client = login(operator)
    response = client.post(url("endpoint_run", hourly), {"as_of": "2026-10-31T09:00"}, follow=True)

    log = Log.objects.get()
    assert log.as_of == datetime(2026, 10, 31, 13, tzinfo=UTC)  # 09:00 EDT
    assert "as of 2026-10-31 09:00:00 EDT" in response.content.decode()
    page = client.get(url("log", log)).content.decode()
    assert "as of 2026-10-31 09:00:00 EDT" in page
    assert "Idempotency-Key" in page and log.idempotency_key in page


def test_run_now_with_a_bad_as_of_runs_nothing(operator, hourly):
    response = login(operator).post(url("endpoint_run", hourly), {"as_of": "x"}, follow=True)
    assert "Not run" in response.content.decode()
    assert not Log.objects.exists()


# --- jitter and signing in the form ------------------------------------------------------------


def test_the_form_saves_jitter_and_a_generated_signing_key_it_never_shows(editor):
    client = login(editor)
    form_page = client.get(reverse("dashboard:endpoint_create")).content.decode()
    assert "{{ scheduled_at }}" in form_page and "{{ env.NAME }}" in form_page

    response = client.post(
        reverse("dashboard:endpoint_create"),
        form_data(jitter_seconds="30", generate_signing_secret="on"),
    )

    assert response.status_code == 302
    endpoint = Endpoint.objects.get()
    assert endpoint.jitter_seconds == 30 and endpoint.signing_secret.startswith("whsec_")
    for path in (url("endpoint", endpoint), url("endpoint_edit", endpoint)):
        assert endpoint.signing_secret not in client.get(path).content.decode()


def test_a_blank_key_keeps_the_stored_one_and_remove_clears_it(editor, make_endpoint):
    endpoint = make_endpoint(signing_secret=SECRET, signing_secret_next=NEXT_SECRET)
    client = login(editor)
    data = form_data(name="ping", url=endpoint.url, timezone="UTC")

    client.post(url("endpoint_edit", endpoint), data)
    endpoint.refresh_from_db()
    assert (endpoint.signing_secret, endpoint.signing_secret_next) == (SECRET, NEXT_SECRET)

    client.post(url("endpoint_edit", endpoint), {**data, "clear_signing_secret_next": "on"})
    endpoint.refresh_from_db()
    assert (endpoint.signing_secret, endpoint.signing_secret_next) == (SECRET, "")

    client.post(url("endpoint_edit", endpoint), {**data, "signing_secret": TYPED})
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == TYPED


def test_jitter_wider_than_the_schedule_is_an_inline_error(editor):
    response = login(editor).post(
        reverse("dashboard:endpoint_create"),
        form_data(cron_expression="*/5 * * * *", jitter_seconds="300"),
    )
    assert response.status_code == 200 and "shorter than the time between runs" in (
        response.content.decode()
    )
    assert not Endpoint.objects.exists()


def test_a_typed_key_in_a_form_with_errors_is_not_sent_back(editor):
    response = login(editor).post(
        reverse("dashboard:endpoint_create"),
        form_data(cron_expression="nonsense", signing_secret="typed-s3cret-key"),
    )
    assert response.status_code == 200 and "typed-s3cret-key" not in response.content.decode()


def test_the_endpoint_page_says_whether_signing_is_on_and_a_next_key_is_set(viewer, make_endpoint):
    endpoint = make_endpoint(signing_secret=SECRET, signing_secret_next=NEXT_SECRET)
    page = login(viewer).get(url("endpoint", endpoint)).content.decode()
    assert "with a next key set" in page
    assert SECRET not in page and NEXT_SECRET not in page
    assert "Reveal key" not in page and "Promote next key" not in page  # not a viewer's


def test_an_editor_reveals_the_keys_by_post_only(editor, make_endpoint):
    endpoint = make_endpoint(signing_secret=SECRET, signing_secret_next=NEXT_SECRET)
    client = login(editor)
    assert "Reveal key" in client.get(url("endpoint", endpoint)).content.decode()
    assert client.get(url("signing_reveal", endpoint)).status_code == 405

    response = client.post(url("signing_reveal", endpoint))

    assert response.status_code == 200
    assert SECRET in response.content.decode() and NEXT_SECRET in response.content.decode()
    assert "no-store" in response["Cache-Control"]


@pytest.mark.parametrize("who", ["viewer", "operator"])
def test_only_an_editor_reveals_or_promotes_keys(request, who, make_endpoint):
    endpoint = make_endpoint(signing_secret=SECRET, signing_secret_next=NEXT_SECRET)
    client = login(request.getfixturevalue(who))
    assert client.post(url("signing_reveal", endpoint)).status_code == 403
    assert client.post(url("signing_promote", endpoint)).status_code == 403
    endpoint.refresh_from_db()
    assert endpoint.signing_secret == SECRET


def test_promoting_the_next_key_makes_it_the_only_key(editor, make_endpoint):
    endpoint = make_endpoint(signing_secret=SECRET, signing_secret_next=NEXT_SECRET)
    response = login(editor).post(url("signing_promote", endpoint), follow=True)
    endpoint.refresh_from_db()
    assert (endpoint.signing_secret, endpoint.signing_secret_next) == (NEXT_SECRET, "")
    assert "is now its signing key" in response.content.decode()
    again = login(editor).post(url("signing_promote", endpoint), follow=True)
    assert "no next signing key" in again.content.decode()
