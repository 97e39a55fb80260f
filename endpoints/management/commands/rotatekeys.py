from django.core.management.base import BaseCommand
from django.db import connection, transaction

from endpoints import crypto
from endpoints.models import Endpoint


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the first key of FIELD_ENCRYPTION_KEY."

    def handle(self, *args, **options) -> None:
        table = Endpoint._meta.db_table
        columns = [field.column for field in crypto.encrypted_fields(Endpoint)]
        count = 0
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {', '.join(columns)} FROM {table}")  # noqa: S608
            for pk, *stored in cursor.fetchall():
                values = [crypto.rotate(value) if value else value for value in stored]
                assignments = ", ".join(f"{column} = %s" for column in columns)
                cursor.execute(
                    f"UPDATE {table} SET {assignments} WHERE id = %s",  # noqa: S608
                    [*values, pk],
                )
                count += 1
        self.stdout.write(f"Re-encrypted the secrets of {count} endpoint(s) with the first key.")
