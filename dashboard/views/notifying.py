"""Sending a test notification from the endpoint page."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, permission_required
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django.views.decorators.http import require_POST

from dashboard.views.common import _get_endpoint_for_user, redirect_back
from runs import notifications
from runs.models import Notification


@require_POST
@login_required
@permission_required("endpoints.trigger_endpoint", raise_exception=True)
def endpoint_test_notification(request: HttpRequest, pk: int) -> HttpResponse:
    endpoint = _get_endpoint_for_user(request, pk)
    back = reverse("dashboard:endpoint", args=[endpoint.pk])
    sent = notifications.send_test(endpoint)
    if not sent:
        messages.error(request, "No notification channel to test: add one in Edit first.")
        return redirect_back(request, back)
    for notification in sent:
        if notification.state == Notification.State.SENT:
            messages.success(request, f"Test notification sent to {notification.target}.")
        else:
            messages.error(
                request,
                f"Test notification to {notification.target} failed: {notification.last_error}",
            )
    return redirect_back(request, back)
