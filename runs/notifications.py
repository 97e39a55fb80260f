"""Telling someone: email and webhook notifications on failure, recovery and auto-disable.

A failing run gets one notification per failing streak (not one per failed run), a recovery
notice when it succeeds again, and one when it is auto-disabled. A run that sees its target's
TLS certificate expire within SCHEDULER_TLS_WARNING_DAYS warns once per certificate. Each
message to each recipient is a Notification row, delivered by a cluster task, retried with
backoff, and kept with its outcome. Nothing here can fail a run: a notification that cannot
be sent is recorded `failed`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from calls import client
from calls.spec import CallSpec, json_body
from endpoints.models import Endpoint
from runs.models import Log, Notification

logger = logging.getLogger(__name__)
TASK = "runs.notifications.deliver"
MAX_ATTEMPTS = 5
SENDING_LEASE = timedelta(minutes=2)
WEBHOOK_TIMEOUT = 10.0


def recipients(endpoint: Endpoint) -> list[tuple[str, str]]:
    """(channel, target) pairs: the endpoint's own, or else the global defaults."""
    emails = endpoint.notification_emails or list(settings.NOTIFY_EMAILS)
    webhook = endpoint.notify_webhook_url or settings.NOTIFY_WEBHOOK_URL
    pairs = [(Notification.Channel.EMAIL, address) for address in emails]
    if webhook:
        pairs.append((Notification.Channel.WEBHOOK, webhook))
    return pairs


def queue(log: Log, events: list[str], *, now: datetime | None = None) -> list[Notification]:
    """Create the notifications these events call for; deliver them once committed."""
    endpoint = log.endpoint
    wanted = [
        event
        for event in events
        if (event == Notification.Event.FAILURE and endpoint.notify_on_failure)
        or (event == Notification.Event.RECOVERY and endpoint.notify_on_recovery)
        or event in (Notification.Event.AUTO_DISABLED, Notification.Event.TLS_EXPIRING)
    ]
    now = now or timezone.now()
    rows = Notification.objects.bulk_create(
        Notification(
            endpoint=endpoint,
            log=log,
            event=event,
            channel=channel,
            target=target,
            next_attempt_at=now + SENDING_LEASE,
            created_at=now,
        )  # fmt: skip
        for event in wanted
        for channel, target in recipients(endpoint)
    )
    if rows:
        ids = [row.pk for row in rows]
        transaction.on_commit(lambda: _enqueue(ids))
    return rows


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
    """Notifications to (re)send now: retries whose time came, deliveries lost with a worker.

    Each is given a fresh lease as it is handed out, so the next sweep does not repeat it.
    """
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


def deliver(notification_id: int, *, now: datetime | None = None) -> str | None:
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
        if notification.attempts >= MAX_ATTEMPTS:
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


def send(notification: Notification) -> None:
    subject, text = compose(notification)
    if notification.channel == Notification.Channel.EMAIL:
        send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, [notification.target])
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


def compose(notification: Notification) -> tuple[str, str]:
    endpoint, log = notification.endpoint, notification.log
    name = endpoint.name
    detail = ""
    if log is not None:
        detail = log.error_message or (f"HTTP {log.status_code}" if log.status_code else "")
    if notification.event == Notification.Event.FAILURE:
        subject = f"[cronplane] {name} is failing"
        text = f"{name} failed ({endpoint.target})"
        text += f": {detail}" if detail else "."
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
