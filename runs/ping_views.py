"""The public ping routes of heartbeats, answering as healthchecks.io does (`OK`, `not found`).

Public like /healthz: the UUID is the secret. Rate-limited per calling address with the API's
throttle (DRF's SimpleRateThrottle over Django's cache; rate PING_RATE). GET, POST and HEAD.
"""

from __future__ import annotations

from uuid import UUID

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from api.throttling import PingRate
from endpoints.models import Endpoint
from runs import heartbeats

_SIGNALS = {"start": heartbeats.START, "fail": heartbeats.FAIL, "log": heartbeats.LOG}


def _answer(text: str, status: int = 200, **headers: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8",
                        headers={"Access-Control-Allow-Origin": "*", **headers})  # fmt: skip


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST", "HEAD"])
def ping(request: HttpRequest, code: str, action: str = "") -> HttpResponse:
    throttle = PingRate()
    if not throttle.allow_request(request, None):
        return _answer("rate limited", 429, **{"Retry-After": str(int(throttle.wait() or 1))})
    signal, exit_status = _signal(action)
    if signal is None:
        return _answer("invalid url format", 400)
    rid = request.GET.get("rid", "")
    if rid and not _is_uuid(rid):
        return _answer("invalid uuid format", 400)
    endpoint = _heartbeat(code)
    if endpoint is None:
        return _answer("not found", 404)
    body, total = b"", 0
    if request.method == "POST":
        body = request.read(settings.SCHEDULER_RESPONSE_EXCERPT_BYTES)
        total = max(int(request.META.get("CONTENT_LENGTH") or 0), len(body))
    text, total = heartbeats.read_body(body, total)
    heartbeats.record_ping(
        endpoint,
        heartbeats.Ping(
            signal=signal,
            exit_status=exit_status,
            rid=rid,
            body=text,
            body_bytes=total,
            source=_source(request),
        ),
        now=timezone.now(),
    )
    return _answer("OK")


def _signal(action: str) -> tuple[str | None, int | None]:
    """('success'|'start'|'fail'|'log', exit status) for the route's last part; (None, None)
    for one healthchecks would refuse."""
    if not action:
        return heartbeats.SUCCESS, None
    if action in _SIGNALS:
        return _SIGNALS[action], None
    if action.isascii() and action.isdigit() and len(action) <= 3 and int(action) <= 255:
        status = int(action)
        return (heartbeats.SUCCESS if status == 0 else heartbeats.FAIL), status
    return None, None


def _heartbeat(code: str) -> Endpoint | None:
    if not _is_uuid(code):
        return None
    return Endpoint.objects.filter(uuid=UUID(code), kind=Endpoint.Kind.HEARTBEAT).first()


def _is_uuid(text: str) -> bool:
    try:
        UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def _source(request: HttpRequest) -> dict:
    """What the ping page shows of the request: method, path, address, a few headers."""
    headers = {
        name: _storable(request.headers[name])[:300]
        for name in ("User-Agent", "Content-Type")
        if name in request.headers
    }
    return {
        "method": request.method,
        "url": _storable(request.get_full_path())[:2048],
        "headers": headers,
        "remote_addr": request.META.get("REMOTE_ADDR", ""),
    }


def _storable(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8").replace("\x00", "\ufffd")
