"""Standard Webhooks signing, checked the way receivers check it: a loopback receiver that runs
`standardwebhooks.Webhook(secret).verify(body, headers)` on every request it gets (and answers
401 when no key it holds verifies), and Node's official `standardwebhooks` package on the same
requests. Through retries, a key rotation, a tampered body and a wrong key."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from calls import signing
from endpoints.models import Endpoint
from runs import services
from tests.target import Target
from tests.test_idempotency_and_templates import run_slot

pytest_plugins = ["tests.api_support"]

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


class VerifyingReceiver(Target):
    """A receiver holding `keys`: it verifies each request with the library before answering."""

    def __init__(self, keys: list[str]) -> None:
        self.keys = keys
        self.verified: list[bool] = []
        super().__init__()

    def respond(self, request, count: int) -> None:
        body = self.received[-1].body
        headers = dict(request.headers.items())
        ok = any(verifies(key, body, headers) for key in self.keys)
        self.verified.append(ok)
        if ok:
            super().respond(request, count)
            return
        request.send_response(401)
        request.send_header("Content-Length", "0")
        request.end_headers()


def verifies(key: str, body: bytes, headers: dict) -> bool:
    try:
        Webhook(key).verify(body, headers, json_parse=False)
    except WebhookVerificationError:
        return False
    return True


@pytest.fixture
def receiver():
    servers: list[VerifyingReceiver] = []

    def start(*keys: str) -> VerifyingReceiver:
        servers.append(VerifyingReceiver(list(keys)))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


# --- every attempt, verified by the library ----------------------------------------------------


def test_a_receiver_verifies_every_attempt_with_the_standard_webhooks_library(
    make_endpoint, receiver
):
    secret = signing.new_secret()
    hook = receiver(secret)
    endpoint = make_endpoint(
        url=hook.url("/flaky/1"),
        method="POST",
        body='{"report": "daily"}',
        signing_secret=secret,
        cron_expression="* * * * *",
    )

    chain = run_slot(endpoint, T0)

    assert [log.state for log in chain] == ["failed", "success"]
    assert hook.verified == [True, True]
    first, retry = hook.received
    # webhook-id is the Idempotency-Key: one per slot, the same on its retry.
    assert (
        first.headers["webhook-id"] == first.headers["Idempotency-Key"] == chain[0].idempotency_key
    )
    assert retry.headers["webhook-id"] == first.headers["webhook-id"]
    assert first.headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(retry.body, retry.headers) == {"report": "daily"}


def test_keys_rotate_current_then_both_then_next_and_every_call_verifies(make_endpoint, receiver):
    old, new = signing.new_secret(), signing.new_secret()
    hook = receiver(old)
    endpoint = make_endpoint(url=hook.url(), method="POST", body="{}", signing_secret=old)
    services.run_in_foreground(endpoint)

    # 1. A next key is set: requests carry both signatures, so the receiver moves to it first.
    endpoint.signing_secret_next = new
    endpoint.save()
    services.run_in_foreground(endpoint)
    hook.keys = [new]
    services.run_in_foreground(endpoint)
    # 2. Promoted: only the new key signs.
    endpoint.signing_secret, endpoint.signing_secret_next = new, ""
    endpoint.save()
    last = services.run_in_foreground(endpoint)

    assert hook.verified == [True, True, True, True] and last.state == "success"
    before, during, _, after = hook.received
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert verifies(old, during.body, during.headers) and verifies(new, during.body, during.headers)
    assert verifies(old, before.body, before.headers) and not verifies(
        new, before.body, before.headers
    )
    assert verifies(new, after.body, after.headers) and not verifies(old, after.body, after.headers)


def test_a_tampered_body_and_a_wrong_key_are_refused(make_endpoint, receiver):
    secret = signing.new_secret()
    hook = receiver(signing.new_secret())  # a receiver given another key
    endpoint = make_endpoint(
        url=hook.url(), method="POST", body='{"amount": 10}', signing_secret=secret, max_attempts=1
    )

    log = services.run_in_foreground(endpoint)

    assert (log.state, log.status_code, hook.verified) == ("failed", 401, [False])
    sent = hook.received[0]
    assert verifies(secret, sent.body, sent.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(b'{"amount": 1000}', sent.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(signing.new_secret()).verify(sent.body, sent.headers)


def test_a_get_is_signed_over_its_empty_body_and_its_id(make_endpoint, receiver):
    secret = signing.new_secret()
    hook = receiver(secret)
    endpoint = make_endpoint(url=hook.url("/ok?day=monday"), signing_secret=secret)

    assert services.run_in_foreground(endpoint).state == "success"
    sent = hook.received[0]
    assert sent.body == b"" and hook.verified == [True]
    # The URL is not signed (TLS protects it); the id and timestamp are.
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(sent.body, {**sent.headers, "webhook-id": "another"})


def test_an_endpoint_header_named_like_a_signing_header_is_replaced(make_endpoint, receiver):
    secret = signing.new_secret()
    hook = receiver(secret)
    endpoint = make_endpoint(
        url=hook.url(), signing_secret=secret, headers={"Webhook-Signature": "v1,forged"}
    )

    services.run_in_foreground(endpoint)

    names = [name.lower() for name in hook.received[0].headers]
    assert names.count("webhook-signature") == 1 and hook.verified == [True]


def test_no_signing_headers_without_a_key(make_endpoint, target):
    services.run_in_foreground(make_endpoint(url=target.url()))
    names = {name.lower() for name in target.received[0].headers}
    assert not names & set(signing.HEADERS) and "x-cronplane-signature" not in names


def test_the_dry_run_shows_the_signing_headers(make_endpoint, target):
    endpoint = make_endpoint(
        url=target.url("/ok?run={{ run_id }}"), signing_secret=signing.new_secret()
    )
    log = services.run_in_foreground(endpoint, dry_run=True)
    sent = log.result_summary["would_send"]["headers"]
    assert sent["webhook-id"] == sent["Idempotency-Key"] == log.idempotency_key
    assert sent["webhook-signature"].startswith("v1,") and target.received == []


# --- Node's official library -------------------------------------------------------------------

NODE_VERIFY = """
const fs = require("fs");
const { Webhook } = require("standardwebhooks");
const cases = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const results = cases.map(({ secret, body, headers }) => {
  try {
    new Webhook(secret).verify(Buffer.from(body, "base64"), headers);
    return true;
  } catch (err) {
    if (err.name !== "WebhookVerificationError") throw err;
    return false;
  }
});
console.log(JSON.stringify(results));
"""


@pytest.fixture(scope="module")
def node_library(tmp_path_factory):
    """A directory with Node's `standardwebhooks` installed from the registry, or a skip."""
    if not (shutil.which("node") and shutil.which("npm")):
        pytest.skip("node and npm are not installed")
    directory = tmp_path_factory.mktemp("node-standardwebhooks")
    try:
        subprocess.run(
            ["npm", "install", "--no-audit", "--no-fund", "--silent", "standardwebhooks@1"],
            cwd=directory,
            check=True,
            capture_output=True,
            timeout=120,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"npm could not install standardwebhooks (no registry?): {exc}")
    (directory / "verify.js").write_text(NODE_VERIFY)
    return directory


