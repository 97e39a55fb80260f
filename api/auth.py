"""API tokens on the wire: `Authorization: Bearer TOKEN` or `X-API-Key: TOKEN`."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from api.models import ApiToken
from endpoints import audit

BEARER = "bearer"
AUTHENTICATE = 'Bearer realm="api"'


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """A token acts as its user, with exactly that user's permissions.

    No token header at all: not this scheme (session auth may still apply). A token header with
    a value that is unknown, revoked, or of an inactive user: 401.
    """

    def authenticate(self, request):
        raw = self.raw_token(request)
        if raw is None:
            return None
        token = ApiToken.authenticate(raw)
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        audit.attribute(token.user, token=token.name)
        return token.user, token

    def raw_token(self, request) -> str | None:
        key = request.META.get("HTTP_X_API_KEY")
        if key is not None:
            return key.strip()
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != BEARER:
            return None
        return value.strip()

    def authenticate_header(self, request) -> str:
        # Having a challenge makes DRF answer 401 (not 403) to a request without credentials.
        return AUTHENTICATE


def user_of(request):
    """The signed-in user, else the user of a valid API token, else None: for the routes outside
    DRF (/metrics, /healthz's details), read as the API reads it."""
    if request.user.is_authenticated:
        return request.user
    raw = ApiTokenAuthentication().raw_token(request)
    token = ApiToken.authenticate(raw) if raw else None
    return token.user if token else None


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = "api.auth.ApiTokenAuthentication"
    name = ["bearerAuth", "apiKeyAuth"]

    def get_security_requirement(self, auto_schema):
        return [{"bearerAuth": []}, {"apiKeyAuth": []}]  # either one

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "http",
                "scheme": "bearer",
                "description": "An API token (manage.py "
                "createapitoken USERNAME, or the dashboard's API tokens page).",
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-API-Key",
                "description": "The same API token, in the X-API-Key header.",
            },
        ]
