"""The dashboard's small forms: the endpoint list's and a log's filters, a new API token."""

from __future__ import annotations

from django import forms
from django.db.models import Q, QuerySet

from dashboard import states
from endpoints.models import Endpoint
from runs.models import Log


class EndpointFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    enabled = forms.ChoiceField(
        required=False,
        choices=[("", "Any state"), ("yes", "Active"), ("no", "Paused"), ("done", "Done")],
    )
    status = forms.ChoiceField(
        required=False,
        choices=[
            ("", "Any last status"),
            ("success", "Last run succeeded"),
            ("failed", "Last run failed"),
            ("never", "Never ran"),
        ],
    )
    kind = forms.ChoiceField(required=False, choices=[("", "Any kind"), *Endpoint.Kind.choices])

    def apply(self, queryset: QuerySet[Endpoint]) -> QuerySet[Endpoint]:
        if not self.is_valid():
            return queryset
        data = self.cleaned_data
        if data["q"]:
            term = data["q"].strip()
            queryset = queryset.filter(
                Q(name__icontains=term)
                | Q(description__icontains=term)
                | Q(url__icontains=term)
                | Q(handler__icontains=term)
                | Q(flow_key=term)  # the Limits page links a key to its jobs
            )
        if data["enabled"] == "done":
            queryset = queryset.filter(states.DONE)
        elif data["enabled"]:
            queryset = queryset.filter(enabled=data["enabled"] == "yes").exclude(states.DONE)
        if data["status"] == "never":
            queryset = queryset.filter(last_status="")
        elif data["status"]:
            queryset = queryset.filter(last_status=data["status"])
        if data["kind"]:
            queryset = queryset.filter(kind=data["kind"])
        return queryset

    @property
    def is_filtered(self) -> bool:
        return self.is_valid() and any(self.cleaned_data.values())


class LogFilterForm(forms.Form):
    state = forms.ChoiceField(required=False, choices=[("", "Any state"), *Log.State.choices])
    trigger = forms.ChoiceField(required=False, choices=[("", "Any trigger"), *Log.Trigger.choices])

    def apply(self, queryset: QuerySet[Log]) -> QuerySet[Log]:
        if not self.is_valid():
            return queryset
        if self.cleaned_data["state"]:
            queryset = queryset.filter(state=self.cleaned_data["state"])
        if self.cleaned_data["trigger"]:
            queryset = queryset.filter(trigger=self.cleaned_data["trigger"])
        return queryset


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        help_text="What uses it, e.g. 'deploy script' or 'grafana'.",
        widget=forms.TextInput(attrs={"placeholder": "deploy script"}),
    )
