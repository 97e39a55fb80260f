"""run_after as the endpoint form edits it: one job a line, 'extract' or 'extract on failure'."""

from __future__ import annotations

from django import forms

from dashboard.header_lines import text_lines
from endpoints.run_after import SUCCESS


def run_after_lines(entries: list[dict[str, str]] | None) -> str:
    """run_after as the form shows it: 'extract', 'load on failure', one a line."""
    return "\n".join(
        e["job_name"] if e["on"] == SUCCESS else f"{e['job_name']} on {e['on']}"
        for e in entries or []
    )


def parse_run_after_lines(text: str) -> list[dict[str, str]]:
    """'extract' / 'extract on failure' lines → run_after entries (checked by the model)."""
    entries = []
    for line in text_lines(text):
        words = line.split()
        if not words:
            continue
        if len(words) == 1:
            entries.append({"job_name": words[0], "on": SUCCESS})
        elif len(words) == 3 and words[1] == "on":
            entries.append({"job_name": words[0], "on": words[2]})
        else:
            raise forms.ValidationError(
                f"'{line.strip()}': write a job name, or a job name, 'on' and success, failure "
                "or finished (e.g. 'extract on failure')."
            )
    return entries
