"""Compatibility: the ping routes driven over real HTTP the way healthchecks.io's documented
curl examples and runitor drive them, so those scripts work by changing the base URL."""

import subprocess
import urllib.request
import uuid

import pytest

from endpoints.models import Endpoint
from runs.models import Log
from tests.api_support import clear_shared_cache

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def backup(live_server):
    clear_shared_cache()
    endpoint = Endpoint(
        name="db-backup",
        kind=Endpoint.Kind.HEARTBEAT,
        schedule_type=Endpoint.ScheduleType.INTERVAL,
        interval_seconds=60,
        grace_seconds=3600,
        timezone="UTC",
    )
    endpoint.full_clean()
    endpoint.save()
    endpoint.base = f"{live_server.url}/ping/{endpoint.uuid}"
    return endpoint


def curl(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["curl", *arguments], capture_output=True, text=True, timeout=30, check=False
    )


def test_the_documented_curl_examples(backup):
    # healthchecks' docs: "curl -fsS -m 10 --retry 5 -o /dev/null https://hc-ping.com/<uuid>/start"
    assert (
        curl(
            "-fsS", "-m", "10", "--retry", "5", "-o", "/dev/null", f"{backup.base}/start"
        ).returncode
        == 0
    )
    # … then success with the job's output as the body: --data-raw makes it a POST.
    done = curl("-fsS", "-m", "10", "--retry", "5", "--data-raw", "dumped 3 tables", backup.base)
    assert (done.returncode, done.stdout) == (0, "OK")
    # … and the exit status of the last command: "curl … https://hc-ping.com/<uuid>/$?"
    exited = curl("-fsS", "-m", "10", "--retry", "5", "-o", "/dev/null", f"{backup.base}/3")
    assert exited.returncode == 0
    # HEAD works, and an unknown check makes curl -f fail (404, "not found").
    assert curl("-fsS", "-I", "-m", "10", backup.base).returncode == 0
    unknown = curl("-sS", "-m", "10", f"{backup.base[:-36]}{uuid.uuid4()}")
    assert unknown.stdout == "not found"

    success, failure, head = Log.objects.filter(endpoint=backup).order_by("id")
    assert success.state == "success"
    assert success.response_excerpt == "dumped 3 tables"
    assert success.duration_ms is not None and success.started_at < success.finished_at
    assert success.request["headers"]["User-Agent"].startswith("curl/")
    assert (failure.state, failure.result_summary["exit_status"]) == ("failed", 3)
    assert head.state == "success"


def _runitor_post(url: str, body: bytes = b"") -> tuple[int, bytes]:
    """As runitor sends its pings: POST, text/plain, its own User-Agent."""
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={
            "User-Agent": "runitor/v1.4.1 (+https://bdd.fi/x/runitor)",
            "Content-Type": "text/plain",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.status, answer.read()


def test_runitor_start_then_exit_status_with_the_output_paired_by_rid(backup):
    """runitor -uuid … -- ./backup.sh: POST /start?rid=R, run, POST /<exit code>?rid=R with
    the command's output; two overlapping runs stay paired by their rid."""
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    assert _runitor_post(f"{backup.base}/start?rid={first}") == (200, b"OK")
    assert _runitor_post(f"{backup.base}/start?rid={second}") == (200, b"OK")
    assert _runitor_post(f"{backup.base}/0?rid={second}", b"second: ok\n") == (200, b"OK")
    output = b"pg_dump: error: connection refused\n"
    assert _runitor_post(f"{backup.base}/1?rid={first}", output) == (200, b"OK")

    one, two = Log.objects.filter(endpoint=backup).order_by("id")
    assert (one.state, one.response_excerpt) == ("failed", output.decode())
    assert "exited with status 1" in one.error_message
    assert (two.state, two.response_excerpt) == ("success", "second: ok\n")
    assert one.result_summary["rid"] == first and two.result_summary["rid"] == second
    backup.refresh_from_db()
    assert (backup.run_count, backup.success_count, backup.failure_count) == (2, 1, 1)
