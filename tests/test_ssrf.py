"""The SSRF guard: hostile targets are refused on save and at connect time."""

import asyncio

import pytest
from django.core.exceptions import ValidationError

from calls import client
from calls import guard as ssrf
from calls.client import Client
from calls.spec import CallSpec, Outcome
from endpoints.models import Endpoint
from runs import executor, services
from runs.models import Log


@pytest.fixture
def public_only(settings):
    settings.SCHEDULER_ALLOWED_NETWORKS = []


@pytest.fixture
def dns(monkeypatch):
    """Play the DNS server: name → answers (a list, or a list of lists for successive calls)."""
    answers: dict[str, list] = {}
    real = ssrf.resolve

    def fake(host: str, port: int) -> list[str]:
        if host not in answers:
            return real(host, port)
        answer = answers[host]
        return answer.pop(0) if isinstance(answer[0], list) else answer

    monkeypatch.setattr(ssrf, "resolver", fake)
    return answers


FORBIDDEN_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "link-local"),
    ("http://0x7f000001/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://127.0.0.1:8000/admin/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),
    ("http://localhost/", "loopback"),
    ("http://localhost./", "loopback"),
    ("http://LOCALHOST:6379/", "loopback"),
    ("http://redis.localhost/", "loopback"),
    ("http://10.0.0.5/", "private"),
    ("http://172.16.3.4/", "private"),
    ("http://192.168.1.1/", "private"),
    ("http://0.0.0.0:5432/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://224.0.0.1/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fc00::1]/", "private"),
    ("https://169.254.169.254/", "link-local"),
]

BAD_SCHEMES = [
    "file:///etc/passwd",
    "gopher://127.0.0.1:25/_HELO",
    "ftp://example.com/",
    "javascript:alert(1)",
    "dict://127.0.0.1:11211/",
    "//example.com/no-scheme",
]


def refused(**fields) -> dict[str, list[str]]:
    values = {"name": "hostile", "cron_expression": "@hourly", "timezone": "UTC", **fields}
    with pytest.raises(ValidationError) as caught:
        Endpoint(**values).full_clean()
    return caught.value.message_dict


@pytest.mark.parametrize(("url", "kind"), FORBIDDEN_URLS)
def test_a_non_public_target_is_refused_on_save(public_only, db, url, kind):
    errors = refused(url=url)
    assert kind in errors["url"][0]
    assert "SCHEDULER_ALLOWED_NETWORKS" in errors["url"][0]


@pytest.mark.parametrize("url", BAD_SCHEMES)
def test_only_http_and_https_are_accepted(public_only, db, url):
    assert refused(url=url)["url"] == ["Only http:// or https:// URLs can be called."]


def test_a_name_resolving_to_a_private_address_is_refused(public_only, db, dns):
    dns["intranet.example.com"] = ["93.184.216.34", "10.1.2.3"]
    assert "10.1.2.3 is a private address" in refused(url="http://intranet.example.com/")["url"][0]


def test_a_public_name_is_accepted_and_an_unresolvable_one_waits_for_run_time(public_only, db, dns):
    dns["api.example.com"] = ["93.184.216.34"]
    Endpoint(name="ok", url="https://api.example.com/x", cron_expression="@daily").full_clean()
    Endpoint(name="later", url="https://not-yet.invalid/", cron_expression="@daily").full_clean()


def test_allowed_networks_open_a_range(settings, db):
    settings.SCHEDULER_ALLOWED_NETWORKS = ["10.0.0.0/8"]
    Endpoint(name="lan", url="http://10.0.0.5/", cron_expression="@daily").full_clean()
    assert "loopback" in refused(url="http://127.0.0.1/")["url"][0]


def run(endpoint: Endpoint) -> Log:
    return executor.execute(services.create_run(endpoint).pk)


def test_dns_rebinding_is_caught_at_connect_time(settings, db, dns, target):
    # Public when saved, loopback when called: the run connects only to the address it checked.
    settings.SCHEDULER_ALLOWED_NETWORKS = []
    dns["rebind.example.com"] = [["93.184.216.34"], ["127.0.0.1"]]
    endpoint = Endpoint(
        name="rebind",
        url=f"http://rebind.example.com:{target.port}/ok",
        cron_expression="@daily",
        max_attempts=1,
    )
    endpoint.full_clean()
    endpoint.save()
    log = run(endpoint)
    assert (log.state, log.error_class) == ("failed", "blocked")
    assert "127.0.0.1 is a loopback address" in log.error_message
    assert target.received == []


def test_a_redirect_to_a_forbidden_address_is_refused(settings, make_endpoint, target):
    settings.SCHEDULER_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    endpoint = make_endpoint(
        name="redirector",
        url=target.url("/redirect?to=http://169.254.169.254/latest/meta-data/"),
        max_attempts=1,
    )
    log = run(endpoint)
    assert (log.state, log.error_class) == ("failed", "blocked")
    assert "169.254.169.254 is a link-local address" in log.error_message
    assert len(target.received) == 1  # the first hop only


