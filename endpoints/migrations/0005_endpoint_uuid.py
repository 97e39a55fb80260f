# Adding a unique UUID to existing rows takes three steps (Django's "Migrations that add unique
# fields"): the column without a default, a value per row, then unique and not null.

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0004_beyond_peers")]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="uuid",
            field=models.UUIDField(null=True, editable=False),
        ),
    ]
