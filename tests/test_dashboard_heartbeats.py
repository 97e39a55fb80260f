"""The dashboard shows heartbeats: last ping and "late" in the list and on their page; the form
makes one; nothing offers to run one."""

from datetime import UTC, datetime

import pytest
import time_machine
from django.urls import reverse

from endpoints.models import Endpoint
from runs import heartbeats
from tests.test_dashboard_forms import CREATE, form_data
from tests.web_support import login

pytestmark = pytest.mark.django_db
T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture
def backup(make_endpoint) -> Endpoint:
    with time_machine.travel(T0, tick=False):
        return make_endpoint(
            name="db-backup",
            kind=Endpoint.Kind.HEARTBEAT,
            url="",
            cron_expression="30 2 * * *",
            grace_seconds=600,
        )


def test_the_list_shows_a_late_heartbeat_with_its_last_ping(operator, backup):
    heartbeats.record_ping(
        backup, heartbeats.Ping(heartbeats.LOG), now=datetime(2026, 12, 1, 2, 20, tzinfo=UTC)
    )
    with time_machine.travel(datetime(2026, 12, 1, 2, 35, tzinfo=UTC), tick=False):
        html = login(operator).get(reverse("dashboard:index")).content.decode()
    row = html[html.index('id="endpoint-' + str(backup.pk)) :].split("</tr>")[0]
    assert "PING" in row and "heartbeat" in row
    assert 'class="badge badge-late"' in row
    assert "last ping" in row and "15 min ago" in row
    assert "ping expected" in row
    assert "Run now" not in row  # nothing to run: its job runs elsewhere


def test_an_on_time_heartbeat_is_not_late_and_says_when_it_never_pinged(viewer, backup):
    with time_machine.travel(datetime(2026, 12, 1, 2, 10, tzinfo=UTC), tick=False):
        html = login(viewer).get(reverse("dashboard:index")).content.decode()
    assert "badge-late" not in html
    assert "never pinged" in html


def test_the_endpoint_page_shows_the_ping_url_grace_and_late_state(operator, backup):
    with time_machine.travel(datetime(2026, 12, 1, 2, 31, tzinfo=UTC), tick=False):
        html = login(operator).get(reverse("dashboard:endpoint", args=[backup.pk])).content.decode()
    assert f"http://127.0.0.1:8000/ping/{backup.uuid}" in html
    assert "10 minutes after each expected time" in html
    assert 'class="badge badge-late"' in html
    assert "Pings expected" in html
    for control in (">Run now</button>", ">Dry run</button>", ">As of…<", ">Backfill…</a>"):
        assert control not in html
    assert "<dt>Retries</dt>" not in html


def test_a_missed_slot_shows_in_the_run_table_with_its_reason(operator, backup):
    heartbeats.record_missed(datetime(2026, 12, 1, 3, 0, tzinfo=UTC))
    html = login(operator).get(reverse("dashboard:endpoint", args=[backup.pk])).content.decode()
    assert "missed" in html


def test_the_form_creates_a_heartbeat(editor):
    response = login(editor).post(
        CREATE,
        form_data(name="db-backup", kind="heartbeat", url="", method="GET", grace_seconds="900"),
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    backup = Endpoint.objects.get(name="db-backup")
    assert (backup.kind, backup.grace_seconds, backup.next_run_at) == ("heartbeat", 900, None)
    assert backup.expected_at is not None


def test_the_form_refuses_a_heartbeat_without_a_schedule_inline(editor):
    response = login(editor).post(
        CREATE, form_data(name="db-backup", kind="heartbeat", url="", schedule_type="none",
                          grace_seconds="900"),
    )  # fmt: skip
    assert response.status_code == 200
    assert "give a cron expression or an interval" in response.content.decode()
    assert not Endpoint.objects.exists()


def test_a_ping_run_page_shows_its_body_escaped_and_what_the_job_reported(operator, backup):
    ping = heartbeats.Ping(
        heartbeats.FAIL,
        exit_status=3,
        body="<script>alert(1)</script>",
        body_bytes=25,
        source={"method": "POST", "url": f"/ping/{backup.uuid}/3", "headers": {}},
    )
    log = heartbeats.record_ping(backup, ping, now=datetime(2026, 12, 1, 2, 31, tzinfo=UTC))
    html = login(operator).get(reverse("dashboard:log", args=[log.pk])).content.decode()
    assert "Exit status 3." in html
    assert "Body of the ping" in html and "Ping received" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
