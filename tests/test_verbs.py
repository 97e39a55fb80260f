"""One function per verb (runs/verbs.py), and every door one call to it: the same change made
through the admin (its actions and its change form), the dashboard, the Schedules API and a job
file leaves the same state, the same wording and the same event (its audit entry)."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import pytest
from auditlog.models import LogEntry
from django.core.management import call_command
from django.urls import reverse
from django_q.models import OrmQ

from endpoints.jobs import endpoint_to_job
from endpoints.models import Endpoint
from runs import actions, services, verbs
from runs.models import Log
from tests.api_support import client_for
from tests.test_admin import change_url
from tests.test_admin import form_data as admin_form_data
from tests.test_dashboard_forms import form_data
from tests.web_support import login

pytest_plugins = ["tests.api_support"]

USER = "ada-admin"


@pytest.fixture
def job(superuser) -> Endpoint:
    """A job made through the dashboard's form, so that posting the form again changes only
    what a test changes; failing for a while."""
    login(superuser).post(reverse("dashboard:endpoint_create"), form_data())
    endpoint = Endpoint.objects.get(name="nightly-report")
    Endpoint.objects.filter(pk=endpoint.pk).update(consecutive_failures=4)
    return Endpoint.objects.get(pk=endpoint.pk)


def admin_action(superuser, endpoint: Endpoint, on: bool) -> None:
    login(superuser).post(
        "/admin/endpoints/endpoint/",
        {"action": "enable" if on else "disable", "_selected_action": [endpoint.pk], "index": 0},
    )


def admin_change_form(superuser, endpoint: Endpoint, on: bool) -> None:
    client = login(superuser)
    data = admin_form_data(client.get(change_url(endpoint)))
    data.pop("enabled", None)
    if on:
        data["enabled"] = "on"
    response = client.post(change_url(endpoint), data)
    assert response.status_code == 302, response.context["adminform"].form.errors


def dashboard_form(superuser, endpoint: Endpoint, on: bool) -> None:
    data = form_data()
    if not on:
        del data["enabled"]
    login(superuser).post(reverse("dashboard:endpoint_edit", args=[endpoint.pk]), data)


def dashboard_buttons(superuser, endpoint: Endpoint, on: bool) -> None:
    name = "dashboard:endpoint_resume" if on else "dashboard:endpoint_pause"
    login(superuser).post(reverse(name, args=[endpoint.pk]), {"reason": "", "until": ""})


def schedules_api_toggle(superuser, endpoint: Endpoint, on: bool) -> None:
    path = f"/api/v1/schedules/sched-{endpoint.pk}/{'enable' if on else 'disable'}"
    assert client_for(superuser).post(path, {}, format="json").status_code == 200


def schedules_api_update(superuser, endpoint: Endpoint, on: bool) -> None:
    path = f"/api/v1/schedules/sched-{endpoint.pk}"
    assert client_for(superuser).put(path, {"enabled": on}, format="json").status_code == 200


def job_file(superuser, endpoint: Endpoint, on: bool, tmp_path=None) -> None:
    job = {**endpoint_to_job(Endpoint.objects.get(pk=endpoint.pk)), "is_active": on}
    call_command("applyjobs", "-", stdin=io.StringIO(json.dumps([job])), stdout=io.StringIO())


DOORS: dict[str, tuple[Callable, str]] = {
    "admin action": (admin_action, USER),
    "admin change form": (admin_change_form, USER),
    "dashboard form": (dashboard_form, USER),
    "dashboard pause and resume": (dashboard_buttons, USER),
    "Schedules API enable/disable": (schedules_api_toggle, USER),
    "Schedules API update": (schedules_api_update, USER),
    "job file": (job_file, "applyjobs"),
}


def state(endpoint: Endpoint) -> tuple:
    endpoint.refresh_from_db()
    return (
        endpoint.enabled,
        endpoint.disabled_reason,
        endpoint.paused_by,
        endpoint.next_run_at is None,
        endpoint.consecutive_failures,
    )


def switches(endpoint: Endpoint) -> list[list[str]]:
    """The audit entries that turned it off or on: the event of each switch."""
    entries = LogEntry.objects.get_for_object(endpoint).filter(action=LogEntry.Action.UPDATE)
    entries = entries.order_by("timestamp", "pk")
    return [entry.changes["enabled"] for entry in entries if "enabled" in (entry.changes or {})]


@pytest.mark.parametrize("door", DOORS)
def test_each_door_disables_and_enables_through_the_one_verb(door, job, superuser):
    through, who = DOORS[door]

    through(superuser, job, False)
    assert state(job) == (False, f"Disabled by {who}.", who, True, 4)
    assert job.pause_description == f"Paused by {who}"

    through(superuser, job, True)
    assert state(job) == (True, "", "", False, 0)
    assert switches(job) == [["True", "False"], ["False", "True"]]


@pytest.mark.parametrize("door", DOORS)
def test_enabling_an_enabled_job_through_any_door_changes_nothing(door, job, superuser):
    through, _ = DOORS[door]
    before = state(job), job.next_run_at

    through(superuser, job, True)

    assert (state(job), job.next_run_at) == before  # failures not forgiven, next run not moved
    assert switches(job) == []


def test_enable_twice_through_the_schedules_api_leaves_the_second_call_a_no_op(job, superuser):
    api = client_for(superuser)
    path = f"/api/v1/schedules/sched-{job.pk}"
    api.post(f"{path}/disable", {"reason": "vendor maintenance"}, format="json")

    first = api.post(f"{path}/enable", {}, format="json").json()
    job.refresh_from_db()
    Endpoint.objects.filter(pk=job.pk).update(consecutive_failures=2)
    second = api.post(f"{path}/enable", {}, format="json").json()

    assert first == second and first["enabled"] is True
    assert Endpoint.objects.get(pk=job.pk).consecutive_failures == 2
    assert switches(job) == [["True", "False"], ["False", "True"]]


def test_disabling_a_disabled_job_keeps_its_reason_unless_given_another(job):
    assert verbs.disable(job, by="alice", reason="vendor maintenance")
    assert not verbs.disable(job, by="bob")
    assert state(job)[:3] == (False, "vendor maintenance", "alice")
    assert verbs.disable(job, by="bob", reason="still down")
    assert state(job)[:3] == (False, "still down", "bob")


TRIGGERS = {
    "admin action": lambda user, endpoint: login(user).post(
        "/admin/endpoints/endpoint/",
        {"action": "run_now", "_selected_action": [endpoint.pk], "index": 0},
    ),
    "dashboard": lambda user, endpoint: login(user).post(
        reverse("dashboard:endpoint_run", args=[endpoint.pk]), {}
    ),
    "job API": lambda user, endpoint: client_for(user).post(
        f"/api/v1/scheduler/jobs/{endpoint.name}/trigger", {}, format="json"
    ),
    "runjob --queue": lambda user, endpoint: call_command(
        "runjob", endpoint.name, "--queue", stdout=io.StringIO()
    ),
}


@pytest.mark.parametrize("door", TRIGGERS)
def test_each_door_triggers_a_queued_run_handed_to_the_broker(
    door, job, superuser, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        TRIGGERS[door](superuser, job)

    (log,) = Log.objects.filter(endpoint=job)
    assert (log.state, log.dry_run, log.attempt) == (Log.State.QUEUED, False, 1)
    assert log.triggered_by == ("runjob" if door == "runjob --queue" else USER)
    assert log.trigger == (Log.Trigger.API if door == "job API" else Log.Trigger.MANUAL)
    assert OrmQ.objects.count() == 1


def test_a_plain_save_writes_what_it_is_given(make_endpoint):
    endpoint = make_endpoint()
    moment = endpoint.next_run_at.replace(year=2031)

    endpoint.next_run_at = moment
    endpoint.run_count = 7
    endpoint.save()

    assert Endpoint.objects.filter(pk=endpoint.pk, next_run_at=moment, run_count=7).exists()


def test_an_edit_never_writes_back_the_run_statistics_moved_meanwhile(make_endpoint):
    loaded = make_endpoint()
    Endpoint.objects.filter(pk=loaded.pk).update(run_count=3, last_status="success")

    loaded.description = "nightly"
    verbs.save(loaded, by="alice")

    saved = Endpoint.objects.get(pk=loaded.pk)
    assert (saved.description, saved.run_count, saved.last_status) == ("nightly", 3, "success")


@pytest.fixture
def failed_action(superuser):
    action = actions.find_action(actions.schedule_action("webhook:send", {"url": "http://x.test/"}))
    return services.create_run(action, state=Log.State.FAILED)


RETRIES = {
    "dashboard": lambda user, log: login(user).post(reverse("dashboard:log_retry", args=[log.pk])),
    "Scheduled Actions API": lambda user, log: client_for(user).post(
        f"/api/v1/devtools/scheduled-actions/{log.endpoint.uuid}/retry", {}, format="json"
    ),
    "Python API": lambda user, log: actions.retry_scheduled_action(log.endpoint.pk, by=USER),
}


@pytest.mark.parametrize("door", RETRIES)
def test_each_door_retries_a_failed_run_as_its_next_attempt(door, failed_action, superuser):
    RETRIES[door](superuser, failed_action)

    attempt = Log.objects.get(retry_of=failed_action)
    assert (attempt.state, attempt.trigger, attempt.attempt) == (
        Log.State.QUEUED, Log.Trigger.RETRY, 2,
    )  # fmt: skip
    assert attempt.triggered_by == USER
    assert attempt.idempotency_key == failed_action.idempotency_key


DELETES = {
    "admin": lambda user, endpoint: login(user).post(
        "/admin/endpoints/endpoint/",
        {"action": "delete_selected", "_selected_action": [endpoint.pk], "post": "yes"},
    ),
    "admin change form": lambda user, endpoint: login(user).post(
        f"/admin/endpoints/endpoint/{endpoint.pk}/delete/", {"post": "yes"}
    ),
    "dashboard": lambda user, endpoint: login(user).post(
        reverse("dashboard:endpoint_delete", args=[endpoint.pk])
    ),
    "job API": lambda user, endpoint: client_for(user).delete(
        f"/api/v1/scheduler/jobs/{endpoint.name}"
    ),
    "job file --prune": lambda user, endpoint: call_command(
        "applyjobs",
        "-",
        "--prune",
        stdin=io.StringIO(json.dumps([{"job_name": "other", "url": "http://127.0.0.1:9/"}])),
        stdout=io.StringIO(),
    ),  # fmt: skip
}


@pytest.mark.parametrize("door", DELETES)
def test_each_door_deletes_a_job_with_its_runs_and_records_it(door, job, superuser):
    services.create_run(job, state=Log.State.SUCCESS)

    DELETES[door](superuser, job)

    assert not Endpoint.objects.filter(pk=job.pk).exists()
    assert not Log.objects.filter(endpoint_id=job.pk).exists()
    deleted = LogEntry.objects.filter(object_pk=str(job.pk), action=LogEntry.Action.DELETE)
    assert deleted.count() == 1


RANGE = {"start": "2026-11-20T00:00", "end": "2026-11-22T00:00"}  # on the job's own clock
BACKFILLS = {
    "dashboard": lambda user, endpoint: login(user).post(
        reverse("dashboard:endpoint_backfill", args=[endpoint.pk]), RANGE
    ),
    "Schedules API": lambda user, endpoint: client_for(user).post(
        f"/api/v1/schedules/sched-{endpoint.pk}/backfill", RANGE, format="json"
    ),
}


@pytest.mark.parametrize("door", BACKFILLS)
def test_each_door_backfills_the_same_slots_once(door, job, superuser):
    BACKFILLS[door](superuser, job)
    BACKFILLS[door](superuser, job)  # asked twice: nothing runs twice

    runs = Log.objects.filter(endpoint=job).order_by("scheduled_for")
    assert [(log.trigger, log.triggered_by, log.attempt) for log in runs] == [
        (Log.Trigger.BACKFILL, USER, 1)
    ] * 2
    assert [log.scheduled_for.isoformat() for log in runs] == [
        "2026-11-20T01:00:00+00:00", "2026-11-21T01:00:00+00:00",
    ]  # fmt: skip
