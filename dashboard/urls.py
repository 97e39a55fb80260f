from django.urls import path

from dashboard.views import (
    editing,
    endpoints,
    limits,
    notifying,
    runs,
    scheduling,
    status,
    tokens,
)

app_name = "dashboard"
urlpatterns = [
    path("", endpoints.endpoint_list, name="index"),
    path("endpoints/new/", editing.endpoint_create, name="endpoint_create"),
    path("endpoints/schedule-preview/", editing.schedule_preview, name="schedule_preview"),
    path("endpoints/assertions-check/", editing.assertions_check, name="assertions_check"),
    path("endpoints/<int:pk>/", endpoints.endpoint_detail, name="endpoint"),
    path("endpoints/<int:pk>/edit/", editing.endpoint_edit, name="endpoint_edit"),
    path("endpoints/<int:pk>/delete/", endpoints.endpoint_delete, name="endpoint_delete"),
    path("endpoints/<int:pk>/run/", endpoints.endpoint_run, name="endpoint_run"),
    path("endpoints/<int:pk>/pause/", scheduling.endpoint_pause, name="endpoint_pause"),
    path("endpoints/<int:pk>/resume/", endpoints.endpoint_resume, name="endpoint_resume"),
    path("endpoints/<int:pk>/backfill/", scheduling.endpoint_backfill, name="endpoint_backfill"),
    path("endpoints/<int:pk>/signing/promote/", scheduling.signing_promote, name="signing_promote"),
    path("endpoints/<int:pk>/signing/reveal/", scheduling.signing_reveal, name="signing_reveal"),
    path(
        "endpoints/<int:pk>/test-notification/",
        notifying.endpoint_test_notification,
        name="endpoint_test_notification",
    ),
    path("runs/replay/", runs.runs_replay, name="runs_replay"),
    path("runs/<int:pk>/", runs.log_detail, name="log"),
    path("runs/<int:pk>/retry/", runs.log_retry, name="log_retry"),
    path("runs/<int:pk>/cancel/", runs.log_cancel, name="log_cancel"),
    path("status/", status.status, name="status"),
    path("limits/", limits.limits, name="limits"),
    path("tokens/", tokens.token_list, name="tokens"),
    path("tokens/<int:pk>/revoke/", tokens.token_revoke, name="token_revoke"),
]
