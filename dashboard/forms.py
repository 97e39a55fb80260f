"""Dashboard forms. The endpoint form is a ModelForm: it validates through Endpoint.full_clean(),
the same validation that serves the admin, the API and job files; here it only converts what a
person types (header lines, '5m', local date-times) into model values.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.utils import timezone

from calls import templating
from calls.masking import ALWAYS_SECRET_HEADERS, MASK
from dashboard import signing_fields
from dashboard.assertion_rows import AssertionRowsField
from dashboard.header_lines import parse_header_lines, text_lines
from dashboard.run_after_lines import parse_run_after_lines, run_after_lines
from endpoints import channels, jobs, schedule_syntax, schedules, timetable
from endpoints.models import Endpoint
from endpoints.registry import registered_names

# What the schedule preview reads: the schedule and its window.
SCHEDULE_FIELDS = (
    "schedule_type",
    "cron_expression",
    "interval_seconds",
    "run_at",
    "timezone",
    "starts_at",
    "ends_at",
)
# Field groups of the endpoint form, in order: (title, fields).
GROUPS: list[tuple[str, list[str]]] = [
    ("Endpoint", ["name", "description", "enabled"]),
    (
        "Target",
        [
            "kind",
            "method",
            "url",
            "headers",
            "secret_headers",
            "body",
            "handler",
            "payload",
        ],
    ),
    (
        "Schedule",
        [
            *SCHEDULE_FIELDS,
            "max_runs",
            "jitter_seconds",
            "grace_seconds",
            "run_after",
        ],
    ),
    ("Signing", signing_fields.FIELDS),
    (
        "Success and retries",
        [
            "timeout_seconds",
            "expected_status",
            "response_must_contain",
            "assertions",
            "max_attempts",
            "retry_backoff_seconds",
            "retry_backoff_max_seconds",
        ],
    ),
    ("Overlap and missed runs", ["overlap_policy", "missed_policy", "catch_up_window_seconds"]),
    ("Flow control", ["flow_key", "flow_parallelism", "flow_rate"]),
    (
        "Notifications",
        [
            "notify_emails",
            "notify_webhook_url",
            "notify_urls",
            "notify_on_failure",
            "notify_after_failures",
            "notify_on_recovery",
            "auto_disable_after",
        ],
    ),
]
# Groups folded under "Advanced settings" (a <details>: no script needed), so that a simple job
# is a short form; and the schedule's rarer fields, folded inside the Schedule group.
ADVANCED_GROUPS = (
    "Signing", "Success and retries", "Overlap and missed runs", "Flow control", "Notifications",
)  # fmt: skip
FOLDED_FIELDS = ("starts_at", "ends_at", "max_runs", "jitter_seconds")

# CSS classes that let the stylesheet hide fields of the kind or schedule type not chosen.
FIELD_CLASSES = {
    **dict.fromkeys(
        ["method", "url", "headers", "secret_headers", "body", "expected_status"], "only-http"
    ),
    **dict.fromkeys(["response_must_contain", "assertions"], "only-http"),
    **dict.fromkeys(signing_fields.FIELDS, "only-http"),
    **dict.fromkeys(["handler", "payload"], "only-handler"),
    "cron_expression": "only-cron",
    "interval_seconds": "only-interval",
    "run_at": "only-once",
    "grace_seconds": "only-heartbeat",
    **dict.fromkeys(["jitter_seconds", "max_runs", "run_after"], "not-heartbeat"),
}
LOCAL_DATETIME_FIELDS = ("run_at", "starts_at", "ends_at")
DATETIME_FORMAT = "%Y-%m-%dT%H:%M:%S"


class EndpointForm(signing_fields.SigningFieldsMixin, forms.ModelForm):
    headers = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
        help_text=(
            f"One 'Name: value' per line. Secret values are shown as {MASK}; leave them as they "
            "are (or blank) to keep the stored value, delete the line to remove the header."
        ),
    )
    secret_headers = forms.CharField(
        required=False,
        label="Secret header names",
        help_text="Comma-separated names whose values are never shown again. Authorization, "
        "Cookie, X-API-Key and Proxy-Authorization always are.",
    )
    interval_seconds = forms.CharField(
        required=False,
        label="Every",
        help_text="Seconds, or '90s', '5m', '2h', '1d', 'hourly', 'daily'.",
    )
    notify_urls = forms.CharField(
        required=False,
        label="Notification URLs",
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
        help_text="Apprise URLs, one a line: slack://…, tgram://…, ntfy://…, msteams://…, "
        "json://host/path, mailto://… Their secrets are shown masked; leave a line as it is "
        "to keep it.",
    )
    handler = forms.ChoiceField(required=False, choices=())
    assertions = AssertionRowsField(
        label="Response assertions",
        help_text="All must hold for a success, after the status codes: a JSON value by its "
        "JSONPath ($.data.state), a header by its name, the body's text, the status code or the "
        "duration in ms. A row with neither property nor target is left out; save for more empty "
        "rows.",
    )
    run_after = forms.CharField(
        required=False,
        label="Run after",
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false"}),
        help_text="One job a line: 'extract' runs this once after each successful run of "
        "extract, 'extract on failure' after one failed its last retry, 'extract on finished' "
        "either way; several lines: once all have. Templates see that run as "
        "{{ upstream.run_id }}, {{ upstream.result.KEY }}, {{ upstream.response.$.PATH }}. "
        "A job that only runs after others: schedule Manual only.",
    )

    class Meta:
        model = Endpoint
        fields = [
            name for _, names in GROUPS for name in names if name not in signing_fields.EXTRA_FIELDS
        ]
        widgets = {
            "description": forms.Textarea(attrs={"rows": 2}),
            "kind": forms.RadioSelect,
            "schedule_type": forms.RadioSelect,
            "url": forms.URLInput(attrs={"placeholder": "https://api.example.com/jobs/refresh"}),
            "body": forms.Textarea(attrs={"rows": 4, "spellcheck": "false"}),
            "payload": forms.Textarea(attrs={"rows": 3, "spellcheck": "false"}),
            "cron_expression": forms.TextInput(
                attrs={"placeholder": "0 9 * * MON-FRI", "spellcheck": "false"}
            ),
            "timezone": forms.TextInput(attrs={"list": "timezones", "spellcheck": "false"}),
            **{
                name: forms.DateTimeInput(
                    attrs={"type": "datetime-local", "step": 1}, format=DATETIME_FORMAT
                )
                for name in LOCAL_DATETIME_FIELDS
            },
        }
        labels = {
            "url": "URL",
            "timezone": "Time zone",
            "timeout_seconds": "Timeout (seconds)",
            "expected_status": "Success status codes",
            "retry_backoff_seconds": "Retry backoff (seconds)",
            "retry_backoff_max_seconds": "Longest backoff (seconds)",
            "catch_up_window_seconds": "Catch-up window (seconds)",
            "max_runs": "Stop after runs",
            "jitter_seconds": "Jitter (seconds)",
            "notify_after_failures": "Alert after failed runs",
            "grace_seconds": "Grace (seconds)",
            "flow_parallelism": "At most in flight",
            "flow_rate": "At most started",
        }
        help_texts = {
            "cron_expression": "5 fields (minute hour day month weekday), an optional 6th for "
            "seconds, names like MON-FRI, or @hourly … @yearly.",
            "timezone": "IANA name, e.g. Europe/Paris. Cron runs on this wall clock.",
            "run_at": "In the schedule's time zone.",
            "starts_at": "Optional; in the schedule's time zone.",
            "ends_at": "Optional; in the schedule's time zone.",
            "max_runs": "Optional: stop scheduling after this many runs.",
            "payload": "A JSON object passed to the handler.",
            "body": "Sent as is; JSON bodies get Content-Type: application/json.",
            "retry_backoff_seconds": "The first retry waits up to this long, each later one up "
            "to twice as long (with jitter). Timeouts, network errors, 5xx and 429 are retried.",
            "flow_key": "Optional. Jobs with the same key (e.g. the API's host) share its limits "
            "across every worker; runs over them wait their turn, none is dropped.",
            "flow_parallelism": "Runs of the key in flight at once (the smallest of its jobs' "
            "holds).",
            "flow_rate": 'Runs of the key started per second, minute or hour: "10/s", '
            '"600/min" — up to that many at once.',
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.secrets_withheld: list[str] = []
        # As stored, before this form changes the instance (for the rule on one-time instants).
        self.stored = copy.copy(self.instance) if self.instance.pk else None
        names = registered_names()
        current = self.instance.handler
        choices = [("", "— choose a handler —")] + [(name, name) for name in names]
        if current and current not in names:
            choices.append((current, f"{current} (not registered)"))
        self.fields["handler"].choices = choices
        self.fields["payload"].required = False
        self.fields["jitter_seconds"].required = False  # blank: no jitter
        self.fields["grace_seconds"].required = False  # blank: the default (1 hour)
        self.fields["notify_after_failures"].required = False  # blank: the first failure
        self.fields["method"].choices = [(m, m) for m in Endpoint.Method.values]
        self.fields["assertions"].widget.attrs["data-endpoint"] = self.instance.pk or ""
        for name in ("timeout_seconds", "retry_backoff_seconds", "retry_backoff_max_seconds"):
            value = getattr(self.instance, name)
            if isinstance(value, float):
                self.initial[name] = f"{value:g}"  # 30, not 30.0
        instance = self.instance
        self.initial["headers"] = "\n".join(
            f"{name}: {value}" for name, value in instance.masked_headers.items()
        )
        self.initial["secret_headers"] = ", ".join(instance.secret_headers or [])
        if instance.pk:
            self.initial["payload"] = instance.masked_payload
        self.initial["notify_urls"] = "\n".join(instance.masked_notify_urls)
        self.initial["run_after"] = run_after_lines(instance.run_after)
        self.initial["interval_seconds"] = timetable.format_interval(instance.interval_seconds)
        for key in signing_fields.KEYS:
            self.initial[key] = ""  # never rendered back (password inputs), never compared
        self.describe_stored_keys()
        zone = timetable.zone_of(instance.timezone)
        for name in LOCAL_DATETIME_FIELDS:
            value = getattr(instance, name)
            if value is not None:
                self.initial[name] = value.astimezone(zone).replace(tzinfo=None)

    # --- conversions ------------------------------------------------------------------------

    def clean_headers(self) -> list[tuple[str, str]]:
        return parse_header_lines(self.cleaned_data.get("headers", ""))

    def clean_secret_headers(self) -> list[str]:
        text = self.cleaned_data.get("secret_headers") or ""
        return list(dict.fromkeys(name.strip() for name in text.split(",") if name.strip()))

    def clean_notify_urls(self) -> list[str]:
        # A line left masked: Endpoint.clean keeps the stored URL.
        return channels.parse_urls(self.cleaned_data.get("notify_urls") or "")

    def clean_interval_seconds(self) -> int | None:
        text = (self.cleaned_data.get("interval_seconds") or "").strip()
        if not text:
            return None
        try:
            return schedule_syntax.parse_interval(text)
        except schedule_syntax.ScheduleError as exc:
            if self.cleaned_data.get("schedule_type") != Endpoint.ScheduleType.INTERVAL:
                return None  # inert: the schedule is not an interval
            raise forms.ValidationError(exc.message) from None

    def clean_run_after(self) -> list[dict[str, str]]:
        return parse_run_after_lines(self.cleaned_data.get("run_after") or "")

    def clean_notify_after_failures(self) -> int:
        return self.cleaned_data.get("notify_after_failures") or 1

    def clean_jitter_seconds(self) -> int:
        return self.cleaned_data.get("jitter_seconds") or 0

    def clean_grace_seconds(self) -> int:
        grace = self.cleaned_data.get("grace_seconds")
        return Endpoint._meta.get_field("grace_seconds").default if grace is None else grace

    def clean_payload(self) -> Any:
        payload = self.cleaned_data.get("payload")
        return {} if payload is None else payload

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        self.clean_signing_keys(cleaned)
        if cleaned.get("kind") != Endpoint.Kind.HTTP:
            cleaned["assertions"] = []  # rows hidden with the kind: only a response is checked
        if "headers" in cleaned:
            cleaned["headers"] = self._headers_keeping_secrets(
                cleaned["headers"], cleaned.get("secret_headers") or []
            )
        # An unknown zone is the timezone field's error; the times are then read as UTC.
        zone = timetable.zone_of(cleaned.get("timezone", ""))
        for name in LOCAL_DATETIME_FIELDS:
            if cleaned.get(name):
                # Django read the input on the UTC clock; it was meant on the schedule's.
                wall = cleaned[name].astimezone(UTC).replace(tzinfo=None)
                cleaned[name] = schedules.wall_to_instant(wall, zone)
        return cleaned

    def _post_clean(self) -> None:
        super()._post_clean()  # the instance now has the form's values, the model validated
        # The one rule for one-time instants (endpoints.schedules.one_time_problem).
        if "run_at" in self.errors or not jobs.sets_one_time_instant(self.stored, self.instance):
            return
        if problem := schedules.one_time_problem(self.instance.run_at, timezone.now()):
            self.add_error("run_at", problem)

    def _headers_keeping_secrets(
        self, lines: list[tuple[str, str]], secret_names: list[str]
    ) -> dict[str, str]:
        """Header lines as a dict; a secret left empty counts as left masked, so that
        Endpoint.clean keeps its stored value (or says why it may not)."""
        secret = ALWAYS_SECRET_HEADERS | {name.lower() for name in secret_names}
        headers: dict[str, str] = {}
        for name, value in lines:
            if value == "" and name.lower() in secret:
                value = MASK
            elif value == "":
                self.add_error("headers", f"'{name}' has no value.")
                continue
            headers[name] = value
        return headers

    # --- showing a submitted form again -------------------------------------------------------

    def withhold_secrets(self) -> None:
        """Never send secret values back to the browser, not even ones just typed.

        Call before rendering a bound form again. A secret the user typed is blanked (and they
        are told to type it again); one left masked stays masked.
        """
        if not self.is_bound:
            return
        names = self.data.get("secret_headers", "")
        secret = ALWAYS_SECRET_HEADERS | {n.strip().lower() for n in names.split(",")}
        shown = []
        for line in text_lines(self.data.get("headers", "")):
            name, colon, value = line.partition(":")
            if colon and name.strip().lower() in secret and value.strip() not in ("", MASK):
                self.secrets_withheld.append(name.strip())
                line = f"{name.strip()}: "
            shown.append(line)
        data = self.data.copy()
        data["headers"] = "\n".join(shown)
        self.data = data

    # --- what the template needs ----------------------------------------------------------------

    def groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        """(title, bound fields) per fieldset; each field knows its show-only-when CSS class."""
        groups = []
        for title, names in GROUPS:
            fields = [self[name] for name in names]
            for field in fields:
                field.css_class = FIELD_CLASSES.get(field.name, "")
            groups.append((title, fields))
        return groups

    @property
    def basic_groups(self) -> list[tuple[str, list[forms.BoundField], list[forms.BoundField]]]:
        """(title, fields shown, fields folded under "More") of the groups always open."""
        return [
            (
                title,
                [f for f in fields if f.name not in FOLDED_FIELDS],
                [f for f in fields if f.name in FOLDED_FIELDS],
            )
            for title, fields in self.groups()
            if title not in ADVANCED_GROUPS
        ]

    @property
    def advanced_groups(self) -> list[tuple[str, list[forms.BoundField]]]:
        return [(title, fields) for title, fields in self.groups() if title in ADVANCED_GROUPS]

    @property
    def advanced_open(self) -> bool:
        """Unfold the advanced settings when one of them has an error to show."""
        return any(f.errors for _, fields in self.advanced_groups for f in fields)

    @property
    def folded_open(self) -> bool:
        return any(self[name].errors for name in FOLDED_FIELDS)

    @property
    def template_variables(self) -> dict[str, str]:
        """What URL, header values and body may use, for the help next to them."""
        return templating.VARIABLES

    def schedule_values(self) -> dict[str, Any]:
        """The schedule as currently typed (bound) or stored (unbound), for the preview."""
        if self.is_bound:
            return {name: self.data.get(name, "") for name in SCHEDULE_FIELDS}
        values = {name: self[name].value() for name in SCHEDULE_FIELDS}
        values["interval_seconds"] = self.initial.get("interval_seconds", "")
        for name, value in values.items():
            if isinstance(value, datetime):
                values[name] = value.strftime(DATETIME_FORMAT)
        return values
