"""Headers as the endpoint form's textarea holds them: one 'Name: value' a line."""

from __future__ import annotations

import re

from django import forms


def text_lines(text: str) -> list[str]:
    """Lines as a browser's textarea sends them. Not str.splitlines(): that also breaks at
    U+2028, U+0085 and other separators, which would turn one header value into two headers
    (they are refused inside a value, where they belong to it)."""
    return re.split(r"\r\n|[\r\n]", text or "")


def parse_header_lines(text: str) -> list[tuple[str, str]]:
    """'Name: value' lines → [(name, value)]; raises ValidationError naming the bad line."""
    headers: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name, value = name.strip(), value.strip()
        if not colon or not name:
            raise forms.ValidationError(
                f"Line {number}: write each header as 'Name: value'.", code="header_line"
            )
        if name.lower() in seen:
            raise forms.ValidationError(
                f"Line {number}: '{name}' is given twice.", code="header_twice"
            )
        seen.add(name.lower())
        headers.append((name, value))
    return headers
