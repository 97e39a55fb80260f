"""The Limits page: each flow key, the limits it holds (the strictest of its jobs'), and its runs
in flight and waiting now (runs/flow.py)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from dashboard.views.common import vary_on_htmx
from runs import flow


@login_required
@permission_required("runs.view_log", raise_exception=True)
def limits(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    context = {"now": now, "keys": flow.overview(now)}
    template = "dashboard/partials/limits_table.html" if request.htmx else "dashboard/limits.html"
    return vary_on_htmx(render(request, template, context))
