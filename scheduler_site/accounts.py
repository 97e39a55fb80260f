"""Self-service password reset, offered only where its email can reach the user.

With no real email backend (the default console backend prints the reset link into the server's
log for anyone who reads it), the reset pages say to ask an administrator instead.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def _unless_off(view):
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not settings.PASSWORD_RESET_ENABLED:
            return render(request, "registration/password_reset_off.html")
        return view(request, *args, **kwargs)

    return wrapped


password_reset = _unless_off(auth_views.PasswordResetView.as_view())
password_reset_confirm = _unless_off(auth_views.PasswordResetConfirmView.as_view())
