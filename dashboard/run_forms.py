"""Forms of the actions that take more than a click: pause (with a reason and an end), backfill
a past range, run now as of an instant, replay failed runs. Dates are typed on the endpoint's wall
clock (datetime-local) and read DST-safely by endpoints.schedules.parse_local_instant."""

from __future__ import annotations

from datetime import datetime

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils import timezone

from endpoints import schedules
from endpoints.models import Endpoint
from endpoints.storable import OUT_OF_RANGE, within_range
from runs import replay
from runs.models import Log


class LocalInstantField(forms.CharField):
    """A datetime-local input read on `zone_name`'s wall clock (or an ISO instant with offset)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local", "step": 1})

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("max_length", 64)
        super().__init__(*args, **kwargs)
        self.zone_name = "UTC"

    def clean(self, value: str) -> datetime | None:
        text = super().clean(value)
        if not text:
            return None
        try:
            moment = schedules.parse_local_instant(text, self.zone_name)
        except (ValueError, OverflowError) as exc:
            raise forms.ValidationError(str(getattr(exc, "message", exc))) from None
        if not within_range(moment):
            raise forms.ValidationError(OUT_OF_RANGE)
        return moment


class EndpointActionForm(forms.Form):
    """A form whose dates are on `endpoint`'s clock."""

    def __init__(self, *args, endpoint: Endpoint, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.endpoint = endpoint
        for field in self.fields.values():
            if isinstance(field, LocalInstantField):
                field.zone_name = endpoint.timezone
                field.help_text = f"On the {endpoint.timezone} clock."

    def add_model_errors(self, error: Exception, names: dict[str, str] | None = None) -> None:
        """A services ValidationError ({model field: messages}) as this form's field errors."""
        names = names or {}
        for field, messages in getattr(error, "message_dict", {"__all__": [str(error)]}).items():
            name = names.get(field, field)
            self.add_error(name if name in self.fields else None, messages)


class PauseForm(EndpointActionForm):
    reason = forms.CharField(
        required=False,
        max_length=300,
        widget=forms.TextInput(attrs={"placeholder": "vendor maintenance"}),
        help_text="Shown wherever the endpoint is.",
    )
    until = LocalInstantField(required=False, label="Resume at")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields[
            "until"
        ].help_text = f"Optional, on the {self.endpoint.timezone} clock: it resumes by itself then."

    def clean_until(self) -> datetime | None:
        until = self.cleaned_data["until"]
        now = timezone.now()
        if until is not None and until <= now:
            local = now.astimezone(self.endpoint.zone)
            raise forms.ValidationError(
                f"Choose a time in the future to resume at: it is {local:%Y-%m-%d %H:%M} "
                f"{local.tzname()} now on the {self.endpoint.timezone} clock. Leave it empty to "
                "pause until someone resumes it."
            )
        return until


class BackfillForm(EndpointActionForm):
    start = LocalInstantField(label="From")
    end = LocalInstantField(label="Until (not included)")


class RunNowForm(EndpointActionForm):
    as_of = LocalInstantField(required=False, label="As of")


class ReplayForm(forms.Form):
    """Which failed runs to replay: by endpoint names, when they finished, their error class."""

    endpoints = forms.CharField(
        required=False,
        max_length=5000,
        widget=forms.TextInput(attrs={"placeholder": "billing-sync, nightly-report"}),
        help_text="Names, separated by commas; empty: every endpoint.",
    )
    start = LocalInstantField(required=False, label="Finished from")
    end = LocalInstantField(required=False, label="Finished before")
    error_class = forms.MultipleChoiceField(
        required=False,
        choices=[
            (v, "DNS" if v == Log.ErrorClass.DNS else label) for v, label in Log.ErrorClass.choices
        ],
        widget=forms.CheckboxSelectMultiple,
        label="Error class",
        help_text="None ticked: any.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        zone = settings.TIME_ZONE
        for name in ("start", "end"):
            self.fields[name].zone_name = zone
            self.fields[name].help_text = f"Optional, on the {zone} clock."

    def clean_endpoints(self) -> tuple[int, ...]:
        names = [name.strip() for name in self.cleaned_data["endpoints"].split(",")]
        names = [name for name in names if name]
        found = dict(Endpoint.objects.filter(name__in=names).values_list("name", "pk"))
        unknown = [name for name in names if name not in found]
        if unknown:
            raise forms.ValidationError(f"No endpoint named {unknown[0]!r}.")
        return tuple(found.values())

    def selection(self) -> replay.Selection:
        """The selection (valid form only); a bad range is added to the form's errors."""
        data = self.cleaned_data
        try:
            return replay.Selection(
                endpoints=data["endpoints"],
                start=data["start"],
                end=data["end"],
                error_classes=tuple(data["error_class"]),
            )
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)
            raise
