"""/healthz (public; its details for a signed-in user or API token) and /metrics (signed-in
user or API token): here, beside the API, so that an API token is read in one place
(api/auth.py) for both."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from api.auth import AUTHENTICATE, user_of
from runs.observability import health, metrics_registry


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Public: status and counts. Which workers (host names, pids): for signed-in users and
    tokens that may read runs, as /metrics."""
    healthy, report = health(timezone.now())
    if "workers" in report and not _may_read_metrics(request):
        report["workers_seen"] = len(report.pop("workers"))
    return JsonResponse(report, status=200 if healthy else 503)


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _may_read_metrics(request):
        return JsonResponse(
            {"error": "Authentication required", "code": "UNAUTHORIZED"},
            status=401,
            headers={"WWW-Authenticate": AUTHENTICATE},
        )
    body = generate_latest(metrics_registry(timezone.now()))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _may_read_metrics(request: HttpRequest) -> bool:
    user = user_of(request)
    return bool(user and user.has_perm("runs.view_log"))
