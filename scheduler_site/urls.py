from django.contrib import admin
from django.urls import include, path

from runs.views import healthz, metrics

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("healthz", healthz, name="healthz"),
    path("metrics", metrics, name="metrics"),
    path("", include("api.urls")),
    path("", include("dashboard.urls")),
]
