from django.core.management.base import BaseCommand
from django.db import connection, transaction

from endpoints import crypto
from endpoints.models import Endpoint


class Command(BaseCommand):
    help = "Re-encrypt stored secrets with the first key of FIELD_ENCRYPTION_KEY."

    def handle(self, *args, **options) -> None:
        table = Endpoint._meta.db_table
        column = Endpoint._meta.get_field("headers").column
        count = 0
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SELECT id, {column} FROM {table}")  # noqa: S608 — our own names
            for pk, stored in cursor.fetchall():
                cursor.execute(
                    f"UPDATE {table} SET {column} = %s WHERE id = %s",  # noqa: S608
                    [crypto.rotate(stored), pk],
                )
                count += 1
        self.stdout.write(f"Re-encrypted the headers of {count} endpoint(s) with the first key.")
