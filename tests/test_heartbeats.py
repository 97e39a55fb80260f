"""Heartbeats: slots become Logs from pings (healthchecks.io's routes) or `missed` after grace."""

import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.db import connection

from endpoints.models import Endpoint
from runs import dispatcher, heartbeats, notifications
from runs.models import Log, Notification
from tests.api_support import clear_shared_cache

T0 = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def no_rate_limits_left_over(db):
    clear_shared_cache()
    yield
    clear_shared_cache()


@pytest.fixture
def heartbeat(make_endpoint):
    """A nightly backup at 02:30 UTC, 10 minutes' grace, expecting from 2026-12-01 02:00."""

    def make(**fields) -> Endpoint:
        values = {
            "name": "nightly-backup",
            "kind": Endpoint.Kind.HEARTBEAT,
            "url": "",
            "cron_expression": "30 2 * * *",
            "grace_seconds": 600,
        }
        values.update(fields)
        with time_machine.travel(fields.pop("created", T0), tick=False):
            values.pop("created", None)
            return make_endpoint(**values)

    return make


def ping(client, endpoint, suffix="", *, at, method="get", **options):
    with time_machine.travel(at, tick=False):
        return getattr(client, method)(f"/ping/{endpoint.uuid}{suffix}", **options)


def slot_logs(endpoint):
    return list(Log.objects.filter(endpoint=endpoint).order_by("id"))


def test_a_new_heartbeat_expects_its_next_slot_and_is_never_dispatched(heartbeat):
    backup = heartbeat()
    assert backup.next_run_at is None
    assert backup.expected_at == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert backup.overdue_at == datetime(2026, 12, 1, 2, 40, tzinfo=UTC)
    assert dispatcher.dispatch_due(T0 + timedelta(days=3)).endpoints == 0
    assert not Log.objects.exists()


def test_a_ping_in_time_is_a_success_with_its_duration_from_start(client, heartbeat):
    backup = heartbeat()
    started = ping(client, backup, "/start", at=datetime(2026, 12, 1, 2, 30, 5, tzinfo=UTC))
    assert (started.status_code, started.content) == (200, b"OK")
    (run,) = slot_logs(backup)
    assert run.state == Log.State.RUNNING
    backup.refresh_from_db()
    assert backup.is_late(datetime(2026, 12, 1, 2, 31, tzinfo=UTC)) is False

    done = ping(client, backup, at=datetime(2026, 12, 1, 2, 32, 35, tzinfo=UTC))
    assert done.content == b"OK"
    run.refresh_from_db()
    assert run.state == Log.State.SUCCESS
    assert run.scheduled_for == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)
    assert run.trigger == Log.Trigger.PING
    assert run.duration_ms == 150_000
    backup.refresh_from_db()
    assert (backup.last_status, backup.run_count, backup.success_count) == ("success", 1, 1)
    assert backup.expected_at == datetime(2026, 12, 2, 2, 30, tzinfo=UTC)
    assert backup.last_ping_at == datetime(2026, 12, 1, 2, 32, 35, tzinfo=UTC)
    assert heartbeats.record_missed(datetime(2026, 12, 1, 23, 0, tzinfo=UTC)) == []


@pytest.mark.parametrize(("suffix", "exit_status"), [("/fail", None), ("/1", 1), ("/255", 255)])
def test_fail_and_a_non_zero_exit_status_are_failed(client, heartbeat, suffix, exit_status):
    backup = heartbeat()
    assert (
        ping(client, backup, suffix, at=datetime(2026, 12, 1, 2, 31, tzinfo=UTC)).content == b"OK"
    )
    (run,) = slot_logs(backup)
    assert run.state == Log.State.FAILED
    assert run.result_summary["exit_status"] == exit_status
    assert ("status 1" in run.error_message) if exit_status == 1 else True
    backup.refresh_from_db()
    assert (backup.last_status, backup.failure_count, backup.consecutive_failures) == (
        "failed", 1, 1,
    )  # fmt: skip


def test_routes_take_a_trailing_slash_as_healthchecks_does(client, heartbeat):
    backup = heartbeat(cron_expression="*/10 * * * *")
    for minute, suffix in enumerate(("/", "/fail/", "/2/")):
        at = datetime(2026, 12, 1, 2, 10 * minute + 1, tzinfo=UTC)
        assert ping(client, backup, suffix, at=at).content == b"OK"
    assert [log.state for log in slot_logs(backup)] == ["success", "failed", "failed"]


def test_exit_status_zero_is_a_success_and_above_255_is_refused(client, heartbeat):
    backup = heartbeat()
    assert ping(client, backup, "/0", at=datetime(2026, 12, 1, 2, 31, tzinfo=UTC)).content == b"OK"
    assert slot_logs(backup)[0].state == Log.State.SUCCESS
    refused = ping(client, backup, "/256", at=datetime(2026, 12, 1, 2, 32, tzinfo=UTC))
    assert (refused.status_code, refused.content) == (400, b"invalid url format")
    assert len(slot_logs(backup)) == 1


