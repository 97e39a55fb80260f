"""Writing many Logs at once, on the dispatcher's hot path (thousands of slots at one instant).

- `new_log(**values)` is `Log(**values)` without the per-field work of `Model.__init__` (a
  fifth of a dispatcher pass, profiled): the defaults are computed once and copied.
- `insert_logs(logs)` is `Log.objects.bulk_create(logs)`; on PostgreSQL through COPY, with the
  ids taken from the table's sequence first (bulk_create's INSERT … UNNEST dumps its arrays in
  Python and cost three times as much a row, profiled); on SQLite one INSERT executed for every
  row, its values prepared as for COPY.
"""

from __future__ import annotations

import functools
import json
from datetime import datetime
from typing import Any

from django.db import connections, transaction
from django.db.models import JSONField
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
    fields = log.__dict__
    fields.update(_defaults())
    for name in _FRESH_DICTS:
        fields[name] = {}
    log._state = ModelState()
    endpoint = values.pop("endpoint", None)
    if endpoint is not None:
        # What the foreign key's descriptor does to a new Log, without its router checks.
        fields["endpoint_id"] = endpoint.pk
        _ENDPOINT.set_cached_value(log, endpoint)
    for name, value in values.items():
        if name in _PLAIN:
            fields[name] = value
        else:
            setattr(log, name, value)  # a relation or a property: as __init__ would
    return log


_ENDPOINT = Log._meta.get_field("endpoint")
# Concrete fields that are neither relations nor behind a descriptor of their own.
_PLAIN = frozenset(
    field.attname for field in Log._meta.concrete_fields if not field.is_relation
) - {"pk"}


@functools.cache
def _copy_plan(alias: str) -> tuple:
    """For each column: its attname, the default new_log() gives, that default as COPY writes
    it (prepared once: JSON as its text, not an adapter psycopg dumps again for every row), the
    field's own preparation, and the empty value a JSON column is written as without it."""
    connection = connections[alias]
    plan = []
    for field in Log._meta.concrete_fields:
        default = _defaults().get(field.attname, _NONE)
        prepared = None if default is _NONE else field.get_db_prep_save(default, connection)
        empty = None
        if isinstance(field, JSONField):
            prepared = None if default in (None, _NONE) else _json_text(field, default)
            empty = "{}"
        plan.append((field.attname, default, prepared, field.get_db_prep_save, empty))
    return tuple(plan)


_NONE = object()


def _json_text(field: JSONField, value: Any) -> str:
    return json.dumps(value, cls=field.encoder)


def _row(log: Log, plan: tuple, connection, instants: dict) -> list:
    """The row's values for COPY; a value still new_log()'s default is prepared once, and so is
    each instant (the Logs of one pass share their due, queued and lease times: preparing
    five datetimes a row was a third of the insert, profiled). `instants` is the caller's."""
    values = log.__dict__
    row = []
    for attname, default, prepared, prepare, empty in plan:
        value = values[attname]
        if value is default:
            row.append(prepared)
        elif empty is not None and type(value) is dict and not value:
            row.append(empty)
        elif type(value) is datetime:
            key = (attname, value)
            if key not in instants:
                instants[key] = prepare(value, connection)
            row.append(instants[key])
        else:
            row.append(prepare(value, connection))
    return row


def insert_logs(logs: list[Log]) -> None:
    """Save these new Logs, setting their ids, in as few statements as the database allows."""
    if not logs:
        return
    connection = connections[Log.objects.db]
    if connection.vendor == "postgresql":
        _copy_logs(logs, connection)
    elif connection.vendor == "sqlite":
        _insert_many_logs(logs, connection)
    else:
        Log.objects.bulk_create(logs)
        return
    for log in logs:
        log._state.adding = False
        log._state.db = connection.alias


def _copy_logs(logs: list[Log], connection) -> None:
    table, columns = _table_and_columns(connection)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, %s)) FROM generate_series(1, %s)",
            [Log._meta.db_table, Log._meta.pk.column, len(logs)],
        )
        for log, (pk,) in zip(logs, cursor.fetchall(), strict=True):
            log.pk = pk
        plan = _copy_plan(connection.alias)
        instants: dict = {}
        rows = [_row(log, plan, connection, instants) for log in logs]
        with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)


def _insert_many_logs(logs: list[Log], connection) -> None:
    """One INSERT run for every row (executemany), the ids numbered here: in an IMMEDIATE
    transaction no other writer comes between reading the last id and inserting after it.
    (bulk_create prepares each value of each row through its compiler: half the dispatcher
    thread's time on SQLite, profiled.) Like AUTOINCREMENT, an id is never given twice."""
    table, columns = _table_and_columns(connection)
    plan = _copy_plan(connection.alias)
    pk = connection.ops.quote_name(Log._meta.pk.column)
    # No savepoint: inside the dispatcher's transaction it would cost two statements a pass.
    with transaction.atomic(using=connection.alias, savepoint=False), connection.cursor() as cursor:
        cursor.execute(
            f"SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0),"
            f" coalesce((SELECT max({pk}) FROM {table}), 0))",
            [Log._meta.db_table],
        )
        (last,) = cursor.fetchone()
        for number, log in enumerate(logs, start=last + 1):
            log.pk = number
        placeholders = ", ".join(["%s"] * len(plan))
        instants: dict = {}
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({placeholders})",
            [_row(log, plan, connection, instants) for log in logs],
        )


def _table_and_columns(connection) -> tuple[str, str]:
    quote = connection.ops.quote_name
    columns = ", ".join(quote(field.column) for field in Log._meta.concrete_fields)
    return quote(Log._meta.db_table), columns
