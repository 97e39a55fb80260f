"""`manage.py qcluster`: django-q2's cluster (workers that execute runs) plus our dispatcher.

Processes: this one is django-q2's sentinel (it forks and guards the others), and the WORKERS
worker processes it forks, each with its execution engine (runs/engine.py). The rest are
threads of the sentinel: the dispatcher loop (and the cluster's heartbeat), django-q2's pusher
(it feeds the workers from the broker, each through an inbox of its own: runs/inbox.py) and its
monitor (it acknowledges finished tasks and keeps
the failed ones: a few a second, since a task is a batch of runs). They work inside a fork guard
(runs/forkguard.py), so the sentinel never forks a worker while one of them is inside a library.
(django-q2's own `qcluster` also forks the sentinel from a parent that only waits for it, and
makes the pusher and the monitor processes: three processes more, for next to nothing.)

Stopping (SIGTERM or SIGINT, to this process alone or to every process at once, as honcho,
systemd and Kubernetes do): the other processes ignore both signals and this one stops them in
order. 1. The dispatcher finishes its pass and stops. 2. The runs it had queued are left a few
seconds to be claimed; any still queued are released for another cluster (or the next start)
to hand out at once. 3. django-q2 stops the pusher, then the workers: each worker's engine
finishes its calls in flight (each within its own deadline) and records them. 4. Nothing is
reincarnated meanwhile; the heartbeat is kept until the workers are gone, then removed.

Memory (DESIGN §9: the whole cluster under 400 MB RSS): every process forked from this one
counts, in its own RSS, each page this process had touched when it forked. So this process keeps
out of its heap what the cluster does not use: the system checks (they import every URLconf,
view, serializer and the OpenAPI schema machinery, ~16 MB) run in a throwaway child, and
`gc.freeze()` keeps the collector from rewriting the shared objects' headers in every child.
For the same reason the monitor and the pusher are threads (runs/sentinel_threads.py): as
processes they held 60-73 MB of RSS each, mostly the pages of this one. And glibc's malloc is
held to two arenas (`fewer_malloc_arenas`).
"""

from __future__ import annotations

import ctypes
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
import traceback
import uuid

from django import db
from django.conf import settings
from django.core.management.base import CommandError
from django_q.cluster import Cluster, Sentinel
from django_q.conf import Conf
from django_q.management.commands.qcluster import Command as DjangoQClusterCommand
from django_q.worker import worker

from runs import cluster, wakeup
from runs.dispatcher_loop import HEARTBEAT_EVERY, DispatcherLoop
from runs.forkguard import ForkGuard
from runs.inbox import Inboxes
from runs.results import Results
from runs.sentinel_threads import MonitorThread, PusherThread
from runs.worker_timer import WorkerTimer

