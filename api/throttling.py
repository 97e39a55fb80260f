"""Rate limits: per user (token or session), per address for anonymous calls and the cron route.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] (env API_RATE_USER, API_RATE_ANON,
API_RATE_CRON), read on each request rather than once at import, so a changed setting applies.
"""

from __future__ import annotations

from rest_framework import throttling
from rest_framework.settings import api_settings


class _CurrentRate:
    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)


class UserRate(_CurrentRate, throttling.UserRateThrottle):
    pass


class AnonRate(_CurrentRate, throttling.AnonRateThrottle):
    pass


class CronRate(_CurrentRate, throttling.SimpleRateThrottle):
    """Per calling address: the route is guarded by a secret, not by a user."""

    scope = "cron"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class PingRate(CronRate):
    """Heartbeat pings (/ping/<uuid>), per calling address: the UUID is the secret."""

    scope = "ping"
