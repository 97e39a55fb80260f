from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from endpoints import schedule_syntax, schedules
from endpoints.schedule_syntax import ScheduleError
from endpoints.schedules import Schedule

NY = ZoneInfo("America/New_York")


def cron(expression: str, tz: str = "UTC", **window) -> Schedule:
    return Schedule(
        kind="cron", cron=schedule_syntax.normalize_cron(expression), timezone=tz, **window
    )


def local(instants: list[datetime], tz: ZoneInfo = NY) -> list[str]:
    return [i.astimezone(tz).strftime("%a %Y-%m-%d %H:%M:%S %Z") for i in instants]


def test_it_runs_weekdays_at_nine_in_new_york():
    after = datetime(2026, 1, 23, 15, 0, tzinfo=UTC)  # Friday 10:00 EST
    runs = schedules.next_runs(cron("0 9 * * MON-FRI", "America/New_York"), after, 3)
    assert local(runs) == [
        "Mon 2026-01-26 09:00:00 EST",
        "Tue 2026-01-27 09:00:00 EST",
        "Wed 2026-01-28 09:00:00 EST",
    ]
    assert runs[0] == datetime(2026, 1, 26, 14, 0, tzinfo=UTC)


def test_it_keeps_nine_oclock_wall_time_across_the_spring_change():
    after = datetime(2026, 3, 6, 15, 0, tzinfo=UTC)  # Friday
    runs = schedules.next_runs(cron("0 9 * * MON-FRI", "America/New_York"), after, 1)
    assert local(runs) == ["Mon 2026-03-09 09:00:00 EDT"]
    assert runs[0] == datetime(2026, 3, 9, 13, 0, tzinfo=UTC)


def test_it_runs_a_skipped_dst_time_once_right_after_the_gap():
    # 2026-03-08 02:30 does not exist in New York: clocks go from 01:59:59 EST to 03:00 EDT.
    after = datetime(2026, 3, 7, 12, 0, tzinfo=UTC)
    runs = schedules.next_runs(cron("30 2 * * *", "America/New_York"), after, 3)
    assert local(runs) == [
        "Sun 2026-03-08 03:00:00 EDT",
        "Mon 2026-03-09 02:30:00 EDT",
        "Tue 2026-03-10 02:30:00 EDT",
    ]
    assert runs[0] == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)


def test_it_runs_several_gap_times_as_one_run():
    after = datetime(2026, 3, 8, 6, 50, tzinfo=UTC)  # 01:50 EST
    runs = schedules.next_runs(cron("*/15 * * * *", "America/New_York"), after, 3)
    # 02:00, 02:15, 02:30, 02:45 do not exist; they and 03:00 are one run at 03:00 EDT.
    assert local(runs) == [
        "Sun 2026-03-08 03:00:00 EDT",
        "Sun 2026-03-08 03:15:00 EDT",
        "Sun 2026-03-08 03:30:00 EDT",
    ]


def test_it_runs_a_repeated_dst_time_once():
    # 2026-11-01 01:30 happens twice in New York (EDT, then EST an hour later).
    after = datetime(2026, 10, 31, 12, 0, tzinfo=UTC)
    schedule = cron("30 1 * * *", "America/New_York")
    runs = schedules.next_runs(schedule, after, 3)
    assert local(runs) == [
        "Sun 2026-11-01 01:30:00 EDT",
        "Mon 2026-11-02 01:30:00 EST",
        "Tue 2026-11-03 01:30:00 EST",
    ]
    # Asking again from inside the repeated hour does not produce the second 01:30.
    second_pass = datetime(2026, 11, 1, 6, 0, tzinfo=UTC)  # 01:00 EST, the repeat
    assert local(schedules.next_runs(schedule, second_pass, 1)) == ["Mon 2026-11-02 01:30:00 EST"]


def test_an_hourly_schedule_does_not_double_in_the_repeated_hour():
    after = datetime(2026, 11, 1, 4, 30, tzinfo=UTC)  # 00:30 EDT
    runs = schedules.next_runs(cron("0 * * * *", "America/New_York"), after, 3)
    assert local(runs) == [
        "Sun 2026-11-01 01:00:00 EDT",
        "Sun 2026-11-01 02:00:00 EST",
        "Sun 2026-11-01 03:00:00 EST",
    ]


def test_an_every_second_schedule_crosses_the_repeated_hour_without_going_back():
    inside_repeat = datetime(2026, 11, 1, 6, 0, 10, tzinfo=UTC)  # 01:00:10 EST
    runs = schedules.next_runs(cron("* * * * * *", "America/New_York"), inside_repeat, 2)
    assert local(runs) == ["Sun 2026-11-01 02:00:00 EST", "Sun 2026-11-01 02:00:01 EST"]


def test_it_supports_a_seconds_field():
    after = datetime(2026, 5, 1, 12, 0, 7, tzinfo=UTC)
    runs = schedules.next_runs(cron("* * * * * */15"), after, 4)
    assert [r.strftime("%H:%M:%S") for r in runs] == [
        "12:00:15",
        "12:00:30",
        "12:00:45",
        "12:01:00",
    ]


def test_it_supports_macros_and_names():
    after = datetime(2026, 5, 17, 12, 0, tzinfo=UTC)
    monthly = schedules.next_runs(cron("@monthly", "Europe/Paris"), after, 2)
    assert local(monthly, ZoneInfo("Europe/Paris")) == [
        "Mon 2026-06-01 00:00:00 CEST",
        "Wed 2026-07-01 00:00:00 CEST",
    ]
    assert schedule_syntax.normalize_cron("@hourly") == "0 * * * *"
    january = schedules.next_runs(cron("0 0 1 JAN *"), after, 1)
    assert january == [datetime(2027, 1, 1, tzinfo=UTC)]


