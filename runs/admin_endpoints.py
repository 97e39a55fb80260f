"""Django admin for endpoints: filters, search, run now / enable / disable, the latest runs inline.
(Here, not in endpoints/: it runs and shows runs, and `endpoints` never imports `runs`.)

Secret header values and signing keys are never rendered: the form shows them masked and keeps
the stored value for one left as the mask; a view-only user sees the masked headers and whether
the keys are set.
"""

from __future__ import annotations

import json
from typing import Any

from auditlog.mixins import AuditlogHistoryAdminMixin
from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from calls.masking import MASK
from endpoints import channels
from endpoints.jobs import SECRET_FIELDS
from endpoints.models import Endpoint
from endpoints.timetable import zone_of
from runs import verbs
from runs.models import Log

RECENT_LOGS = 20
STATUS_COLORS = {"success": "#1a7f37", "failed": "#cf222e"}
OTHER_STATUS_COLOR = "#6e7781"
DERIVED = (
    "next_run_at",
    "last_run_at",
    "last_status",
    ("run_count", "success_count", "failure_count", "consecutive_failures"),
    "all_logs",
    "created_by",
    "created_at",
    "updated_at",
)


class EndpointForm(forms.ModelForm):
    class Meta:
        model = Endpoint
        fields = [
            f.name for f in Endpoint._meta.concrete_fields if f.editable and not f.primary_key
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and "headers" in self.fields:
            self.initial["headers"] = self.instance.masked_headers
        if self.instance.pk and "payload" in self.fields:
            self.initial["payload"] = self.instance.masked_payload
        if "notify_urls" in self.fields:
            self.fields["notify_urls"] = forms.CharField(
                required=False,
                label="Notification URLs",
                widget=forms.Textarea(attrs={"rows": 3}),
                help_text=Endpoint._meta.get_field("notify_urls").help_text
                + " One a line; a masked line keeps the stored URL.",
            )
            self.initial["notify_urls"] = "\n".join(self.instance.masked_notify_urls)
        for name in SECRET_FIELDS:
            if name in self.fields:
                self.fields[name].widget = forms.TextInput(attrs={"autocomplete": "off"})
                self.fields[name].help_text += f" Leave {MASK} to keep it, empty to remove it."
                self.initial[name] = MASK if getattr(self.instance, name) else ""

    def clean_headers(self) -> Any:
        headers = self.cleaned_data.get("headers")
        # Masked values: Endpoint.clean keeps the stored ones, or says why not.
        return {} if headers is None else headers

    def clean_notify_urls(self) -> list[str]:
        # A line left masked: Endpoint.clean keeps the stored URL.
        return channels.parse_urls(self.cleaned_data.get("notify_urls") or "")

    def clean_secret_headers(self) -> Any:
        return self.cleaned_data.get("secret_headers") or []

    def clean_payload(self) -> Any:
        payload = self.cleaned_data.get("payload")
        return {} if payload is None else payload

    def clean_assertions(self) -> Any:
        # Validated by Endpoint.clean, which names the row that cannot be checked.
        return self.cleaned_data.get("assertions") or []


class RecentLogsFormSet(BaseInlineFormSet):
    """Only the latest runs. The inline's own queryset cannot be sliced: the formset filters it
    by endpoint afterwards, and Django refuses to filter a sliced query."""

    def get_queryset(self) -> QuerySet[Log]:
        if not hasattr(self, "_queryset"):
            self._queryset = super().get_queryset().order_by("-id")[:RECENT_LOGS]
        return self._queryset


class RecentLogInline(admin.TabularInline):
    model = Log
    formset = RecentLogsFormSet
    fields = ("run", "trigger", "state", "status_code", "duration_ms", "started_at", "error_class")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    verbose_name_plural = f"Latest {RECENT_LOGS} runs"

    @admin.display(description="Run")
    def run(self, log: Log) -> str:
        return log.run_id

    def has_add_permission(self, request: HttpRequest, obj: Endpoint | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Endpoint | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Endpoint | None = None) -> bool:
        return False


@admin.register(Endpoint)
class EndpointAdmin(AuditlogHistoryAdminMixin, admin.ModelAdmin):
    form = EndpointForm
    # Who changed what (django-auditlog): a column on the list, a page per endpoint.
    show_auditlog_history_link = True
    list_display = (
        "name",
        "target",
        "schedule_in_words",
        "next_run_at",
        "last_status_badge",
        "enabled",
        "pause_state",
    )
    list_filter = ("enabled", "kind", "schedule_type", "last_status", "timezone")
    search_fields = ("name", "description", "url", "handler")
    actions = ("run_now", "enable", "disable")
    inlines = (RecentLogInline,)
    readonly_fields = (
        "schedule_in_words",
        "upcoming_runs",
        "headers_masked",
        "payload_masked",
        "notify_urls_masked",
        "signing_secret_state",
        "signing_secret_next_state",
        "pause_state",
        "next_run_at",
        "last_run_at",
        "last_status",
        "run_count",
        "success_count",
        "failure_count",
        "consecutive_failures",
        "all_logs",
        "created_by",
        "created_at",
        "updated_at",
        "ping_url",
        "expected_at",
        "last_ping_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "name",
                    "description",
                    "enabled",
                    "disabled_reason",
                    ("paused_until", "paused_by"),
                    "pause_state",
                )
            },
        ),
        (
            "Target",
            {
                "fields": (
                    "kind",
                    ("method", "url"),
                    "headers",
                    "secret_headers",
                    "body",
                    ("timeout_seconds", "expected_status"),
                    "response_must_contain",
                    "assertions",
                    ("signing_secret", "signing_secret_next"),
                    "handler",
                    "payload",
                )
            },
        ),
        (
            "Schedule",
            {
                "fields": (
                    "schedule_type",
                    "cron_expression",
                    "interval_seconds",
                    "run_at",
                    "timezone",
                    ("starts_at", "ends_at"),
                    "max_runs",
                    "jitter_seconds",
                    "schedule_in_words",
                    "upcoming_runs",
                    "run_after",
                )
            },
        ),
        (
            "Heartbeat (kind: heartbeat)",
            {"fields": ("grace_seconds", "ping_url", "expected_at", "last_ping_at")},
        ),
        (
            "Policies",
            {
                "fields": (
                    "max_attempts",
                    ("retry_backoff_seconds", "retry_backoff_max_seconds"),
                    "overlap_policy",
                    "missed_policy",
                    "catch_up_window_seconds",
                )
            },
        ),
        (
            "Flow control",
            {
                "fields": ("flow_key", ("flow_parallelism", "flow_rate")),
                "description": "Jobs sharing a flow key share its limits across every worker "
                '(rate: "10/s", "600/min"); the Limits page shows each key.',
            },
        ),
        (
            "Notifications",
            {
                "fields": (
                    "notify_emails",
                    "notify_webhook_url",
                    "notify_urls",
                    ("notify_on_failure", "notify_after_failures"),
                    "notify_on_recovery",
                    "auto_disable_after",
                )
            },
        ),
        ("Derived", {"fields": DERIVED}),
    )

    def get_fieldsets(self, request: HttpRequest, obj: Endpoint | None = None) -> Any:
        if obj is None or self.has_change_permission(request, obj):
            return self.fieldsets
        # A view-only page renders every field as stored: swap in the masked ones.
        swaps = {
            "headers": "headers_masked",
            "payload": "payload_masked",
            "notify_urls": "notify_urls_masked",
        } | {name: f"{name}_state" for name in SECRET_FIELDS}
        fieldsets = []
        for title, options in self.fieldsets:
            fields = options["fields"]
            for old, new in swaps.items():
                fields = _swap(fields, old, new)
            fieldsets.append((title, {**options, "fields": fields}))
        return fieldsets

    # --- columns and read-only fields ---------------------------------------------------------

    @admin.display(description="Notification URLs")
    def notify_urls_masked(self, endpoint: Endpoint) -> str:
        return "\n".join(endpoint.masked_notify_urls) or "—"

    @admin.display(description="Ping URL")
    def ping_url(self, endpoint: Endpoint) -> str:
        from runs.heartbeats import ping_url

        return ping_url(endpoint) if endpoint.pk and endpoint.is_heartbeat else "—"

    @admin.display(description="Schedule")
    def schedule_in_words(self, endpoint: Endpoint) -> str:
        return f"{endpoint.schedule_description} ({endpoint.timezone})"

    @admin.display(description="Last status", ordering="last_status")
    def last_status_badge(self, endpoint: Endpoint) -> str:
        if not endpoint.last_status:
            return "—"
        color = STATUS_COLORS.get(endpoint.last_status, OTHER_STATUS_COLOR)
        return format_html(
            '<span style="background:{};color:#fff;padding:1px 8px;border-radius:8px">{}</span>',
            color,
            endpoint.last_status,
        )

    @admin.display(description="Next runs")
    def upcoming_runs(self, endpoint: Endpoint) -> str:
        if endpoint.pk is None:
            return "—"
        zone = zone_of(endpoint.timezone)
        runs = endpoint.next_runs(timezone.now(), 5) if endpoint.enabled else []
        shown = ((f"{run.astimezone(zone):%Y-%m-%d %H:%M:%S %Z}",) for run in runs)
        return format_html_join(mark_safe("<br>"), "{}", shown) or "—"

    @admin.display(description="Headers")
    def headers_masked(self, endpoint: Endpoint) -> str:
        return (
            format_html_join(mark_safe("<br>"), "{}: {}", sorted(endpoint.masked_headers.items()))
            or "—"
        )

    @admin.display(description="Payload")
    def payload_masked(self, endpoint: Endpoint) -> str:
        return json.dumps(endpoint.masked_payload, indent=2, ensure_ascii=False)

    @admin.display(description="Paused")
    def pause_state(self, endpoint: Endpoint) -> str:
        return endpoint.pause_description or "—"

    @admin.display(description="Signing key")
    def signing_secret_state(self, endpoint: Endpoint) -> str:
        return "set (never shown)" if endpoint.signing_secret else "—"

    @admin.display(description="Next signing key")
    def signing_secret_next_state(self, endpoint: Endpoint) -> str:
        return "set (never shown)" if endpoint.signing_secret_next else "—"

    @admin.display(description="Runs")
    def all_logs(self, endpoint: Endpoint) -> str:
        if endpoint.pk is None:
            return "—"
        url = reverse("admin:runs_log_changelist") + f"?endpoint__id__exact={endpoint.pk}"
        return format_html('<a href="{}">All runs of {}</a>', url, endpoint.name)

    # --- actions ------------------------------------------------------------------------------

    @admin.action(description="Run now", permissions=["trigger"])
    def run_now(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        by = request.user.get_username()
        logs = [
            verbs.trigger(
                endpoint, by=by, trigger=Log.Trigger.MANUAL, actor=verbs.Actor.of(request)
            )
            for endpoint in queryset.exclude(kind=Endpoint.Kind.HEARTBEAT)
        ]
        queued = ", ".join(f"{log.run_id} ({log.endpoint.name})" for log in logs)
        self.message_user(request, f"Queued {len(logs)} run(s): {queued}.", messages.SUCCESS)

    @admin.action(description="Enable", permissions=["toggle"])
    def enable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.set_enabled(request, queryset, enabled=True)

    @admin.action(description="Disable", permissions=["toggle"])
    def disable(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        self.set_enabled(request, queryset, enabled=False)

    def set_enabled(self, request: HttpRequest, queryset: QuerySet, *, enabled: bool) -> None:
        by, verb = request.user.get_username(), verbs.enable if enabled else verbs.disable
        changed = [endpoint for endpoint in queryset if verb(endpoint, by=by)]
        for endpoint in changed:
            self.log_change(request, endpoint, "Enabled" if enabled else "Disabled")
        verb = "Enabled" if enabled else "Disabled"
        self.message_user(request, f"{verb} {len(changed)} endpoint(s).", messages.SUCCESS)

    def has_trigger_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("endpoints.trigger_endpoint")

    def has_toggle_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("endpoints.toggle_endpoint")

    # --- saving and deleting ------------------------------------------------------------------

    def save_model(self, request: HttpRequest, obj: Endpoint, form: Any, change: bool) -> None:
        if not change:
            obj.created_by = request.user
        was_enabled = form.initial.get("enabled") if change else None
        verbs.save(obj, by=request.user.get_username(), was_enabled=was_enabled)

    def delete_model(self, request: HttpRequest, obj: Endpoint) -> None:
        verbs.delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Endpoint]) -> None:
        for endpoint in queryset:
            verbs.delete(endpoint)

    def get_deleted_objects(self, objs: Any, request: HttpRequest) -> Any:
        deleted, counts, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Runs are read-only in the admin, yet an endpoint's history goes with it.
        perms_needed.discard(Log._meta.verbose_name)
        return deleted, counts, perms_needed, protected


def _swap(fields: tuple, old: str, new: str) -> tuple:
    return tuple(
        _swap(field, old, new) if isinstance(field, tuple) else (new if field == old else field)
        for field in fields
    )