def test_a_redirect_to_another_scheme_is_refused(make_endpoint, target):
    endpoint = make_endpoint(
        name="to-file", url=target.url("/redirect?to=file:///etc/passwd"), max_attempts=1
    )
    log = run(endpoint)
    assert (log.state, log.error_class) == ("failed", "invalid")


def test_redirects_are_capped(make_endpoint, target):
    log = run(make_endpoint(name="loop", url=target.url("/loop"), max_attempts=1))
    assert (log.state, log.error_message) == ("failed", "More than 5 redirects")
    assert len(target.received) == 6


def test_a_blocked_target_is_not_retried(settings, make_endpoint, dns, target):
    endpoint = make_endpoint(name="b", url=target.url("/ok"), max_attempts=3)
    settings.SCHEDULER_ALLOWED_NETWORKS = []
    log = run(endpoint)
    assert log.error_class == "blocked"
    assert not Log.objects.filter(retry_of=log).exists()


# --- at connect time, straight through calls.client -------------------------------------------


def send(url: str, **fields) -> Outcome:
    return client.call(CallSpec(method="GET", url=url, timeout=5, **fields))


@pytest.mark.parametrize(("url", "kind"), FORBIDDEN_URLS)
def test_every_address_form_is_refused_when_called(public_only, url, kind):
    outcome = send(url)
    assert (outcome.ok, outcome.error_class) == (False, "blocked"), outcome.error_message
    assert outcome.error_message.startswith("Refused: ") and kind in outcome.error_message
    assert outcome.timing["connect_ms"] is None  # refused before connecting


def test_the_client_connects_to_the_address_it_checked(dns, target):
    dns["api.example.com"] = ["127.0.0.1"]

    outcome = send(f"http://api.example.com:{target.port}/ok")

    assert outcome.ok, outcome.error_message
    assert target.received[0].headers["Host"] == f"api.example.com:{target.port}"


def test_rebinding_between_save_and_call_is_refused_by_the_client(settings, dns, target):
    settings.SCHEDULER_ALLOWED_NETWORKS = []
    dns["rebind.example.com"] = [["93.184.216.34"], ["127.0.0.1"]]
    url = f"http://rebind.example.com:{target.port}/ok"
    assert ssrf.url_problem(url) is None  # public when saved

    outcome = send(url)

    assert outcome.error_class == "blocked"
    assert "rebind.example.com → 127.0.0.1 is a loopback address" in outcome.error_message
    assert target.received == []


def test_each_new_connection_looks_the_name_up_again(settings, dns, target):
    # No DNS cache: once the first connection is gone, the next lookup is checked afresh.
    dns["flip.example.com"] = [["127.0.0.1"], ["169.254.169.254"]]
    url = f"http://flip.example.com:{target.port}/ok"

    async def twice() -> list[Outcome]:
        one = Client()
        try:
            close = {"Connection": "close"}
            return [await one.send(CallSpec("GET", url, headers=close)) for _ in range(2)]
        finally:
            await one.close()

    first, second = asyncio.run(twice())

    assert first.ok, first.error_message
    assert (second.error_class, len(target.received)) == ("blocked", 1)
    assert "169.254.169.254 is a link-local address" in second.error_message


def test_a_name_mixing_public_and_private_answers_is_refused_when_called(public_only, dns):
    dns["mixed.example.com"] = ["93.184.216.34", "10.1.2.3"]
    outcome = send("http://mixed.example.com/")
    assert (
        outcome.error_class == "blocked"
        and "10.1.2.3 is a private address" in outcome.error_message
    )


@pytest.mark.parametrize(
    ("location", "kind"),
    [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0xa9fea9fe/", "link-local"),
        ("http://intranet.example.com/", "private"),
    ],
)
def test_every_redirect_hop_is_checked(settings, dns, target, location, kind):
    settings.SCHEDULER_ALLOWED_NETWORKS = ["127.0.0.1/32"]
    dns["intranet.example.com"] = ["10.0.0.7"]

    outcome = send(target.url(f"/redirect?to={location}"))

    assert outcome.error_class == "blocked" and kind in outcome.error_message
    assert outcome.status_code is None
    assert len(target.received) == 1  # the first hop only


def test_the_client_refuses_a_redirect_to_another_scheme(target):
    outcome = send(target.url("/redirect?to=file:///etc/passwd"))
    assert outcome.error_class == "invalid"


def test_the_client_caps_redirects(target):
    outcome = send(target.url("/loop"))
    assert (outcome.error_class, outcome.error_message) == ("connection", "More than 5 redirects")
    assert len(target.received) == 6 and outcome.timing["requests"] == 6
