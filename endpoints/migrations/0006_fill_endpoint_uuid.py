# A distinct uuid for every endpoint that existed before uuids, in batches.

import uuid

from django.db import migrations

BATCH = 1000


def fill(apps, schema_editor):
    Endpoint = apps.get_model("endpoints", "Endpoint")
    while True:
        batch = list(Endpoint.objects.filter(uuid__isnull=True).only("pk")[:BATCH])
        if not batch:
            return
        for endpoint in batch:
            endpoint.uuid = uuid.uuid4()
        Endpoint.objects.bulk_update(batch, ["uuid"])


class Migration(migrations.Migration):
    dependencies = [("endpoints", "0005_endpoint_uuid")]

    operations = [migrations.RunPython(fill, migrations.RunPython.noop, elidable=True)]
