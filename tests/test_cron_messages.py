"""Errors in our words (issue 14, item 12): which cron field is wrong and what it takes; a job
with neither a url nor a handler is told to give one. The same words reach every door."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from endpoints import schedule_syntax
from endpoints.jobs import apply_job
from endpoints.models import Endpoint

pytest_plugins = ["tests.api_support"]


@pytest.mark.parametrize(
    ("expression", "words"),
    [
        ("61 * * * *", "minute must be 0–59; got 61"),
        ("0 24 * * *", "hour must be 0–23; got 24"),
        ("0 0 0 * *", "day-of-month must be 1–31; got 0"),
        ("0 0 * 13 *", "month must be 1–12 or JAN–DEC; got 13"),
        ("0 0 * * 8", "day-of-week must be 0–7 or SUN–SAT; got 8"),
        ("0 9 * * FUNDAY", "day-of-week must be 0–7 or SUN–SAT; got 'FUNDAY'"),
        ("0 0 * JANUARY *", "month must be 1–12 or JAN–DEC; got 'JANUARY'"),
        ("*/0 * * * *", "the minute step must be a whole number from 1; got '/0'"),
        ("0 9-25 * * *", "hour must be 0–23; got 25"),
        ("0,61 * * * *", "minute must be 0–59; got 61"),
        ("1,,2 * * * *", "minute has an empty value in '1,,2'"),
        ("* * * * * 60", "second must be 0–59; got 60"),
        ("0 9 * * 5L", "the fields are minute 0–59, hour 0–23"),
    ],
)
def test_a_bad_cron_field_is_named_with_its_range(expression, words):
    with pytest.raises(schedule_syntax.ScheduleError) as caught:
        schedule_syntax.normalize_cron(expression)
    assert caught.value.field == "cron_expression"
    assert words in caught.value.message
    assert "not acceptable" not in caught.value.message  # croniter's words never reach a user
    assert f"[{expression}]" not in caught.value.message


@pytest.mark.parametrize(
    "expression",
    ["0 9 * * 7", "0 9 * * FRI-MON", "0 9 L * *", "0 9 * * 5#2", "0 0 15W * *",
     "0 0 * * MON-FRI/2", "0 0 1 jan,feb *", "*/61 * * * *", "0 9 ? * *", "* * * * * */15"],
)  # fmt: skip
def test_what_cron_accepts_is_still_accepted(expression):
    assert schedule_syntax.normalize_cron(expression)


def test_a_job_file_says_which_cron_field_is_wrong(db):
    with pytest.raises(ValidationError) as caught:
        apply_job({"job_name": "report", "cron_expression": "61 * * * *", "url": "https://e.x/"})
    assert caught.value.message_dict["cron_expression"] == [
        "Invalid cron expression '61 * * * *': minute must be 0–59; got 61."
    ]


def test_a_job_with_neither_url_nor_handler_is_told_to_give_one(db):
    with pytest.raises(ValidationError) as caught:
        apply_job({"job_name": "nothing-to-do", "cron_expression": "0 2 * * *"})
    assert caught.value.message_dict == {"url": ["Give a url to call, or a handler to run."]}


def test_an_endpoint_with_neither_url_nor_handler_says_so(db):
    endpoint = Endpoint(name="empty", kind=Endpoint.Kind.HTTP, url="", schedule_type="none")
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert caught.value.message_dict["url"] == ["Give a url to call, or a handler to run."]


def test_a_bad_url_still_gets_the_url_message(db):
    endpoint = Endpoint(name="ftp", url="ftp://files.example.com/", schedule_type="none")
    with pytest.raises(ValidationError) as caught:
        endpoint.full_clean()
    assert "http:// or https://" in caught.value.message_dict["url"][0]


def test_the_job_api_answers_both_in_our_words(as_editor):
    answer = as_editor.post(
        "/api/v1/scheduler/jobs",
        {"job_name": "nothing-to-do", "cron_expression": "0 2 * * *"},
        format="json",
    )
    assert answer.status_code == 400
    assert answer.json()["details"]["url"] == "Give a url to call, or a handler to run."
    answer = as_editor.post(
        "/api/v1/scheduler/jobs",
        {"job_name": "bad-cron", "cron_expression": "61 * * * *", "url": "https://e.x/"},
        format="json",
    )
    assert answer.status_code == 400
    assert "minute must be 0–59; got 61" in answer.json()["details"]["cron_expression"]
