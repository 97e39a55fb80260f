"""Secrets at rest: Fernet encryption for header values and signing keys, with key rotation.

FIELD_ENCRYPTION_KEY holds one or more Fernet keys, comma-separated: the first encrypts, all
decrypt. To rotate: put the new key first (`NEW,OLD`), run `manage.py rotatekeys`, then drop OLD.
Without FIELD_ENCRYPTION_KEY a key is derived from SECRET_KEY; set FIELD_ENCRYPTION_KEY before
changing SECRET_KEY in that case (or stored secrets can no longer be read).
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django import forms
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.db import models

PREFIX = "fernet:"


def derived_key(secret_key: str) -> bytes:
    digest = hashlib.sha256(b"cronplane field encryption\0" + secret_key.encode()).digest()
    return base64.urlsafe_b64encode(digest)


@functools.lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...], secret_key: str) -> MultiFernet:
    try:
        fernets = [Fernet(key.strip().encode()) for key in keys if key.strip()]
    except ValueError as exc:
        raise ImproperlyConfigured(
            f"FIELD_ENCRYPTION_KEY must be Fernet keys (32 url-safe base64 bytes): {exc}"
        ) from None
    return MultiFernet(fernets or [Fernet(derived_key(secret_key))])


def fernet() -> MultiFernet:
    keys = tuple((settings.FIELD_ENCRYPTION_KEY or "").split(","))
    return _fernet(keys, settings.SECRET_KEY)


def encrypt(text: str) -> str:
    return PREFIX + fernet().encrypt(text.encode()).decode()


def decrypt(stored: str) -> str:
    if not stored.startswith(PREFIX):
        return stored  # written before encryption was switched on
    keys = tuple((settings.FIELD_ENCRYPTION_KEY or "").split(","))
    return _decrypt(stored, keys, settings.SECRET_KEY)


# A worker loads the same endpoints every second or minute: a token decrypted once is not
# decrypted again (a Fernet decryption was a quarter of claiming a run, profiled). Keyed by the
# keys too, so that a token the keys no longer open is never answered from here.
@functools.lru_cache(maxsize=10_000)
def _decrypt(stored: str, keys: tuple[str, ...], secret_key: str) -> str:
    try:
        return _fernet(keys, secret_key).decrypt(stored[len(PREFIX) :].encode()).decode()
    except InvalidToken:
        raise ImproperlyConfigured(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY (or SECRET_KEY) changed "
            "without keeping the old key. Put the old key after the new one."
        ) from None


def rotate(stored: str) -> str:
    """Re-encrypt with the first key."""
    if not stored.startswith(PREFIX):
        return encrypt(stored)
    return PREFIX + fernet().rotate(stored[len(PREFIX) :].encode()).decode()


class JSONFormField(forms.JSONField):
    """Django's JSON form field, except that a value it cannot show as UTF-8 (a lone surrogate
    typed as "\\ud800") is shown escaped when the form comes back with its error."""

    def prepare_value(self, value: Any) -> str:
        text = super().prepare_value(value)
        try:
            text.encode()
        except UnicodeEncodeError:
            return json.dumps(value, cls=self.encoder)  # ASCII, escapes and all
        return text


class EncryptedJSONField(models.TextField):
    """A JSON value stored as one Fernet token; Python sees the plain value."""

    def from_db_value(self, value: str | None, expression, connection) -> Any:
        if value is None:
            return None
        return json.loads(decrypt(value))

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return json.loads(decrypt(value))
            except json.JSONDecodeError:
                raise ValidationError("Enter valid JSON.", code="invalid") from None
        return value

    def get_prep_value(self, value: Any) -> str | None:
        if value is None:
            return None
        return encrypt(json.dumps(value, sort_keys=True))

    def value_to_string(self, obj) -> str:
        return json.dumps(self.value_from_object(obj))

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": JSONFormField, **kwargs})


class EncryptedTextField(models.TextField):
    """A secret string stored as one Fernet token (the empty string stays empty)."""

    def from_db_value(self, value: str | None, expression, connection) -> str:
        return decrypt(value) if value else ""

    def to_python(self, value: Any) -> str:
        return decrypt(value) if isinstance(value, str) and value else (value or "")

    def get_prep_value(self, value: Any) -> str:
        return encrypt(str(value)) if value else ""


class EncryptedListField(EncryptedTextField):
    """A list of secret strings stored as one Fernet token; the empty list is stored empty, so
    the many rows without one cost no decryption when loaded."""

    def from_db_value(self, value: str | None, expression, connection) -> list:
        return json.loads(decrypt(value)) if value else []

    def to_python(self, value: Any) -> list:
        if isinstance(value, str):
            return json.loads(decrypt(value)) if value else []
        return list(value or [])

    def get_prep_value(self, value: Any) -> str:
        return encrypt(json.dumps(list(value))) if value else ""

    def value_to_string(self, obj) -> str:
        return json.dumps(self.value_from_object(obj))


def encrypted_fields(model) -> list[models.Field]:
    return [
        field
        for field in model._meta.concrete_fields
        if isinstance(field, EncryptedJSONField | EncryptedTextField)
    ]