def test_day_of_month_and_day_of_week_together_follow_crons_or_rule():
    # "The 13th, or any Friday" — not "Friday the 13th".
    after = datetime(2026, 2, 1, tzinfo=UTC)
    runs = schedules.next_runs(cron("0 0 13 * FRI"), after, 4)
    assert [r.strftime("%a %d") for r in runs] == ["Fri 06", "Fri 13", "Fri 20", "Fri 27"]
    runs = schedules.next_runs(cron("0 0 13 * FRI"), datetime(2026, 3, 1, tzinfo=UTC), 3)
    assert [r.strftime("%a %d") for r in runs] == ["Fri 06", "Fri 13", "Fri 20"]
    runs = schedules.next_runs(cron("0 0 13 * MON"), datetime(2026, 4, 10, tzinfo=UTC), 3)
    assert [r.strftime("%a %d") for r in runs] == ["Mon 13", "Mon 20", "Mon 27"]
    runs = schedules.next_runs(cron("0 0 13 * MON"), datetime(2026, 5, 10, tzinfo=UTC), 2)
    assert [r.strftime("%a %d") for r in runs] == ["Mon 11", "Wed 13"]


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("garbage", "has 1"),
        ("61 * * * *", "Invalid cron expression"),
        ("* * * *", "has 4"),
        ("0 0 1 1 * 2030 5", "has 7"),
        ("@reboot", "Unknown macro"),
        ("", "Enter a cron expression"),
        ("0 9 * * FUNDAY", "Invalid cron expression"),
    ],
)
def test_it_rejects_bad_cron_with_a_field_message(expression, message):
    with pytest.raises(ScheduleError) as caught:
        schedule_syntax.normalize_cron(expression)
    assert caught.value.field == "cron_expression"
    assert message in caught.value.message


def test_a_leap_day_schedule_is_valid():
    runs = schedules.next_runs(cron("0 0 29 2 *"), datetime(2026, 1, 1, tzinfo=UTC), 1)
    assert runs == [datetime(2028, 2, 29, tzinfo=UTC)]


def test_it_rejects_an_unknown_time_zone():
    with pytest.raises(ScheduleError) as caught:
        schedule_syntax.validate_timezone("Mars/Olympus_Mons")
    assert caught.value.field == "timezone"
    assert "Mars/Olympus_Mons" in caught.value.message


def test_interval_slots_are_counted_from_the_anchor():
    anchor = datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)
    schedule = Schedule(kind="interval", interval_seconds=90, anchor=anchor)
    runs = schedules.next_runs(schedule, datetime(2026, 1, 1, 0, 2, 0, tzinfo=UTC), 3)
    assert [r.strftime("%H:%M:%S") for r in runs] == ["00:03:00", "00:04:30", "00:06:00"]
    before_anchor = schedules.next_runs(schedule, datetime(2025, 12, 31, tzinfo=UTC), 1)
    assert before_anchor == [anchor]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("hourly", 3600),
        ("daily", 86400),
        ("90", 90),
        ("5m", 300),
        ("every 2 hours", 7200),
        (45, 45),
    ],
)
def test_it_parses_intervals(text, seconds):
    assert schedule_syntax.parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["0", "fortnightly", "-5", "5 parsecs", 10**9])
def test_it_rejects_bad_intervals(text):
    with pytest.raises(ScheduleError) as caught:
        schedule_syntax.parse_interval(text)
    assert caught.value.field == "interval"


def test_a_one_time_schedule_fires_once_and_never_again():
    when = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    schedule = Schedule(kind="once", run_at=when)
    assert schedules.next_runs(schedule, datetime(2026, 11, 1, tzinfo=UTC), 5) == [when]
    assert schedules.next_runs(schedule, when, 5) == []


def test_a_manual_schedule_never_fires():
    assert schedules.next_runs(Schedule(kind="none"), datetime(2026, 1, 1, tzinfo=UTC), 5) == []


def test_the_start_and_end_window_bounds_the_slots():
    schedule = cron(
        "0 * * * *",
        starts_at=datetime(2026, 1, 1, 10, 0, tzinfo=UTC),
        ends_at=datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
    )
    runs = schedules.next_runs(schedule, datetime(2026, 1, 1, tzinfo=UTC), 10)
    assert [r.hour for r in runs] == [10, 11, 12]


def test_runs_between_lists_the_slots_of_a_range():
    slots = schedules.runs_between(
        cron("*/10 * * * *"),
        datetime(2026, 1, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 1, 1, 1, 0, tzinfo=UTC),
        limit=100,
    )
    assert [s.minute for s in slots] == [10, 20, 30, 40, 50, 0]


@pytest.mark.parametrize(
    ("schedule", "words"),
    [
        (cron("0 9 * * MON-FRI"), "At 09:00, Monday through Friday"),
        (cron("* * * * * */15"), "Every 15 seconds"),
        (cron("@hourly"), "Every hour"),
        (Schedule(kind="interval", interval_seconds=300), "Every 5 minutes"),
        (Schedule(kind="interval", interval_seconds=3600), "Every hour"),
        (Schedule(kind="interval", interval_seconds=45), "Every 45 seconds"),
        (Schedule(kind="none"), "Manual only"),
    ],
)
def test_it_describes_schedules_in_words(schedule, words):
    assert schedules.describe(schedule) == words
