"""One representation per object: the keys an API answer shows, each declared once with its
schema and how an object gives its value. The answer (`shape(obj)`) and the OpenAPI component
(`shape.schema`) come from the same declaration, so they cannot drift apart."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from rest_framework import serializers

from endpoints.job_fields import SKIP

__all__ = ["SKIP", "Key", "Representation"]


@dataclass(frozen=True)
class Key:
    field: serializers.Field  # the value's schema; required=False if the value may be SKIP
    value: Callable[..., Any]  # (obj, *context) → the value, or SKIP to leave the key out


class Representation:
    def __init__(self, component: str, keys: dict[str, Key], doc: str = "") -> None:
        self.keys = keys
        # Copies, made in the keys' order: a serializer lists its fields in the order they were
        # made, and a key may be shared by two representations.
        fields = {name: copy.deepcopy(key.field) for name, key in keys.items()}
        self.schema: type[serializers.Serializer] = type(
            component,
            (serializers.Serializer,),
            {**fields, "__doc__": doc or None, "__module__": __name__},
        )

    def __call__(self, obj: Any, *context: Any) -> dict[str, Any]:
        shown = {}
        for name, key in self.keys.items():
            value = key.value(obj, *context)
            if value is not SKIP:
                shown[name] = value
        return shown
