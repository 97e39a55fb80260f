"""One owner per derived field of Endpoint (docs/architecture.md): read from the source, a module
other than the owner that writes one (`.update(field=…)`, `obj.field = …`, `bulk_update(…,
["field"])`) fails here. The others call the owner's function."""

from __future__ import annotations

import ast
from pathlib import Path

from endpoints.models import DERIVED_FIELDS
from tests.test_layering import sources

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "calls", "dashboard", "endpoints", "runs", "scheduler_site")
OWNERS = {
    # The schedule and the switch: the model's timetable.
    "next_run_at": "endpoints/timetable.py",
    "expected_at": "endpoints/timetable.py",
    "overdue_at": "endpoints/timetable.py",
    # The run statistics: the recorder.
    "last_run_at": "runs/recording.py",
    "last_status": "runs/recording.py",
    "run_count": "runs/recording.py",
    "success_count": "runs/recording.py",
    "failure_count": "runs/recording.py",
    "consecutive_failures": "runs/recording.py",
    # What was alerted about: the notifications.
    "failure_alerted_at": "runs/notifications.py",
    "tls_expires_at": "runs/notifications.py",
    "tls_warned_expiry": "runs/notifications.py",
    "last_ping_at": "runs/heartbeats.py",
    "signing_keys_replaced_at": "endpoints/secrets.py",
}
# Objects with fields of the same names that are not an Endpoint's: a Log, a call's Outcome, the
# dispatcher's plan of an endpoint's slots.
NOT_ENDPOINTS = {"log", "outcome", "plan"}


def writes(path: Path) -> list[tuple[int, str]]:
    """(line, field) for each derived field this module writes."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            receiver = node.value.id if isinstance(node.value, ast.Name) else ""
            if node.attr in DERIVED_FIELDS and receiver not in NOT_ENDPOINTS:
                found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in ("update", "bulk_update", "update_or_create"):
                found += [(node.lineno, kw.arg) for kw in node.keywords if kw.arg in DERIVED_FIELDS]
            if node.func.attr == "bulk_update" and len(node.args) > 1:
                names = [c.value for c in ast.walk(node.args[1]) if isinstance(c, ast.Constant)]
                found += [(node.lineno, name) for name in names if name in DERIVED_FIELDS]
    return found


def strangers(root: Path = ROOT) -> list[str]:
    return [
        f"{path.relative_to(root)}:{line} writes {name} (owned by {OWNERS[name]})"
        for package in PACKAGES
        for path in sources(package, root)
        for line, name in writes(path)
        if str(path.relative_to(root)) != OWNERS[name]
    ]


def test_every_derived_field_has_one_owner():
    assert set(OWNERS) == DERIVED_FIELDS


def test_only_its_owner_writes_a_derived_field():
    assert strangers() == []


def test_the_rule_catches_an_update_an_assignment_and_a_bulk_update(tmp_path):
    module = tmp_path / "runs" / "stray.py"
    module.parent.mkdir()
    module.write_text(
        "def f(endpoint, rows, log):\n"
        "    rows.update(next_run_at=None, run_count=F('run_count') + 1)\n"
        "    endpoint.last_status = 'failed'\n"
        "    log.tls_expires_at = None\n"
        "    Endpoint.objects.bulk_update([endpoint], ['expected_at'])\n"
    )
    assert strangers(tmp_path) == [
        "runs/stray.py:2 writes next_run_at (owned by endpoints/timetable.py)",
        "runs/stray.py:2 writes run_count (owned by runs/recording.py)",
        "runs/stray.py:3 writes last_status (owned by runs/recording.py)",
        "runs/stray.py:5 writes expected_at (owned by endpoints/timetable.py)",
    ]
