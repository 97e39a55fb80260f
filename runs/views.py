"""/healthz (public; its details for a signed-in user or API token) and /metrics (signed-in
user or API token)."""

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

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
            headers={"WWW-Authenticate": 'Bearer realm="cronplane"'},
        )
    body = generate_latest(metrics_registry(timezone.now()))
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


def _may_read_metrics(request: HttpRequest) -> bool:
    from api.models import ApiToken

    user = request.user if request.user.is_authenticated else None
    if user is None:
        header = request.headers.get("Authorization", "")
        raw = header[7:].strip() if header.lower().startswith("bearer ") else ""
        token = ApiToken.authenticate(raw or request.headers.get("X-API-Key", ""))
        user = token.user if token else None
    return bool(user and user.has_perm("runs.view_log"))
