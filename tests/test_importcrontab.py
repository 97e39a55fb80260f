"""manage.py importcrontab: one heartbeat per crontab line, each line rewritten to ping it."""

import subprocess
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from endpoints.models import Endpoint

CRONTAB = """\
# m h dom mon dow command
SHELL=/bin/bash
MAILTO=ops@example.com
PATH=/usr/local/bin:/usr/bin:/bin

@reboot /usr/local/bin/warm-cache.sh
@daily /usr/local/bin/backup.sh --full > /var/log/backup.log 2>&1
*/15 9-17 * * MON-FRI python3 /opt/reports/sync.py --quick

CRON_TZ=Europe/Paris
30 2 1-7 * 1 pg_dump shop > /srv/shop.sql; gzip -f /srv/shop.sql
0 */6 * * * printf 'a\\%b' | logger -t cronplane %stdin line
"""


@pytest.fixture
def crontab_file(tmp_path):
    path = tmp_path / "crontab"
    path.write_text(CRONTAB)
    return path


def importcrontab(*arguments) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("importcrontab", *[str(a) for a in arguments], stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_makes_one_heartbeat_per_job_line_with_its_schedule_and_zone(db, crontab_file):
    out, err = importcrontab(crontab_file, "--timezone", "America/New_York", "--grace", "900")
    beats = {e.name: e for e in Endpoint.objects.all()}
    assert set(beats) == {"backup.sh-full", "sync.py-quick", "pg_dump-shop", "printf"}
    assert {e.kind for e in beats.values()} == {"heartbeat"}
    assert (beats["backup.sh-full"].cron_expression, beats["backup.sh-full"].timezone) == (
        "0 0 * * *", "America/New_York",
    )  # fmt: skip
    assert beats["sync.py-quick"].cron_expression == "*/15 9-17 * * MON-FRI"
    assert (beats["pg_dump-shop"].timezone, beats["pg_dump-shop"].grace_seconds) == (
        "Europe/Paris", 900,
    )  # fmt: skip
    assert all(e.expected_at is not None and e.next_run_at is None for e in beats.values())
    assert "Made 4 heartbeat(s); skipped 1 line(s)." in err

    backup = beats["backup.sh-full"]
    url = f"http://127.0.0.1:8000/ping/{backup.uuid}"
    assert (
        "@daily /usr/local/bin/backup.sh --full > /var/log/backup.log 2>&1 && "
        f"curl -fsS -m 10 --retry 5 -o /dev/null {url}\n"
    ) in out
    assert f"curl -fsS -m 10 --retry 5 -o /dev/null {url}/start ; " in out
    # @reboot is skipped, left as it was and said why; comments and environment lines stay.
    assert "# cronplane: not watched (@reboot runs once at boot" in out
    assert "@reboot /usr/local/bin/warm-cache.sh\n" in out
    assert "MAILTO=ops@example.com\nPATH=" in out and "\nCRON_TZ=Europe/Paris\n" in out
    # A command of several parts pings after all of them; the ping goes before stdin (%).
    paris = beats["pg_dump-shop"].uuid
    assert "( pg_dump shop > /srv/shop.sql; gzip -f /srv/shop.sql ) && curl" in out
    assert str(paris) in out
    assert f"{beats['printf'].uuid} %stdin line" in out


def test_dry_run_writes_nothing_and_output_writes_the_rewritten_crontab(db, crontab_file, tmp_path):
    target = tmp_path / "crontab.new"
    out, err = importcrontab(crontab_file, "--dry-run", "--output", target)
    assert not Endpoint.objects.exists()
    assert "Would make 4 heartbeat(s)" in err and "nothing saved" in err
    assert target.read_text() == out
    # The rewritten file is still a crontab: every job line has its five fields and a command.
    for line in out.splitlines():
        if line and not line.startswith(("#", "@")) and "=" not in line.split()[0]:
            assert len(line.split(None, 5)) == 6


def test_the_start_variant_reports_the_exit_status(db, crontab_file):
    out, _ = importcrontab(crontab_file, "--start", "--dry-run")
    job = next(line for line in out.splitlines() if line.startswith("*/15"))
    assert job.startswith("*/15 9-17 * * MON-FRI curl -fsS -m 10 --retry 5 -o /dev/null http")
    assert job.endswith("/$?")


def test_the_rewritten_line_pings_on_success_only_when_run_by_a_shell(db, tmp_path, live_server):
    """The rewritten command, run by /bin/sh as cron would, reaches the ping route."""
    path = tmp_path / "crontab"
    path.write_text("* * * * * true\n0 0 * * * false\n")
    out, _ = importcrontab(path)
    ok_line, failing_line = [line for line in out.splitlines() if not line.startswith("#")]
    base = "http://127.0.0.1:8000"
    for line in (ok_line, failing_line):
        command = line.split(None, 5)[5].replace(base, live_server.url)
        subprocess.run(["/bin/sh", "-c", command], timeout=30, check=False)
    ok, failing = Endpoint.objects.order_by("id")
    assert ok.logs.get().state == "success"
    assert not failing.logs.exists()  # `false && curl …`: nothing pinged; missed after grace


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("0 2 * * /backup.sh", "line 3: a job line is five schedule fields"),
        ("61 2 * * * /backup.sh", "line 3: Invalid cron expression '61 2 * * *': minute"),
        ("@fortnightly /backup.sh", "line 3: Unknown macro '@fortnightly'"),
        ("@daily", "line 3: the schedule has no command after it"),
        ("CRON_TZ=Mars/Olympus", "line 3: Unknown time zone 'Mars/Olympus'"),
    ],
)
def test_a_line_it_cannot_read_refuses_the_whole_file(db, tmp_path, line, why):
    path = tmp_path / "crontab"
    path.write_text(f"# fine so far\n@hourly /bin/true\n{line}\n*/5 * * * * /bin/true\n")
    with pytest.raises(CommandError) as refused:
        importcrontab(path)
    assert why in str(refused.value)
    assert "\n" not in str(refused.value)
    assert not Endpoint.objects.exists()


def test_no_argument_of_a_command_is_kept_where_viewers_see_it(db, tmp_path):
    path = tmp_path / "crontab"
    path.write_text("@daily /usr/bin/mysqldump -uroot -pS3cret --password=S3cret shop\n")
    importcrontab(path)
    (dump,) = Endpoint.objects.all()
    assert (dump.name, dump.description) == ("mysqldump-shop", "From crontab line 1 (mysqldump)")


def test_names_stay_unique_against_existing_jobs(db, tmp_path, make_endpoint):
    make_endpoint(name="backup.sh")
    path = tmp_path / "crontab"
    path.write_text("@daily /usr/bin/backup.sh\n@hourly /usr/bin/backup.sh\n")
    importcrontab(path)
    assert set(Endpoint.objects.values_list("name", flat=True)) == {
        "backup.sh", "backup.sh-2", "backup.sh-3",
    }  # fmt: skip
