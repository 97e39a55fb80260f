"""Reading a crontab into heartbeats, and rewriting its lines to ping them (`importcrontab`).

A user crontab (crontab(5), as cronie and Vixie cron read it):

- blank lines and `#` comments are kept as they are;
- `NAME=value` lines set the environment; `CRON_TZ=` (cronie) and `TZ=` set the time zone of
  the lines after them, so they set the heartbeats' zone too;
- `@reboot` has no schedule to watch: it is skipped (kept unchanged, reported), not refused;
- every other line is five cron fields (or `@daily`, `@hourly`…) and a command. In the command
  an unescaped `%` starts the job's standard input, so the ping goes before it.

Any line that is none of these refuses the whole file, with its number and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from endpoints import schedule_syntax

ENV_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$")
CURL = "curl -fsS -m 10 --retry 5 -o /dev/null"
MAX_NAME = 60


class CrontabError(ValueError):
    def __init__(self, number: int, why: str) -> None:
        super().__init__(f"line {number}: {why}")
        self.number = number


@dataclass
class Line:
    number: int
    text: str
    cron: str = ""  # a job line's schedule (its fields, or the macro), as written
    command: str = ""
    timezone: str = ""
    skipped: str = ""  # why a line that looks like a job is not watched

    @property
    def is_job(self) -> bool:
        return bool(self.cron) and not self.skipped


@dataclass
class Crontab:
    lines: list[Line] = field(default_factory=list)

    @property
    def jobs(self) -> list[Line]:
        return [line for line in self.lines if line.is_job]


def parse(text: str, *, timezone: str) -> Crontab:
    """Read a crontab; raise CrontabError on the first line that cannot be read."""
    crontab, zone = Crontab(), timezone
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        line = Line(number, raw)
        crontab.lines.append(line)
        if not stripped or stripped.startswith("#"):
            continue
        if env := ENV_RE.match(raw):
            if env.group(1) in ("CRON_TZ", "TZ"):
                zone = _zone(env.group(2).strip().strip("'\""), number)
            continue
        line.cron, line.command = _split(stripped, number)
        line.timezone = zone
        if line.cron == "@reboot":
            line.skipped = "@reboot runs once at boot: there is no schedule to watch"
    return crontab


def _zone(name: str, number: int) -> str:
    try:
        schedule_syntax.validate_timezone(name)
    except schedule_syntax.ScheduleError as exc:
        raise CrontabError(number, exc.message) from None
    return name


def _split(text: str, number: int) -> tuple[str, str]:
    if text.startswith("@"):
        macro, _, command = text.partition(" ")
        if macro != "@reboot":
            _cron(macro, number)
        return macro, _command(command, number)
    fields = text.split(None, 5)
    if len(fields) < 6:
        raise CrontabError(
            number,
            "a job line is five schedule fields (minute hour day-of-month month day-of-week) "
            f"and a command; this one has {len(fields)} part(s)",
        )
    cron = " ".join(fields[:5])
    _cron(cron, number)
    return cron, _command(fields[5], number)


def _cron(expression: str, number: int) -> str:
    try:
        return schedule_syntax.normalize_cron(expression)
    except schedule_syntax.ScheduleError as exc:
        raise CrontabError(number, exc.message) from None


def _command(command: str, number: int) -> str:
    if not command.strip():
        raise CrontabError(number, "the schedule has no command after it")
    return command.strip()


def name_for(command: str, taken: set[str]) -> str:
    """A job name from a command: '/usr/local/bin/backup.sh --full > /dev/null' →
    'backup.sh-full', unique against `taken` (then -2, -3…). Short options and `name=value`
    words are left out: a command line may carry a password (`mysqldump -pS3cret`)."""
    words: list[str] = []
    for word in _before_stdin(command).split():
        if _SHELL_SYNTAX.match(word) or len(words) == 3:
            break
        if "=" in word or (word.startswith("-") and not word.startswith("--")):
            continue
        word = word.rstrip("/").rsplit("/", 1)[-1].lstrip("-")
        if words or word not in _INTERPRETERS:
            words.append(word)
    slug = re.sub(r"[^A-Za-z0-9_.:]+", "-", "-".join(words)).strip("-.")
    slug = (slug or "cron-job")[:MAX_NAME]
    name, count = slug, 1
    while name in taken:
        count += 1
        name = f"{slug[: MAX_NAME - len(str(count)) - 1]}-{count}"
    taken.add(name)
    return name


_INTERPRETERS = {"sh", "bash", "python", "python3", "perl", "php", "ruby", "node", "nice", "ionice"}
# Where the program and its arguments end: an operator, a redirection, a variable or quote.
_SHELL_SYNTAX = re.compile(r"^(\d*[<>]|[|&;()$`'\"]|\w+=)")


def program_of(command: str) -> str:
    """The program a command runs ('backup.sh'), for a description that holds no argument."""
    for word in _before_stdin(command).split():
        if _SHELL_SYNTAX.match(word):
            break
        name = word.rstrip("/").rsplit("/", 1)[-1]
        if name not in _INTERPRETERS:
            return name
    return "a command"


def _stdin_at(command: str) -> int:
    """Where an unescaped % starts the job's standard input (crontab(5)), or the end."""
    escaped = False
    for index, char in enumerate(command):
        if char == "%" and not escaped:
            return index
        escaped = char == "\\" and not escaped
    return len(command)


def _before_stdin(command: str) -> str:
    return command[: _stdin_at(command)]


def rewritten(line: Line, url: str, *, start: bool = False) -> str:
    """The job line pinging `url` when its command succeeds (healthchecks' documented form);
    with `start`, a /start before it and the exit status after ( …/$? )."""
    cut = _stdin_at(line.command)
    command, stdin = line.command[:cut].rstrip(), line.command[cut:]
    if re.search(r"(;|\|\||(?<![&>])&(?![&>]))", command):
        command = f"( {command} )"  # the ping must follow the whole command, not its last part
    if start:
        body = f"{CURL} {url}/start ; {command} ; {CURL} {url}/$?"
    else:
        body = f"{command} && {CURL} {url}"
    return f"{line.cron} {body}" + (f" {stdin}" if stdin else "")
