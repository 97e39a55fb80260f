from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0007_endpoint_uuid_unique")]

    operations = [
        migrations.AddField(
            model_name="endpoint",
            name="team_id",
            field=models.CharField(
                blank=True, db_index=True, default="", max_length=100, verbose_name="team id"
            ),
            preserve_default=False,
        ),
    ]
