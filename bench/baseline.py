"""The baseline: what a Django user would otherwise write with django-q2 alone.

One django-q2 `Schedule` per endpoint (cron, or once per slot where django-q2's minute cron
cannot express the load), each calling `call(url, done_file, method, headers, body, timeout)`:
a plain `requests.request`, run by django-q2's own cluster (its own `qcluster` command, so only
django-q2's scheduler fires). With realistic jobs the call is what the user's job says (POST, a
JSON body, JSON and Bearer headers, its timeout); minimal jobs are a GET. The task appends one
JSON line to `done_file` when it has its answer (or its error): the baseline's equivalent of a
Log row written.
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime

import requests


def call(
    url: str,
    done_file: str = "",
    method: str = "GET",
    headers: dict | None = None,
    body: str | None = None,
    timeout: float = 30,
) -> int | str:
    started = time.time()
    try:
        response = requests.request(
            method, url, headers=headers, data=body.encode() if body else None, timeout=timeout
        )
        outcome: int | str = response.status_code
    except requests.Timeout:
        outcome = "timeout"
    except requests.RequestException as exc:
        outcome = type(exc).__name__
    if done_file:
        line = json.dumps(
            {
                "url": url,
                "key": (headers or {}).get("Idempotency-Key", ""),
                "started": started,
                "finished": time.time(),
                "outcome": outcome,
                "timeout": timeout,
            }
        )
        fd = os.open(done_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, (line + "\n").encode())  # one short O_APPEND write: atomic
        finally:
            os.close(fd)
    return outcome


def request_args(url: str, done_file: str, jobs: str, name: str = "", key: str = "", timeout=30):
    """The task's arguments for one endpoint: the same request our realistic job sends."""
    if jobs != "realistic":
        return (url, done_file)
    from bench.harness import job_object

    job = job_object(name or url, url, "* * * * *")
    headers = dict(job["headers"])
    if key:
        headers["Idempotency-Key"] = key
    return (url, done_file, "POST", headers, json.dumps(job["body"]), timeout)


def make_schedules(
    urls: list[str], cron: str, first_run: datetime, done_file: str, jobs: str = "minimal"
) -> None:
    from django_q.models import Schedule

    Schedule.objects.bulk_create(
        (
            Schedule(
                name=f"baseline-{index}",
                func="bench.baseline.call",
                args=repr(request_args(url, done_file, jobs, f"bench-{index:06d}")),
                schedule_type=Schedule.CRON,
                cron=cron,
                repeats=-1,
                next_run=first_run,
            )
            for index, url in enumerate(urls)
        ),
        batch_size=2000,
    )


def make_once(slots: list[tuple[str, str, datetime, str, float]], done_file: str, jobs: str):
    """One django-q2 `Schedule.ONCE` per (name, url, slot, key, timeout): a slot each."""
    from django_q.models import Schedule

    Schedule.objects.bulk_create(
        (
            Schedule(
                name=f"baseline-{index}",
                func="bench.baseline.call",
                args=repr(request_args(url, done_file, jobs, name, key, timeout)),
                schedule_type=Schedule.ONCE,
                repeats=1,
                next_run=slot,
            )
            for index, (name, url, slot, key, timeout) in enumerate(slots)
        ),
        batch_size=2000,
    )


def outcomes(done_file: str) -> list[dict]:
    """Every completed task's line: url, key, started, finished, outcome, timeout."""
    try:
        with open(done_file) as lines:
            return [json.loads(line) for line in lines if line.strip()]
    except FileNotFoundError:
        return []


def finished(done_file: str) -> list[tuple[str, float]]:
    """(url, finished-at) for every task that completed."""
    return [(row["url"], row["finished"]) for row in outcomes(done_file)]
