"""Apprise channels and alert thresholds, through Apprise to a real loopback receiver."""

import os
import subprocess
import sys
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from endpoints import channels
from endpoints.models import Endpoint
from runs import notifications
from runs.models import Notification


@pytest.fixture(autouse=True)
def no_global_channels(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_EMAILS, settings.NOTIFY_WEBHOOK_URL, settings.NOTIFY_URLS = [], "", []
    settings.NOTIFY_REMINDER_HOURS = 0


@pytest.fixture
def deliver_now(django_capture_on_commit_callbacks, monkeypatch):
    """Deliver queued notifications in-process, as the cluster's task would."""
    monkeypatch.setattr(
        notifications, "_enqueue", lambda ids: [notifications.deliver(i) for i in ids]
    )


def hook_url(target, path="/hook") -> str:
    return f"json://127.0.0.1:{target.port}{path}"


def alerts(target, path="/hook") -> list[dict]:
    return [r.json() for r in target.received if r.path == path]


def fail(name: str, captured) -> None:
    with captured(execute=True):
        try:
            call_command("runjob", name, stdout=StringIO())
        except CommandError:
            pass


def sweep(now, captured) -> None:
    with captured(execute=True):
        notifications.due(now)


def test_the_third_failure_alerts_through_apprise_and_the_second_does_not(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    make_endpoint(
        name="nightly",
        url=target.url("/status/500"),
        max_attempts=1,
        notify_urls=[hook_url(target)],
        notify_after_failures=3,
    )
    for _ in range(2):
        fail("nightly", django_capture_on_commit_callbacks)
        sweep(timezone.now(), django_capture_on_commit_callbacks)
    assert alerts(target) == []

    fail("nightly", django_capture_on_commit_callbacks)
    sweep(timezone.now(), django_capture_on_commit_callbacks)
    sweep(timezone.now(), django_capture_on_commit_callbacks)  # once per streak

    [alert] = alerts(target)
    assert alert["title"] == "[cronplane] nightly is failing"
    assert alert["message"].startswith("nightly failed 3 runs in a row")
    assert alert["type"] == "failure"
    sent = Notification.objects.get(channel="apprise")
    assert sent.state == "sent" and sent.event == "failure"


def test_the_first_failure_alerts_at_once_by_default_then_a_recovery(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(
        name="billing", url=target.url("/status/503"), max_attempts=1,
        notify_urls=[hook_url(target)],
    )  # fmt: skip
    fail("billing", django_capture_on_commit_callbacks)
    assert [a["title"] for a in alerts(target)] == ["[cronplane] billing is failing"]

    fail("billing", django_capture_on_commit_callbacks)
    Endpoint.objects.filter(pk=endpoint.pk).update(url=target.url("/ok"))
    fail("billing", django_capture_on_commit_callbacks)

    assert [(a["title"], a["type"]) for a in alerts(target)] == [
        ("[cronplane] billing is failing", "failure"),
        ("[cronplane] billing recovered", "success"),
    ]
    endpoint.refresh_from_db()
    assert endpoint.failure_alerted_at is None


def test_a_streak_below_the_threshold_neither_alerts_nor_recovers(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(
        name="flaky", url=target.url("/status/500"), max_attempts=1,
        notify_urls=[hook_url(target)], notify_after_failures=2,
    )  # fmt: skip
    fail("flaky", django_capture_on_commit_callbacks)
    Endpoint.objects.filter(pk=endpoint.pk).update(url=target.url("/ok"))
    fail("flaky", django_capture_on_commit_callbacks)
    sweep(timezone.now(), django_capture_on_commit_callbacks)
    assert alerts(target) == []


def test_a_still_failing_endpoint_is_reminded_about_at_most_every_reminder_period(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks, settings
):
    settings.NOTIFY_REMINDER_HOURS = 6
    endpoint = make_endpoint(
        name="report", url=target.url("/status/500"), max_attempts=1,
        notify_urls=[hook_url(target)],
    )  # fmt: skip
    fail("report", django_capture_on_commit_callbacks)
    alerted = Endpoint.objects.get(pk=endpoint.pk).failure_alerted_at

    sweep(alerted + timedelta(hours=5, minutes=59), django_capture_on_commit_callbacks)
    assert len(alerts(target)) == 1
    sweep(alerted + timedelta(hours=6), django_capture_on_commit_callbacks)
    sweep(alerted + timedelta(hours=7), django_capture_on_commit_callbacks)
    reminders = [a for a in alerts(target) if "still failing" in a["title"]]
    assert [a["title"] for a in reminders] == ["[cronplane] report is still failing"]
    assert "1 failed runs in a row" in reminders[0]["message"]

    sweep(alerted + timedelta(hours=12), django_capture_on_commit_callbacks)
    assert len([a for a in alerts(target) if "still failing" in a["title"]]) == 2


def test_reminders_are_off_by_default(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    make_endpoint(
        name="quiet", url=target.url("/status/500"), max_attempts=1,
        notify_urls=[hook_url(target)],
    )  # fmt: skip
    fail("quiet", django_capture_on_commit_callbacks)
    sweep(timezone.now() + timedelta(days=30), django_capture_on_commit_callbacks)
    assert len(alerts(target)) == 1


def test_global_notify_urls_serve_endpoints_that_name_none(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks, settings
):
    settings.NOTIFY_URLS = [hook_url(target, "/global")]
    make_endpoint(name="orphan", url=target.url("/status/500"), max_attempts=1)
    fail("orphan", django_capture_on_commit_callbacks)
    assert [a["title"] for a in alerts(target, "/global")] == ["[cronplane] orphan is failing"]


def test_a_channel_that_refuses_is_recorded_and_retried(
    make_endpoint, target, deliver_now, django_capture_on_commit_callbacks
):
    make_endpoint(
        name="refused", url=target.url("/status/500"), max_attempts=1,
        notify_urls=[hook_url(target, "/status/500")],
    )  # fmt: skip
    fail("refused", django_capture_on_commit_callbacks)
    notification = Notification.objects.get(channel="apprise")
    assert notification.state == "pending" and notification.attempts == 1
    assert "500" in notification.last_error


def test_a_test_notification_reaches_every_channel_at_once(make_endpoint, target):
    endpoint = make_endpoint(
        name="tested", notify_urls=[hook_url(target), hook_url(target, "/status/404")]
    )
    sent = notifications.send_test(endpoint)
    assert [(n.event, n.state) for n in sent] == [("test", "sent"), ("test", "failed")]
    [alert] = alerts(target)
    assert alert["title"] == "[cronplane] test notification for tested"


@pytest.mark.parametrize(
    "url, message",
    [
        ("foo://bar", "'foo://' is not a notification service Apprise knows"),
        ("slack.example.com/hook", "is not an Apprise URL"),
        ("tgram://", "is not a valid tgram:// URL"),
        ("json://10.1.2.3/hook", "Refused"),
    ],
)
def test_a_bad_notification_url_is_a_field_error(make_endpoint, url, message):
    endpoint = Endpoint(name="bad", url="http://127.0.0.1:9/ok", cron_expression="* * * * *")
    endpoint.notify_urls = [url]
    with pytest.raises(ValidationError) as error:
        endpoint.full_clean()
    assert message in error.value.message_dict["notify_urls"][0]


def test_notify_urls_are_encrypted_at_rest_and_masked(make_endpoint):
    url = "tgram://123456789:AAHsecretbottoken/4567"
    endpoint = make_endpoint(name="secretive", notify_urls=[url])
    with connection.cursor() as cursor:
        cursor.execute("SELECT notify_urls FROM endpoints_endpoint WHERE id = %s", [endpoint.pk])
        [stored] = cursor.fetchone()
    assert "AAHsecretbottoken" not in stored and stored.startswith("fernet:")
    assert Endpoint.objects.get(pk=endpoint.pk).notify_urls == [url]
    [masked] = endpoint.masked_notify_urls
    assert masked.startswith("tgram://") and "AAHsecretbottoken" not in masked
    assert channels.keep_masked_urls([masked, "ntfy://ntfy.sh/new"], [url]) == [
        url,
        "ntfy://ntfy.sh/new",
    ]


def test_an_apprise_notification_keeps_its_url_encrypted(make_endpoint):
    url = "json://user:hunter2@127.0.0.1:9/hook"
    endpoint = make_endpoint(name="kept", notify_urls=[url])
    [row] = notifications.create(endpoint, None, ["test"], now=timezone.now())
    assert "hunter2" not in row.target
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT target, secret_target FROM runs_notification WHERE id = %s", [row.pk]
        )
        shown, secret = cursor.fetchone()
    assert "hunter2" not in shown + secret
    assert Notification.objects.get(pk=row.pk).secret_target == url


def test_an_unknown_service_in_notify_urls_stops_the_system_check(settings):
    settings.NOTIFY_URLS = ["ntfy://ntfy.sh/ops", "nope://x"]
    [error] = channels.check_global_urls()
    assert error.id == "cronplane.E010" and "'nope://' is not a notification service" in error.msg


def test_a_cluster_worker_does_not_load_apprise_until_it_sends_through_it():
    code = (
        "import sys, django; django.setup(); "
        "import runs.engine, runs.recording, runs.notifications, endpoints.models; "
        "print('apprise' in sys.modules)"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "scheduler_site.settings", "DEBUG": "1"}
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert loaded.stdout.strip() == "False", loaded.stderr


def test_a_services_error_message_loses_the_urls_secrets():
    url = "tgram://123456789:AAHsecretbottoken/4567"
    said = "Failed: https://api.telegram.org/bot123456789:AAHsecretbottoken/sendMessage refused"
    redacted = channels.redact(said, url)
    assert "AAHsecretbottoken" not in redacted and "123456789" not in redacted
    assert "api.telegram.org" in redacted


def test_a_token_in_the_host_position_is_redacted_too():
    url = "slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ"
    said = "POST https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ 404"
    redacted = channels.redact(said, url)
    assert "T1JJ3T3L2" not in redacted and "TIiajkdnlazkcOXrIdevi7FQ" not in redacted
    assert channels.redact("refused by 127.0.0.1", "json://user:hunter2@127.0.0.1/hook") == (
        "refused by 127.0.0.1"
    )
