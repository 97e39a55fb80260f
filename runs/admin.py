"""Django admin for runs: read-only (the dispatcher, executor and retention own the rows)."""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html
from django_q import admin as q_admin  # registers django-q's admin now, so it can be amended
from django_q.models import Schedule

from calls.masking import mask_headers
from runs import admin_endpoints  # noqa: F401 — registers the Endpoint admin
from runs.models import Log

admin.site.site_header = "cronplane administration"
admin.site.site_title = "cronplane admin"
admin.site.index_title = "Endpoints, runs and users"


class ScheduleAdmin(q_admin.ScheduleAdmin):
    """django-q's own schedules hold only cronplane's housekeeping (the daily log retention,
    made by `qcluster`): jobs are Endpoints, so this list offers no "Add" beside them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


admin.site.unregister(Schedule)
admin.site.register(Schedule, ScheduleAdmin)


@admin.register(Log)
class LogAdmin(admin.ModelAdmin):
    list_display = (
        "run",
        "endpoint",
        "trigger",
        "state",
        "status_code",
        "duration_ms",
        "scheduled_for",
        "started_at",
    )
    list_filter = ("state", "trigger", "error_class")
    search_fields = ("endpoint__name", "error_message")
    list_select_related = ("endpoint",)
    # Counting every log (millions) on each page view costs more than the number is worth.
    show_full_result_count = False
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "run",
                    "endpoint",
                    ("trigger", "triggered_by", "actor", "actor_token"),
                    "state",
                    "reason",
                    ("attempt", "retry_of"),
                    "dry_run",
                    ("as_of", "idempotency_key"),
                )
            },
        ),
        (
            "Timing",
            {
                "fields": (
                    ("scheduled_for", "due_at"),
                    ("created_at", "queued_at"),
                    ("started_at", "finished_at"),
                    ("duration_ms", "lag_ms"),
                    "call_phases",
                    "tls_expires_at",
                    "lease_expires_at",
                )
            },
        ),
        ("Request", {"fields": ("request_sent",)}),
        (
            "Response",
            {"fields": ("status_code", "response_headers_shown", "excerpt", "response_bytes")},
        ),
        ("Outcome", {"fields": ("error_class", "error_message", "result")}),
    )
    readonly_fields = (
        "run",
        "as_of",
        "idempotency_key",
        "lag_ms",
        "call_phases",
        "request_sent",
        "response_headers_shown",
        "excerpt",
        "result",
    )

    def get_queryset(self, request: HttpRequest) -> Any:
        return super().get_queryset(request).select_related("endpoint")

    @admin.display(description="Run", ordering="id")
    def run(self, log: Log) -> str:
        return log.run_id

    @admin.display(description="Lag (ms)")
    def lag_ms(self, log: Log) -> int | None:
        return log.lag_ms

    @admin.display(description="Phases of the call")
    def call_phases(self, log: Log) -> str:
        """Log.timing in words: DNS, connect, TLS, waiting for the first byte, total (ms)."""
        timing = log.timing or {}
        if not timing:
            return "—"
        names = (("dns_ms", "DNS"), ("connect_ms", "connect"), ("tls_ms", "TLS"))
        names += (("ttfb_ms", "TTFB"), ("total_ms", "total"))
        parts = [f"{label} {_phase(timing.get(key))}" for key, label in names]
        if timing.get("reused"):
            parts.append("reused connection")
        if (timing.get("requests") or 0) > 1:
            parts.append(f"{timing['requests']} requests (redirects), phases summed")
        return " · ".join(parts)

    @admin.display(description="Request (secrets masked)")
    def request_sent(self, log: Log) -> str:
        request = dict(log.request or {})
        if isinstance(request.get("headers"), dict):
            # Stored masked already; masking again costs nothing and guards old rows.
            request["headers"] = mask_headers(request["headers"], log.endpoint.secret_headers)
        return _pretty(request)

    @admin.display(description="Response headers")
    def response_headers_shown(self, log: Log) -> str:
        return _pretty(log.response_headers)

    @admin.display(description="Response excerpt")
    def excerpt(self, log: Log) -> str:
        if not log.response_excerpt:
            return "—"
        return format_html('<pre style="white-space:pre-wrap">{}</pre>', log.response_excerpt)

    @admin.display(description="Result summary")
    def result(self, log: Log) -> str:
        return _pretty(log.result_summary)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Log | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Log | None = None) -> bool:
        # Retention (prunelogs) deletes runs; deleting an endpoint deletes its own.
        return False


def _phase(ms: float | None) -> str:
    return "–" if ms is None else f"{ms:g} ms"


def _pretty(value: Any) -> str:
    if not value:
        return "—"
    text = json.dumps(value, indent=2, ensure_ascii=False, default=str)
    return format_html('<pre style="white-space:pre-wrap">{}</pre>', text)
