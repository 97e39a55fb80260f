"""What `runjob` prints: masks as the characters they are, --as-of on the job's clock, and only
the run id with --queue (no django-q log line)."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import call_command

from calls.masking import MASK
from runs.models import Log
from tests.processes import manage


def runjob(*args: str) -> str:
    out = StringIO()
    call_command("runjob", *args, stdout=out)
    return out.getvalue()


def test_a_dry_run_prints_the_mask_characters_not_escapes(make_endpoint, target):
    make_endpoint(
        name="secretive",
        url=target.url("/ok"),
        headers={"Authorization": "Bearer s3cret-token"},
    )
    output = runjob("secretive", "--dry-run")
    assert MASK in output
    assert "\\u2022" not in output and "s3cret-token" not in output


def test_as_of_is_echoed_on_the_jobs_clock(make_endpoint, target):
    make_endpoint(name="tokyo", url=target.url("/ok"), timezone="Asia/Tokyo")
    output = runjob("tokyo", "--as-of", "2026-11-01T01:30")
    assert "as of 2026-11-01 01:30:00 JST" in output
    assert "+00:00" not in output
    assert Log.objects.get().as_of.isoformat() == "2026-10-31T16:30:00+00:00"


def test_as_of_on_an_ambiguous_dst_hour_names_its_offset(make_endpoint, target):
    make_endpoint(name="nyc", url=target.url("/ok"), timezone="America/New_York")
    output = runjob("nyc", "--as-of", "2026-11-01T01:30")
    # The first of the two 01:30s (EDT), said with its abbreviation.
    assert "as of 2026-11-01 01:30:00 EDT" in output


@pytest.mark.django_db(transaction=True)
def test_queue_prints_the_run_id_and_nothing_else(make_endpoint, target):
    make_endpoint(name="later", url=target.url("/ok"))
    result = manage("runjob", "later", "--queue")
    assert result.returncode == 0, result.stderr
    log = Log.objects.get()
    assert result.stdout.strip() == log.run_id
    assert "INFO" not in result.stderr + result.stdout
    assert result.stderr == ""
