"""Lookups, pagination and redirects shared by the dashboard's views."""

from __future__ import annotations

from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.utils.cache import patch_vary_headers
from django.utils.http import url_has_allowed_host_and_scheme

from endpoints.models import Endpoint
from runs.models import Log


def _get_endpoint_for_user(request: HttpRequest, pk: int) -> Endpoint:
    """The endpoint `pk` if this user may see endpoints (every endpoint is shared), else 403/404."""
    if not request.user.has_perm("endpoints.view_endpoint"):
        raise PermissionDenied
    return get_object_or_404(Endpoint, pk=pk)


def _get_log_for_user(request: HttpRequest, pk: int) -> Log:
    if not request.user.has_perm("runs.view_log"):
        raise PermissionDenied
    return get_object_or_404(Log.objects.select_related("endpoint"), pk=pk)


def paginate(request: HttpRequest, queryset: QuerySet, per_page: int) -> Page:
    """The requested page; a page number out of range or not a number gives the nearest page."""
    return Paginator(queryset, per_page).get_page(request.GET.get("page"))


def redirect_back(request: HttpRequest, default: str) -> HttpResponseRedirect:
    """Back to the page the action came from (`next`, same host only), or to `default`."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    safe = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return HttpResponseRedirect(target if safe else default)


def vary_on_htmx(response: HttpResponse) -> HttpResponse:
    """One URL serves a full page and, to htmx, its fragment: caches must keep them apart."""
    patch_vary_headers(response, ["HX-Request"])
    return response
