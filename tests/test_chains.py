"""Chains (run_after): a job runs once for each upstream run that ended the way it asks, with
that run's result in its templates — real runs against a real loopback target."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from endpoints import registry
from endpoints.models import Endpoint
from endpoints.run_after import ChainLink
from runs import chains, executor, services, verbs
from runs.models import ChainArrival, Log


@pytest.fixture
def token_issuer():
    """A handler upstream whose result is a token, as a login step returns one."""

    @registry.handler("test:issue-token")
    def issue(payload, *, dry_run, log):
        return {"token": payload.get("token", "t-1"), "count": 3}

    yield
    registry.unregister("test:issue-token")


def _handler_job(make_endpoint, name: str, **fields) -> Endpoint:
    values = {"kind": Endpoint.Kind.HANDLER, "url": "", "handler": "test:issue-token"}
    return make_endpoint(name=name, **values | fields)


def _run(endpoint: Endpoint) -> Log:
    """Run it now in this process (claim, call, record: the record path follows chains)."""
    return executor.execute(services.create_run(endpoint).pk)


def _chained(endpoint: Endpoint) -> list[Log]:
    return list(Log.objects.filter(endpoint=endpoint, trigger=Log.Trigger.CHAIN).order_by("id"))


def test_a_success_runs_the_downstream_once_with_the_upstream_result_in_its_url_and_body(
    make_endpoint, target, token_issuer
):
    login = _handler_job(make_endpoint, "login", payload={"token": "tok en/1"})
    call = make_endpoint(
        name="call",
        schedule_type=Endpoint.ScheduleType.NONE,
        method="POST",
        url=target.url("/ok?token={{ upstream.result.token }}&run={{ upstream.run_id }}"),
        body='{"after": "{{ upstream.run_id }}", "count": {{ upstream.result.count }}, '
        '"status": "{{ upstream.status }}"}',
        run_after=[{"job_name": "login", "on": "success"}],
    )
    upstream = _run(login)
    [downstream] = _chained(call)
    assert downstream.state == Log.State.QUEUED
    assert downstream.triggered_by == upstream.run_id
    assert downstream.caused_by == upstream
    assert list(upstream.caused.all()) == [downstream]

    executor.execute(downstream.pk)
    [received] = target.received
    query = parse_qs(urlsplit(received.path).query)
    assert query == {"token": ["tok en/1"], "run": [upstream.run_id]}
    assert received.json() == {"after": upstream.run_id, "count": 3, "status": "success"}
    downstream.refresh_from_db()
    assert downstream.state == Log.State.SUCCESS
    # Done: nothing ran twice.
    assert len(_chained(call)) == 1


def test_an_http_upstreams_json_response_is_read_with_jsonpath(make_endpoint, target):
    make_endpoint(name="fetch", url=target.url("/status/201"), expected_status="201")
    use = make_endpoint(
        name="use",
        schedule_type=Endpoint.ScheduleType.NONE,
        url=target.url("/ok?code={{ upstream.response.$.status }}"),
        run_after=[{"job_name": "fetch"}],
    )
    assert use.run_after == [{"job_name": "fetch", "on": "success"}]  # `on` defaults to success
    _run(Endpoint.objects.get(name="fetch"))
    executor.execute(_chained(use)[0].pk)
    assert target.received[-1].path == "/ok?code=201"


def test_a_path_that_selects_nothing_fails_the_chained_run_saying_so(make_endpoint, target):
    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(
        name="use",
        schedule_type=Endpoint.ScheduleType.NONE,
        url=target.url("/ok?t={{ upstream.response.$.access_token }}"),
        run_after=[{"job_name": "fetch"}],
        max_attempts=1,
    )
    _run(fetch)
    run = executor.execute(_chained(use)[0].pk)
    assert (run.state, run.error_class) == ("failed", "invalid")
    assert "$.access_token selects nothing in the upstream response" in run.error_message
    assert len(target.received) == 1  # nothing was sent with an empty token


def test_a_run_by_hand_of_a_chained_job_renders_upstream_values_empty(make_endpoint, target):
    make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(
        name="use", url=target.url("/ok?after={{ upstream.run_id }}"), run_after=["fetch"]
    )
    assert _run(use).state == Log.State.SUCCESS
    assert target.received[-1].path == "/ok?after="


def test_a_failure_after_its_retries_runs_the_failure_chain_and_not_the_success_one(
    make_endpoint, target
):
    flaky = make_endpoint(name="extract", url=target.url("/status/500"), max_attempts=2)
    on_success = make_endpoint(name="load", url=target.url("/ok"), run_after=["extract"])
    on_failure = make_endpoint(
        name="page-someone",
        url=target.url("/ok?failed={{ upstream.run_id }}"),
        run_after=[{"job_name": "extract", "on": "failure"}],
    )
    either = make_endpoint(
        name="cleanup", url=target.url("/ok"), run_after=[{"job_name": "extract", "on": "finished"}]
    )
    first = _run(flaky)
    retry = Log.objects.get(retry_of=first)
    assert _chained(on_failure) == [] and _chained(either) == []  # not final yet: a retry waits
    final = executor.execute(retry.pk)
    assert (final.state, final.attempt) == ("failed", 2)
    assert _chained(on_success) == []
    [paged] = _chained(on_failure)
    assert paged.caused_by == final and paged.upstream["status"] == "failed"
    assert len(_chained(either)) == 1
    executor.execute(paged.pk)
    assert target.received[-1].path == f"/ok?failed={final.run_id}"


def test_a_dry_run_starts_no_chain(make_endpoint, target):
    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(name="use", url=target.url("/ok"), run_after=["fetch"])
    executor.execute(services.create_run(fetch, dry_run=True).pk)
    assert _chained(use) == []


def test_a_chained_runs_retries_still_see_the_upstream(make_endpoint, target, token_issuer):
    login = _handler_job(make_endpoint, "login")
    call = make_endpoint(
        name="call",
        url=target.url("/status/500?token={{ upstream.result.token }}"),
        run_after=["login"],
        max_attempts=2,
    )
    _run(login)
    first = executor.execute(_chained(call)[0].pk)
    retry = Log.objects.get(retry_of=first)
    assert retry.upstream == first.upstream and retry.caused_by is None
    executor.execute(retry.pk)
    assert [r.path for r in target.received] == ["/status/500?token=t-1"] * 2


def test_a_paused_downstream_records_its_chain_run_skipped_with_the_reason(make_endpoint, target):
    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(name="use", url=target.url("/ok"), run_after=["fetch"])
    verbs.disable(use, by="alice", reason="vendor maintenance")
    _run(fetch)
    [skipped] = _chained(use)
    assert skipped.state == Log.State.SKIPPED
    assert "use is paused" in skipped.reason and "vendor maintenance" in skipped.reason
    assert len(target.received) == 1


def test_a_downstream_still_running_skips_its_chain_run_by_its_overlap_policy(
    make_endpoint, target
):
    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(name="use", url=target.url("/ok"), run_after=["fetch"])
    running = services.create_run(use, state=Log.State.RUNNING)
    _run(fetch)
    [skipped] = _chained(use)
    assert skipped.state == Log.State.SKIPPED
    assert skipped.reason == f"Previous run {running.run_id} was still going."


def test_queue_one_waits_behind_the_running_run(make_endpoint, target):
    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(
        name="use", url=target.url("/ok"), run_after=["fetch"], overlap_policy="queue_one"
    )
    services.create_run(use, state=Log.State.RUNNING)
    _run(fetch)
    _run(fetch)
    assert [log.state for log in _chained(use)] == ["pending", "skipped"]


def test_a_chain_run_waiting_behind_a_running_one_is_cancelled_when_the_job_is_paused(
    make_endpoint, target
):
    from runs import dispatcher

    fetch = make_endpoint(name="fetch", url=target.url("/ok"))
    use = make_endpoint(
        name="use", url=target.url("/ok"), run_after=["fetch"], overlap_policy="queue_one"
    )
    running = services.create_run(use, state=Log.State.RUNNING)
    _run(fetch)
    verbs.disable(use, reason="vendor maintenance")
    Log.objects.filter(pk=running.pk).update(state=Log.State.SUCCESS)
    dispatcher.dispatch_pending(timezone.now())
    [waiting] = _chained(use)
    assert (waiting.state, waiting.reason) == (
        "cancelled",
        "The endpoint was paused before this run began.",
    )


def test_with_two_upstreams_it_runs_once_both_have_succeeded(make_endpoint, target):
    extract = make_endpoint(name="extract", url=target.url("/ok"))
    enrich = make_endpoint(name="enrich", url=target.url("/ok"))
    load = make_endpoint(
        name="load",
        url=target.url("/ok?after={{ upstream.run_id }}"),
        run_after=["extract", "enrich"],
    )
    _run(extract)
    _run(extract)  # extract again before enrich: still one run of load for the set
    assert _chained(load) == []
    completing = _run(enrich)
    [joined] = _chained(load)
    assert joined.caused_by == completing  # the run that completed the set
    assert set(joined.joined.values_list("upstream__name", flat=True)) == {"extract", "enrich"}
    assert not ChainArrival.objects.filter(consumed_by__isnull=True).exists()
    _run(enrich)  # a new round: enrich has arrived, extract not yet
    assert len(_chained(load)) == 1
    _run(extract)
    assert len(_chained(load)) == 2


def test_with_two_upstreams_a_run_outside_the_window_no_longer_counts(
    make_endpoint, target, settings
):
    extract = make_endpoint(name="extract", url=target.url("/ok"))
    enrich = make_endpoint(name="enrich", url=target.url("/ok"))
    load = make_endpoint(name="load", url=target.url("/ok"), run_after=["extract", "enrich"])
    _run(extract)
    ChainArrival.objects.update(arrived_at=timezone.now() - timezone.timedelta(hours=25))
    _run(enrich)
    assert _chained(load) == []
    settings.SCHEDULER_CHAIN_WINDOW_SECONDS = 26 * 3600
    _run(extract)
    assert len(_chained(load)) == 1


def test_with_two_upstreams_a_failure_of_one_does_not_count(make_endpoint, target):
    extract = make_endpoint(name="extract", url=target.url("/status/404"), max_attempts=1)
    enrich = make_endpoint(name="enrich", url=target.url("/ok"))
    load = make_endpoint(name="load", url=target.url("/ok"), run_after=["extract", "enrich"])
    _run(extract)
    _run(enrich)
    assert _chained(load) == []


# --- save-time rules -------------------------------------------------------------------------


def test_a_cycle_is_refused_on_save_with_the_cycle_named(make_endpoint):
    extract = make_endpoint(name="extract")
    make_endpoint(name="load", run_after=["extract"])
    make_endpoint(name="report", run_after=["load"])
    extract.run_after = [{"job_name": "report", "on": "success"}]
    with pytest.raises(ValidationError) as caught:
        extract.full_clean()
    assert caught.value.message_dict["run_after"] == [
        "That makes a cycle: extract → load → report → extract."
    ]
    assert ChainLink.objects.count() == 2


@pytest.mark.parametrize(
    ("run_after", "message"),
    [
        (["ping"], "'ping' cannot run after itself."),
        (["nope"], "No job named 'nope'."),
        ([{"job_name": "up", "on": "sometimes"}], "'on' is one of success, failure, finished"),
        (["up", "up"], "'up' is listed twice."),
        ({"job_name": "up"}, "A list of"),
        ([{"job_name": "up", "when": "success"}], "nothing else"),
        (["beat"], "'beat' is a heartbeat"),
    ],
)
def test_bad_run_after_is_refused_with_a_field_message(make_endpoint, run_after, message):
    make_endpoint(name="up")
    make_endpoint(
        name="beat",
        kind=Endpoint.Kind.HEARTBEAT,
        url="",
        schedule_type=Endpoint.ScheduleType.INTERVAL,
        interval_seconds=60,
    )
    endpoint = Endpoint(name="ping", url="http://127.0.0.1:9/", timezone="UTC", run_after=run_after)
    endpoint.cron_expression = "* * * * *"
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert message in caught.value.message_dict["run_after"][0]


def test_a_bad_upstream_template_is_refused_on_save(make_endpoint):
    endpoint = Endpoint(
        name="use",
        url="http://127.0.0.1:9/?x={{ upstream.response.$.[oops }}",
        cron_expression="* * * * *",
        timezone="UTC",
    )
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert "is not a valid JSONPath" in caught.value.message_dict["url"][0]


def test_renaming_an_upstream_renames_it_in_its_downstreams(make_endpoint):
    extract = make_endpoint(name="extract")
    load = make_endpoint(name="load", run_after=[{"job_name": "extract", "on": "failure"}])
    extract.name = "extract-v2"
    extract.full_clean()
    extract.save()
    load.refresh_from_db()
    assert load.run_after == [{"job_name": "extract-v2", "on": "failure"}]
    load.full_clean()  # still valid


def test_deleting_an_upstream_removes_it_from_its_downstreams(make_endpoint):
    make_endpoint(name="extract")
    make_endpoint(name="enrich")
    load = make_endpoint(name="load", run_after=["extract", "enrich"])
    Endpoint.objects.filter(name="extract").delete()
    load.refresh_from_db()
    assert load.run_after == [{"job_name": "enrich", "on": "success"}]
    assert list(ChainLink.objects.values_list("upstream__name", flat=True)) == ["enrich"]


def test_the_record_path_costs_one_read_for_endpoints_without_downstreams(
    make_endpoint, django_assert_num_queries
):
    runs = [
        services.create_run(make_endpoint(name=f"plain-{i}"), state=Log.State.SUCCESS)
        for i in range(20)
    ]
    with django_assert_num_queries(1):
        assert chains.follow(runs, timezone.now()) == []


# --- races (threads with their own connections: committed data, real locks) ------------------


def _race(workers: int, work) -> None:
    errors: list[BaseException] = []
    start = threading.Barrier(workers)

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as exc:  # surfaced below: a thread's failure must fail the test
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


@pytest.mark.django_db(transaction=True)
def test_recorders_racing_on_one_upstream_run_start_one_chained_run(make_endpoint):
    from django.db import transaction

    fetch = make_endpoint(name="fetch")
    use = make_endpoint(name="use", run_after=["fetch"])
    ended = services.create_run(fetch, state=Log.State.SUCCESS)

    def follow(_: int) -> None:
        with transaction.atomic():
            chains.follow([Log.objects.select_related("endpoint").get(pk=ended.pk)], timezone.now())

    _race(4, follow)
    assert len(_chained(use)) == 1


@pytest.mark.django_db(transaction=True)
def test_two_upstreams_ending_at_once_in_two_clusters_start_exactly_one_run(make_endpoint):
    from django.db import transaction

    upstreams = [make_endpoint(name=f"part-{i}") for i in range(2)]
    join = make_endpoint(name="join", run_after=[u.name for u in upstreams])
    for _ in range(5):
        ended = [services.create_run(u, state=Log.State.SUCCESS) for u in upstreams]

        def follow(index: int, ended: list[Log] = ended) -> None:
            with transaction.atomic():
                run = Log.objects.select_related("endpoint").get(pk=ended[index].pk)
                chains.follow([run], timezone.now())

        before = len(_chained(join))
        _race(2, follow)
        assert len(_chained(join)) == before + 1, "a complete set started no run, or two"


# --- the pages -------------------------------------------------------------------------------


def test_the_endpoint_page_shows_upstreams_downstreams_and_which_run_caused_which(
    make_endpoint, target, viewer
):
    from django.urls import reverse

    from tests.web_support import login

    extract = make_endpoint(name="extract", url=target.url("/ok"))
    load = make_endpoint(name="load", url=target.url("/ok"), run_after=["extract"])
    make_endpoint(
        name="page-someone",
        url=target.url("/ok"),
        run_after=[{"job_name": "extract", "on": "failure"}],
    )
    upstream = _run(extract)
    [chained] = _chained(load)
    client = login(viewer)

    page = client.get(reverse("dashboard:endpoint", args=[extract.pk])).content.decode()
    assert 'id="runs-next"' in page and "load" in page and "page-someone" in page
    assert "when this one fails (after its retries)" in page
    assert (
        f'then <a href="{reverse("dashboard:log", args=[chained.pk])}">load {chained.run_id}'
        in page
    )

    page = client.get(reverse("dashboard:endpoint", args=[load.pk])).content.decode()
    assert 'id="runs-after"' in page and "when it succeeds" in page
    assert (
        f'after <a href="{reverse("dashboard:log", args=[upstream.pk])}">{upstream.run_id}' in page
    )

    page = client.get(reverse("dashboard:log", args=[upstream.pk])).content.decode()
    assert "Then ran:" in page and f"load {chained.run_id}" in page
    page = client.get(reverse("dashboard:log", args=[chained.pk])).content.decode()
    assert "Run after:" in page and f"extract {upstream.run_id}" in page


def test_a_joined_runs_page_lists_every_upstream_run_it_waited_for(make_endpoint, target, viewer):
    from django.urls import reverse

    from tests.web_support import login

    extract = make_endpoint(name="extract", url=target.url("/ok"))
    enrich = make_endpoint(name="enrich", url=target.url("/ok"))
    load = make_endpoint(name="load", url=target.url("/ok"), run_after=["extract", "enrich"])
    first, second = _run(extract), _run(enrich)
    [joined] = _chained(load)
    page = login(viewer).get(reverse("dashboard:log", args=[joined.pk])).content.decode()
    assert f"enrich {second.run_id}" in page and f"extract {first.run_id}" in page
    page = login(viewer).get(reverse("dashboard:endpoint", args=[load.pk])).content.decode()
    assert "Runs once all of them have, each within 1 day of the others." in page


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("extract soon", "write a job name, or a job name, &#x27;on&#x27; and success"),
        ("nope", "No job named &#x27;nope&#x27;."),
        ("extract on sometimes", "&#x27;on&#x27; is one of success, failure, finished"),
    ],
)
def test_the_form_shows_a_bad_run_after_inline_and_saves_nothing(
    make_endpoint, editor, typed, message
):
    from tests.test_dashboard_forms import CREATE, form_data
    from tests.web_support import login

    make_endpoint(name="extract")
    response = login(editor).post(CREATE, form_data(run_after=typed))
    html = response.content.decode()
    assert response.status_code == 200 and "Nothing was saved" in html
    assert message in html.split('id="field-run_after"')[1].split('<div class="field')[0]
    assert not Endpoint.objects.filter(name="nightly-report").exists()


def test_the_form_edits_run_after_as_lines_and_refuses_a_cycle(make_endpoint, editor):
    from django.urls import reverse

    from tests.test_dashboard_forms import CREATE, form_data
    from tests.web_support import login

    extract = make_endpoint(name="extract")
    make_endpoint(name="enrich")
    client = login(editor)
    response = client.post(
        CREATE,
        form_data(schedule_type="none", run_after="extract\nenrich on finished\n"),
    )
    assert response.status_code == 302
    load = Endpoint.objects.get(name="nightly-report")
    assert load.run_after == [
        {"job_name": "extract", "on": "success"},
        {"job_name": "enrich", "on": "finished"},
    ]
    edit = client.get(reverse("dashboard:endpoint_edit", args=[load.pk])).content.decode()
    assert "extract\nenrich on finished</textarea>" in edit

    data = form_data(name="extract", run_after="nightly-report on failure")
    response = client.post(reverse("dashboard:endpoint_edit", args=[extract.pk]), data)
    html = response.content.decode()
    assert "That makes a cycle: extract → nightly-report → extract." in html
    extract.refresh_from_db()
    assert extract.run_after == []


def test_the_admin_edits_run_after_and_refuses_a_cycle(make_endpoint, superuser):
    from django.urls import reverse

    from tests.web_support import login

    extract = make_endpoint(name="extract")
    make_endpoint(name="load", run_after=["extract"])
    url = reverse("admin:endpoints_endpoint_change", args=[extract.pk])
    client = login(superuser)
    page = client.get(url).content.decode()
    assert 'name="run_after"' in page
    form = client.get(url).context["adminform"].form
    data = {
        name: value
        for name, value in form.initial.items()
        if value is not None and not isinstance(value, list | dict)
    }
    data |= {"run_after": '["load"]', "headers": "{}", "secret_headers": "[]", "payload": "{}"}
    response = client.post(url, data)
    assert "That makes a cycle: extract → load → extract." in response.content.decode()
    extract.refresh_from_db()
    assert extract.run_after == []


def test_the_endpoint_list_says_what_a_job_runs_after(make_endpoint, viewer):
    from django.urls import reverse

    from tests.web_support import login

    make_endpoint(name="extract")
    make_endpoint(
        name="alert", schedule_type="none", run_after=[{"job_name": "extract", "on": "failure"}]
    )
    page = login(viewer).get(reverse("dashboard:index")).content.decode()
    assert '<div class="muted small runs-after">after extract (failure)</div>' in page
