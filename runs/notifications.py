"""Telling someone: email, webhook and Apprise notifications on failure, recovery, auto-disable.

A failing streak alerts once, on its `notify_after_failures`-th consecutive failed run (default
the first), and again as a "still failing" reminder at most every NOTIFY_REMINDER_HOURS; a
recovery notice follows only a streak that alerted. A run that sees its target's TLS
certificate expire within SCHEDULER_TLS_WARNING_DAYS warns once per certificate. Each message
to each recipient is a Notification row, delivered by a cluster task (never on the engine's
loop), retried with backoff, and kept with its outcome. Nothing here can fail a run: a
notification that cannot be sent is recorded `failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from calls import client
from calls.spec import CallSpec, json_body
from endpoints import channels
from endpoints.models import Endpoint
from runs.models import Log, Notification

logger = logging.getLogger(__name__)
TASK = "runs.notifications.deliver"
MAX_ATTEMPTS = 5
SENDING_LEASE = timedelta(minutes=2)
WEBHOOK_TIMEOUT = 10.0
# Events sent whatever the endpoint's failure/recovery switches say.
ALWAYS_SENT = (
    Notification.Event.AUTO_DISABLED,
    Notification.Event.TLS_EXPIRING,
    Notification.Event.TEST,
)
# Apprise's notify types (apprise.NotifyType), which services show as a colour or an icon.
APPRISE_TYPES = {
    Notification.Event.FAILURE: "failure",
    Notification.Event.REMINDER: "failure",
    Notification.Event.AUTO_DISABLED: "failure",
    Notification.Event.RECOVERY: "success",
    Notification.Event.TLS_EXPIRING: "warning",
}


def recipients(endpoint: Endpoint) -> list[tuple[str, str, str]]:
    """(channel, target as shown, secret target) for each recipient: per channel kind, the
    endpoint's own, or else the global defaults."""
    emails = endpoint.notification_emails or list(settings.NOTIFY_EMAILS)
    webhook = endpoint.notify_webhook_url or settings.NOTIFY_WEBHOOK_URL
    urls = endpoint.notify_urls or list(settings.NOTIFY_URLS)
    found = [(Notification.Channel.EMAIL, address, "") for address in emails]
    if webhook:
        found.append((Notification.Channel.WEBHOOK, webhook, ""))
    found += [(Notification.Channel.APPRISE, channels.mask_url(url), url) for url in urls]
    return found


def queue(log: Log, events: list[str], *, now: datetime | None = None) -> list[Notification]:
    """Create the notifications these events call for; deliver them once committed.

    A failure alerts only once its streak reaches notify_after_failures, claimed with a
    conditional UPDATE of failure_alerted_at (the sweep and a finishing run cannot both send
    it); a recovery is announced only when that streak had alerted.
    """
    endpoint = log.endpoint
    now = now or timezone.now()
    wanted = []
    for event in events:
        if event == Notification.Event.FAILURE:
            if claim_failure_alert(endpoint, now) and endpoint.notify_on_failure:
                wanted.append(event)
        elif event == Notification.Event.RECOVERY:
            if claim_recovery(endpoint) and endpoint.notify_on_recovery:
                wanted.append(event)
        elif event in ALWAYS_SENT or (
            event == Notification.Event.REMINDER and endpoint.notify_on_failure
        ):
            wanted.append(event)
    rows = create(endpoint, log, wanted, now=now)
    if rows:
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _enqueue(ids))
    return rows


def create(
    endpoint: Endpoint, log: Log | None, events: list[str], *, now: datetime
) -> list[Notification]:
    return Notification.objects.bulk_create(
        Notification(
            endpoint=endpoint,
            log=log,
            event=event,
            channel=channel,
            target=target[:2048],
            secret_target=secret,
            next_attempt_at=now + SENDING_LEASE,
            created_at=now,
        )  # fmt: skip
        for event in events
        for channel, target, secret in recipients(endpoint)
    )


