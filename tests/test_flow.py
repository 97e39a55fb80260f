"""Flow control at fixed instants: a key's runs beyond its parallelism or rate wait (pending, with
their reason), start as soon as the limits allow, and are never dropped or missed; keyless runs
beside them are untouched. The real clusters are in tests/test_flow_clusters.py."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django_q.brokers import get_broker

from calls.spec import Outcome
from endpoints.flow import Limits, Rate, parse_rate
from endpoints.models import Endpoint
from runs import cluster, dispatcher, executor, flow, verbs
from runs.models import Heartbeat, Log
from runs.recording import record_many

T0 = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)
MS = timedelta(milliseconds=1)


@pytest.fixture
def due(make_endpoint):
    """`count` endpoints due at T0, named prefix-0, prefix-1, …"""

    def make(count: int, prefix: str = "job", **fields) -> list[Endpoint]:
        fields.setdefault("cron_expression", "* * * * *")
        made = [make_endpoint(name=f"{prefix}-{n}", **fields) for n in range(count)]
        Endpoint.objects.filter(pk__in=[e.pk for e in made]).update(next_run_at=T0)
        return made

    return make


def finish(logs: list[Log], at: datetime, outcome: Outcome | None = None) -> None:
    """Claim these runs at their instant and record them finished at `at`, as a worker would."""
    claimed = []
    for log in logs:
        claimed += executor.claim([log.pk], log.due_at)
    record_many([(log, outcome or success(log, at), at) for log in claimed])


def success(log: Log, at: datetime) -> Outcome:
    """A call sent at the run's start that took until `at`."""
    took = max(0, int((at - log.started_at).total_seconds() * 1000))
    return Outcome(ok=True, status_code=200, duration_ms=took)


def by_state(key: str = "vendor-api") -> dict[str, int]:
    counts: dict[str, int] = {}
    for state in Log.objects.filter(endpoint__flow_key=key).values_list("state", flat=True):
        counts[state] = counts.get(state, 0) + 1
    return counts


# --- what a job may say --------------------------------------------------------------------


def test_a_rate_is_a_count_per_second_minute_or_hour():
    assert parse_rate("10/s") == Rate(10, 1)
    assert parse_rate(" 600 / MIN ") == Rate(600, 60)
    assert str(parse_rate("100/hour")) == "100/h"
    for bad in ("10", "0/s", "10/day", "ten/s", "-1/s", "10/s/s"):
        with pytest.raises(ValueError):
            parse_rate(bad)


def test_limits_without_a_key_or_a_malformed_rate_are_refused(make_endpoint):
    with pytest.raises(ValidationError) as caught:
        make_endpoint(flow_parallelism=2)
    assert "flow key" in caught.value.message_dict["flow_parallelism"][0]
    with pytest.raises(ValidationError) as caught:
        make_endpoint(flow_key="vendor-api", flow_rate="fast")
    assert "10/s" in caught.value.message_dict["flow_rate"][0]
    with pytest.raises(ValidationError) as caught:
        make_endpoint(flow_key="vendor api")
    assert "flow_key" in caught.value.message_dict
    assert make_endpoint(flow_key="vendor-api", flow_rate="600/minute").flow_rate == "600/min"


def test_the_strictest_limits_of_the_jobs_sharing_a_key_hold():
    limits = Limits.strictest([(3, "10/s"), (1, ""), (None, "300/min"), (None, "20/s")])
    assert limits.parallelism == 1
    # 20/s is covered by 10/s; 10/s and 300/min each bind at some moment: both hold.
    assert limits.rates == (Rate(10, 1), Rate(300, 60))
    assert str(limits) == "1 at once, 10/s, 300/min"


# --- parallelism ---------------------------------------------------------------------------


def test_runs_beyond_the_keys_parallelism_wait_with_their_reason(due):
    due(5, flow_key="vendor-api", flow_parallelism=2)
    keyless = due(3, prefix="free")
    result = dispatcher.dispatch_due(T0)
    assert len(result.to_run) == 2 + 3 and result.waiting == 3 and result.missed == 0
    assert by_state() == {"queued": 2, "pending": 3}
    waiting = Log.objects.filter(state="pending").first()
    assert waiting.reason == "Waiting for flow key vendor-api: 2 of 2 runs in flight."
    assert waiting.held_since == T0 and waiting.flow_key == "vendor-api"
    # Jobs without a key are queued at their slot as ever, counted against nothing.
    free = Log.objects.filter(endpoint__in=keyless)
    assert {(log.state, log.due_at, log.flow_key) for log in free} == {("queued", T0, "")}


