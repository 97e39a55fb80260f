import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0006_fill_endpoint_uuid")]

    operations = [
        migrations.AlterField(
            model_name="endpoint",
            name="uuid",
            field=models.UUIDField(default=uuid.uuid4, editable=False, unique=True),
        ),
    ]
