"""`manage.py qcluster`: django-q2's cluster (workers that execute runs) plus our dispatcher.

Processes: this one is django-q2's sentinel (it forks and guards the others); the pusher,
which feeds the workers from the broker, also runs the dispatcher loop in a thread; then
django-q2's monitor and the WORKERS worker processes. (django-q2's own `qcluster` forks the
sentinel from a parent that only waits for it: one process more, for nothing.)

Memory (DESIGN §9: the whole cluster under 400 MB RSS): every process forked from this one
counts, in its own RSS, each page this process had touched when it forked. So this process keeps
out of its heap what the cluster does not use: the system checks (they import every URLconf,
view, serializer and the OpenAPI schema machinery, ~16 MB) run in a throwaway child, and
`gc.freeze()` keeps the collector from rewriting the shared objects' headers in every child.
"""

import gc
import logging
import multiprocessing
import os
import signal
import sys
import threading
import traceback
import uuid

from django import db
from django.conf import settings
from django.core.management.base import CommandError
from django_q.cluster import Cluster, Sentinel
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand
from django_q.pusher import pusher

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

    def check(self, *args, **kwargs) -> None:
        """Django's system checks, run in a forked child so that what they import (the URLconf,
        the dashboard, the API, DRF, drf-spectacular) never enters the cluster's processes."""
        if not hasattr(os, "fork"):
            return super().check(*args, **kwargs)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover — the child's outcome is its exit status
            code = 0
            try:
                super().check(*args, **kwargs)
            except CommandError as exc:
                self.stderr.write(str(exc))
                code = 1
            except BaseException:
                traceback.print_exc()
                code = 2
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise CommandError("System checks failed (above); the cluster was not started.")

    def handle(self, *args, **options) -> None:
        settings.SECRET_KEY  # noqa: B018 — fail early, as django-q2 does, without a key
        if options["no_dispatcher"]:
            return super().handle(*args, **options)
        ensure_daily_retention()
        if options.get("run_once"):
            return self._run_once()
        # Close inherited connections: the cluster forks its processes from this one.
        db.connections.close_all()
        stop_event, start_event, dispatch_stop = (multiprocessing.Event() for _ in range(3))
        sentinel = DispatchingSentinel(stop_event, start_event, uuid.uuid4(), dispatch_stop)

        def stop(signum, frame) -> None:
            # Stop dispatching first (queue nothing new), then let the workers finish. From a
            # thread: this one may hold the lock of the Event the guard loop is waiting on.
            def set_both() -> None:
                dispatch_stop.set()
                stop_event.set()

            threading.Thread(target=set_both, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        os.register_at_fork(after_in_child=_child_signals)
        gc.collect()
        gc.freeze()  # what exists now is shared with the forked processes: leave it unscanned
        sentinel.start()  # returns once stopped and every process it started has ended

    def _run_once(self) -> None:
        loop = DispatcherLoop()
        db.connections.close_all()
        cluster = Cluster()
        cluster.start()
        try:
            loop.tick()
        finally:
            cluster.stop()


class DispatchingSentinel(Sentinel):
    """django-q2's sentinel, run in the command's own process, whose pusher dispatches too."""

    def __init__(self, stop_event, start_event, cluster_id, dispatch_stop) -> None:
        self.dispatch_stop = dispatch_stop
        super().__init__(stop_event, start_event, cluster_id, start=False)

    def spawn_pusher(self):
        return self.spawn_process(
            push_and_dispatch,
            self.task_queue,
            self.event_out,
            self.broker,
            self.dispatch_stop,
            os.getpid(),
        )


def push_and_dispatch(task_queue, event_out, broker, dispatch_stop, sentinel_pid: int) -> None:
    """The pusher process: django-q2's pusher, and the dispatcher loop in a thread beside it.
    (This process never forks, so a second thread in it is safe.)"""
    loop = DispatcherLoop()
    dispatching = threading.Thread(target=loop.run, name="cronplane-dispatcher")
    dispatching.start()

    def watch() -> None:
        # Dispatching stops on the sentinel's word, or when the sentinel is gone (kill -9).
        while not dispatch_stop.wait(1):
            if os.getppid() != sentinel_pid:
                event_out.set()  # and the pusher with it
                break
        loop.stop()

    threading.Thread(target=watch, name="cronplane-dispatcher-stop", daemon=True).start()
    try:
        pusher(task_queue, event_out, broker)
    finally:
        loop.stop()
        dispatching.join()


def _child_signals() -> None:
    """What django-q2's sentinel gives the processes it forks: SIGINT ignored (a terminal's Ctrl-C
    reaches the whole group; the sentinel stops them in order), SIGTERM the default."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def ensure_daily_retention() -> None:
    """The cluster prunes logs once a day, through django-q2's own scheduler (precision is moot)."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name="cronplane: prune run logs",
        defaults={"func": RETENTION_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )
