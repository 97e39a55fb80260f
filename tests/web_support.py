"""Test support for the dashboard and the admin: a browser-like client signed in as a user."""

from django.test import Client


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client
