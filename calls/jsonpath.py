"""JSONPath (RFC 9535) over response bodies, through the jsonpath-rfc9535 package.

One module for every reader of a path — response assertions, `{{ upstream.response.<path> }}` —
so a path means the same everywhere and is refused the same way on save.
"""

from __future__ import annotations

import json
from functools import lru_cache

import jsonpath_rfc9535

MISSING = object()


class InvalidPath(ValueError):
    """The text is not an RFC 9535 JSONPath query; the message says where."""


@lru_cache(maxsize=1024)
def compile_path(path: str) -> jsonpath_rfc9535.JSONPathQuery:
    if not isinstance(path, str) or not path.startswith("$"):
        raise InvalidPath(f"{path!r} is not a JSONPath: it must start with $ (e.g. $.data.state)")
    try:
        return jsonpath_rfc9535.compile(path)
    except jsonpath_rfc9535.JSONPathError as error:
        raise InvalidPath(f"{path!r} is not a valid JSONPath: {error}") from None


def values(path: str, document) -> list:
    """Every value the path selects in a parsed JSON document (an empty list: nothing matched)."""
    return compile_path(path).find(document).values()


def first(path: str, document, default=MISSING):
    """The first value the path selects, or `default` when it selects nothing."""
    found = values(path, document)
    return found[0] if found else default


def parse_body(body: bytes | str):
    """A response body as JSON, or MISSING when it is not JSON."""
    try:
        return json.loads(body)
    except (ValueError, TypeError):
        return MISSING
