"""Timestamps read from PostgreSQL through psycopg's C loader (scheduler_site/postgres.py) are
the values Django's own loader gives: aware, in UTC, to the microsecond."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from runs.models import Log


@pytest.fixture
def on_postgres(db):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")


def test_timestamps_come_back_as_written_in_utc(on_postgres, make_endpoint):
    endpoint = make_endpoint(name="clock", url="https://example.com/")
    instant = datetime(2026, 3, 8, 7, 30, 0, 123456, tzinfo=UTC)
    Log.objects.create(
        endpoint=endpoint, scheduled_for=instant, due_at=instant + timedelta(microseconds=1)
    )

    scheduled_for, due_at = Log.objects.values_list("scheduled_for", "due_at").get()

    assert (scheduled_for, due_at) == (instant, instant + timedelta(microseconds=1))
    assert scheduled_for.tzinfo is UTC and scheduled_for.utcoffset() == timedelta(0)
    with connection.cursor() as cursor:
        loader = cursor.cursor.adapters.get_loader(1184, 0)  # timestamptz, text
    assert loader.__name__ == "CTimestamptzLoader"
