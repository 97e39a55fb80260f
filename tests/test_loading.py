"""Rows become the same instances as through Model.__init__ (scheduler_site/loading.py)."""

import pytest
from django.db.models import Model

from endpoints.models import Endpoint
from runs.models import Log

pytestmark = pytest.mark.django_db


def _through_init(instance: Model) -> Model:
    """What Django's own Model.from_db makes of the same row."""
    names = [name for name in instance.__dict__ if not name.startswith("_")]
    values = [instance.__dict__[name] for name in names]
    return Model.from_db.__func__(type(instance), instance._state.db, names, values)


def _fields(instance: Model) -> dict:
    return {k: v for k, v in instance.__dict__.items() if not k.startswith("_")}


def test_a_whole_row_is_the_instance_init_would_make(make_endpoint):
    endpoint = make_endpoint(
        headers={"Authorization": "Bearer t"}, secret_headers=["Authorization"]
    )
    loaded = Endpoint.objects.get(pk=endpoint.pk)
    assert _fields(loaded) == _fields(_through_init(loaded))
    assert loaded._state.adding is False and loaded._state.db == "default"
    assert loaded.headers == {"Authorization": "Bearer t"}  # decrypted by the field, as before


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
