"""Writing many Logs at once, on the dispatcher's hot path (thousands of slots at one instant).

- `new_log(**values)` is `Log(**values)` without the per-field work of `Model.__init__` (a
  fifth of a dispatcher pass, profiled): the defaults are computed once and copied.
- `insert_logs(logs)` is `Log.objects.bulk_create(logs)`; on PostgreSQL through COPY, with the
  ids taken from the table's sequence first (bulk_create's INSERT … UNNEST dumps its arrays in
  Python and cost three times as much a row, profiled).
"""

from __future__ import annotations

import functools
from typing import Any

from django.db import connections
from django.db.models.base import ModelState

from runs.models import Log

# JSON fields whose default is a fresh dict: each Log gets its own, never a shared one.
_FRESH_DICTS = ("request", "response_headers")


@functools.cache
def _defaults() -> dict[str, Any]:
    values = dict(Log().__dict__)
    del values["_state"]
    return values


def new_log(**values: Any) -> Log:
    """A new, unsaved Log: the same as `Log(**values)`, at a fraction of its cost."""
    log = Log.__new__(Log)
    log.__dict__.update(_defaults())
    for name in _FRESH_DICTS:
        log.__dict__[name] = {}
    log._state = ModelState()
    for name, value in values.items():
        setattr(log, name, value)  # `endpoint=` goes through the descriptor, as in __init__
    return log


@functools.cache
def _prepared_defaults(alias: str) -> dict[str, Any]:
    connection = connections[alias]
    return {
        field.attname: field.get_db_prep_save(_defaults()[field.attname], connection)
        for field in Log._meta.concrete_fields
        if field.attname in _defaults()
    }


def _row(log: Log, fields, connection) -> list:
    """The row's values for the database; a value still new_log()'s default is prepared once."""
    defaults, prepared, values = _defaults(), _prepared_defaults(connection.alias), log.__dict__
    return [
        prepared[field.attname]
        if values[field.attname] is defaults.get(field.attname, values)
        else field.get_db_prep_save(values[field.attname], connection)
        for field in fields
    ]


def insert_logs(logs: list[Log]) -> None:
    """Save these new Logs, setting their ids, in as few statements as the database allows."""
    if not logs:
        return
    connection = connections[Log.objects.db]
    if connection.vendor != "postgresql":
        Log.objects.bulk_create(logs)
        return
    quote = connection.ops.quote_name
    table = Log._meta.db_table
    fields = Log._meta.concrete_fields
    columns = ", ".join(quote(field.column) for field in fields)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [table, Log._meta.pk.column, len(logs)],
        )
        for log, (pk,) in zip(logs, cursor.fetchall(), strict=True):
            log.pk = pk
        rows = [_row(log, fields, connection) for log in logs]
        with cursor.cursor.copy(f"COPY {quote(table)} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    for log in logs:
        log._state.adding = False
        log._state.db = connection.alias
