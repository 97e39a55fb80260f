"""The error classes are named once, in calls/errors.py: the Log can store every class a call
writes, and nothing else."""

from __future__ import annotations

from calls.errors import RETRYABLE, ErrorClass
from calls.spec import Outcome
from runs.models import Log


def test_the_log_stores_exactly_the_error_classes_calls_writes():
    assert {choice.value for choice in Log.ErrorClass} == {name.value for name in ErrorClass}


def test_a_class_stored_on_the_log_is_the_same_name_calls_gives_it():
    assert all(Log.ErrorClass[name.name] == name for name in ErrorClass)


def test_network_trouble_is_retried_and_a_refused_or_invalid_call_is_not():
    retried = {name for name in ErrorClass if Outcome(ok=False, error_class=name).retryable}
    assert retried == RETRYABLE == {"timeout", "connection", "dns", "tls", "stuck"}