@pytest.fixture
def deliver_now(monkeypatch, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.NOTIFY_EMAILS, settings.NOTIFY_WEBHOOK_URL = [], ""
    monkeypatch.setattr(
        notifications, "_enqueue", lambda ids: [notifications.deliver(i) for i in ids]
    )


def test_no_ping_is_one_missed_per_slot_after_the_grace_and_alerts_a_real_webhook(
    client, heartbeat, target, deliver_now, django_capture_on_commit_callbacks
):
    backup = heartbeat(notify_webhook_url=target.url("/hook"))
    # Within the grace: late, nothing written.
    assert heartbeats.record_missed(datetime(2026, 12, 1, 2, 39, tzinfo=UTC)) == []
    backup.refresh_from_db()
    assert backup.is_late(datetime(2026, 12, 1, 2, 39, tzinfo=UTC))
    with django_capture_on_commit_callbacks(execute=True):
        missed = heartbeats.record_missed(datetime(2026, 12, 3, 3, 0, tzinfo=UTC))
        again = heartbeats.record_missed(datetime(2026, 12, 3, 3, 0, 2, tzinfo=UTC))
    assert [log.scheduled_for.day for log in missed] == [1, 2, 3]
    assert again == []
    logs = slot_logs(backup)
    assert [log.state for log in logs] == ["missed"] * 3
    assert "No ping for 2026-12-01 02:30 UTC within its grace of 10 minutes" in logs[0].reason
    backup.refresh_from_db()
    assert (backup.failure_count, backup.consecutive_failures, backup.last_status) == (
        3, 3, "missed",
    )  # fmt: skip
    assert backup.expected_at == datetime(2026, 12, 4, 2, 30, tzinfo=UTC)
    hooks = [received for received in target.received if received.path == "/hook"]
    assert len(hooks) == 1  # one per failing streak
    assert hooks[0].json()["event"] == "failure"
    assert hooks[0].json()["run"]["state"] == "missed"

    # Recovery: the next night's ping ends the streak and says so.
    with django_capture_on_commit_callbacks(execute=True):
        ping(client, backup, at=datetime(2026, 12, 4, 2, 35, tzinfo=UTC))
    hooks = [received for received in target.received if received.path == "/hook"]
    assert [hook.json()["event"] for hook in hooks] == ["failure", "recovery"]
    backup.refresh_from_db()
    assert (backup.consecutive_failures, backup.last_status) == (0, "success")


def test_missed_slots_count_towards_auto_disable(heartbeat, deliver_now):
    backup = heartbeat(auto_disable_after=2)
    heartbeats.record_missed(datetime(2026, 12, 5, 3, 0, tzinfo=UTC))
    backup.refresh_from_db()
    assert backup.enabled is False
    assert "Auto-disabled after 2 consecutive failed runs" in backup.disabled_reason
    assert Notification.objects.filter(event="auto_disabled").exists() is False  # no recipient


def test_a_started_run_that_never_ends_fails_after_its_grace(client, heartbeat):
    backup = heartbeat()
    ping(client, backup, "/start", at=datetime(2026, 12, 1, 2, 30, tzinfo=UTC))
    assert heartbeats.record_missed(datetime(2026, 12, 1, 2, 39, tzinfo=UTC)) == []
    (ended,) = heartbeats.record_missed(datetime(2026, 12, 1, 2, 41, tzinfo=UTC))
    assert ended.state == Log.State.FAILED
    assert ended.error_class == "timeout"
    assert "sent no end within its grace of 10 minutes" in ended.error_message
    assert len(slot_logs(backup)) == 1  # the slot had its run: not missed as well


def test_rid_pairs_a_start_with_its_own_end(client, heartbeat):
    backup = heartbeat(cron_expression="*/10 * * * *")
    first, second = "8f2ad0e1-3b1c-4c8e-9d6a-1f2e3d4c5b6a", "0b9e1f7c-2d3a-4e5f-8a9b-0c1d2e3f4a5b"
    ping(client, backup, f"/start?rid={first}", at=datetime(2026, 12, 1, 2, 10, tzinfo=UTC))
    ping(client, backup, f"/start?rid={second}", at=datetime(2026, 12, 1, 2, 11, tzinfo=UTC))
    ping(client, backup, f"/fail?rid={first}", at=datetime(2026, 12, 1, 2, 13, tzinfo=UTC))
    ping(client, backup, f"?rid={second}", at=datetime(2026, 12, 1, 2, 16, tzinfo=UTC))
    one, two = slot_logs(backup)
    assert (one.state, one.duration_ms, one.scheduled_for.minute) == ("failed", 180_000, 10)
    # The second start answers the same slot, which was taken: recorded, without a slot.
    assert (two.state, two.duration_ms, two.scheduled_for) == ("success", 300_000, None)
    refused = ping(client, backup, "?rid=not-a-uuid", at=datetime(2026, 12, 1, 2, 17, tzinfo=UTC))
    assert (refused.status_code, refused.content) == (400, b"invalid uuid format")


def test_an_early_ping_and_a_log_ping_are_recorded_without_a_slot(client, heartbeat):
    backup = heartbeat()
    assert ping(client, backup, at=datetime(2026, 12, 1, 1, 0, tzinfo=UTC)).content == b"OK"
    early = slot_logs(backup)[0]
    assert (early.state, early.scheduled_for) == ("success", None)
    ping(client, backup, "/log", at=datetime(2026, 12, 1, 1, 5, tzinfo=UTC), method="post",
         data=b"disk at 91%", content_type="text/plain")  # fmt: skip
    note = slot_logs(backup)[1]
    assert (note.state, note.response_excerpt) == ("skipped", "disk at 91%")
    backup.refresh_from_db()
    assert backup.run_count == 1  # the /log changed nothing
    assert backup.expected_at == datetime(2026, 12, 1, 2, 30, tzinfo=UTC)


def test_an_unknown_uuid_or_an_http_job_is_404_and_nothing_is_written(client, make_endpoint):
    job = make_endpoint(name="calls-out")
    for path in ("/ping/0b9e1f7c-2d3a-4e5f-8a9b-0c1d2e3f4a5b", f"/ping/{job.uuid}",
                 f"/ping/{job.uuid}/fail", "/ping/not-a-uuid", "/ping/1"):  # fmt: skip
        answer = client.post(path, data=b"x", content_type="text/plain")
        assert (answer.status_code, answer.content) == (404, b"not found")
    assert client.head("/ping/0b9e1f7c-2d3a-4e5f-8a9b-0c1d2e3f4a5b").status_code == 404
    assert not Log.objects.exists()


def test_hostile_bodies_are_stored_safely(client, heartbeat, settings):
    settings.SCHEDULER_RESPONSE_EXCERPT_BYTES = 1024
    backup = heartbeat(cron_expression="* * * * *")
    bodies = [b"A" * 5000, b"before\x00after", b"\xff\xfe<script>alert(1)</script>\xc3"]
    for minute, body in enumerate(bodies):
        at = datetime(2026, 12, 1, 2, minute, 30, tzinfo=UTC)
        answer = ping(client, backup, at=at, method="post", data=body,
                      content_type="application/octet-stream")  # fmt: skip
        assert answer.content == b"OK"
    big, nul, invalid = slot_logs(backup)
    assert (len(big.response_excerpt), big.response_bytes) == (1024, 5000)
    assert nul.response_excerpt == "before\ufffdafter"
    assert invalid.response_excerpt == "\ufffd\ufffd<script>alert(1)</script>\ufffd"


def test_pings_are_rate_limited_per_address(client, heartbeat, settings):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
                                   "ping": "3/min"},
    }  # fmt: skip
    backup = heartbeat()
    at = datetime(2026, 12, 1, 2, 31, tzinfo=UTC)
    answers = [ping(client, backup, "/log", at=at).status_code for _ in range(4)]
    assert answers == [200, 200, 200, 429]
    elsewhere = ping(client, backup, "/log", at=at, REMOTE_ADDR="192.0.2.7")
    assert elsewhere.status_code == 200
    assert Log.objects.count() == 4