def test_a_finishing_run_releases_the_next_at_once_and_its_wait_is_recorded(
    due, django_capture_on_commit_callbacks
):
    due(5, flow_key="vendor-api", flow_parallelism=2)
    first = dispatcher.dispatch_due(T0).to_run
    broker = get_broker()
    waiting = broker.queue_size()
    with django_capture_on_commit_callbacks(execute=True):
        finish(first[:1], T0 + timedelta(seconds=4.2))
    assert by_state() == {"success": 1, "queued": 2, "pending": 2}
    released = Log.objects.get(state="queued", held_since__isnull=False)
    assert released.reason == "Waited 4.2 s for flow key vendor-api."
    assert released.due_at == T0 + timedelta(seconds=4.2)
    assert released.flow_wait_ms == 4200
    # It was handed to the broker (the ORM's or Redis), not left for a dispatcher's poll.
    assert broker.queue_size() == waiting + 1


def test_every_run_of_a_saturated_key_runs_in_the_end_none_missed(due):
    due(7, flow_key="vendor-api", flow_parallelism=2)
    dispatcher.dispatch_due(T0)
    at = T0
    for _ in range(20):
        queued = list(Log.objects.filter(state="queued"))
        if not queued:
            break
        assert Log.objects.filter(state__in=("queued", "running")).count() <= 2
        at += timedelta(minutes=2)  # long past the misfire grace: waiting is not missing
        finish(queued, at)
    assert by_state() == {"success": 7}


def test_the_dispatchers_look_at_waiting_runs_admits_them_when_a_release_was_lost(due):
    due(3, flow_key="vendor-api", flow_parallelism=1)
    (first,) = dispatcher.dispatch_due(T0).to_run
    Log.objects.filter(pk=first.pk).update(state="success")  # as if its release never ran
    assert dispatcher.dispatch_pending(T0 + timedelta(seconds=1)).to_run == []  # not yet due
    again = dispatcher.dispatch_pending(T0 + flow.RECHECK)
    assert len(again.to_run) == 1 and again.waiting == 1
    assert by_state() == {"success": 1, "queued": 1, "pending": 1}


def test_a_run_ending_with_nothing_waiting_behind_it_costs_one_read(due, django_assert_num_queries):
    due(2, flow_key="vendor-api", flow_parallelism=5)
    dispatcher.dispatch_due(T0)
    with django_assert_num_queries(1):  # no lock, no transaction
        assert flow.release(["vendor-api"], T0) == []


def test_the_strictest_parallelism_of_the_jobs_sharing_a_key_holds(due):
    due(2, prefix="loose", flow_key="vendor-api", flow_parallelism=5)
    due(2, prefix="strict", flow_key="vendor-api", flow_parallelism=1)
    dispatcher.dispatch_due(T0)
    assert by_state() == {"queued": 1, "pending": 3}


def test_a_run_waiting_for_its_key_is_in_line_so_a_skip_job_skips_its_next_slot(due, make_endpoint):
    (busy,) = due(1, prefix="busy", flow_key="vendor-api", flow_parallelism=1)
    (waiting,) = due(1, prefix="waiting", flow_key="vendor-api", flow_parallelism=1)
    dispatcher.dispatch_due(T0)
    dispatcher.dispatch_due(T0 + timedelta(minutes=1))
    later = Log.objects.filter(endpoint=waiting).order_by("scheduled_for")
    assert [log.state for log in later] == ["pending", "skipped"]
    assert busy.logs.count() == 2  # its own open run skips its second slot as ever
    assert Log.objects.filter(state="missed").count() == 0


# --- rate ----------------------------------------------------------------------------------


