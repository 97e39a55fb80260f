"""Notifications and auto-disable: a real loopback webhook receiver and Django's locmem email."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.utils import timezone

from endpoints.models import Endpoint
from runs import notifications
from runs.models import Log, Notification


@pytest.fixture(autouse=True)
def locmem_email(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_EMAILS = []
    settings.NOTIFY_WEBHOOK_URL = ""


@pytest.fixture
def deliver_now(django_capture_on_commit_callbacks, monkeypatch):
    """Deliver queued notifications in-process, as the cluster's task would."""
    monkeypatch.setattr(
        notifications, "_enqueue", lambda ids: [notifications.deliver(i) for i in ids]
    )


def runjob(name: str) -> None:
    try:
        call_command("runjob", name, stdout=StringIO())
    except CommandError:
        pass


def test_a_failure_after_the_last_retry_emails_and_posts_a_webhook(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    make_endpoint(
        name="billing-sync",
        url=target.url("/status/500"),
        max_attempts=2,
        notify_emails="ops@example.com, oncall@example.com",
        notify_webhook_url=target.url("/hook"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        runjob("billing-sync")

    assert sorted(message.to[0] for message in mail.outbox) == [
        "oncall@example.com",
        "ops@example.com",
    ]
    assert mail.outbox[0].subject == "[cronplane] billing-sync is failing"
    assert "HTTP 500; expected 200-299" in mail.outbox[0].body
    hooks = [r for r in target.received if r.path == "/hook"]
    assert len(hooks) == 1  # after the last retry, not per attempt
    body = hooks[0].json()
    assert body["event"] == "failure"
    assert body["text"].startswith("billing-sync failed")  # Slack-compatible
    assert body["run"]["state"] == "failed"
    assert Notification.objects.filter(state="sent").count() == 3


def test_one_notice_per_failing_streak_then_a_recovery(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(
        name="flappy", url=target.url("/status/503"), max_attempts=1, notify_emails="a@example.com"
    )
    with django_capture_on_commit_callbacks(execute=True):
        runjob("flappy")
        runjob("flappy")
        Endpoint.objects.filter(pk=endpoint.pk).update(url=target.url("/ok"))
        runjob("flappy")
    assert [m.subject for m in mail.outbox] == [
        "[cronplane] flappy is failing",
        "[cronplane] flappy recovered",
    ]


def test_auto_disable_after_n_consecutive_failures_says_why_and_tells_someone(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(
        name="dying",
        url=target.url("/status/502"),
        max_attempts=1,
        auto_disable_after=3,
        notify_emails="a@example.com",
        notify_on_failure=False,
    )
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            runjob("dying")
    endpoint.refresh_from_db()
    assert endpoint.enabled is False and endpoint.next_run_at is None
    last = Log.objects.filter(endpoint=endpoint).first()
    assert endpoint.disabled_reason == (
        f"Auto-disabled after 3 consecutive failed runs (last: {last.run_id}, "
        "HTTP 502; expected 200-299)"
    )
    assert [m.subject for m in mail.outbox] == ["[cronplane] dying was disabled"]
    assert "Auto-disabled after 3" in mail.outbox[0].body


def test_a_success_resets_the_count_toward_auto_disable(make_endpoint, target):
    endpoint = make_endpoint(
        name="wobbly", url=target.url("/flaky/2"), max_attempts=1, auto_disable_after=3
    )
    for _ in range(4):  # fail, fail, succeed, succeed
        runjob("wobbly")
    endpoint.refresh_from_db()
    assert endpoint.enabled and endpoint.consecutive_failures == 0


def test_a_failing_notification_is_retried_and_never_breaks_the_run(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    make_endpoint(
        name="loud",
        url=target.url("/status/500"),
        max_attempts=1,
        notify_webhook_url=target.url("/status/503"),
    )
    with django_capture_on_commit_callbacks(execute=True):
        runjob("loud")
    assert Log.objects.get().state == "failed"  # the run's own record is intact
    notification = Notification.objects.get()
    assert (notification.state, notification.attempts) == ("pending", 1)
    assert "HTTP 503" in notification.last_error
    assert notification.next_attempt_at > timezone.now() + timedelta(seconds=20)

    # The dispatcher's sweep hands it out again when its time comes; five tries, then failed.
    for attempt in range(2, 6):
        later = notification.next_attempt_at + timedelta(seconds=1)
        assert notifications.due(later) == [notification.pk]
        notification.refresh_from_db()
        assert notification.attempts == attempt
    assert notification.state == "failed"
    assert notifications.due(later + timedelta(days=1)) == []


def test_global_defaults_apply_when_an_endpoint_names_nobody(
    settings, make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    settings.NOTIFY_EMAILS = ["team@example.com"]
    make_endpoint(name="quiet", url=target.url("/status/500"), max_attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        runjob("quiet")
    assert [m.to for m in mail.outbox] == [["team@example.com"]]


def test_notification_settings_are_validated(db):
    from django.core.exceptions import ValidationError

    endpoint = Endpoint(
        name="x",
        url="https://api.example.com/",
        cron_expression="@daily",
        notify_emails="ops@example.com, not-an-address",
        notify_webhook_url="http://169.254.169.254/hook",
    )
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    errors = caught.value.message_dict
    assert errors["notify_emails"] == ["'not-an-address' is not an email address."]
    assert "link-local" in errors["notify_webhook_url"][0]


def test_the_api_takes_notification_settings_and_shows_why_a_job_is_off(
    editor, make_endpoint, target
):
    from tests.api_support import client_for

    api = client_for(editor)
    created = api.post(
        "/api/v1/scheduler/jobs",
        {
            "job_name": "api-dying",
            "cron_expression": "@hourly",
            "url": target.url("/status/500"),
            "max_attempts": 1,
            "auto_disable_after": 1,
            "notify_emails": "ops@example.com",
        },
        format="json",
    )
    assert created.status_code == 201, created.json()
    runjob("api-dying")
    job = api.get("/api/v1/scheduler/jobs").json()["data"][0]
    assert job["is_active"] is False
    assert job["disabled_reason"].startswith("Auto-disabled after 1 consecutive failed runs")
    assert job["notify_emails"] == "ops@example.com" and job["auto_disable_after"] == 1
