"""Tasks a test enqueues to a real cluster, imported by its workers."""

from __future__ import annotations

import time
from pathlib import Path

from django_q.signals import post_execute_in_worker


def hold_the_timer_lock(marker: str, seconds: float) -> None:
    """Once this task returns, its worker holds its timer lock for `seconds` (django-q2 sends
    post_execute_in_worker inside it), and `marker` says so; only the first time (a worker
    killed inside the lock hands the task down to the next)."""
    if Path(marker).exists():
        return

    def hold(sender, **kwargs) -> None:
        post_execute_in_worker.disconnect(hold)
        Path(marker).write_text("inside")
        time.sleep(seconds)

    post_execute_in_worker.connect(hold, weak=False)
