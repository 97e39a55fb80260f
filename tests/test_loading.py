"""Rows become the same instances as through Model.__init__ (scheduler_site/loading.py)."""

import pytest
from django.db.models import Model, signals

from endpoints.models import Endpoint
from runs.models import Log

pytestmark = pytest.mark.django_db


def _fields(instance: Model) -> dict:
    return {k: v for k, v in instance.__dict__.items() if not k.startswith("_")}


def _through_django(load):
    """What `load()` gives through Django's own Model.from_db: a post_init receiver makes the
    fast path step aside (scheduler_site/loading.py)."""

    def listener(**kwargs):
        pass

    signals.post_init.connect(listener)
    try:
        return load()
    finally:
        signals.post_init.disconnect(listener)


@pytest.mark.parametrize(
    "load",
    [
        lambda pk: Endpoint.objects.get(pk=pk),
        lambda pk: Endpoint.objects.only("id", "name", "headers", "next_run_at").get(pk=pk),
        lambda pk: Endpoint.objects.defer("headers").get(pk=pk),
    ],
    ids=["whole", "only", "defer"],
)
def test_a_row_is_the_instance_djangos_from_db_makes(make_endpoint, load):
    endpoint = make_endpoint(
        headers={"Authorization": "Bearer t"}, secret_headers=["Authorization"]
    )
    fast = load(endpoint.pk)
    django = _through_django(lambda: load(endpoint.pk))
    assert type(fast) is type(django)
    assert _fields(fast) == _fields(django)
    assert fast.get_deferred_fields() == django.get_deferred_fields()
    assert (fast._state.adding, fast._state.db) == (False, "default")
    assert fast.headers == {"Authorization": "Bearer t"}  # decrypted by the field, as before


def test_a_partial_row_leaves_deferred_fields_to_load_on_access(make_endpoint):
    log = Log.objects.create(endpoint=make_endpoint(), reason="kept in the database")
    loaded = Log.objects.only("id", "state").get(pk=log.pk)
    assert "reason" not in loaded.__dict__
    assert loaded.get_deferred_fields() >= {"reason", "endpoint_id"}
    assert loaded.reason == "kept in the database"  # one query, as with __init__


def test_related_rows_and_saves_work_as_before(make_endpoint):
    log = Log.objects.create(endpoint=make_endpoint(name="related"))
    loaded = Log.objects.select_related("endpoint").get(pk=log.pk)
    assert loaded.endpoint.name == "related"
    loaded.reason = "changed"
    loaded.save(update_fields=["reason"])
    assert Log.objects.get(pk=log.pk).reason == "changed"
