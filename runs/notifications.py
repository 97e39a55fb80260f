"""Telling someone: email and webhook notifications on failure, recovery and auto-disable.

A failing run gets one notification per failing streak (not one per failed run), a recovery
notice when it succeeds again, and one when it is auto-disabled. Each message to each recipient
is a Notification row, delivered by a cluster task, retried with backoff, and kept with its
outcome. Nothing here can fail a run: a notification that cannot be sent is recorded `failed`.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from endpoints.models import Endpoint
from runs import http
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
        or event == Notification.Event.AUTO_DISABLED
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
    outcome = http.call(
        http.CallSpec(
            method="POST",
            url=notification.target,
            headers={"Content-Type": "application/json"},
            body=http.json_body(webhook_body(notification, text)).encode(),
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
    else:
        subject = f"[cronplane] {name} was disabled"
        text = f"{name} was disabled: {endpoint.disabled_reason}"
    if log is not None:
        link = settings.SITE_URL + reverse("dashboard:log", args=[log.pk])
        text += f"\nRun {log.run_id}: {link}"
    return subject, text


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
    return body
