"""run_after through job files: the README's two-step chain applies and runs as written, jobs of
one file may run after each other, a cycle among them changes nothing, exportjobs round-trips."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from endpoints.models import Endpoint
from endpoints.run_after import ChainLink
from runs import executor, services
from runs.models import Log
from tests.target import Target

README = Path(__file__).resolve().parent.parent / "README.md"


class TokenIssuer(Target):
    """A loopback target whose /oauth/token answers with an access token, as an OAuth server."""

    def respond(self, request, count: int) -> None:
        if request.path.startswith("/oauth/token"):
            body = json.dumps({"access_token": f"tok-{count}", "expires_in": 3600}).encode()
            request.send_response(200)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(body)))
            request.end_headers()
            request.wfile.write(body)
            return
        super().respond(request, count)


@pytest.fixture
def issuer():
    server = TokenIssuer()
    yield server
    server.close()


def _apply(tmp_path, jobs) -> str:
    path = tmp_path / "jobs.json"
    path.write_text(jobs if isinstance(jobs, str) else json.dumps(jobs), encoding="utf-8")
    out = io.StringIO()
    call_command("applyjobs", str(path), stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_the_readme_two_step_chain_applies_and_runs_as_written(
    db, issuer, tmp_path, settings, monkeypatch
):
    settings.SCHEDULER_TEMPLATE_ENV = ["REPORTS_CLIENT_SECRET"]
    monkeypatch.setenv("REPORTS_CLIENT_SECRET", "s3cret")
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### Chains: run a job after another") :]
    job_file = re.search(r"```json\n(.*?)```", section, re.S).group(1)
    for host in (
        "https://auth.example.com",
        "https://api.example.com",
        "https://hooks.example.com",
    ):
        job_file = job_file.replace(host, issuer.url(""))
    assert _apply(tmp_path, job_file).splitlines() == [
        "created reports-token",
        "created reports-sync",
        "created reports-alert",
    ]
    sync = Endpoint.objects.get(name="reports-sync")
    assert sync.schedule_type == Endpoint.ScheduleType.NONE

    token_run = executor.execute(services.create_run(Endpoint.objects.get(name="reports-token")).pk)
    assert token_run.state == Log.State.SUCCESS
    [chained] = Log.objects.filter(endpoint=sync, trigger=Log.Trigger.CHAIN)
    executor.execute(chained.pk)
    token_call, sync_call = issuer.received
    assert (
        token_call.body == b"grant_type=client_credentials&client_id=reports&client_secret=s3cret"
    )
    assert sync_call.path == f"/v1/reports/sync?after={token_run.run_id}"
    assert sync_call.headers["Authorization"] == "Bearer tok-1"
    assert sync_call.json() == {"requested_by": token_run.run_id}
    chained.refresh_from_db()
    assert chained.state == Log.State.SUCCESS
    # Its request as recorded keeps the token masked (Authorization is always secret).
    assert "tok-1" not in json.dumps(chained.request)


def test_a_cycle_among_the_jobs_of_one_file_changes_nothing(db, tmp_path):
    jobs = [
        {"job_name": "a", "url": "http://127.0.0.1:9/", "run_after": ["c"]},
        {"job_name": "b", "url": "http://127.0.0.1:9/", "run_after": ["a"]},
        {"job_name": "c", "url": "http://127.0.0.1:9/", "run_after": ["b"]},
    ]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps(jobs), encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was changed"):
        call_command("applyjobs", str(path), stdout=io.StringIO(), stderr=err)
    assert "That makes a cycle: a → b → c → a." in err.getvalue()
    assert not Endpoint.objects.exists() and not ChainLink.objects.exists()


def test_an_unknown_upstream_in_a_file_is_a_problem_line(db, tmp_path):
    path = tmp_path / "jobs.json"
    path.write_text(
        json.dumps([{"job_name": "b", "url": "http://127.0.0.1:9/", "run_after": ["nope"]}]),
        encoding="utf-8",
    )
    err = io.StringIO()
    with pytest.raises(CommandError):
        call_command("applyjobs", str(path), stdout=io.StringIO(), stderr=err)
    assert "job 1 (b): run_after: No job named 'nope'." in err.getvalue()


def test_exportjobs_round_trips_run_after(db, tmp_path):
    jobs = [
        {"job_name": "extract", "url": "http://127.0.0.1:9/", "cron_expression": "0 2 * * *"},
        {"job_name": "enrich", "url": "http://127.0.0.1:9/"},
        {  # listed (and exported) before its upstreams: linked once they exist
            "job_name": "archive",
            "url": "http://127.0.0.1:9/?t={{ upstream.response.$.token }}",
            "run_after": [{"job_name": "extract"}, {"job_name": "enrich", "on": "finished"}],
        },
    ]
    _apply(tmp_path, jobs)
    first = io.StringIO()
    call_command("exportjobs", stdout=first)
    exported = json.loads(first.getvalue())
    archive = next(job for job in exported if job["job_name"] == "archive")
    assert archive["run_after"] == [
        {"job_name": "extract", "on": "success"},
        {"job_name": "enrich", "on": "finished"},
    ]
    Endpoint.objects.all().delete()
    assert "created archive" in _apply(tmp_path, first.getvalue())
    second = io.StringIO()
    call_command("exportjobs", stdout=second)
    assert json.loads(second.getvalue()) == exported
    assert ChainLink.objects.count() == 2
