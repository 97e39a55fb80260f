import pytest

from calls import jsonpath

DOCUMENT = {"data": {"state": "ok", "items": [{"id": 1}, {"id": 2}]}, "completedAt": None}


def test_a_path_selects_values():
    assert jsonpath.values("$.data.items[*].id", DOCUMENT) == [1, 2]
    assert jsonpath.first("$.data.state", DOCUMENT) == "ok"


def test_null_is_a_value_and_absence_is_not():
    assert jsonpath.first("$.completedAt", DOCUMENT) is None
    assert jsonpath.first("$.missing", DOCUMENT) is jsonpath.MISSING
    assert jsonpath.first("$.missing", DOCUMENT, default="-") == "-"


@pytest.mark.parametrize("path", ["data.state", "$.[", "$.data[?@.x ==]", "", 3])
def test_an_invalid_path_is_refused_with_a_readable_message(path):
    with pytest.raises(jsonpath.InvalidPath, match="JSONPath"):
        jsonpath.compile_path(path)


def test_a_body_that_is_not_json_parses_to_missing():
    assert jsonpath.parse_body(b'{"a": 1}') == {"a": 1}
    assert jsonpath.parse_body(b"<html>") is jsonpath.MISSING
