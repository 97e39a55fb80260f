"""Invariant 5: secret header values are encrypted at rest and never shown back."""

import logging
from io import StringIO

import pytest
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.db import connection

from endpoints import crypto
from endpoints.models import Endpoint
from runs.models import Log

SECRET = "Bearer sk_live_6f1c0ffee"
COOKIE = "session=deadbeefcafe"
CUSTOM = "hunter2-custom-secret"


@pytest.fixture
def secretive(make_endpoint, target):
    return make_endpoint(
        name="secretive",
        url=target.url("/ok"),
        headers={"Authorization": SECRET, "Cookie": COOKIE, "X-Vendor-Key": CUSTOM, "X-Plain": "p"},
        secret_headers=["X-Vendor-Key"],
    )


def raw_headers(endpoint: Endpoint) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT headers FROM endpoints_endpoint WHERE id = %s", [endpoint.pk])
        return cursor.fetchone()[0]


def test_header_values_are_encrypted_at_rest(secretive):
    stored = raw_headers(secretive)
    assert stored.startswith("fernet:")
    for value in (SECRET, COOKIE, CUSTOM, "X-Plain"):
        assert value not in stored
    secretive.refresh_from_db()
    assert secretive.headers["Authorization"] == SECRET


def test_keys_rotate_without_losing_secrets(settings, secretive):
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEY = old
    # Written under the old key without reading it back first (save() would: the audit log
    # diffs against the stored row, which is under the derived key).
    Endpoint.objects.filter(pk=secretive.pk).update(
        **{
            field.name: getattr(secretive, field.name)
            for field in crypto.encrypted_fields(Endpoint)
        }
    )
    settings.FIELD_ENCRYPTION_KEY = f"{new},{old}"
    out = StringIO()
    call_command("rotatekeys", stdout=out)
    assert "Re-encrypted the secrets of 1 endpoint(s)" in out.getvalue()
    settings.FIELD_ENCRYPTION_KEY = new  # the old key is gone
    assert Endpoint.objects.get().headers["Authorization"] == SECRET


def test_a_lost_key_is_a_clear_error_not_garbage(settings, secretive):
    settings.FIELD_ENCRYPTION_KEY = Fernet.generate_key().decode()
    with pytest.raises(ImproperlyConfigured, match="cannot be decrypted"):
        Endpoint.objects.get()
    assert crypto.decrypt('{"legacy": "plain"}') == '{"legacy": "plain"}'


def test_a_secret_never_appears_in_runs_commands_or_server_logs(secretive, target, caplog):
    caplog.set_level(logging.DEBUG)
    out = StringIO()
    call_command("runjob", "secretive", stdout=out)
    call_command("runjob", "secretive", "--dry-run", stdout=out)
    call_command("exportjobs", stdout=out)
    assert target.received[0].headers["Authorization"] == SECRET  # it was sent
    shown = out.getvalue() + caplog.text
    for log in Log.objects.all():
        shown += str(log.request) + str(log.result_summary) + log.error_message
    for value in (SECRET, COOKIE, CUSTOM):
        assert value not in shown
    assert "X-Plain" in shown


def test_a_secret_never_appears_in_the_admin(admin_client, secretive):
    call_command("runjob", "secretive", stdout=StringIO())
    log = Log.objects.get()
    pages = [
        "/admin/endpoints/endpoint/",
        f"/admin/endpoints/endpoint/{secretive.pk}/change/",
        "/admin/runs/log/",
        f"/admin/runs/log/{log.pk}/change/",
    ]
    for page in pages:
        html = admin_client.get(page).content.decode()
        for value in (SECRET, COOKIE, CUSTOM):
            assert value not in html, f"{value} shown on {page}"
