from pathlib import Path

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe

from api.monitoring import healthz, metrics
from scheduler_site import accounts

FAVICON = Path(settings.BASE_DIR, "static", "img", "favicon.ico").read_bytes()


@require_safe
@cache_control(public=True, max_age=86400)
def favicon(request: HttpRequest) -> HttpResponse:
    # Browsers ask /favicon.ico whatever the page links to (the admin's pages link none).
    return HttpResponse(FAVICON, content_type="image/x-icon")


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("admin/", admin.site.urls),
    path("accounts/password_reset/", accounts.password_reset, name="password_reset"),
    path(
        "accounts/reset/<uidb64>/<token>/",
        accounts.password_reset_confirm,
        name="password_reset_confirm",
    ),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("ping/", include("runs.ping_urls")),
    path("", include("api.urls")),
    path("", include("dashboard.urls")),
]
