"""Strict input: JSON types as the contracts give them (no "true" for true, no 5 for "5"),
unknown fields refused, query parameters checked; and times written the way the contracts do."""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo
from typing import Any

from rest_framework import serializers

from api.errors import InvalidInput
from endpoints.storable import parse_instant


class StrictSerializer(serializers.Serializer):
    """A serializer that refuses fields it does not know, naming them."""

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if isinstance(data, dict):
            unknown = [str(key) for key in data if key not in self.fields]
            if unknown:
                known = ", ".join(self.fields)
                raise serializers.ValidationError(
                    {key: [f"Unknown field; the fields are {known}."] for key in unknown}
                )
        return super().to_internal_value(data)


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            raise serializers.ValidationError("Must be a string.")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            raise serializers.ValidationError("Must be true or false.")
        return data


class StrictIntegerField(serializers.IntegerField):
    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise serializers.ValidationError("Must be a whole number.")
        return super().to_internal_value(data)


def timing_field() -> serializers.JSONField:
    """A run's `timing`, as every answer that shows a run documents it."""
    return serializers.JSONField(
        required=False,
        help_text="The call's phases in ms (dns_ms, connect_ms, tls_ms, ttfb_ms, total_ms; null "
        "when not taken, e.g. over a reused connection), reused, requests, connections. Only "
        "for runs that made an HTTP call.",
    )


class JSONObjectField(serializers.JSONField):
    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        return data


class InstantField(serializers.DateTimeField):
    """An ISO 8601 date and time with an offset (or Z); a naive time is ambiguous, so refused."""

    def to_internal_value(self, data: Any) -> datetime:
        parsed, problem = parse_instant(data)
        if problem:
            raise serializers.ValidationError(problem)
        return parsed


# --- query parameters ---


# Larger numbers overflow the database's integers; nothing real is that large.
MAX_NUMBER = 10**9


def whole_number(text: str) -> int | None:
    """'42' → 42; anything but ASCII digits → None; past MAX_NUMBER → MAX_NUMBER + 1."""
    if not (text.isascii() and text.isdigit()):
        return None
    digits = text.lstrip("0") or "0"
    return int(digits) if len(digits) <= 10 and int(digits) <= MAX_NUMBER else MAX_NUMBER + 1


def query_int(params, name: str, default: int, *, low: int = 1, high: int = MAX_NUMBER) -> int:
    """A whole number ≥ low from the query string (clamped to high); anything else is a 400."""
    raw = params.get(name)
    if raw in (None, ""):
        return default
    value = whole_number(raw)
    if value is None or value < low:
        raise InvalidInput({name: f"Must be a whole number of at least {low}."})
    return min(value, high)


def query_bool(params, name: str) -> bool | None:
    raw = params.get(name)
    if raw in (None, ""):
        return None
    if raw.lower() not in ("true", "false"):
        raise InvalidInput({name: "Must be true or false."})
    return raw.lower() == "true"


def body_of(request) -> dict[str, Any]:
    """The JSON object a request sent ({} for no body); anything but an object is a 400."""
    data = request.data
    if isinstance(data, dict):
        return data
    raise InvalidInput({"non_field_errors": "The body must be a JSON object."})


# --- times ---


def iso(moment: datetime | None, zone: tzinfo | None = None) -> str | None:
    """2026-03-26T02:00:00Z, or in `zone` with its offset (2024-01-26T09:00:00-05:00): whole
    seconds, as every seed example writes its instants (a fraction is dropped, not rounded)."""
    return _written(moment, zone, "seconds")


def iso_ms(moment: datetime | None, zone: tzinfo | None = None) -> str | None:
    """2024-01-26T09:00:00.500-05:00: always milliseconds, as seed 002 writes the times of a
    run (startedAt, finishedAt), even when they are .000."""
    return _written(moment, zone, "milliseconds")


def _written(moment: datetime | None, zone: tzinfo | None, timespec: str) -> str | None:
    if moment is None:
        return None
    text = moment.astimezone(zone or UTC).isoformat(timespec=timespec)
    # In a schedule's zone the offset is always written, +00:00 too (London in winter).
    return text.removesuffix("+00:00") + "Z" if zone is None else text
