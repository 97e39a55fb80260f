"""POST /api/v1/scheduler/replay: bulk replay of failed runs, previewed first, each run once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from api.fields import iso
from runs.models import Log
from tests.test_replay import calls_to, fixed_failures, run_replays

pytest_plugins = ["tests.api_support"]
URL = "/api/v1/scheduler/replay"
__all__ = ["fixed_failures"]  # the fixture, shared


def test_a_dry_run_says_what_would_be_replayed_and_writes_nothing(as_operator, fixed_failures):
    logs = Log.objects.count()

    answer = as_operator.post(URL, {"dry_run": True}, format="json")

    assert answer.status_code == 200
    body = answer.json()
    failed = Log.objects.filter(state=Log.State.FAILED).order_by("finished_at")
    assert body.pop("oldest_finished_at") == iso(failed.first().finished_at)
    assert body.pop("newest_finished_at") == iso(failed.last().finished_at)
    assert body == {
        "dry_run": True,
        "summary": "4 failed runs, 2 endpoints",
        "failed_runs": 4,
        "jobs": [
            {"job_name": "billing", "failed_runs": 2},
            {"job_name": "reports", "failed_runs": 2},
        ],
        "error_classes": {"http_status": 4},
        "limit": 1000,
        "replayed": 0,
    }
    assert Log.objects.count() == logs


def test_a_replay_runs_the_selected_jobs_runs_once(as_operator, fixed_failures, target):
    body = {"job_names": ["billing"], "error_class": ["http_status"]}

    first = as_operator.post(URL, body, format="json")
    run_replays()
    second = as_operator.post(URL, body, format="json")
    run_replays()

    assert first.status_code == 201
    assert (first.json()["replayed"], first.json()["jobs"]) == (
        2,
        [{"job_name": "billing", "failed_runs": 2}],
    )
    assert (second.status_code, second.json()["replayed"]) == (200, 0)
    assert calls_to(target, "/ok") == 2
    replays = Log.objects.filter(trigger=Log.Trigger.REPLAY)
    assert {log.triggered_by for log in replays} == {"otto-operator"}


def test_the_time_range_selects_by_when_the_runs_finished(as_operator, fixed_failures):
    hour_ago = (timezone.now() - timedelta(hours=1)).isoformat()

    recent = as_operator.post(URL, {"finished_after": hour_ago, "dry_run": True}, format="json")
    older = as_operator.post(URL, {"finished_before": hour_ago, "dry_run": True}, format="json")

    assert recent.json()["failed_runs"] == 4
    assert older.json()["failed_runs"] == 0


@pytest.mark.parametrize(
    "body,field",
    [
        ({"job_names": ["nope"]}, "job_names"),
        ({"error_class": ["bad"]}, "error_class"),
        ({"finished_after": "yesterday"}, "finished_after"),
        (
            {"finished_after": "2026-12-02T00:00:00Z", "finished_before": "2026-12-01T00:00:00Z"},
            "finished_before",
        ),
        ({"dry_run": "yes"}, "dry_run"),
        ({"jobs": []}, "jobs"),
    ],
)
def test_a_bad_selection_is_a_400_naming_the_field(as_operator, fixed_failures, body, field):
    answer = as_operator.post(URL, body, format="json")

    assert answer.status_code == 400
    assert answer.json()["code"] == "VALIDATION_ERROR"
    assert any(name.split(".")[0] == field for name in answer.json()["details"])
    assert not Log.objects.filter(trigger=Log.Trigger.REPLAY).exists()


def test_a_viewer_may_not_replay(as_viewer, fixed_failures):
    assert as_viewer.post(URL, {"dry_run": True}, format="json").status_code == 403