def test_a_daily_0230_across_the_spring_forward_expects_one_ping(client, heartbeat):
    """2026-03-08 02:30 does not exist in New York: the slot is 03:00 EDT, once."""
    new_york = ZoneInfo("America/New_York")
    backup = heartbeat(
        timezone="America/New_York",
        created=datetime(2026, 3, 7, 12, 0, tzinfo=new_york),
    )
    assert backup.expected_at == datetime(2026, 3, 8, 3, 0, tzinfo=new_york)
    ping(client, backup, at=datetime(2026, 3, 8, 3, 4, tzinfo=new_york))
    ping(client, backup, at=datetime(2026, 3, 9, 2, 33, tzinfo=new_york))
    assert heartbeats.record_missed(datetime(2026, 3, 9, 23, 0, tzinfo=new_york)) == []
    slots = [log.scheduled_for.astimezone(new_york) for log in slot_logs(backup)]
    assert [(s.day, s.hour, s.minute) for s in slots] == [(8, 3, 0), (9, 2, 30)]
    assert all(log.state == "success" for log in slot_logs(backup))


@pytest.mark.django_db(transaction=True)
def test_racing_sweeps_write_one_missed_log_per_slot():
    Endpoint.objects.bulk_create(
        Endpoint(
            name=f"beat-{i:02d}",
            kind=Endpoint.Kind.HEARTBEAT,
            cron_expression="*/5 * * * *",
            timezone="UTC",
            grace_seconds=60,
            expected_at=T0,
            overdue_at=T0 + timedelta(seconds=60),
        )
        for i in range(40)
    )
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def sweep(offset_ms: int) -> None:
        try:
            start.wait()
            for step in range(6):
                heartbeats.record_missed(
                    T0 + timedelta(minutes=5 * step + 2, milliseconds=offset_ms)
                )
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep, args=(offset * 7,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    slots = Counter(Log.objects.values_list("endpoint_id", "scheduled_for"))
    assert max(slots.values()) == 1, "a slot was recorded twice"
    assert len(slots) == 40 * 6  # T0 … T0+25 min, each past its minute of grace
    assert set(Endpoint.objects.values_list("failure_count", flat=True)) == {6}


def test_a_heartbeat_is_never_run_by_cronplane(heartbeat):
    from django.core.exceptions import ValidationError
    from django.core.management import CommandError, call_command

    from runs import verbs

    backup = heartbeat()
    with pytest.raises(ValidationError, match="not run by cronplane"):
        verbs.trigger(backup, by="alice")
    with pytest.raises(CommandError, match="pings /ping/<uuid>"):
        call_command("runjob", "nightly-backup")
    assert not Log.objects.exists()


def test_a_heartbeat_needs_a_cron_or_interval_schedule(make_endpoint):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError) as refused:
        make_endpoint(kind=Endpoint.Kind.HEARTBEAT, url="", schedule_type="none")
    assert "cron expression or an interval" in refused.value.message_dict["cron_expression"][0]


