"""The log page of one run, the actions on a run (retry, cancel) and on many (replay)."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.template.defaultfilters import pluralize
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_POST

from dashboard import charts
from dashboard.run_forms import ReplayForm
from dashboard.views.common import _get_log_for_user, redirect_back
from runs import chains, replay, verbs
from runs.models import Log

# A chain is bounded by max_attempts (≤ 20); this only guards against a corrupt loop.
MAX_CHAIN = 50


@login_required
@permission_required("runs.view_log", raise_exception=True)
def log_detail(request: HttpRequest, pk: int) -> HttpResponse:
    log = _get_log_for_user(request, pk)
    chain = retry_chain(log)
    context = {
        "log": log,
        "endpoint": log.endpoint,
        "chain": chain if len(chain) > 1 else [],
        "can_retry": log.state == Log.State.FAILED and chain[-1].pk == log.pk,
        "can_cancel": log.state in Log.WAITING_STATES,
        "phases": charts.phases(log.timing),
        "caused_by": chains.cause_of(log),
        "joined": chains.joined_runs(log),
        "caused": chains.caused_by(log),
    }
    return render(request, "dashboard/log_detail.html", context)


def retry_chain(log: Log) -> list[Log]:
    """Every attempt of this run's chain, first attempt first."""
    earlier: list[Log] = []
    current = log
    while current.retry_of_id and len(earlier) < MAX_CHAIN:
        current = Log.objects.only("id", "state", "attempt", "retry_of").get(pk=current.retry_of_id)
        earlier.append(current)
    later: list[Log] = []
    current = log
    while len(later) < MAX_CHAIN:
        following = Log.objects.only("id", "state", "attempt", "retry_of").filter(retry_of=current)
        current = following.first()
        if current is None:
            break
        later.append(current)
    return [*reversed(earlier), log, *later]


@require_POST
@login_required
@permission_required("runs.retry_log", raise_exception=True)
def log_retry(request: HttpRequest, pk: int) -> HttpResponse:
    log = _get_log_for_user(request, pk)
    try:
        attempt = verbs.retry(log, by=request.user.get_username())
    except verbs.NotRetryable as exc:
        messages.error(request, str(exc))
        return redirect_back(request, reverse("dashboard:log", args=[log.pk]))
    messages.success(request, f"Queued {attempt.run_id}, attempt {attempt.attempt}.")
    return redirect_back(request, reverse("dashboard:log", args=[attempt.pk]))


@require_POST
@login_required
@permission_required("endpoints.trigger_endpoint", raise_exception=True)
def log_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    log = _get_log_for_user(request, pk)
    if verbs.cancel(log, reason=f"Cancelled by {request.user.get_username()}."):
        messages.success(request, f"Cancelled {log.run_id}.")
    else:
        messages.error(request, f"{log.run_id} already started; it can no longer be cancelled.")
    return redirect_back(request, reverse("dashboard:log", args=[log.pk]))


@login_required
@permission_required("runs.retry_log", raise_exception=True)
def runs_replay(request: HttpRequest) -> HttpResponse:
    """Replay failed runs: GET with a selection previews it (nothing written); POST replays."""
    data = request.POST if request.method == "POST" else request.GET
    form = ReplayForm(data)  # nothing chosen: every failed run
    preview = None
    if form.is_valid():
        try:
            selection = form.selection()
        except ValidationError:
            selection = None
        if selection is not None and request.method == "POST":
            done = replay.replay(selection, by=request.user.get_username(), now=timezone.now())
            messages.success(
                request,
                f"Replaying {done.created} failed run{pluralize(done.created)}: each starts as "
                "its endpoint's overlap policy allows.",
            )
            query = data.copy()
            query.pop("csrfmiddlewaretoken", None)
            return redirect(f"{reverse('dashboard:runs_replay')}?{query.urlencode()}")
        if selection is not None:
            preview = replay.preview(selection)
    context = {"form": form, "preview": preview, "zone": settings.TIME_ZONE}
    return render(request, "dashboard/runs_replay.html", context)
