"""API tokens: shown once, stored as a SHA-256 hash, revocable; a token acts as its user."""

from __future__ import annotations

import hashlib
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

TOKEN_PREFIX = "cp_"
# Active tokens one user may hold: enough for every script, not a table to fill.
MAX_TOKENS_PER_USER = 50
# How much of the token stays visible after creation, to tell tokens apart.
VISIBLE_CHARS = 8


def hash_token(raw: str) -> str:
    # Tokens are 256 random bits: a fast hash is enough (no dictionary to attack).
    return hashlib.sha256(raw.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self) -> ApiTokenQuerySet:
        return self.filter(revoked_at__isnull=True, user__is_active=True)


class ApiToken(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=20, help_text="The first characters, for recognition.")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    objects = ApiTokenQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @classmethod
    def issue(cls, user, name: str) -> tuple[ApiToken, str]:
        """Create a token; the raw value is returned this once and never stored.

        Refused (ValidationError) for a user holding MAX_TOKENS_PER_USER active tokens."""
        if cls.objects.active().filter(user=user).count() >= MAX_TOKENS_PER_USER:
            raise ValidationError(
                f"{user.get_username()} already has {MAX_TOKENS_PER_USER} active API tokens: "
                "revoke one before making another."
            )
        raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user,
            name=name[:100],
            prefix=raw[: len(TOKEN_PREFIX) + VISIBLE_CHARS],
            token_hash=hash_token(raw),
        )
        return token, raw

    @classmethod
    def authenticate(cls, raw: str, *, now=None) -> ApiToken | None:
        """The active token with this value (its last_used_at refreshed), or None."""
        if not raw:
            return None
        token = (
            cls.objects.active().select_related("user").filter(token_hash=hash_token(raw)).first()
        )
        if token is not None:
            now = now or timezone.now()
            # At most one write a minute per token, not one per request.
            if token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60:
                cls.objects.filter(pk=token.pk).update(last_used_at=now)
                token.last_used_at = now
        return token

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at"])

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


def revoke_tokens_of_inactive_user(sender, instance, **kwargs) -> None:
    """Deactivating a user revokes their tokens for good (reactivating does not bring them
    back). A password change leaves tokens alone: they are credentials of their own."""
    if not instance.is_active:
        ApiToken.objects.filter(user=instance, revoked_at__isnull=True).update(
            revoked_at=timezone.now()
        )
