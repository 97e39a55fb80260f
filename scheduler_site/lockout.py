"""What a locked-out sign-in sees (django-axes calls this)."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string


def locked_out(
    request: HttpRequest, credentials: dict | None = None, *args, **kwargs
) -> HttpResponse:
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"error": "Too many failed sign-ins", "code": "RATE_LIMITED"}, status=429
        )
    else:
        html = render_to_string(
            "registration/locked_out.html",
            {"cooloff_minutes": minutes, "failure_limit": settings.AXES_FAILURE_LIMIT},
            request=request,
        )
        response = HttpResponse(html, status=429)
    response["Retry-After"] = retry_after
    return response
