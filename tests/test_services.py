import pytest
from django.core.management import CommandError, call_command

from api.models import ApiToken
from runs import verbs
from runs.models import Log


def test_retry_queues_the_next_attempt_of_a_failed_run(
    make_endpoint, django_capture_on_commit_callbacks
):
    endpoint = make_endpoint(name="failing")
    failed = Log.objects.create(endpoint=endpoint, state=Log.State.FAILED, attempt=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        attempt = verbs.retry(failed, by="alice")
    assert len(callbacks) == 1  # handed to the broker once committed
    assert (attempt.attempt, attempt.state, attempt.trigger) == (4, "queued", "retry")
    assert attempt.retry_of == failed and attempt.triggered_by == "alice"


def test_retry_follows_the_chain_to_its_latest_attempt(make_endpoint):
    endpoint = make_endpoint(name="chain")
    first = Log.objects.create(endpoint=endpoint, state=Log.State.FAILED, attempt=1)
    Log.objects.create(endpoint=endpoint, state=Log.State.PENDING, attempt=2, retry_of=first)
    with pytest.raises(verbs.NotRetryable, match="is pending"):
        verbs.retry(first)


def test_only_a_run_that_has_not_started_can_be_cancelled(make_endpoint):
    endpoint = make_endpoint(name="c")
    waiting = Log.objects.create(endpoint=endpoint, state=Log.State.PENDING)
    running = Log.objects.create(endpoint=endpoint, state=Log.State.RUNNING)
    assert verbs.cancel(waiting) is True
    assert verbs.cancel(running) is False
    waiting.refresh_from_db()
    assert waiting.state == "cancelled" and waiting.finished_at is not None


def test_createapitoken_prints_a_token_that_authenticates_its_user(editor, capsys):
    call_command("createapitoken", editor.username, "--name", "ci")
    raw = capsys.readouterr().out.strip()
    token = ApiToken.objects.get()
    assert raw.startswith("cp_") and raw.startswith(token.prefix)
    assert raw not in token.token_hash  # stored hashed
    assert ApiToken.authenticate(raw).user == editor
    assert token.name == "ci"
    token.revoke()
    assert ApiToken.authenticate(raw) is None


def test_createapitoken_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="No user named 'ghost'"):
        call_command("createapitoken", "ghost")
