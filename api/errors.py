"""One error shape for every route: {"error", "code", optional "details" / "message"}.

    400 {"error": "Invalid cron expression", "code": "VALIDATION_ERROR",
         "details": {"cronExpression": "Invalid cron expression '61 * * * *': …"}}
    401 UNAUTHORIZED · 403 FORBIDDEN · 404 NOT_FOUND (also any /api/ address that is no route)
    409 CONFLICT · 413 PAYLOAD_TOO_LARGE · 429 RATE_LIMITED (Retry-After) · 500 INTERNAL_ERROR

Seed 003's routes wrap their answers in {"success": …}; their errors carry "success": false too.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpResponsePermanentRedirect, JsonResponse
from django.urls import Resolver404, resolve
from rest_framework import exceptions, serializers, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response

from endpoints import storable

logger = logging.getLogger(__name__)

CODES = {
    400: "VALIDATION_ERROR",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    409: "CONFLICT",
    413: "PAYLOAD_TOO_LARGE",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
}
TITLES = {
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    409: "Conflict",
    413: "Payload too large",
    429: "Too many requests",
    500: "Internal error",
}
WHOLE_REQUEST = "non_field_errors"
NUL = "\x00"


class Conflict(exceptions.APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict"
    default_code = "conflict"


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "payload_too_large"

    def __init__(self) -> None:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0
        super().__init__(f"The request body is larger than {limit // 1024} KB.")


class InvalidInput(exceptions.ValidationError):
    """A 400 with {field: message} details and a one-line summary (default: from the fields)."""

    def __init__(self, details: dict[str, str], error: str | None = None) -> None:
        super().__init__({field: [message] for field, message in details.items()})
        self.summary = error


class BoundedJSONParser(JSONParser):
    """JSON only, of bounded size and depth: anything else is a 400, never a 500."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        request = (parser_context or {}).get("request")
        length = int(request.META.get("CONTENT_LENGTH") or 0) if request is not None else 0
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is not None and length > limit:
            raise PayloadTooLarge()
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from None
        if (problem := unstorable_text(data)) is not None:
            raise InvalidInput(dict([problem]))
        return data


def unstorable_text(value: Any) -> tuple[str, str] | None:
    """(field, why) of the first string or key no database can store (endpoints.storable)."""
    if (problem := storable.unstorable_text(value)) is None:
        return None
    place, why = problem
    return place or WHOLE_REQUEST, why


def exception_handler(exc: Exception, context: dict[str, Any]):
    if isinstance(exc, RequestDataTooBig):
        # Django's own answer is an HTML 400 and a logged traceback: the client sent too much.
        exc = PayloadTooLarge()
    if isinstance(exc, DjangoValidationError):
        exc = InvalidInput(django_details(exc))
    if isinstance(exc, exceptions.UnsupportedMediaType):
        exc = InvalidInput({WHOLE_REQUEST: "Send a JSON body with Content-Type: application/json."})
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, which names this module.
    from rest_framework.views import exception_handler as drf_exception_handler
    from rest_framework.views import set_rollback

    response = drf_exception_handler(exc, context)
    if response is None:
        # A bug, not a request's fault: logged with its traceback, answered in the one shape.
        logger.error("Unhandled error in %s", _path(context), exc_info=exc)
        set_rollback()
        response = Response(status=500)
    body = error_body(exc, response.status_code)
    if isinstance(exc, exceptions.Throttled):
        # DRF rounds a sub-second wait down to 0 (or drops it): a client must be told to wait.
        response["Retry-After"] = str(max(1, math.ceil(exc.wait or 1)))
    if getattr(context.get("view"), "success_envelope", False):
        body = {"success": False, **body}
    response.data = body
    return response


def _path(context: dict[str, Any]) -> str:
    request = context.get("request")
    return request.path if request is not None else "the API"


