"""Creating and editing endpoints: the form, its live schedule preview, its test request and
the live check of its response assertions."""

from __future__ import annotations

from functools import cache
from typing import Any
from zoneinfo import available_timezones

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from calls import templating
from calls.build import build_call
from dashboard import assertion_rows
from dashboard.forms import EndpointForm
from dashboard.preview import anchor_of, preview_schedule
from dashboard.views.common import _get_endpoint_for_user
from endpoints.models import Endpoint
from runs import verbs


@login_required
@permission_required("endpoints.add_endpoint", raise_exception=True)
def endpoint_create(request: HttpRequest) -> HttpResponse:
    return _edit(request, Endpoint())


@login_required
@permission_required("endpoints.change_endpoint", raise_exception=True)
def endpoint_edit(request: HttpRequest, pk: int) -> HttpResponse:
    return _edit(request, _get_endpoint_for_user(request, pk))


def _edit(request: HttpRequest, endpoint: Endpoint) -> HttpResponse:
    """Show the form; on POST either save it or (the "Test request" button) dry-run it."""
    creating = endpoint.pk is None
    was_enabled = endpoint.enabled
    saved_name = endpoint.name  # the form writes what was typed onto the instance
    form = EndpointForm(request.POST or None, instance=endpoint)
    test: dict[str, Any] | None = None
    if request.method == "POST":
        if "_test" in request.POST:
            test = dry_run(form)
            if request.htmx:
                return render(request, "dashboard/partials/test_request.html", {"test": test})
        elif form.is_valid():
            if creating:
                form.instance.created_by = request.user
            saved = form.save(commit=False)
            by = request.user.get_username()
            verbs.save(saved, by=by, was_enabled=None if creating else was_enabled)
            messages.success(request, f"{'Created' if creating else 'Saved'} {saved.name}.")
            return redirect("dashboard:endpoint", pk=saved.pk)
        form.withhold_secrets()
    context = {
        "form": form,
        "endpoint": endpoint if not creating else None,
        "saved_name": saved_name,
        "test": test,
        "preview": preview_schedule(
            form.schedule_values(), now=timezone.now(), anchor=anchor_of(endpoint)
        ),
        "timezones": timezone_names(),
    }
    return render(request, "dashboard/endpoint_form.html", context)


@cache
def timezone_names() -> list[str]:
    return sorted(available_timezones() | {"UTC"})


def dry_run(form: EndpointForm) -> dict[str, Any]:
    """What a run of the form's endpoint, as typed, would send: validated, built, not sent."""
    if not form.is_valid():
        return {"errors": form.errors}
    endpoint = form.instance
    if endpoint.kind == Endpoint.Kind.HANDLER:
        return {"handler": endpoint.handler, "payload": endpoint.masked_payload}
    try:
        return {"request": build_call(endpoint).snapshot()}
    except templating.TemplateError as exc:
        return {"errors": {"headers": [str(exc)]}}


@login_required
@permission_required("endpoints.view_endpoint", raise_exception=True)
def schedule_preview(request: HttpRequest) -> HttpResponse:
    """The htmx fragment under the schedule fields: description and next runs as typed."""
    endpoint = None
    if request.GET.get("endpoint"):
        endpoint = Endpoint.objects.by_public_id(request.GET["endpoint"]).first()
    preview = preview_schedule(request.GET, now=timezone.now(), anchor=anchor_of(endpoint))
    return render(request, "dashboard/partials/schedule_preview.html", {"preview": preview})


@login_required
@permission_required("endpoints.view_endpoint", raise_exception=True)
def assertions_check(request: HttpRequest) -> HttpResponse:
    """The htmx fragment under the assertion rows: each row as typed, checked against the
    endpoint's last response (nothing is sent, nothing saved)."""
    rows = assertion_rows.rows_from(request.GET)
    log = assertion_rows.last_response(request.GET.get("endpoint"))
    checks = assertion_rows.check_rows(rows, log)
    context = {"checks": checks, "log": log}
    return render(request, "dashboard/partials/assertion_check.html", context)
