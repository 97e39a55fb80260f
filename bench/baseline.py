"""The baseline: what a Django user would otherwise write with django-q2 alone.

One django-q2 cron `Schedule` per endpoint, each calling `call(url, done_file)`: a plain
`requests.get`, run by django-q2's own cluster (`manage.py qcluster --no-dispatcher`, so only
django-q2's scheduler fires). The task appends "url finished-at" to `done_file` when it has its
answer: the baseline's equivalent of a Log row written.
"""

from __future__ import annotations

import os
import time
from datetime import datetime

import requests


def call(url: str, done_file: str = "") -> int:
    response = requests.get(url, timeout=30)
    if done_file:
        line = f"{url} {time.time()}\n".encode()
        fd = os.open(done_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)  # one short O_APPEND write: atomic between processes
        finally:
            os.close(fd)
    return response.status_code


def make_schedules(urls: list[str], cron: str, first_run: datetime, done_file: str) -> None:
    from django_q.models import Schedule

    Schedule.objects.bulk_create(
        (
            Schedule(
                name=f"baseline-{index}",
                func="bench.baseline.call",
                args=repr((url, done_file)),
                schedule_type=Schedule.CRON,
                cron=cron,
                repeats=-1,
                next_run=first_run,
            )
            for index, url in enumerate(urls)
        ),
        batch_size=2000,
    )


def finished(done_file: str) -> list[tuple[str, float]]:
    """(url, finished-at) for every task that completed."""
    try:
        with open(done_file) as lines:
            return [(url, float(at)) for url, at in (line.split() for line in lines if line)]
    except FileNotFoundError:
        return []
