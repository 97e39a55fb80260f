"""Who is calling, and how often they may fail: sign-in lockout and per-address limits.

- `client_address`: the caller's address. Behind AXES_IPWARE_PROXY_COUNT reverse proxies, each
  appending the address it was called from to X-Forwarded-For, it is the address the outermost
  proxy saw: counted from the right (Django REST framework's NUM_PROXIES rule), so whatever a
  client writes into the header itself is never believed. django-axes, the API's rate limits
  and the limits below all ask it.
- django-axes locks a username+address pair after LOGIN_FAILURE_LIMIT failures, so a third
  party elsewhere cannot lock the real user out; `AddressLimitMiddleware` separately limits
  failed sign-ins per address, whatever the usernames (password spraying), and password-reset
  requests per address. Counters live in the shared cache (every process sees one count).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.urls import reverse


def client_address(request: HttpRequest) -> str:
    remote = request.META.get("REMOTE_ADDR", "") or ""
    proxies = settings.AXES_IPWARE_PROXY_COUNT or 0
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if proxies and hops:
        candidate = hops[-min(proxies, len(hops))]
        try:
            return str(ipaddress.ip_address(candidate))
        except ValueError:
            pass  # not an address: a proxy we were not told about, or a forgery
    return remote


@dataclass(frozen=True)
class AddressLimit:
    """At most `limit` counted requests from one address per `seconds`."""

    name: str
    limit: int
    seconds: int
    counts: Callable[[HttpResponse], bool]

    def key(self, address: str) -> str:
        return f"address-limit:{self.name}:{address}"

    def exceeded(self, address: str) -> bool:
        return (cache.get(self.key(address)) or 0) >= self.limit

    def hit(self, address: str) -> None:
        key = self.key(address)
        if not cache.add(key, 1, self.seconds):
            try:
                cache.incr(key)
            except ValueError:  # expired between add and incr
                cache.add(key, 1, self.seconds)


def _sign_in_limit() -> AddressLimit:
    return AddressLimit(
        "sign-in",
        settings.LOGIN_ADDRESS_FAILURE_LIMIT,
        int(settings.AXES_COOLOFF_TIME.total_seconds()),
        counts=lambda response: response.status_code == 200,  # the form again: a failure
    )


def _password_reset_limit() -> AddressLimit:
    return AddressLimit(
        "password-reset",
        settings.PASSWORD_RESET_LIMIT,
        3600,
        counts=lambda response: True,
    )


def limit_for(request: HttpRequest) -> AddressLimit | None:
    if request.method != "POST":
        return None
    if request.path in (settings.LOGIN_URL, reverse("admin:login")):
        return _sign_in_limit()
    if request.path == reverse("password_reset"):
        return _password_reset_limit()
    return None


class AddressLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = limit_for(request)
        if limit is None:
            return self.get_response(request)
        address = client_address(request)
        if limit.exceeded(address):
            return too_many(request, limit.seconds, limit.limit, per_address=True)
        response = self.get_response(request)
        if limit.counts(response):
            limit.hit(address)
        return response


def locked_out(
    request: HttpRequest, credentials: dict | None = None, *args, **kwargs
) -> HttpResponse:
    """What a locked-out username+address pair sees (django-axes calls this)."""
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    return too_many(request, seconds, settings.AXES_FAILURE_LIMIT, per_address=False)


def too_many(request: HttpRequest, seconds: int, limit: int, *, per_address: bool) -> HttpResponse:
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": "Too many failed sign-ins", "code": "RATE_LIMITED"}, status=429
        )
    else:
        context = {
            "cooloff_minutes": max(1, seconds // 60),
            "failure_limit": limit,
            "per_address": per_address,
            "password_reset": request.path == reverse("password_reset"),
        }
        html = render_to_string("registration/locked_out.html", context, request=request)
        response = HttpResponse(html, status=429)
    response["Retry-After"] = str(seconds)
    return response