def not_found(request, unmatched: str = "") -> JsonResponse | HttpResponsePermanentRedirect:
    """Any /api/ address that is no route: a JSON 404 (Django's would be an HTML page).

    As APPEND_SLASH would, a GET of a route written without its trailing slash is redirected.
    """
    with_slash = f"{request.path_info}/"
    if request.method in ("GET", "HEAD") and not request.path_info.endswith("/"):
        match = _resolved(with_slash)
        if match is not None and match.func is not not_found:
            query = request.META.get("QUERY_STRING", "")
            return HttpResponsePermanentRedirect(with_slash + (f"?{query}" if query else ""))
    message = f"No route at {request.path}; the routes are listed at /api/docs/."
    return JsonResponse({"error": TITLES[404], "code": CODES[404], "message": message}, status=404)


def _resolved(path: str):
    try:
        return resolve(path)
    except Resolver404:
        return None


def error_body(exc: Exception, status_code: int) -> dict[str, Any]:
    code = CODES.get(status_code, "ERROR")
    if isinstance(exc, exceptions.ParseError):
        return {
            "error": "Malformed request body",
            "code": CODES[400],
            "details": {WHOLE_REQUEST: str(exc.detail)},
        }
    if isinstance(exc, exceptions.ValidationError):
        details = flatten(exc.detail)
        summary = getattr(exc, "summary", None) or summarize(details)
        return {"error": summary, "code": CODES[400], "details": details}
    detail = getattr(exc, "detail", "")
    message = str(detail) if not isinstance(detail, list | dict) else ""
    if status_code in (404, 409) and message:
        return {"error": message, "code": code}  # "Schedule not found", as seed 002 words it
    # A short, stable title; the specific reason goes to "message" (as seed 003's 401 has it).
    body = {"error": TITLES.get(status_code, "Error"), "code": code}
    if message and message != body["error"]:
        body["message"] = message
    return body


def flatten(detail: Any, prefix: str = "") -> dict[str, str]:
    """DRF's nested {field: [messages]} as {"field.sub": "message message"}."""
    if isinstance(detail, dict):
        flat: dict[str, str] = {}
        for key, value in detail.items():
            if key in (NON_FIELD_ERRORS, WHOLE_REQUEST):
                # Errors about the object as a whole belong to the field that holds it.
                flat.update(flatten(value, prefix or WHOLE_REQUEST))
            else:
                flat.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    if isinstance(detail, list):
        if all(not isinstance(item, dict | list) for item in detail):
            return {prefix or WHOLE_REQUEST: " ".join(str(item) for item in detail)}
        flat = {}
        for index, item in enumerate(detail):
            if item:
                flat.update(flatten(item, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or WHOLE_REQUEST: str(detail)}


def summarize(details: dict[str, str]) -> str:
    """'Invalid cron expression' for one field in error, 'Invalid request' for several."""
    if len(details) != 1 or WHOLE_REQUEST in details:
        return "Invalid request"
    return f"Invalid {words(next(iter(details)))}"


def words(field: str) -> str:
    """cronExpression / cron_expression → 'cron expression'."""
    field = field.split(".")[0]
    return re.sub(r"(?<=[a-z])(?=[A-Z])", " ", field).replace("_", " ").lower()


def django_details(error: DjangoValidationError, names: dict[str, str] | None = None):
    """A model's ValidationError as {contract field: message}, renamed through `names`."""
    names = names or {}
    if not hasattr(error, "error_dict"):
        return {WHOLE_REQUEST: " ".join(error.messages)}
    details: dict[str, str] = {}
    for field, messages in error.message_dict.items():
        name = WHOLE_REQUEST if field == NON_FIELD_ERRORS else names.get(field, field)
        details[name] = " ".join([details[name], *messages] if name in details else messages)
    return details


class ErrorSerializer(serializers.Serializer):
    """The error shape, for the schema."""

    error = serializers.CharField()
    code = serializers.ChoiceField(choices=sorted(set(CODES.values())))
    details = serializers.DictField(child=serializers.CharField(), required=False)
    message = serializers.CharField(required=False)


class ActionErrorSerializer(ErrorSerializer):
    """The error shape on seed 003's routes."""

    success = serializers.BooleanField(default=False)
