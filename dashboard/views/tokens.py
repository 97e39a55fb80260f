"""API tokens of the signed-in user: create (shown once), list, revoke."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from api.models import ApiToken
from dashboard.list_forms import TokenForm

# The raw value of a new token waits here for the one page view that shows it.
NEW_TOKEN_KEY = "dashboard_new_token"


@login_required
def token_list(request: HttpRequest) -> HttpResponse:
    """A token acts as its user, so anyone signed in may hold tokens for themselves."""
    form = TokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            token, raw = ApiToken.issue(request.user, form.cleaned_data["name"])
        except ValidationError as exc:
            form.add_error("name", exc)
        else:
            request.session[NEW_TOKEN_KEY] = {"id": token.pk, "raw": raw}
            return redirect("dashboard:tokens")
    new_token = request.session.pop(NEW_TOKEN_KEY, None)
    context = {
        "form": form,
        "tokens": ApiToken.objects.filter(user=request.user).order_by("-created_at"),
        "new_token": new_token,
    }
    return render(request, "dashboard/tokens.html", context)


@login_required
def token_revoke(request: HttpRequest, pk: int) -> HttpResponse:
    """GET asks for confirmation; POST revokes. Only one's own tokens (others are a 404)."""
    token = get_object_or_404(ApiToken, pk=pk, user=request.user)
    if request.method == "POST":
        token.revoke()
        messages.success(request, f"Revoked {token.name}: it no longer works.")
        return redirect("dashboard:tokens")
    return render(request, "dashboard/token_confirm_revoke.html", {"token": token})
