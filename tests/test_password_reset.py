"""Issue 20.4: no self-service reset without a real email backend; a throttled one with it."""

import pytest
from django.core import mail
from django.test import Client

pytest_plugins = ["tests.api_support"]


def test_without_email_the_reset_says_ask_an_administrator_and_sends_nothing(editor, settings):
    assert settings.PASSWORD_RESET_ENABLED is False  # the default: console email
    editor.email = "edith@example.com"
    editor.save()
    client = Client()

    page = client.get("/accounts/password_reset/").content.decode()
    client.post("/accounts/password_reset/", {"email": "edith@example.com"})

    assert "Ask an administrator" in page and "manage.py changepassword" in page
    assert mail.outbox == []
    assert "Ask an administrator" in client.get("/accounts/reset/MQ/set-password/").content.decode()


@pytest.fixture
def reset_on(settings):
    settings.PASSWORD_RESET_ENABLED = True
    settings.PASSWORD_RESET_LIMIT = 3


def test_with_email_resets_are_limited_per_address(editor, reset_on, settings):
    editor.email = "edith@example.com"
    editor.save()
    sent = [
        Client().post("/accounts/password_reset/", {"email": "edith@example.com"}).status_code
        for _ in range(5)
    ]

    assert sent == [302, 302, 302, 429, 429]
    assert len(mail.outbox) == 3
    other = Client().post(
        "/accounts/password_reset/", {"email": "edith@example.com"}, REMOTE_ADDR="203.0.113.9"
    )
    assert other.status_code == 302
