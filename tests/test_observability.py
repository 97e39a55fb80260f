from datetime import timedelta

from django.utils import timezone

from api.models import ApiToken
from runs.models import Heartbeat, Log


def beat(age_seconds: float) -> Heartbeat:
    seen = timezone.now() - timedelta(seconds=age_seconds)
    return Heartbeat.objects.create(
        name="w1:42", host="w1", pid=42, started_at=seen, last_seen_at=seen
    )


def test_healthz_is_503_without_a_worker(client, db):
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["database"] == "ok"
    assert response.json()["status"] == "no worker"


def test_healthz_is_200_with_a_fresh_heartbeat(client, viewer):
    beat(age_seconds=3)
    client.force_login(viewer)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok" and body["workers_alive"] == 1
    assert body["workers"][0]["name"] == "w1:42"


def test_healthz_shows_anonymous_callers_counts_not_hosts_or_pids(client, db):
    beat(age_seconds=3)
    response = client.get("/healthz")
    body = response.json()
    assert response.status_code == 200
    assert (body["workers_alive"], body["workers_seen"]) == (1, 1)
    assert "workers" not in body and "w1" not in response.content.decode()


def test_healthz_is_503_when_the_heartbeat_is_stale(client, viewer):
    beat(age_seconds=120)
    client.force_login(viewer)
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json()["workers"][0]["fresh"] is False


def test_metrics_need_credentials(client, db):
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response.json()["code"] == "UNAUTHORIZED"


def test_metrics_report_runs_durations_lag_queue_and_workers(client, viewer, make_endpoint):
    endpoint = make_endpoint(name="m")
    now = timezone.now()
    beat(age_seconds=1)
    for n, (ms, lag) in enumerate(((120, 0.2), (800, 0.4), (4000, 1.5))):
        slot = now - timedelta(seconds=30 + n)
        Log.objects.create(
            endpoint=endpoint, state="success", scheduled_for=slot,
            started_at=slot + timedelta(seconds=lag), finished_at=now, duration_ms=ms,
        )  # fmt: skip
    Log.objects.create(endpoint=endpoint, state="failed", finished_at=now)
    Log.objects.create(endpoint=endpoint, state="queued")
    _, raw = ApiToken.issue(viewer, "prometheus")

    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {raw}")
    assert response.status_code == 200
    text = response.content.decode()
    assert 'cronplane_runs{state="success"} 3.0' in text
    assert 'cronplane_runs{state="failed"} 1.0' in text
    assert 'cronplane_run_duration_seconds_bucket{le="1.0"} 2.0' in text
    assert 'cronplane_run_duration_seconds_bucket{le="+Inf"} 3.0' in text
    assert 'cronplane_dispatch_lag_seconds{quantile="1"} 1.5' in text
    assert "cronplane_queue_depth 1.0" in text
    assert "cronplane_workers_alive 1.0" in text


def test_metrics_accept_a_signed_in_user(client, viewer):
    client.force_login(viewer)
    assert client.get("/metrics").status_code == 200
