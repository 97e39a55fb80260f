"""A job's flow limits as written (`flow_key`, `flow_parallelism`, `flow_rate`): parsed, checked
and combined. What enforces them is `runs/flow.py`.

A rate "N/period" means: at most N runs of the key start in any window of one period. Up to N
may start at once (the burst is N); the next starts when the oldest of the last N is a period
old. "10/s" therefore never puts more than 10 starts in any second, and "600/min" may start 600
at the top of a minute and then none until the next.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KEY_PATTERN = r"^[A-Za-z0-9\-_.:]+$"
KEY_MESSAGE = "Use letters, digits and - _ . : only (no spaces)."
MAX_PARALLELISM = 10_000
MAX_RATE_COUNT = 100_000
PERIODS = {"s": 1, "sec": 1, "second": 1, "min": 60, "minute": 60, "h": 3600, "hour": 3600}
_RATE_RE = re.compile(r"^\s*(\d{1,9})\s*/\s*([a-z]+)\s*$")


@dataclass(frozen=True, order=True)
class Rate:
    count: int
    period_seconds: int

    def __str__(self) -> str:
        unit = {1: "s", 60: "min", 3600: "h"}[self.period_seconds]
        return f"{self.count}/{unit}"

    def covers(self, other: Rate) -> bool:
        """Whether holding this rate also holds `other` (fewer starts over a longer window)."""
        return self.count <= other.count and self.period_seconds >= other.period_seconds


class RateError(ValueError):
    pass


def parse_rate(text: str) -> Rate:
    """'10/s', '600/min', '100/h' → Rate; anything else raises RateError saying what to write."""
    match = _RATE_RE.match(str(text).lower())
    if not match or match.group(2) not in PERIODS:
        raise RateError('Write a rate as a count per s, min or h, e.g. "10/s" or "600/min".')
    count = int(match.group(1))
    if not 1 <= count <= MAX_RATE_COUNT:
        raise RateError(f"The count must be between 1 and {MAX_RATE_COUNT}.")
    return Rate(count, PERIODS[match.group(2)])


@dataclass(frozen=True)
class Limits:
    """The limits a key holds: the strictest parallelism of the jobs sharing it, and every rate
    that no other of theirs already covers (so each job's own rate holds)."""

    parallelism: int | None = None
    rates: tuple[Rate, ...] = ()

    @classmethod
    def strictest(cls, pairs: list[tuple[int | None, str]]) -> Limits:
        """From each job's (flow_parallelism, flow_rate)."""
        counts = [parallelism for parallelism, _ in pairs if parallelism]
        rates = set()
        for _, text in pairs:
            try:
                if text:
                    rates.add(parse_rate(text))
            except RateError:
                continue  # refused on save; a row written around validation limits nothing
        kept = tuple(
            sorted(rate for rate in rates if not any(o != rate and o.covers(rate) for o in rates))
        )
        return cls(min(counts) if counts else None, kept)

    def __str__(self) -> str:
        parts = [f"{self.parallelism} at once"] if self.parallelism else []
        parts += [str(rate) for rate in self.rates]
        return ", ".join(parts) or "no limit"
