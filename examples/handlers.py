"""Example handlers: the ones the README and the API contracts name, doing something real.

- `generateWeeklyExpiryReport` (the Nightly Scheduler contract's example job): the week of runs
  before the run's instant — runs by state, the jobs that failed most, and the TLS certificates
  of targets that expire within `days` (payload, default 30).
- `billing:check-renewals` (the scheduled-actions contract's and the README's example): what
  needs renewing within `days` (payload, default SCHEDULER_TLS_WARNING_DAYS): jobs whose schedule
  window ends, jobs about to use up their maximum number of runs, and targets' TLS certificates.

Both only read, so a dry run does the same and says so. They are registered while
CRONPLANE_EXAMPLES is on (the default); set it to false to keep the handler list your own.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Q
from django.utils import timezone

from endpoints.models import Endpoint
from endpoints.registry import handler
from runs.models import Log

TOP_FAILING = 5
REPORT_DAYS = 7


def weekly_expiry_report(payload: dict[str, Any], *, dry_run: bool, log) -> dict[str, Any]:
    """Summarise the 7 days before the run's instant (its slot, or as-of instant)."""
    until = _instant_of(log)
    since = until - timedelta(days=REPORT_DAYS)
    runs = Log.objects.filter(dry_run=False, finished_at__gte=since, finished_at__lt=until)
    by_state = dict(runs.values_list("state").annotate(n=Count("id")).order_by("state"))
    failing = (
        runs.filter(state=Log.State.FAILED)
        .values("endpoint__name")
        .annotate(failed=Count("id"))
        .order_by("-failed", "endpoint__name")[:TOP_FAILING]
    )
    days = _days(payload, 30)
    return {
        "period_from": _iso(since),
        "period_to": _iso(until),
        "jobs_checked": runs.values("endpoint_id").distinct().count(),
        "runs": sum(by_state.values()),
        "succeeded": by_state.get(Log.State.SUCCESS, 0),
        "failed": by_state.get(Log.State.FAILED, 0),
        "by_state": by_state,
        "most_failing": [{"job_name": r["endpoint__name"], "failed": r["failed"]} for r in failing],
        "certificates_expiring": _certificates(until, days),
        "dry_run": dry_run,
    }


def check_renewals(payload: dict[str, Any], *, dry_run: bool, log) -> dict[str, Any]:
    """What ends within `days` of the run's instant and needs renewing."""
    now = _instant_of(log)
    days = _days(payload, settings.SCHEDULER_TLS_WARNING_DAYS)
    horizon = now + timedelta(days=days)
    checked = Endpoint.objects.filter(
        Q(ends_at__isnull=False) | Q(max_runs__isnull=False) | Q(tls_expires_at__isnull=False)
    )
    windows = [
        {"job_name": e.name, "ends_at": _iso(e.ends_at)}
        for e in checked.filter(enabled=True, ends_at__gt=now, ends_at__lte=horizon)
    ]
    runs_left = [
        {"job_name": e.name, "runs_left": max(0, e.max_runs - e.run_count)}
        for e in checked.filter(enabled=True, max_runs__isnull=False)
        if e.max_runs - e.run_count <= 1
    ]
    return {
        "renewals_checked": checked.count(),
        "within_days": days,
        "schedule_windows_ending": windows,
        "runs_running_out": runs_left,
        "certificates_expiring": _certificates(now, days),
        "dry_run": dry_run or bool(payload.get("dry")),
    }


def _certificates(now: datetime, days: int) -> list[dict[str, Any]]:
    expiring = Endpoint.objects.filter(tls_expires_at__lte=now + timedelta(days=days))
    return [
        {"job_name": name, "expires_at": _iso(expires), "expired": expires <= now}
        for name, expires in expiring.order_by("tls_expires_at").values_list(
            "name", "tls_expires_at"
        )
    ]


def _instant_of(log) -> datetime:
    instant = getattr(log, "scheduled_at", None)
    return instant if isinstance(instant, datetime) else timezone.now()


def _days(payload: dict[str, Any], default: int) -> int:
    days = payload.get("days", default)
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= 3660:
        raise ValueError("payload.days must be a whole number of days from 0 to 3660")
    return days


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


EXAMPLES = {
    "generateWeeklyExpiryReport": weekly_expiry_report,
    "billing:check-renewals": check_renewals,
}


def register() -> None:
    for name, fn in EXAMPLES.items():
        handler(name)(fn)


if settings.CRONPLANE_EXAMPLES:
    register()
