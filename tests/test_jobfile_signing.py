"""Job files and the fields beyond the seed: jitter_seconds round-trips; signing secrets are
exported as the mask and a masked secret on apply keeps the stored one (as secret headers do)."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from calls import signing
from calls.masking import MASK
from endpoints.jobs import apply_job
from endpoints.models import Endpoint
from tests.test_jobfile import apply, export, refuse

pytestmark = pytest.mark.django_db

SECRET = signing.new_secret()
NEXT = signing.new_secret()
SIGNED = {
    "job_name": "signed",
    "cron_expression": "*/5 * * * *",
    "url": "https://hooks.example.com/run",
    "jitter_seconds": 45,
    "signing_secret": SECRET,
    "signing_secret_next": NEXT,
}


def test_export_masks_signing_secrets_and_keeps_jitter(tmp_path):
    apply(tmp_path, [SIGNED])

    out = io.StringIO()
    call_command("exportjobs", stdout=out)

    assert SECRET not in out.getvalue() and NEXT not in out.getvalue()
    job = json.loads(out.getvalue())[0]
    assert (job["signing_secret"], job["signing_secret_next"], job["jitter_seconds"]) == (
        MASK,
        MASK,
        45,
    )


def test_export_then_apply_keeps_the_stored_signing_secrets(tmp_path):
    apply(tmp_path, [SIGNED])
    exported = tmp_path / "export.json"
    call_command("exportjobs", "--output", str(exported), stdout=io.StringIO())

    out = io.StringIO()
    call_command("applyjobs", str(exported), stdout=out)

    assert out.getvalue().splitlines() == ["unchanged signed"]
    endpoint = Endpoint.objects.get(name="signed")
    assert (endpoint.signing_secret, endpoint.signing_secret_next) == (SECRET, NEXT)
    assert endpoint.jitter_seconds == 45


def test_a_rotated_secret_is_applied_and_reported_masked(tmp_path):
    apply(tmp_path, [SIGNED])
    promoted = {**SIGNED, "signing_secret": NEXT}
    promoted.pop("signing_secret_next")

    endpoint, changes = apply_job(promoted, Endpoint.objects.get(name="signed"))

    assert changes == {"signing_secret": (MASK, MASK), "signing_secret_next": (MASK, "")}
    assert (endpoint.signing_secret, endpoint.signing_secret_next) == (NEXT, "")


def test_a_masked_signing_secret_with_nothing_stored_is_refused(tmp_path):
    problems = refuse(tmp_path, [{**SIGNED, "signing_secret": MASK}])
    assert len(problems) == 1 and "signing_secret" in problems[0] and SECRET not in problems[0]
    assert not Endpoint.objects.exists()


def test_jitter_too_wide_for_the_schedule_is_refused(tmp_path):
    problems = refuse(tmp_path, [{**SIGNED, "jitter_seconds": 300}])
    assert "jitter_seconds" in problems[0]


def test_an_unsigned_job_exports_no_signing_fields():
    Endpoint.objects.create(name="plain", url="https://example.com/", cron_expression="0 * * * *")
    job = export()[0]
    assert "signing_secret" not in job and "jitter_seconds" not in job
