"""runs/bulk.py: Logs made by new_log() and written by insert_logs() (COPY on PostgreSQL) read
back as the same Logs that Log(**values).save() writes."""

from datetime import UTC, datetime

import pytest

from runs.bulk import insert_logs, new_log
from runs.models import Log, idempotency_key_for_slot

pytestmark = pytest.mark.django_db
SLOT = datetime(2026, 3, 8, 7, 30, tzinfo=UTC)
COMPARED = [
    "endpoint_id", "trigger", "triggered_by", "scheduled_for", "due_at", "state", "request",
    "response_headers", "result_summary", "timing", "idempotency_key", "attempt", "reason",
]  # fmt: skip


def test_bulk_logs_read_back_as_saved_ones(make_endpoint):
    endpoint = make_endpoint(name="bulk")
    values = {
        "endpoint": endpoint,
        "trigger": Log.Trigger.SCHEDULE,
        "triggered_by": "scheduler",
        "scheduled_for": SLOT,
        "due_at": SLOT,
        "idempotency_key": idempotency_key_for_slot(endpoint.pk, SLOT),
    }
    bulk = [new_log(**values), new_log(**values | {"scheduled_for": None, "reason": "tab\there"})]
    bulk[1].request = {"method": "POST", "body": '{"a": 1}\n'}
    insert_logs(bulk)
    saved = Log(**values | {"scheduled_for": None, "idempotency_key": "x"})
    saved.save()

    assert all(log.pk and not log._state.adding for log in bulk)
    assert bulk[0].endpoint is endpoint  # the relation is cached, as Log(endpoint=…) caches it
    first, second, reference = (Log.objects.get(pk=log.pk) for log in (*bulk, saved))
    for name in COMPARED:
        if name not in ("scheduled_for", "idempotency_key", "reason", "request"):
            assert getattr(first, name) == getattr(reference, name), name
    assert first.idempotency_key == values["idempotency_key"]
    assert second.reason == "tab\there"
    assert second.request == {"method": "POST", "body": '{"a": 1}\n'}
    assert first.request == {} and first.response_headers == {}


def test_bulk_ids_follow_the_saved_ones_and_are_never_given_twice(make_endpoint):
    endpoint = make_endpoint(name="bulk-ids")
    saved = Log.objects.create(endpoint=endpoint, idempotency_key="saved")
    first = [new_log(endpoint=endpoint, idempotency_key=f"first-{n}") for n in range(3)]
    insert_logs(first)
    Log.objects.filter(pk=first[-1].pk).delete()  # the highest id gone
    again = [new_log(endpoint=endpoint, idempotency_key="again")]
    insert_logs(again)
    after = Log.objects.create(endpoint=endpoint, idempotency_key="after")

    ids = [saved.pk, *(log.pk for log in first), again[0].pk, after.pk]
    assert ids == sorted(set(ids)), ids
    assert Log.objects.get(pk=again[0].pk).idempotency_key == "again"
