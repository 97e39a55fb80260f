"""`manage.py qcluster`: django-q2's cluster (workers that execute runs) plus our dispatcher."""

import logging
import signal

from django import db
from django.conf import settings
from django_q.cluster import Cluster
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand

from runs.dispatcher_loop import DispatcherLoop

RETENTION_TASK = "runs.retention.prune_logs_task"

logger = logging.getLogger("runs.dispatcher")


class Command(DjangoQClusterCommand):
    help = "Start the worker: the django-q2 cluster and the precise dispatcher beside it."

    def add_arguments(self, parser) -> None:
        super().add_arguments(parser)
        parser.add_argument(
            "--no-dispatcher",
            action="store_true",
            help="Only execute queued runs (another process dispatches).",
        )

    def handle(self, *args, **options) -> None:
        settings.SECRET_KEY  # noqa: B018 — fail early, as django-q2 does, without a key
        if options["no_dispatcher"]:
            return super().handle(*args, **options)
        ensure_daily_retention()
        loop = DispatcherLoop()
        # Close inherited connections: the cluster forks its processes from this one.
        db.connections.close_all()
        cluster = Cluster()

        def stop(signum, frame) -> None:
            # Stop dispatching first (queue nothing new), then let the workers finish.
            loop.stop()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        cluster.start()
        try:
            if not options.get("run_once"):
                loop.run()
            else:
                loop.tick()
        finally:
            cluster.stop()


def ensure_daily_retention() -> None:
    """The cluster prunes logs once a day, through django-q2's own scheduler (precision is moot)."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name="cronplane: prune run logs",
        defaults={"func": RETENTION_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )
