"""`runAfter`, the camelCase form of a job's run_after, as the Schedules and Scheduled Actions
APIs take and show it: `[{"jobName": "extract", "on": "success"}]` (docs/chains.md)."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from api.fields import StrictCharField, StrictSerializer
from endpoints.models import Endpoint
from endpoints.run_after import ON_CHOICES, SUCCESS


class RunAfterItem(StrictSerializer):
    jobName = StrictCharField(max_length=100, help_text="The job (workflow name) to run after")
    on = serializers.ChoiceField(
        ON_CHOICES, required=False, default=SUCCESS, help_text="How its run must end"
    )


def request_field() -> serializers.ListField:
    return serializers.ListField(
        child=RunAfterItem(),
        required=False,
        help_text="Run once each of these jobs' runs has ended the way `on` says (success, "
        "failure after its retries, or finished either way); templates see that run as "
        "{{ upstream.… }}.",
    )


def stored(items: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The validated request items as Endpoint.run_after."""
    # get: a partial update (PUT) leaves defaults unapplied.
    return [{"job_name": item["jobName"], "on": item.get("on", SUCCESS)} for item in items]


def shown(endpoint: Endpoint) -> list[dict[str, str]]:
    return [{"jobName": e["job_name"], "on": e["on"]} for e in endpoint.run_after or []]


def schema_field() -> serializers.ListField:
    return serializers.ListField(child=RunAfterItem(), help_text="The jobs it runs after.")
