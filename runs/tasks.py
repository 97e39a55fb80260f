"""Functions the django-q2 cluster runs."""

from runs import batch, executor


def run_log(log_id: int) -> str | None:
    """Execute one queued Log. Re-delivery of a Log that already ran is a no-op."""
    log = executor.execute(log_id)
    return log.state if log else None


def run_batch(log_ids: list[int]) -> dict[str, int]:
    """Execute queued Logs together (runs/batch.py). Re-delivery runs none of them twice."""
    return batch.run_batch(log_ids)
