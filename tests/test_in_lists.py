"""`__in` with a list: the same rows on every database; on PostgreSQL one array parameter
(`= ANY(%s)`, scheduler_site/postgres.py) instead of a placeholder a value."""

from datetime import UTC, datetime, timedelta
from uuid import uuid4

import pytest
from django.db import connection
from django.db.models import F
from django.test.utils import CaptureQueriesContext

from endpoints.models import Endpoint
from runs.models import Log

pytestmark = pytest.mark.django_db
SLOT = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)


@pytest.fixture
def runs(make_endpoint):
    first, second = make_endpoint(name="first"), make_endpoint(name="second")
    return [
        Log.objects.create(endpoint=endpoint, scheduled_for=SLOT + timedelta(seconds=i))
        for i, endpoint in enumerate([first, first, second])
    ]


def _sql(queryset) -> str:
    with CaptureQueriesContext(connection) as queries:
        list(queryset)
    return queries[-1]["sql"]


def test_ids_strings_times_and_relations_select_the_same_rows(runs):
    first_run, second_run, other = runs
    by_id = Log.objects.filter(pk__in=[first_run.pk, other.pk, 10**9]).order_by("pk")
    assert list(by_id) == [first_run, other]
    assert set(Log.objects.filter(endpoint__in=[other.endpoint])) == {other}
    assert set(Log.objects.filter(endpoint_id__in=[first_run.endpoint_id])) == {
        first_run,
        second_run,
    }
    times = [SLOT, SLOT + timedelta(seconds=2)]
    assert set(Log.objects.filter(scheduled_for__in=times)) == {first_run, other}
    assert set(Endpoint.objects.filter(name__in=["second", "none"])) == {other.endpoint}
    assert set(Endpoint.objects.filter(uuid__in=[other.endpoint.uuid, uuid4()])) == {other.endpoint}
    assert set(Log.objects.exclude(pk__in=[first_run.pk])) == {second_run, other}


def test_none_and_empty_lists_behave_as_before(runs):
    first_run = runs[0]
    assert list(Log.objects.filter(pk__in=[first_run.pk, None])) == [first_run]
    assert list(Log.objects.filter(pk__in=[])) == []
    assert list(Log.objects.filter(pk__in=[None])) == []
    assert Log.objects.exclude(pk__in=[]).count() == 3


def test_subqueries_and_expressions_keep_djangos_sql(runs):
    endpoints = Endpoint.objects.filter(name="second").values("pk")
    assert set(Log.objects.filter(endpoint__in=endpoints)) == {runs[2]}
    assert Log.objects.filter(attempt__in=[F("attempt"), 7]).count() == 3


def test_on_postgresql_a_list_is_one_array_parameter(runs):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL only")
    ids = [run.pk for run in runs]
    assert "= ANY(" in _sql(Log.objects.filter(pk__in=ids))
    assert "= ANY(" in _sql(Log.objects.filter(endpoint_id__in=ids))
    assert " IN (" in _sql(Log.objects.filter(attempt__in=[F("attempt")]))
