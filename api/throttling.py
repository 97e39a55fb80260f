"""Rate limits: per user (token or session), per address for anonymous calls and the cron route.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env API_RATE_USER, API_RATE_ANON,
API_RATE_CRON, API_RATE_CRON_FAILURES, PING_RATE), read on each request rather than once at
import, so a changed setting applies. Counts live in the shared cache (settings.CACHES).
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings

from scheduler_site.lockout import client_address


class _CurrentRate:
    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request) -> str:
        # One rule for the caller's address, the proxy setting's (django-axes asks it too).
        return client_address(request)


class UserRate(_CurrentRate, throttling.UserRateThrottle):
    pass


class AnonRate(_CurrentRate, throttling.AnonRateThrottle):
    pass


class _AddressRate(_CurrentRate, throttling.SimpleRateThrottle):
    """Per calling address: the route is guarded by a secret, not by a user."""

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class CronRate(_AddressRate):
    """The cron route, in two buckets: calls with the right secret (API_RATE_CRON) and wrong
    ones (API_RATE_CRON_FAILURES), so that someone guessing from the caller's address never
    rate-limits the real caller."""

    scope = "cron"

    def allow_request(self, request, view) -> bool:
        self.scope = "cron" if view.secret_matches(request) else "cron_failures"
        self.rate = self.get_rate()
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)


class PingRate(_AddressRate):
    """Heartbeat pings (/ping/<uuid>), per calling address: the UUID is the secret."""

    scope = "ping"
