"""Functions the django-q2 cluster runs."""

from runs import executor


def run_log(log_id: int) -> str | None:
    """Execute one queued Log. Re-delivery of a Log that already ran is a no-op."""
    log = executor.execute(log_id)
    return log.state if log else None
