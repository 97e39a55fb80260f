"""Roles are Django permissions, exactly as in the admin: Viewer reads, Operator triggers, enables,
disables and retries, Editor creates, changes and deletes (runs/migrations/0002_roles.py)."""

from __future__ import annotations

from rest_framework import permissions

VIEW = ("endpoints.view_endpoint", "runs.view_log")
TRIGGER = ("endpoints.trigger_endpoint",)
TOGGLE = ("endpoints.toggle_endpoint",)
RETRY = ("runs.retry_log",)
ADD = ("endpoints.add_endpoint",)
CHANGE = ("endpoints.change_endpoint",)
DELETE = ("endpoints.delete_endpoint",)


class HasPermissions(permissions.IsAuthenticated):
    """The user has every permission the view lists for this method in `required_perms`.

    A method the view implements but does not list is refused: a new route must say who may
    call it. A method it does not implement passes here, so that the answer is a 405.
    """

    message = "Your role does not allow this."

    def has_permission(self, request, view) -> bool:
        if not super().has_permission(request, view):
            return False
        if not hasattr(view, request.method.lower()):
            return True
        needed = getattr(view, "required_perms", {}).get(request.method)
        if needed is None and request.method in ("HEAD", "OPTIONS"):
            needed = view.required_perms.get("GET")
        return needed is not None and request.user.has_perms(needed)
