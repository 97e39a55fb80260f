"""Signing moves to Standard Webhooks: every stored key is replaced by a new one.

The old keys were `whsec_` + URL-safe text used whole as the HMAC key; a Standard Webhooks library
base64-decodes what follows `whsec_`, so it would verify with other bytes. Keeping the old bytes
(re-encoding them) would not spare receivers any work: they change their verification code and
the key they hold either way, and typed keys of any length would live on. So each key is
regenerated (32 random bytes) and the endpoint is marked: the dashboard says so until someone
reveals or changes its keys.
"""

import base64
import secrets

from django.db import migrations, models
from django.utils import timezone

import endpoints.crypto


def new_secret() -> str:
    # Frozen here (calls.signing.new_secret may change): what this migration wrote.
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def regenerate_keys(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    now = timezone.now()
    signed = Endpoint.objects.exclude(signing_secret="", signing_secret_next="")
    for endpoint in signed.only("pk", "signing_secret", "signing_secret_next"):
        endpoint.signing_secret = new_secret() if endpoint.signing_secret else ""
        endpoint.signing_secret_next = new_secret() if endpoint.signing_secret_next else ""
        endpoint.signing_keys_replaced_at = now
        endpoint.save(
            update_fields=["signing_secret", "signing_secret_next", "signing_keys_replaced_at"]
        )


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0015_notify_channels"),
    ]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="signing_keys_replaced_at",
            field=models.DateTimeField(
                blank=True,
                editable=False,
                help_text="When the move to Standard Webhooks replaced this endpoint's signing "
                "keys: the dashboard says so until someone reveals or changes them.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="endpoint",
            name="signing_secret",
            field=endpoints.crypto.EncryptedTextField(
                blank=True,
                help_text="Signs every request (Standard Webhooks: webhook-id, webhook-timestamp, "
                "webhook-signature). A whsec_ secret; encrypted at rest.",
            ),
        ),
        migrations.RunPython(regenerate_keys, migrations.RunPython.noop),
    ]
