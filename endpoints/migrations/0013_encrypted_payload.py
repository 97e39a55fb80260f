import endpoints.crypto
from django.db import migrations


def encrypt_existing(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    for endpoint in Endpoint.objects.all().only("pk", "payload"):
        endpoint.save(update_fields=["payload"])


class Migration(migrations.Migration):
    dependencies = [
        ("endpoints", "0009_description_length"),
    ]

    operations = [
        migrations.AlterField(
            model_name="endpoint",
            name="payload",
            field=endpoints.crypto.EncryptedJSONField(
                blank=True,
                default=dict,
                help_text="Encrypted at rest; its `headers` and the handler's secret keys are masked.",
            ),
        ),
        migrations.RunPython(encrypt_existing, migrations.RunPython.noop),
    ]
