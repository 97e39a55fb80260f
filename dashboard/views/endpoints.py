"""The endpoint list, the endpoint page and the actions on an endpoint (run, pause, delete)."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

from auditlog.models import LogEntry
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard import charts, states
from dashboard.list_forms import EndpointFilterForm, LogFilterForm
from dashboard.run_forms import PauseForm, RunNowForm
from dashboard.templatetags.dashboard import action_label, action_type, in_zone
from dashboard.views.common import _get_endpoint_for_user, paginate, redirect_back, vary_on_htmx
from endpoints import audit, run_after
from endpoints.models import Endpoint
from runs import chains, heartbeats, notifications, verbs
from runs.models import Log

ENDPOINTS_PER_PAGE = 25
HISTORY_PER_PAGE = 10
RECENT_NOTIFICATIONS = 10
HISTORY_ACTIONS = {
    LogEntry.Action.CREATE: "created it",
    LogEntry.Action.UPDATE: "changed",
    LogEntry.Action.DELETE: "deleted it",
}
LOGS_PER_PAGE = 25
NEXT_RUNS = 5


@login_required
@permission_required("endpoints.view_endpoint", raise_exception=True)
def endpoint_list(request: HttpRequest) -> HttpResponse:
    filters = EndpointFilterForm(request.GET)
    queryset = charts.with_spark_cutoff(filters.apply(Endpoint.objects.order_by("name")))
    page = paginate(request, queryset, ENDPOINTS_PER_PAGE)
    endpoints = list(page.object_list)
    charts.attach_sparklines(endpoints)
    context = {"page": page, "endpoints": endpoints, "filters": filters}
    if request.htmx:
        return vary_on_htmx(render(request, "dashboard/partials/endpoint_table.html", context))
    context["totals"] = Endpoint.objects.aggregate(
        all=Count("pk"),
        paused=Count("pk", filter=Q(enabled=False) & ~states.DONE),
        done=Count("pk", filter=states.DONE),
        failing=Count("pk", filter=Q(last_status=Endpoint.Status.FAILED)),
    )
    context["replaced_keys"] = Endpoint.objects.filter(
        signing_keys_replaced_at__isnull=False
    ).order_by("name")[:20]
    return vary_on_htmx(render(request, "dashboard/endpoint_list.html", context))


@login_required
@permission_required("endpoints.view_endpoint", raise_exception=True)
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    filters = LogFilterForm(request.GET)
    # The table needs no bodies: leave the large columns in the database.
    logs = filters.apply(
        Log.objects.filter(endpoint=endpoint)
        .defer("request", "response_headers", "response_excerpt", "result_summary", "upstream")
        .order_by("-id")
    )
    page = paginate(request, logs, LOGS_PER_PAGE)
    upstream_links, downstream_links = run_after.links_of(endpoint)
    page.object_list = list(page.object_list)
    if downstream_links:  # only then can its runs have started others (one query)
        chains.attach_caused(page.object_list)
    context = {"endpoint": endpoint, "page": page, "filters": filters}
    if request.htmx:
        return vary_on_htmx(render(request, "dashboard/partials/log_table.html", context))
    recent = (
        Log.objects.filter(endpoint=endpoint, state__in=Log.FINAL_STATES)
        .only("id", "state", "duration_ms", "started_at", "timing")
        .order_by("-id")
    )
    recent = list(reversed(recent[: charts.CHART_RUNS]))
    now = timezone.now()
    warn_from = now + timedelta(days=settings.SCHEDULER_TLS_WARNING_DAYS)
    state = states.state_of(endpoint)
    context.update(
        state=state,
        pause_form=PauseForm(endpoint=endpoint),
        action_label=action_label(endpoint) if action_type(endpoint) else "",
        next_runs=endpoint.next_runs(now, NEXT_RUNS) if state == states.ACTIVE else [],
        chart=charts.run_chart(recent),
        phase_chart=charts.phase_chart(recent),
        open_runs=Log.objects.filter(endpoint=endpoint, state__in=Log.OPEN_STATES).count(),
        tls_expiring=bool(endpoint.tls_expires_at and endpoint.tls_expires_at <= warn_from),
        channels=[(kind, shown) for kind, shown, _ in notifications.recipients(endpoint)],
        reminder_hours=settings.NOTIFY_REMINDER_HOURS,
        history=change_history(request, endpoint),
        notifications=endpoint.notifications.order_by("-id")[:RECENT_NOTIFICATIONS],
        upstream_links=upstream_links,
        downstream_links=downstream_links,
        chain_window=heartbeats.spoken_duration(settings.SCHEDULER_CHAIN_WINDOW_SECONDS),
    )
    if endpoint.is_heartbeat:
        context.update(
            ping_url=heartbeats.ping_url(endpoint),
            grace=heartbeats.spoken_duration(endpoint.grace_seconds),
        )
    return vary_on_htmx(render(request, "dashboard/endpoint_detail.html", context))


def change_history(request: HttpRequest, endpoint: Endpoint) -> Page:
    """A page of the endpoint's audit log, each entry with who, what and the changed fields."""
    page = Paginator(audit.history(endpoint), HISTORY_PER_PAGE).get_page(
        request.GET.get("history_page")
    )
    page.object_list = [
        SimpleNamespace(
            timestamp=entry.timestamp,
            who=audit.who(entry),
            action=HISTORY_ACTIONS.get(entry.action, "changed it"),
            created=entry.action == LogEntry.Action.CREATE,
            fields=audit.changed_fields(entry),
        )
        for entry in page.object_list
    ]
    return page


@require_POST
@login_required
@permission_required("endpoints.trigger_endpoint", raise_exception=True)
def endpoint_run(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    back = reverse("dashboard:endpoint", args=[endpoint.pk])
    dry_run = request.POST.get("dry_run") == "1"
    form = RunNowForm(request.POST, endpoint=endpoint)
    if not form.is_valid():
        messages.error(request, f"Not run: as of: {' '.join(form.errors.get('as_of', []))}")
        return redirect_back(request, back)
    as_of = form.cleaned_data["as_of"]
    try:
        log = verbs.trigger(
            endpoint, by=request.user.get_username(), dry_run=dry_run, as_of=as_of,
            actor=verbs.Actor.of(request),
        )  # fmt: skip
    except ValidationError as exc:
        messages.error(request, f"Not run: {' '.join(exc.messages)}")
        return redirect_back(request, back)
    what = "Dry run" if dry_run else "Run"
    when = f" as of {in_zone(as_of, endpoint.timezone)}" if as_of else ""
    messages.success(request, f"{what} {log.run_id} of {endpoint.name}{when} queued.")
    return redirect_back(request, back)


@require_POST
@login_required
@permission_required("endpoints.toggle_endpoint", raise_exception=True)
def endpoint_resume(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    verbs.enable(endpoint, by=request.user.get_username())
    messages.success(request, f"Resumed {endpoint.name}.")
    return redirect_back(request, reverse("dashboard:endpoint", args=[endpoint.pk]))


@login_required
@permission_required("endpoints.delete_endpoint", raise_exception=True)
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (works without JavaScript); POST deletes."""
    endpoint = _get_endpoint_for_user(request, pk)
    if request.method == "POST":
        name = endpoint.name
        verbs.delete(endpoint)
        messages.success(request, f"Deleted {name} and its run history.")
        return redirect("dashboard:index")
    runs = Log.objects.filter(endpoint=endpoint).count()
    return render(
        request, "dashboard/endpoint_confirm_delete.html", {"endpoint": endpoint, "runs": runs}
    )