def test_a_rate_of_ten_a_second_starts_ten_at_once_then_ten_a_second_later(due):
    due(25, flow_key="vendor-api", flow_rate="10/s")
    first = dispatcher.dispatch_due(T0)
    assert len(first.to_run) == 10
    held = Log.objects.filter(state="pending")
    # Looked at a little before the rate allows, to be in a worker's hands at the instant.
    assert {log.due_at for log in held} == {T0 + timedelta(seconds=1) - flow.RATE_LEAD}
    assert held.first().reason == "Waiting for flow key vendor-api: its rate 10/s is reached."
    finish(first.to_run, T0 + 50 * MS)
    at = T0 + timedelta(seconds=1)
    second = dispatcher.dispatch_pending(at - flow.RATE_LEAD)
    assert len(second.to_run) == 10 and {log.due_at for log in second.to_run} == {at}
    finish(second.to_run, at + 50 * MS)
    third = dispatcher.dispatch_pending(at + timedelta(seconds=1) - flow.RATE_LEAD)
    assert len(third.to_run) == 5
    starts = sorted(Log.objects.values_list("due_at", flat=True))
    assert all(b - a >= timedelta(seconds=1) for a, b in zip(starts, starts[10:], strict=False))
    assert Log.objects.filter(state="missed").count() == 0


def test_a_rate_counts_a_queued_run_not_yet_claimed_as_starting_now(due):
    due(2, flow_key="vendor-api", flow_rate="1/s")
    dispatcher.dispatch_due(T0)  # the first queued, never claimed (a slow broker)
    later = T0 + timedelta(seconds=3)
    assert dispatcher.dispatch_pending(later).to_run == []
    assert Log.objects.get(state="pending").due_at == later + timedelta(seconds=1) - flow.RATE_LEAD


def test_a_rate_counts_a_call_that_left_late_from_when_it_left(due):
    due(2, flow_key="vendor-api", flow_rate="1/s")
    (first,) = dispatcher.dispatch_due(T0).to_run
    (claimed,) = executor.claim([first.pk], T0)
    # A worker under load sent it 200 ms after its instant; it took 100 ms.
    record_many([(claimed, Outcome(ok=True, status_code=200, duration_ms=100), T0 + 300 * MS)])
    assert dispatcher.dispatch_pending(T0 + timedelta(seconds=1) - flow.RATE_LEAD).to_run == []
    again = Log.objects.get(state="pending").due_at
    assert again == T0 + timedelta(seconds=1.2) - flow.RATE_LEAD
    later = dispatcher.dispatch_pending(again).to_run
    assert [log.due_at for log in later] == [T0 + timedelta(seconds=1.2)]  # not T0 + 1 s


def test_a_rate_limited_run_taken_ahead_starts_at_its_instant(due):
    due(3, flow_key="vendor-api", flow_rate="2/s")
    result = dispatcher.dispatch_due(T0 - timedelta(seconds=1), ahead=timedelta(seconds=1))
    assert sorted(log.due_at for log in result.to_run) == [T0, T0]


# --- what else counts against a key --------------------------------------------------------


def test_retries_and_manual_runs_count_against_the_key(due, make_endpoint):
    due(1, prefix="flaky", flow_key="vendor-api", flow_parallelism=1, max_attempts=2)
    other = make_endpoint(name="other", schedule_type="none", flow_key="vendor-api")
    dispatcher.dispatch_due(T0)
    failing = Log.objects.get()
    finish([failing], T0 + MS, Outcome(ok=False, error_class="http_status", status_code=500))
    retry = Log.objects.get(retry_of=failing)
    manual = verbs.trigger(other, by="ada")
    assert manual.state == "queued"  # the key was free: the failed run no longer counts
    assert verbs.trigger(other, by="ada").state == "pending"  # and now it is not
    dispatcher.dispatch_pending(retry.due_at + MS)
    retry.refresh_from_db()
    assert retry.state == "pending" and "1 of 1 runs in flight" in retry.reason
    finish([manual], T0 + timedelta(seconds=30))
    retry.refresh_from_db()
    assert retry.state == "queued"  # first in line


