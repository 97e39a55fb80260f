"""Actions on an endpoint that take a form: pause with a reason and an end, backfill a past
range (preview, then confirm), and the signing keys (promote the next key, reveal a key)."""

from __future__ import annotations

from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from dashboard.run_forms import BackfillForm, PauseForm
from dashboard.templatetags.dashboard import in_zone
from dashboard.views.common import _get_endpoint_for_user, redirect_back
from endpoints.models import Endpoint
from runs import backfill, verbs

# The preview lists this many slots; the counts cover them all.
PREVIEW_SLOTS = 20


@login_required
@permission_required("endpoints.toggle_endpoint", raise_exception=True)
def endpoint_pause(request: HttpRequest, pk: int) -> HttpResponse:
    """GET: the pause form (works without JavaScript); POST: pause, or show the form's errors."""
    endpoint = _get_endpoint_for_user(request, pk)
    form = PauseForm(request.POST if request.method == "POST" else None, endpoint=endpoint)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            verbs.disable(
                endpoint, by=request.user.get_username(), reason=data["reason"], until=data["until"]
            )
        except ValidationError as exc:
            form.add_model_errors(exc, {"paused_until": "until"})
        else:
            messages.success(request, paused_message(endpoint, data["until"]))
            back = redirect_back(request, reverse("dashboard:endpoint", args=[endpoint.pk]))
            if request.htmx:
                # The menu's form posts through htmx; the page it sits on reloads with the news.
                return HttpResponse(status=204, headers={"HX-Redirect": back.url})
            return back
    if request.htmx:
        # The menu on the endpoint page: its errors inline, the page left where it is.
        context = {"endpoint": endpoint, "pause_form": form}
        return render(request, "dashboard/partials/pause_menu.html", context)
    return render(request, "dashboard/endpoint_pause.html", {"endpoint": endpoint, "form": form})


def paused_message(endpoint: Endpoint, until: datetime | None) -> str:
    """'Paused ping until 2026-12-03 09:00:00 JST: it resumes by itself then.'"""
    if until is None:
        return f"Paused {endpoint.name}: no scheduled runs until someone resumes it."
    return (
        f"Paused {endpoint.name} until {in_zone(until, endpoint.timezone)}: "
        "it resumes by itself then."
    )


@login_required
@permission_required("endpoints.trigger_endpoint", raise_exception=True)
def endpoint_backfill(request: HttpRequest, pk: int) -> HttpResponse:
    """Backfill [start, end): GET with a range previews it (nothing written); POST confirms."""
    endpoint = _get_endpoint_for_user(request, pk)
    data = request.POST if request.method == "POST" else request.GET
    form = BackfillForm(data if "start" in data else None, endpoint=endpoint)
    plan = None
    if form.is_bound and form.is_valid():
        start, end, now = form.cleaned_data["start"], form.cleaned_data["end"], timezone.now()
        try:
            if request.method == "POST":
                plan = verbs.backfill(endpoint, start, end, by=request.user.get_username(), now=now)
            else:
                plan = backfill.plan(endpoint, start, end, now=now)
        except ValidationError as exc:
            form.add_model_errors(exc)
        else:
            if request.method == "POST":
                created = len(plan.to_run) + len(plan.reopened)
                messages.success(
                    request,
                    f"Backfill of {endpoint.name}: {summary(plan)}; "
                    f"{created} run{'s' if created != 1 else ''} queued.",
                )
                return redirect("dashboard:endpoint", pk=endpoint.pk)
    context = {"endpoint": endpoint, "form": form, "plan": plan}
    if plan is not None:
        already, reopened = set(plan.already_ran), set(plan.reopened)
        context["summary"] = summary(plan)
        context["runnable"] = len(plan.to_run) + len(plan.reopened)
        context["more"] = max(0, len(plan.slots) - PREVIEW_SLOTS)
        context["slots"] = [
            (slot, "already ran" if slot in already else "missed, will run" if slot in reopened
             else "will run")
            for slot in plan.slots[:PREVIEW_SLOTS]
        ]  # fmt: skip
    return render(request, "dashboard/endpoint_backfill.html", context)


def summary(plan: backfill.Plan) -> str:
    """'24 slots: 22 to run, 1 already ran, 1 missed slot will run'."""
    total = len(plan.slots)
    parts = [f"{len(plan.to_run)} to run", f"{len(plan.already_ran)} already ran"]
    if plan.reopened:
        count = len(plan.reopened)
        parts.append(f"{count} missed slot{'s' if count != 1 else ''} will run")
    return f"{total} slot{'s' if total != 1 else ''}: " + ", ".join(parts)


@require_POST
@login_required
@permission_required("endpoints.change_endpoint", raise_exception=True)
def signing_promote(request: HttpRequest, pk: int) -> HttpResponse:
    """Rotation's last step: the next key becomes the current one (receivers already have it)."""
    endpoint = _get_endpoint_for_user(request, pk)
    if not endpoint.signing_secret_next:
        messages.error(request, f"{endpoint.name} has no next signing key to promote.")
    else:
        endpoint.signing_secret, endpoint.signing_secret_next = endpoint.signing_secret_next, ""
        endpoint.save(update_fields=["signing_secret", "signing_secret_next", "updated_at"])
        messages.success(
            request, f"The next key of {endpoint.name} is now its signing key; no next key is set."
        )
    return redirect("dashboard:endpoint", pk=endpoint.pk)


@require_POST
@never_cache
@login_required
@permission_required("endpoints.change_endpoint", raise_exception=True)
def signing_reveal(request: HttpRequest, pk: int) -> HttpResponse:
    """The signing keys, in the answer to a POST only: the receiver needs them, and a GET page
    (cached, prefetched, in the history) must never hold them."""
    endpoint = _get_endpoint_for_user(request, pk)
    endpoint.acknowledge_signing_keys()
    return render(request, "dashboard/signing_reveal.html", {"endpoint": endpoint})
