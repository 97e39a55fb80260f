"""The Notification model (runs.models registers it): one message to one recipient."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from endpoints.crypto import EncryptedTextField
from endpoints.models import Endpoint
from runs.models import Log


class Notification(models.Model):
    """One message to one recipient about one event; sending is retried and its outcome kept."""

    class Event(models.TextChoices):
        FAILURE = "failure"
        RECOVERY = "recovery"
        AUTO_DISABLED = "auto_disabled", "Auto-disabled"
        TLS_EXPIRING = "tls_expiring", "TLS certificate expiring"
        REMINDER = "reminder", "Still failing"
        TEST = "test", "Test notification"

    class Channel(models.TextChoices):
        EMAIL = "email"
        WEBHOOK = "webhook"
        APPRISE = "apprise"

    class State(models.TextChoices):
        PENDING = "pending"
        SENDING = "sending"
        SENT = "sent"
        FAILED = "failed"

    endpoint = models.ForeignKey(Endpoint, on_delete=models.CASCADE, related_name="notifications")
    log = models.ForeignKey(Log, null=True, blank=True, on_delete=models.SET_NULL)
    event = models.CharField(max_length=16, choices=Event.choices)
    channel = models.CharField(max_length=10, choices=Channel.choices)
    # What the recipient is shown as (an Apprise URL masked); `secret_target` is the URL itself.
    target = models.CharField(max_length=2048)
    secret_target = EncryptedTextField(blank=True)
    state = models.CharField(max_length=10, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="notification_due_idx",
                condition=models.Q(state__in=["pending", "sending"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event} → {self.channel}:{self.target} ({self.state})"