def test_the_cron_route_for_hosts_without_a_worker_records_missed_slots_too(heartbeat):
    from runs import services

    backup = heartbeat()
    services.run_due_inline(
        datetime(2026, 12, 1, 3, 0, tzinfo=UTC), budget_seconds=5, batch_size=10
    )
    assert [log.state for log in slot_logs(backup)] == ["missed"]


def test_the_dispatcher_loop_sweep_writes_missed_slots_and_never_spins_on_a_late_one(heartbeat):
    """A heartbeat waits past its slot for its grace: the loop must keep sleeping meanwhile
    (its slot is expected_at, never next_run_at, which the loop wakes for)."""
    from runs.dispatcher_loop import DispatcherLoop

    backup = heartbeat()
    clock = {"now": datetime(2026, 12, 1, 2, 35, tzinfo=UTC)}  # late: slot 02:30, grace 10 min
    loop = DispatcherLoop(clock=lambda: clock["now"], enqueue=lambda logs: None, name="t:1")
    assert loop.tick() == loop.max_sleep
    assert not Log.objects.exists()
    clock["now"] = datetime(2026, 12, 1, 2, 41, tzinfo=UTC)
    loop._next_sweep = clock["now"]
    assert loop.tick() == loop.max_sleep
    (missed,) = slot_logs(backup)
    assert (missed.state, missed.scheduled_for.minute) == ("missed", 30)


@pytest.mark.django_db(transaction=True)
def test_a_ping_racing_the_sweep_for_one_slot_leaves_that_slot_one_log():
    slot = T0
    beats = Endpoint.objects.bulk_create(
        Endpoint(
            name=f"race-{i:02d}",
            kind=Endpoint.Kind.HEARTBEAT,
            cron_expression="0 * * * *",
            timezone="UTC",
            grace_seconds=60,
            expected_at=slot,
            overdue_at=slot + timedelta(seconds=60),
        )
        for i in range(30)
    )
    deadline = slot + timedelta(seconds=60)  # a ping at the deadline is still on time
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def pinging() -> None:
        try:
            start.wait()
            for beat in beats:
                heartbeats.record_ping(beat, heartbeats.Ping(heartbeats.SUCCESS), now=deadline)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    def sweeping() -> None:
        try:
            start.wait()
            for step in range(30):
                heartbeats.record_missed(deadline + timedelta(milliseconds=1 + step))
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=pinging), threading.Thread(target=sweeping)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    heartbeats.record_missed(deadline + timedelta(seconds=1))
    assert errors == []
    per_slot = Counter(Log.objects.filter(scheduled_for=slot).values_list("endpoint_id", flat=True))
    assert sorted(per_slot) == sorted(beat.pk for beat in beats)
    assert set(per_slot.values()) == {1}, "a slot got two Logs"
    # Every ping is kept: on its slot if it won, without a slot if the sweep did.
    assert Log.objects.filter(trigger="ping").count() == len(beats)