def test_a_chained_run_counts_against_its_jobs_key(due, make_endpoint):
    (upstream,) = due(1, prefix="extract")
    (busy,) = due(1, prefix="busy", flow_key="vendor-api", flow_parallelism=1)
    make_endpoint(
        name="load", schedule_type="none", flow_key="vendor-api",
        run_after=[{"job_name": "extract-0", "on": "success"}],
    )  # fmt: skip
    dispatcher.dispatch_due(T0)
    finish(list(Log.objects.filter(endpoint=upstream)), T0 + timedelta(seconds=1))
    chained = Log.objects.get(endpoint__name="load")
    assert (chained.trigger, chained.state) == ("chain", "pending")
    assert chained.reason == "Waiting for flow key vendor-api: 1 of 1 runs in flight."
    finish(list(Log.objects.filter(endpoint=busy)), T0 + timedelta(seconds=2))
    chained.refresh_from_db()
    assert chained.state == "queued" and chained.reason == "Waited 1.0 s for flow key vendor-api."


def test_a_429_with_retry_after_backs_the_key_off_for_that_long(due):
    due(3, flow_key="vendor-api", flow_parallelism=1)
    (first,) = dispatcher.dispatch_due(T0).to_run
    at = T0 + timedelta(seconds=1)
    finish([first], at, Outcome(ok=False, status_code=429, retry_after=30.0))
    waiting = Log.objects.filter(state="pending", attempt=1)
    assert waiting.count() == 2  # nothing released: the target asked for 30 s
    (status,) = flow.overview(at)
    assert status.backoff_until == at + timedelta(seconds=30) and "429" in status.backoff_reason
    assert dispatcher.dispatch_pending(at + timedelta(seconds=29)).to_run == []
    assert "asked to wait until 12:00:31 UTC" in Log.objects.filter(state="pending").first().reason
    assert len(dispatcher.dispatch_pending(at + timedelta(seconds=31)).to_run) == 1


def test_a_dead_clusters_run_gives_its_place_in_the_key_to_the_next(due):
    due(2, flow_key="vendor-api", flow_parallelism=1, max_attempts=1)
    Heartbeat.objects.create(
        name="gone:1", cluster_id="dead", host="gone", pid=1, started_at=T0, last_seen_at=T0
    )
    (held,) = dispatcher.dispatch_due(T0, cluster="dead").to_run
    executor.claim([held.pk], T0, cluster="dead")
    failed, _ = cluster.recover_stuck(T0 + timedelta(seconds=20), cluster="alive")
    assert [log.pk for log in failed] == [held.pk]
    assert by_state() == {"failed": 1, "queued": 1}


def test_a_run_waiting_for_its_key_is_never_recovered_as_stuck_nor_missed(due):
    due(2, flow_key="vendor-api", flow_parallelism=1)
    dispatcher.dispatch_due(T0)  # one queued by no cluster, never claimed; one waiting
    much_later = T0 + timedelta(hours=2)
    failed, requeued = cluster.recover_stuck(much_later)
    assert failed == [] and len(requeued) == 1  # the queued one is handed out again
    assert Log.objects.get(state="pending").reason.startswith("Waiting for flow key")
    dispatcher.dispatch_due(much_later)
    assert Log.objects.filter(state="missed", scheduled_for=T0).count() == 0


def test_a_rate_only_key_looks_at_no_more_waiting_runs_than_it_may_start(due):
    due(12, flow_key="vendor-api", flow_rate="5/s")
    first = dispatcher.dispatch_due(T0).to_run
    finish(first, T0 + 10 * MS)
    assert flow.release(["vendor-api"], T0 + 20 * MS) == []  # the second's five are spent
    released = flow.release(["vendor-api"], T0 + timedelta(seconds=1))
    assert len(released) == 5


def test_the_overview_shows_each_keys_limits_and_runs_now(due):
    due(3, flow_key="vendor-api", flow_parallelism=2, flow_rate="10/s")
    due(1, prefix="other", flow_key="billing")
    dispatcher.dispatch_due(T0)
    billing, vendor = flow.overview(T0)
    assert (vendor.key, vendor.jobs, vendor.in_flight, vendor.waiting) == ("vendor-api", 3, 2, 1)
    assert str(vendor.limits) == "2 at once, 10/s" and vendor.waiting_since == T0
    assert (billing.key, str(billing.limits), billing.in_flight) == ("billing", "no limit", 1)
