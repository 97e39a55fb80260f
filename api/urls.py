"""Every route of the three contracts, with full paths (included at the site's root)."""

from django.contrib.auth.decorators import login_required
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from api import (
    backfill,
    cron,
    errors,
    job_history,
    replay,
    schedule_history,
    scheduled_actions,
    scheduler_jobs,
    schedules,
)

JOBS = "api/v1/scheduler/jobs"
SCHEDULES = "api/v1/schedules"
ACTIONS = "api/v1/devtools/scheduled-actions"

urlpatterns = [
    # seed 001
    path(JOBS, scheduler_jobs.JobsView.as_view(), name="jobs"),
    path(f"{JOBS}/<str:job_name>", scheduler_jobs.JobView.as_view(), name="job"),
    path(
        f"{JOBS}/<str:job_name>/trigger", scheduler_jobs.TriggerView.as_view(), name="job-trigger"
    ),
    path(
        f"{JOBS}/<str:job_name>/last-result",
        scheduler_jobs.LastResultView.as_view(),
        name="job-last-result",
    ),
    path(
        f"{JOBS}/<str:job_name>/history", job_history.JobHistoryView.as_view(), name="job-history"
    ),
    path("api/v1/scheduler/replay", replay.ReplayView.as_view(), name="replay"),
    # seed 002
    path(SCHEDULES, schedules.SchedulesView.as_view(), name="schedules"),
    path(f"{SCHEDULES}/<str:schedule_id>", schedules.ScheduleView.as_view(), name="schedule"),
    path(f"{SCHEDULES}/<str:schedule_id>/enable", schedules.EnableView.as_view()),
    path(f"{SCHEDULES}/<str:schedule_id>/disable", schedules.DisableView.as_view()),
    path(f"{SCHEDULES}/<str:schedule_id>/history", schedule_history.HistoryView.as_view()),
    path(f"{SCHEDULES}/<str:schedule_id>/backfill", backfill.BackfillView.as_view()),
    # seed 003
    path("api/v1/cron/process", cron.CronProcessView.as_view(), name="cron-process"),
    path(ACTIONS, scheduled_actions.ActionsView.as_view(), name="actions"),
    path(f"{ACTIONS}/<str:action_id>", scheduled_actions.ActionView.as_view(), name="action"),
    path(f"{ACTIONS}/<str:action_id>/retry", scheduled_actions.RetryView.as_view()),
    # OpenAPI 3 and Swagger UI (assets from drf-spectacular-sidecar: no internet needed)
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path(
        "api/docs/",
        login_required(SpectacularSwaggerSplitView.as_view(url_name="api-schema")),
        name="api-docs",
    ),
    # Last: any other /api/ address is a JSON 404 in the one error shape.
    re_path(r"^api/", errors.not_found, name="api-not-found"),
]