def node_verifies(directory, cases: list[tuple[str, bytes, dict]]) -> list[bool]:
    (directory / "cases.json").write_text(
        json.dumps(
            [
                {"secret": key, "body": base64.b64encode(body).decode(), "headers": headers}
                for key, body, headers in cases
            ]
        )
    )
    result = subprocess.run(
        ["node", "verify.js", "cases.json"],
        cwd=directory,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return json.loads(result.stdout)


def test_nodes_official_library_verifies_the_same_requests(node_library, make_endpoint, target):
    old, new = signing.new_secret(), signing.new_secret()
    endpoint = make_endpoint(
        url=target.url("/flaky/1"), method="POST", body='{"ü": "✓"}', signing_secret=old
    )
    services.run_in_foreground(endpoint)  # the attempt and its retry
    endpoint.signing_secret_next = new
    endpoint.save()
    services.run_in_foreground(endpoint)  # both keys
    first, retry, rotating = target.received
    # Node sees header names in lower case, as its http module gives them.
    lower = [{name.lower(): value for name, value in r.headers.items()} for r in target.received]

    results = node_verifies(
        node_library,
        [
            (old, first.body, lower[0]),
            (old, retry.body, lower[1]),
            (old, rotating.body, lower[2]),
            (new, rotating.body, lower[2]),
            (old, b'{"tampered": true}', lower[0]),
            (signing.new_secret(), first.body, lower[0]),
        ],
    )

    assert results == [True, True, True, True, False, False]


# --- secrets -----------------------------------------------------------------------------------


def test_a_new_secret_is_whsec_and_base64_of_32_random_bytes():
    secret = signing.new_secret()
    assert secret.startswith("whsec_") and secret != signing.new_secret()
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert signing.secret_problem(secret) is None


@pytest.mark.parametrize(
    ("secret", "problem"),
    [
        ("typed-key", "Not a signing secret"),
        ("whsec_not-base64-at-all_", "Not valid base64"),
        ("whsec_" + base64.b64encode(b"short").decode(), "The key is 5 bytes"),
        ("whsec_" + base64.b64encode(bytes(65)).decode(), "The key is 65 bytes"),
    ],
)
def test_a_key_no_library_would_accept_is_refused_on_save(make_endpoint, secret, problem):
    endpoint = make_endpoint()
    for field in ("signing_secret", "signing_secret_next"):
        setattr(endpoint, field, secret)
        with pytest.raises(ValidationError) as raised:
            endpoint.full_clean()
        assert problem in raised.value.message_dict[field][0]
        assert secret not in raised.value.message_dict[field][0]
        setattr(endpoint, field, "")


def test_a_key_of_another_standard_webhooks_sender_is_accepted(make_endpoint):
    # Svix-style: 24 bytes, no padding needed.
    secret = "whsec_" + base64.b64encode(bytes(range(24))).decode()
    make_endpoint(signing_secret=secret).full_clean()
    assert Endpoint.objects.get().signing_secret == secret


# --- moving existing keys: migration 0016 and the dashboard's notice ---------------------------

OLD_STYLE = "whsec_" + "Zm9v-bar_" * 5  # what the X-Cronplane scheme generated: URL-safe text


@pytest.mark.django_db(transaction=True)
def test_the_migration_replaces_every_stored_key_and_marks_the_endpoint():
    from django.db import connection
    from django.db.migrations.executor import MigrationExecutor

    before = [("endpoints", "0015_notify_channels")]
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    old = executor.loader.project_state(before).apps.get_model("endpoints", "Endpoint")
    url = "http://127.0.0.1:9/ok"
    old.objects.create(name="both", url=url, signing_secret=OLD_STYLE, signing_secret_next="k2")
    old.objects.create(name="next-only", url=url, signing_secret_next=OLD_STYLE)
    old.objects.create(name="unsigned", url=url)

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(executor.loader.graph.leaf_nodes())

    both, next_only, unsigned = Endpoint.objects.order_by("name")
    keys = [both.signing_secret, both.signing_secret_next, next_only.signing_secret_next]
    assert OLD_STYLE not in keys and len(set(keys)) == 3
    assert [signing.secret_problem(key) for key in keys] == [None, None, None]
    assert next_only.signing_secret == ""
    assert both.signing_keys_replaced_at and next_only.signing_keys_replaced_at
    assert unsigned.signing_keys_replaced_at is None and unsigned.signing_secret == ""


@pytest.fixture
def replaced(make_endpoint) -> Endpoint:
    endpoint = make_endpoint(name="billing-sync", signing_secret=signing.new_secret())
    Endpoint.objects.filter(pk=endpoint.pk).update(signing_keys_replaced_at=T0)
    return Endpoint.objects.get(pk=endpoint.pk)


def dashboard(user):
    from django.test import Client

    client = Client()
    client.force_login(user)
    return client


def test_the_dashboard_names_the_endpoints_whose_keys_were_replaced(viewer, replaced):
    from django.urls import reverse

    client = dashboard(viewer)
    listing = client.get(reverse("dashboard:index")).content.decode()
    page = client.get(reverse("dashboard:endpoint", args=[replaced.pk])).content.decode()

    assert 'id="signing-keys-replaced"' in listing and "billing-sync" in listing
    assert reverse("dashboard:endpoint", args=[replaced.pk]) in listing
    assert 'id="signing-keys-replaced"' in page and "Standard Webhooks" in page
    assert "Ask an Editor to reveal the key" in page
    assert replaced.signing_secret not in listing + page


def test_revealing_the_key_shows_the_receivers_code_and_ends_the_notice(editor, replaced):
    from django.urls import reverse

    client = dashboard(editor)
    page = reverse("dashboard:endpoint", args=[replaced.pk])
    assert "Reveal the key below" in client.get(page).content.decode()

    revealed = client.post(reverse("dashboard:signing_reveal", args=[replaced.pk]))

    html = revealed.content.decode()
    assert replaced.signing_secret in html
    assert 'id="verify-python"' in html and 'id="verify-node"' in html
    assert 'id="signing-keys-replaced"' not in client.get(page).content.decode()
    assert Endpoint.objects.get(pk=replaced.pk).signing_keys_replaced_at is None


def test_a_key_set_through_an_api_ends_the_notice_and_a_run_does_not(as_editor, replaced):
    services.run_in_foreground(replaced, dry_run=True)
    assert Endpoint.objects.get(pk=replaced.pk).signing_keys_replaced_at == T0

    response = as_editor.put(
        f"/api/v1/schedules/sched-{replaced.pk}",
        {"signingSecret": signing.new_secret()},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert Endpoint.objects.get(pk=replaced.pk).signing_keys_replaced_at is None


def test_promoting_the_next_key_ends_the_notice(editor, replaced):
    from django.urls import reverse

    Endpoint.objects.filter(pk=replaced.pk).update(signing_secret_next=signing.new_secret())
    dashboard(editor).post(reverse("dashboard:signing_promote", args=[replaced.pk]))

    assert Endpoint.objects.get(pk=replaced.pk).signing_keys_replaced_at is None


# --- a bad key through every door: a field error, nothing saved --------------------------------

BAD_KEY = "whsec_my-own-key"


def test_the_apis_refuse_a_key_no_library_accepts_with_a_400(as_editor, make_endpoint):
    endpoint = make_endpoint(name="hourly", cron_expression="0 * * * *")

    schedules = as_editor.put(
        f"/api/v1/schedules/sched-{endpoint.pk}", {"signingSecretNext": BAD_KEY}, format="json"
    )
    jobs = as_editor.post(
        "/api/v1/scheduler/jobs",
        {"job_name": "x", "url": "http://127.0.0.1:9/hook", "signing_secret": BAD_KEY},
        format="json",
    )

    assert schedules.status_code == 400 and "signingSecretNext" in schedules.json()["details"]
    assert jobs.status_code == 400 and "signing_secret" in jobs.json()["details"]
    assert BAD_KEY not in schedules.content.decode() + jobs.content.decode()
    assert Endpoint.objects.get().signing_secret_next == "" and Endpoint.objects.count() == 1


def test_a_job_file_with_a_bad_key_is_refused(db, tmp_path):
    from tests.test_jobfile import refuse

    job = {"job_name": "x", "url": "http://127.0.0.1:9/hook", "cron_expression": "0 * * * *"}
    problems = refuse(tmp_path, [{**job, "signing_secret": BAD_KEY}])

    assert len(problems) == 1 and "signing_secret" in problems[0] and "base64" in problems[0]
    assert not Endpoint.objects.exists()


def test_the_form_says_inline_what_a_key_must_be(editor):
    from django.urls import reverse

    from tests.test_dashboard_forms import form_data

    response = dashboard(editor).post(
        reverse("dashboard:endpoint_create"), form_data(signing_secret=BAD_KEY)
    )

    assert response.status_code == 200 and not Endpoint.objects.exists()
    errors = response.context["form"].errors
    assert list(errors) == ["signing_secret"] and "Not valid base64" in errors["signing_secret"][0]
    assert BAD_KEY not in response.content.decode()


def test_the_readmes_python_receiver_accepts_a_real_call_and_refuses_a_forged_one(
    monkeypatch, make_endpoint, target
):
    import re
    from pathlib import Path

    from django.test import RequestFactory

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    code = next(
        block
        for block in re.findall(r"```python\n(.*?)```", readme, re.S)
        if "standardwebhooks" in block
    )
    secret = signing.new_secret()
    monkeypatch.setenv("WEBHOOK_SECRET", secret)
    namespace: dict = {}
    exec(code, namespace)  # the README's own snippet
    endpoint = make_endpoint(url=target.url(), method="POST", body="{}", signing_secret=secret)
    services.run_in_foreground(endpoint)
    services.run_in_foreground(make_endpoint(name="get", url=target.url(), signing_secret=secret))
    (post, get) = target.received

    def delivered(sent, body: bytes):
        headers = {k: v for k, v in sent.headers.items() if k.lower().startswith("webhook-")}
        return RequestFactory().generic(
            sent.method, "/hook", data=body, content_type="application/json", headers=headers
        )

    assert namespace["receive"](delivered(post, post.body)) is None
    assert namespace["receive"](delivered(get, get.body)) is None
    assert namespace["receive"](delivered(post, b'{"forged": 1}')).status_code == 400
