"""The endpoint list, the endpoint page and the actions on an endpoint (run, pause, delete)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard import charts
from dashboard.forms import EndpointFilterForm, LogFilterForm
from dashboard.views.common import _get_endpoint_for_user, paginate, redirect_back, vary_on_htmx
from endpoints.models import Endpoint
from runs import services
from runs.models import Log

ENDPOINTS_PER_PAGE = 25
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
        paused=Count("pk", filter=Q(enabled=False)),
        failing=Count("pk", filter=Q(last_status=Endpoint.Status.FAILED)),
    )
    return vary_on_htmx(render(request, "dashboard/endpoint_list.html", context))


@login_required
@permission_required("endpoints.view_endpoint", raise_exception=True)
def endpoint_detail(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    filters = LogFilterForm(request.GET)
    # The table needs no bodies: leave the large columns in the database.
    logs = filters.apply(
        Log.objects.filter(endpoint=endpoint)
        .defer("request", "response_headers", "response_excerpt", "result_summary")
        .order_by("-id")
    )
    page = paginate(request, logs, LOGS_PER_PAGE)
    context = {"endpoint": endpoint, "page": page, "filters": filters}
    if request.htmx:
        return vary_on_htmx(render(request, "dashboard/partials/log_table.html", context))
    recent = (
        Log.objects.filter(endpoint=endpoint, state__in=Log.FINAL_STATES)
        .only("id", "state", "duration_ms", "started_at")
        .order_by("-id")
    )
    context.update(
        next_runs=endpoint.next_runs(timezone.now(), NEXT_RUNS) if endpoint.enabled else [],
        chart=charts.run_chart(reversed(recent[: charts.CHART_RUNS])),
        open_runs=Log.objects.filter(endpoint=endpoint, state__in=Log.OPEN_STATES).count(),
    )
    return vary_on_htmx(render(request, "dashboard/endpoint_detail.html", context))


@require_POST
@login_required
@permission_required("endpoints.trigger_endpoint", raise_exception=True)
def endpoint_run(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    dry_run = request.POST.get("dry_run") == "1"
    log = services.trigger(endpoint, by=request.user.get_username(), dry_run=dry_run)
    what = "Dry run" if dry_run else "Run"
    messages.success(request, f"{what} {log.run_id} of {endpoint.name} queued.")
    return redirect_back(request, reverse("dashboard:endpoint", args=[endpoint.pk]))


@require_POST
@login_required
@permission_required("endpoints.toggle_endpoint", raise_exception=True)
def endpoint_pause(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=False)


@require_POST
@login_required
@permission_required("endpoints.toggle_endpoint", raise_exception=True)
def endpoint_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _set_enabled(request, pk, enabled=True)


def _set_enabled(request: HttpRequest, pk: int, *, enabled: bool) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    if endpoint.enabled != enabled:
        # Only on a change: resuming an active endpoint would move its next slot.
        endpoint.set_enabled(
            enabled, now=timezone.now(), reason=f"paused by {request.user.get_username()}"
        )
    if enabled:
        messages.success(request, f"Resumed {endpoint.name}.")
    else:
        messages.success(request, f"Paused {endpoint.name}: no scheduled runs until resumed.")
    return redirect_back(request, reverse("dashboard:endpoint", args=[endpoint.pk]))


@login_required
@permission_required("endpoints.delete_endpoint", raise_exception=True)
def endpoint_delete(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation (works without JavaScript); POST deletes."""
    endpoint = _get_endpoint_for_user(request, pk)
    if request.method == "POST":
        name = endpoint.name
        endpoint.delete()
        messages.success(request, f"Deleted {name} and its run history.")
        return redirect("dashboard:index")
    runs = Log.objects.filter(endpoint=endpoint).count()
    return render(
        request, "dashboard/endpoint_confirm_delete.html", {"endpoint": endpoint, "runs": runs}
    )