RETENTION_TASK = "runs.retention.prune_logs_task"
# How long a stopping cluster leaves the runs it queued to be claimed (they are handed over at
# most 1 s before their slot) before it releases them.
HANDOFF_SECONDS = 3.0
# glibc's mallopt() parameter for the most arenas malloc keeps (malloc.h).
M_ARENA_MAX = -8

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
        fewer_malloc_arenas()
        dispatching = not options["no_dispatcher"]
        if dispatching:
            ensure_daily_retention()
            if options.get("run_once"):
                return self._run_once()
        cluster_id = uuid.uuid4()
        os.environ[cluster.ENV] = str(cluster_id)  # the workers' claims carry it
        # Close inherited connections: the cluster forks its processes from this one.
        db.connections.close_all()
        stop_event, start_event = multiprocessing.Event(), multiprocessing.Event()
        sentinel = DispatchingSentinel(stop_event, start_event, cluster_id, dispatching)

        def stop(signum, frame) -> None:
            # Stop dispatching first (queue nothing new), then let the workers finish. From a
            # thread: this one may hold the lock of the Event the guard loop is waiting on.
            def set_both() -> None:
                sentinel.stop_dispatching()
                stop_event.set()

            threading.Thread(target=set_both, daemon=True).start()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        os.register_at_fork(after_in_child=_child_signals)
        wakeup.install()  # the workers' recorders wake the dispatcher
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
    """django-q2's sentinel, run in the command's own process, with the dispatcher, the pusher
    and the monitor as threads of its own."""

    def __init__(self, stop_event, start_event, cluster_id, dispatching) -> None:
        self.dispatching = dispatching
        self.heartbeat_name = f"{socket.gethostname()}:{os.getpid()}"
        self.fork_guard = ForkGuard()
        self.dispatcher: DispatcherLoop | None = None
        self.dispatcher_thread: threading.Thread | None = None
        super().__init__(stop_event, start_event, cluster_id, start=False)
        self.task_queue = Inboxes(Conf.QUEUE_LIMIT, Conf.WORKERS, Conf.RECYCLE)  # runs/inbox.py
        self.result_queue = Results()  # runs/results.py
        self._handed_down: list = []  # a dead worker's tasks, for the one forked in its place

    def spawn_cluster(self) -> None:
        super().spawn_cluster()  # forks the workers, then starts the monitor and the pusher
        if self.dispatcher is None:
            self.dispatcher = DispatcherLoop(
                cluster_id=str(self.cluster_id),
                name=self.heartbeat_name,
                dispatching=self.dispatching,
                working=self.fork_guard.inside,
            )
            self.dispatcher.keep_heartbeat = True  # removed by stop(), once the workers are done
            self.dispatcher_thread = threading.Thread(
                target=self.dispatcher.run, name="cronplane-dispatcher", daemon=True
            )
            self.dispatcher_thread.start()

    def stop_dispatching(self, wait: float = 0) -> None:
        """Step 1 of the module docstring: the dispatcher finishes its pass and stops."""
        if self.dispatcher is not None:
            self.dispatcher.stop()
            if wait:
                self.dispatcher_thread.join(wait)

    def spawn_monitor(self) -> MonitorThread:
        thread = MonitorThread(self.result_queue, self.fork_guard)
        thread.start()
        return thread

    def spawn_pusher(self) -> PusherThread:
        thread = PusherThread(self.task_queue, self.event_out, self.broker, self.fork_guard)
        thread.start()
        return thread

    def spawn_worker(self) -> None:
        inbox, results, timer = self.task_queue.new(), self.result_queue.new(), WorkerTimer()
        process = self.spawn_process(worker, inbox, results, timer, self.timeout)
        timer.worker = process
        self.result_queue.add(results)
        self.task_queue.add(process, inbox, self._handed_down)
        self._handed_down = []

    def spawn_process(self, target, *args):
        with self.fork_guard.exclusively():  # never while a thread is inside a library
            return super().spawn_process(target, *args)

    def reincarnate(self, process) -> None:
        if process in self.pool:
            # django-q2's worker timer: -1 idle, -2 recycled, 0 gave up at its timeout.
            timer = process.timer.value
            self._handed_down = self.task_queue.remove(process, last_finished=timer <= 0)
            if timer != -2:  # a recycled worker finished its calls in flight first
                self._recover_runs_of(process)
        if self.stop_event.is_set():
            if process in self.pool:  # stopping: what has ended stays ended, and is no worker
                self.pool.remove(process)
            return
        super().reincarnate(process)

    def _recover_runs_of(self, process) -> None:
        try:
            failed = cluster.recover_worker(str(self.cluster_id), process.pid, _now())
        except db.DatabaseError as exc:  # then their lease brings them back
            logger.warning("the runs of dead worker %s: no database (%s)", process.pid, exc)
            return
        if failed:
            logger.warning("failed %d runs of dead worker %s stuck", len(failed), process.pid)

    def stop(self) -> None:
        """Steps 1-4 of the module docstring."""
        me = str(self.cluster_id)
        self.stop_dispatching(wait=10)
        beating = threading.Event()
        # No process is forked from here on, so a thread in this process is safe now.
        keeper = threading.Thread(target=self._keep_beating, args=(beating,), daemon=True)
        keeper.start()
        try:
            self._hand_off_queued(me)
            self._stop_pushing()
            super().stop()
            cluster.abandon(me, _now())
        except db.DatabaseError as exc:
            logger.warning("stopping: the database did not answer (%s)", exc)
        finally:
            beating.set()
            keeper.join(5)
            try:
                cluster.remove_heartbeat(self.heartbeat_name)
            except db.DatabaseError:
                pass
            db.connections.close_all()

    def _stop_pushing(self) -> None:
        """Sentinel.stop, less its wait for the pusher, which here is a thread of this process:
        the guard loop has ended, so a worker that dies from now on is only dropped from the
        pool (reincarnate) and its inbox closed, and the STOPs go to the live ones. The tasks
        left in their inboxes are taken before the STOP (their runs were released by
        _hand_off_queued: whichever cluster claims them first runs them; so are those of a task
        the pusher holds, waiting for room, which it drops)."""
        self.event_out.set()
        self.task_queue.stop_waiting()
        while self.pusher.is_alive():
            time.sleep(0.1)
        for process in [process for process in self.pool if not process.is_alive()]:
            self.reincarnate(process)

    def _hand_off_queued(self, me: str) -> None:
        deadline = time.monotonic() + HANDOFF_SECONDS
        while cluster.holds_queued(me) and time.monotonic() < deadline:
            time.sleep(0.1)
        released = cluster.release(me, _now())
        if released:
            logger.info("released %d queued runs for another cluster to hand out", released)

    def _keep_beating(self, done: threading.Event) -> None:
        try:
            while not done.wait(HEARTBEAT_EVERY.total_seconds()):
                cluster.touch_heartbeat(self.heartbeat_name, _now())
        except db.DatabaseError:
            pass
        finally:
            db.connections.close_all()


def fewer_malloc_arenas(arenas: int = 2) -> bool:
    """glibc gives each thread that allocates an arena of its own (up to 8 a core), and each
    arena keeps what its thread freed. A worker's threads (its task, the event loop, the
    recorder) each held ~10 MB more that way at 10,000 runs due at once: 414 MB of RSS summed
    over the cluster, 367 MB with two arenas (what MALLOC_ARENA_MAX=2 does; an operator's own
    MALLOC_ARENA_MAX is left alone). Set before the cluster forks: its processes inherit it.
    False where malloc is not glibc's."""
    if os.environ.get("MALLOC_ARENA_MAX"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def _child_signals() -> None:
    """The processes the sentinel forks ignore SIGINT and SIGTERM: a terminal's Ctrl-C reaches
    the whole group, and honcho, systemd and Kubernetes signal every process at once; the
    sentinel stops them in order. Each one ends by itself if the sentinel is killed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    parent = os.getppid()
    threading.Thread(target=_end_when_orphaned, args=(parent,), daemon=True).start()


def _end_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    from runs import engine  # a worker finishes and records its calls in flight first

    if engine.current() is not None:
        engine.current().drain()
    os._exit(0)


def _now():
    from django.utils import timezone

    return timezone.now()


def ensure_daily_retention() -> None:
    """The cluster prunes logs once a day, through django-q2's own scheduler (precision is moot)."""
    from django_q.models import Schedule

    Schedule.objects.get_or_create(
        name="cronplane: prune run logs",
        defaults={"func": RETENTION_TASK, "schedule_type": Schedule.DAILY, "repeats": -1},
    )