def claim_failure_alert(endpoint: Endpoint, now: datetime) -> bool:
    claimed = Endpoint.objects.filter(
        pk=endpoint.pk,
        failure_alerted_at=None,
        consecutive_failures__gte=F("notify_after_failures"),
    ).update(failure_alerted_at=now)
    if claimed:
        endpoint.failure_alerted_at = now
    return bool(claimed)


def claim_recovery(endpoint: Endpoint) -> bool:
    claimed = Endpoint.objects.filter(pk=endpoint.pk, failure_alerted_at__isnull=False).update(
        failure_alerted_at=None
    )
    endpoint.failure_alerted_at = None
    return bool(claimed)


def alert_due(now: datetime) -> int:
    """The notification sweep's alerts; returns how many endpoints it alerted about.

    1. A streak that reached notify_after_failures without alerting gets its failure notice
       (the run that finishes a streak's first failure reports it; later ones are found here).
    2. With NOTIFY_REMINDER_HOURS set, an enabled endpoint still failing since its last alert
       that long ago is reminded about, claimed by a conditional UPDATE of failure_alerted_at.
    """
    failing = Endpoint.objects.filter(consecutive_failures__gt=0)
    count = 0
    unalerted = failing.filter(
        failure_alerted_at=None, consecutive_failures__gte=F("notify_after_failures")
    )
    for endpoint in unalerted[:200]:
        if (log := last_failure(endpoint)) is not None:
            with transaction.atomic():
                count += bool(queue(log, [Notification.Event.FAILURE], now=now))
    hours = settings.NOTIFY_REMINDER_HOURS
    if not hours:
        return count
    stale = failing.filter(enabled=True, failure_alerted_at__lte=now - timedelta(hours=hours))
    for endpoint in stale[:200]:
        log = last_failure(endpoint)
        with transaction.atomic():
            claimed = Endpoint.objects.filter(
                pk=endpoint.pk, failure_alerted_at=endpoint.failure_alerted_at
            ).update(failure_alerted_at=now)
            if claimed and log is not None:
                count += bool(queue(log, [Notification.Event.REMINDER], now=now))
    return count


def last_failure(endpoint: Endpoint) -> Log | None:
    log = endpoint.logs.filter(state=Log.State.FAILED, dry_run=False).order_by("-id").first()
    if log is not None:
        log.endpoint = endpoint
    return log


def send_test(endpoint: Endpoint, *, now: datetime | None = None) -> list[Notification]:
    """Send a test message to each of the endpoint's channels now, in this process, once
    (no retries: the person who asked is waiting for the answer)."""
    now = now or timezone.now()
    rows = create(endpoint, None, [Notification.Event.TEST], now=now)
    for row in rows:
        deliver(row.pk, now=now, attempts=1)
    return list(Notification.objects.filter(pk__in=[row.pk for row in rows]).order_by("pk"))


def track_certificates(logs: Iterable[Log]) -> list[Log]:
    """Keep Endpoint.tls_expires_at current from these finished runs; return the runs whose
    certificate must be warned about (queue TLS_EXPIRING for them in the same transaction).

    1. A run whose certificate expires at another time than its endpoint (as loaded with the
       run) records moves it: one UPDATE per distinct expiry, none in the common case.
    2. A certificate expiring within SCHEDULER_TLS_WARNING_DAYS of the run that the endpoint
       has not warned about is claimed with a conditional UPDATE of tls_warned_expiry: of two
       runs seeing it at once exactly one warns, and a renewed certificate warns again.
    """
    window = timedelta(days=settings.SCHEDULER_TLS_WARNING_DAYS)
    moved: dict[datetime, list[int]] = {}
    warn: list[Log] = []
    for log in logs:
        expires, endpoint = log.tls_expires_at, log.endpoint
        if expires is None:
            continue
        if endpoint.tls_expires_at != expires:
            moved.setdefault(expires, []).append(endpoint.pk)
            endpoint.tls_expires_at = expires
        if endpoint.tls_warned_expiry == expires:
            continue
        if expires - (log.finished_at or timezone.now()) <= window:
            claimed = (
                Endpoint.objects.filter(pk=endpoint.pk)
                .exclude(tls_warned_expiry=expires)
                .update(tls_warned_expiry=expires)
            )
            endpoint.tls_warned_expiry = expires
            if claimed:
                warn.append(log)
    for expires, ids in moved.items():
        Endpoint.objects.filter(pk__in=ids).update(tls_expires_at=expires)
    return warn


def _enqueue(ids: list[int]) -> None:
    from django_q.tasks import async_task

    for notification_id in ids:
        async_task(TASK, notification_id, task_name=f"notification-{notification_id}")


def due(now: datetime) -> list[int]:
    """The sweep: alerts and reminders due (alert_due), then notifications to (re)send now:
    retries whose time came, deliveries lost with a worker.

    Each is given a fresh lease as it is handed out, so the next sweep does not repeat it.
    """
    alert_due(now)
    ids = list(
        Notification.objects.filter(
            state__in=(Notification.State.PENDING, Notification.State.SENDING),
            next_attempt_at__lte=now,
        ).values_list("pk", flat=True)[:200]
    )
    if ids:
        Notification.objects.filter(pk__in=ids).update(
            state=Notification.State.PENDING, next_attempt_at=now + SENDING_LEASE
        )
        _enqueue(ids)
    return ids


def deliver(
    notification_id: int, *, now: datetime | None = None, attempts: int = MAX_ATTEMPTS
) -> str | None:
    """Send one notification if it is still pending; record sent, or retry later, or failed."""
    now = now or timezone.now()
    claimed = Notification.objects.filter(
        pk=notification_id, state=Notification.State.PENDING
    ).update(state=Notification.State.SENDING, next_attempt_at=now + SENDING_LEASE)
    if not claimed:
        return None
    notification = Notification.objects.select_related("endpoint", "log").get(pk=notification_id)
    notification.attempts += 1
    try:
        send(notification)
    except Exception as exc:  # any failure to notify is recorded, never raised into a run
        notification.last_error = f"{type(exc).__name__}: {exc}"[:2000]
        if notification.attempts >= attempts:
            notification.state = Notification.State.FAILED
        else:
            notification.state = Notification.State.PENDING
            delay = 30 * (2 ** (notification.attempts - 1))
            notification.next_attempt_at = now + timedelta(seconds=delay)
        logger.warning("notification %s not sent: %s", notification.pk, notification.last_error)
    else:
        notification.state, notification.sent_at = Notification.State.SENT, now
    notification.save(
        update_fields=["state", "attempts", "last_error", "next_attempt_at", "sent_at"]
    )
    return notification.state


class WebhookRefused(Exception):
    pass


class ChannelRefused(Exception):
    pass


def send(notification: Notification) -> None:
    subject, text = compose(notification)
    if notification.channel == Notification.Channel.EMAIL:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [notification.target])
        return
    if notification.channel == Notification.Channel.APPRISE:
        send_apprise(notification, subject, text)
        return
    outcome = client.call(
        CallSpec(
            method="POST",
            url=notification.target,
            headers={"Content-Type": "application/json"},
            body=json_body(webhook_body(notification, text)).encode(),
            timeout=WEBHOOK_TIMEOUT,
        )
    )
    if not outcome.ok:
        raise WebhookRefused(outcome.error_message)


def send_apprise(notification: Notification, subject: str, text: str) -> None:
    """One message through Apprise; what it logged about a refusal becomes the error."""
    import apprise  # here, not at import: see endpoints.channels

    url = notification.secret_target
    # Checked on save too; a host can have moved to a blocked address since.
    if problem := channels.url_problem(url):
        raise ChannelRefused(problem)
    notifier = apprise.Apprise()
    notifier.add(url)
    kind = apprise.NotifyType(APPRISE_TYPES.get(notification.event, "info"))
    with apprise.LogCapture(level=logging.WARNING) as captured:
        sent = notifier.notify(title=subject, body=text, notify_type=kind)
    if not sent:
        said = captured.getvalue().strip().splitlines()
        reason = said[-1] if said else f"{notification.target} refused the message."
        raise ChannelRefused(channels.redact(reason, url))


def compose(notification: Notification) -> tuple[str, str]:
    endpoint, log = notification.endpoint, notification.log
    name = endpoint.name
    detail = ""
    if log is not None:
        detail = log.error_message or (f"HTTP {log.status_code}" if log.status_code else "")
    streak = endpoint.consecutive_failures
    if notification.event == Notification.Event.FAILURE:
        subject = f"[cronplane] {name} is failing"
        text = f"{name} failed ({endpoint.target})"
        if streak > 1:
            text = f"{name} failed {streak} runs in a row ({endpoint.target})"
        text += f": {detail}" if detail else "."
    elif notification.event == Notification.Event.REMINDER:
        subject = f"[cronplane] {name} is still failing"
        text = f"{name} is still failing: {streak} failed runs in a row ({endpoint.target})"
        text += f"; last: {detail}" if detail else "."
    elif notification.event == Notification.Event.TEST:
        subject = f"[cronplane] test notification for {name}"
        text = f"A test from cronplane: {name}'s notifications reach this channel."
    elif notification.event == Notification.Event.RECOVERY:
        subject = f"[cronplane] {name} recovered"
        text = f"{name} succeeded again ({endpoint.target})."
    elif notification.event == Notification.Event.TLS_EXPIRING:
        host, expires, days = certificate_facts(notification)
        when = f"{expires:%Y-%m-%d %H:%M} UTC" if expires else "soon"
        subject = f"[cronplane] {name}: the TLS certificate of {host} expires in {days} days"
        text = (
            f"The TLS certificate of {host}, which {name} calls ({endpoint.target}), "
            f"expires on {when}: {days} days left. Renew it before then, or runs will fail."
        )
    else:
        subject = f"[cronplane] {name} was disabled"
        text = f"{name} was disabled: {endpoint.disabled_reason}"
    if log is not None:
        link = settings.SITE_URL + reverse("dashboard:log", args=[log.pk])
        text += f"\nRun {log.run_id}: {link}"
    return subject, text


def certificate_facts(notification: Notification) -> tuple[str, datetime | None, int]:
    """(host, expiry, whole days left when noticed) for a TLS_EXPIRING notification."""
    endpoint, log = notification.endpoint, notification.log
    expires = (log.tls_expires_at if log is not None else None) or endpoint.tls_expires_at
    host = urlsplit(endpoint.url or "").hostname or endpoint.target
    days = max(0, (expires - notification.created_at).days) if expires else 0
    return host, expires, days


def webhook_body(notification: Notification, text: str) -> dict:
    endpoint, log = notification.endpoint, notification.log
    body = {
        "text": text,
        "event": notification.event,
        "endpoint": {"name": endpoint.name, "target": endpoint.target, "enabled": endpoint.enabled},
    }
    if log is not None:
        body["run"] = {
            "run_id": log.run_id,
            "state": log.state,
            "status_code": log.status_code,
            "error_class": log.error_class,
            "error_message": log.error_message,
            "scheduled_for": log.scheduled_for.isoformat() if log.scheduled_for else None,
            "finished_at": log.finished_at.isoformat() if log.finished_at else None,
        }
    if notification.event == Notification.Event.TLS_EXPIRING:
        host, expires, days = certificate_facts(notification)
        body["certificate"] = {
            "host": host,
            "expires_at": expires.isoformat() if expires else None,
            "days_left": days,
        }
    return body
