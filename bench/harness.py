"""What every benchmark shares: a throwaway database, the target and cluster processes, figures.

A scenario runs in its own process (one Django setup per database): `Environment` creates and
migrates `bench_<scenario>` (PostgreSQL) or /tmp/bench_<scenario>.sqlite3, points this process at
it, and starts `manage.py qcluster` (ours, or django-q2's alone for the baseline) against it.
"""

from __future__ import annotations

import atexit
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.request import Request, urlopen

import psutil

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
PG_ADMIN = "postgres://postgres@127.0.0.1:5432/postgres"
REDIS_DB = 14
REDIS = f"redis://127.0.0.1:6379/{REDIS_DB}"
sys.path.insert(0, str(ROOT))


class Environment:
    """A fresh, migrated database (and Redis db) shared by this process and its clusters."""

    def __init__(self, name: str, db: str, redis: bool, workers: int | None = None) -> None:
        self.name = f"bench_{name}"
        self.db = db
        if db == "postgres":
            self.url = PG_ADMIN.rsplit("/", 1)[0] + "/" + self.name
        else:
            self.url = f"sqlite:////tmp/{self.name}.sqlite3"
        self.env = dict(
            os.environ,
            DATABASE_URL=self.url,
            SECRET_KEY=secrets.token_urlsafe(40),
            SCHEDULER_ALLOWED_NETWORKS="127.0.0.0/8",
            LOG_LEVEL="WARNING",
            PYTHONUNBUFFERED="1",
            DJANGO_SETTINGS_MODULE="scheduler_site.settings",
        )
        self.env.pop("REDIS_URL", None)
        if redis:
            self.env["REDIS_URL"] = REDIS
        if workers:
            self.env["WORKERS"] = str(workers)
        self.clusters: list[subprocess.Popen] = []

    def __enter__(self) -> Environment:
        if self.db == "postgres":
            psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            psql(f'CREATE DATABASE "{self.name}"')
        else:
            for suffix in ("", "-wal", "-shm"):
                Path(f"/tmp/{self.name}.sqlite3{suffix}").unlink(missing_ok=True)
        if "REDIS_URL" in self.env:
            subprocess.run(
                ["redis-cli", "-n", str(REDIS_DB), "FLUSHDB"], check=True, capture_output=True
            )
        self.manage("migrate", "--noinput", "-v0", check=True)
        os.environ.update({k: v for k, v in self.env.items() if k != "PYTHONUNBUFFERED"})
        if "REDIS_URL" not in self.env:
            os.environ.pop("REDIS_URL", None)
        import django

        django.setup()
        return self

    def __exit__(self, *exc) -> None:
        for cluster in self.clusters:
            if cluster.poll() is None:
                os.killpg(cluster.pid, signal.SIGKILL)
        from django.db import connections

        connections.close_all()
        if self.db == "postgres" and not os.environ.get("BENCH_KEEP_DB"):
            psql(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')

    def manage(self, *args: str, check: bool = False) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=check,
            capture_output=True, text=True,
        )  # fmt: skip

    def start_cluster(self, *, baseline: bool = False) -> subprocess.Popen:
        """`manage.py qcluster` (ours), or for the baseline django-q2's own `qcluster` command,
        untouched (ours shadows its name): its cluster and scheduler, as a Django user runs it."""
        args = [sys.executable, "manage.py", "qcluster"]
        if baseline:
            args = [sys.executable, "-c", DJANGO_Q2_QCLUSTER]
        # One log per cluster (a drill starts several): _cluster.log, _cluster_1.log, …
        index = f"_{len(self.clusters)}" if self.clusters else ""
        log = open(RESULTS / f"{self.name}_cluster{index}.log", "w")  # noqa: SIM115 — child's
        cluster = subprocess.Popen(
            args, cwd=ROOT, env=self.env, start_new_session=True, stdout=log, stderr=log
        )
        self.clusters.append(cluster)
        return cluster

    def stop_cluster(self, cluster: subprocess.Popen, timeout: float = 60) -> int | None:
        cluster.send_signal(signal.SIGTERM)
        try:
            return cluster.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            return None


DJANGO_Q2_QCLUSTER = """
import django
django.setup()
from django_q.management.commands.qcluster import Command
Command().run_from_argv(["manage.py", "qcluster"])
"""


def psql(sql: str) -> None:
    subprocess.run(["psql", PG_ADMIN, "-qc", sql], check=True, capture_output=True)


class Target:
    """bench/target.py in its own process on a free port."""

    def __init__(self, delay_ms: float = 0) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "target.py"), "--port", str(self.port),
             "--delay-ms", str(delay_ms)],
            start_new_session=True,
        )  # fmt: skip
        # Gone with this process even when a scenario fails (it holds run.py's output pipe).
        atexit.register(self._kill)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def arrivals(self) -> list[tuple[str, float]]:
        with urlopen(self.url("/__arrivals"), timeout=30) as response:
            return [tuple(row) for row in json.load(response)]

    def keyed_arrivals(self) -> dict[str, float]:
        """The first arrival of each Idempotency-Key (a slot's retries share theirs)."""
        first: dict[str, float] = {}
        with urlopen(self.url("/__arrivals?keys=1"), timeout=30) as response:
            for _path, at, key in json.load(response):
                if key and key not in first:
                    first[key] = at
        return first

    def hangups(self) -> list[tuple[str, str, float, float | None]]:
        """Hostile requests: (path, key, arrived, when the client hung up or None)."""
        with urlopen(self.url("/__hangups"), timeout=30) as response:
            return [tuple(row) for row in json.load(response)]

    def reset(self) -> None:
        urlopen(Request(self.url("/__reset"), method="POST"), timeout=10).close()

    def ceiling(self) -> int:
        """Requests/s a tight aiohttp client loop (32 keep-alive connections) gets from it."""
        return client_loop(self.port, 32, 2)["requests_per_s"]

    def close(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)

    def _kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()


def client_loop(port: int, connections: int, seconds: float, cpu: int | None = None) -> dict:
    """bench/target.py --ceiling: a tight aiohttp client loop in its own process."""
    args = [sys.executable, str(ROOT / "bench" / "target.py"), "--ceiling", "--port", str(port),
            "--connections", str(connections), "--seconds", str(seconds)]  # fmt: skip
    if cpu is not None:
        args += ["--cpu", str(cpu)]
    out = subprocess.run(args, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def measure_ceilings(seconds: float = 5.0) -> dict:
    """The machine's own limits, measured now (DESIGN §9: printed beside every table).

    target: bench/target.py pinned to one core, loaded by a tight aiohttp client loop (32
    keep-alive connections) pinned to another; requests/s it got, and the target's CPU per
    request (so its one-core limit, 1000 / that). client: one aiohttp process, 256 concurrent
    keep-alive requests, on one core: requests/s and its CPU per request — what one execution-
    engine process could send at most.
    """
    cpus = sorted(os.sched_getaffinity(0))
    target_cpu, client_cpu = cpus[0], cpus[-1]
    figures: dict = {"cpus": len(cpus), "seconds": seconds}
    for name, connections in (("target", 32), ("client", 256)):
        target = Target(0)
        process = psutil.Process(target.process.pid)
        process.cpu_affinity([target_cpu])
        client_loop(target.port, connections, 0.5, client_cpu)  # warm up (imports, connections)
        before = process.cpu_times()
        started = time.monotonic()
        loop = client_loop(target.port, connections, seconds, client_cpu)
        elapsed = time.monotonic() - started
        after = process.cpu_times()
        target.close()
        used = (after.user + after.system) - (before.user + before.system)
        # The client's own window is `seconds`; the target's CPU is over the process's lifetime.
        served = loop["requests"] or 1
        row = {
            "requests_per_s": loop["requests_per_s"],
            "connections": connections,
            "client_cpu_ms_per_request": loop["client_cpu_ms_per_request"],
            "client_cpu_cores": loop["client_cpu_cores"],
            "target_cpu_ms_per_request": round(used * 1000 / served, 4),
            "target_cpu_cores": round(used / elapsed, 2),
        }
        if row["target_cpu_ms_per_request"]:
            row["target_one_core_rps"] = round(1000 / row["target_cpu_ms_per_request"])
        figures[name] = row
    figures["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return figures


def code_version() -> dict:
    """The commit measured, and the files that differed from it (the tree may be mid-edit)."""

    def git(*args: str) -> str:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True)
        return out.stdout.rstrip("\n")

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {"commit": git("rev-parse", "--short", "HEAD"), "dirty": dirty}


def describe_ceilings(ceilings: dict | None) -> str:
    if not ceilings:
        return "ceilings: not measured"
    t, c = ceilings["target"], ceilings["client"]
    return (
        f"ceilings (same run, {ceilings['seconds']:g} s each): target alone "
        f"{t['requests_per_s']:,} req/s from a tight aiohttp loop ({t['connections']} conns; "
        f"target {t['target_cpu_ms_per_request']:.3f} ms CPU/req → "
        f"{t.get('target_one_core_rps', 0):,} req/s on one core) · aiohttp client alone "
        f"{c['requests_per_s']:,} req/s at {c['connections']} concurrent, "
        f"{c['client_cpu_ms_per_request']:.3f} ms CPU/req ({c['client_cpu_cores']:.2f} cores)"
    )


# --- endpoints, as users make them ---------------------------------------------------------------

JOBS = ("realistic", "minimal")
BEARER = "Bearer bench-" + "0123456789abcdef" * 3


def job_object(name: str, url: str, cron: str, timeout: float | None = None, **more) -> dict:
    """A job as a user writes it in a job file: POST, a JSON body, JSON and Bearer headers, and
    the default policies (overlap `skip`, the default retries and timeout unless given)."""
    job = {
        "job_name": name,
        "description": "bench: a realistic job (POST, JSON body, bearer token)",
        "cron_expression": cron,
        "timezone": "UTC",
        "url": url,
        "method": "POST",
        "headers": {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "Authorization": BEARER,
        },
        "body": {
            "job": name,
            "report": "daily-digest",
            "since": "yesterday",
            "notify": ["ops@example.com"],
            "options": {"format": "json", "include_archived": False, "page_size": 500},
        },
    }
    if timeout is not None:
        job["timeout_seconds"] = timeout
    return job | more


def make_jobs(env: Environment, specs: list[dict], jobs: str = "realistic") -> list:
    """Create endpoints from specs {name, url, cron, timeout?, job?, fields?}; return them.

    realistic: one job file through `manage.py applyjobs` (as a user does: validated, headers
    encrypted, next_run_at computed on save); `fields` (endpoint settings the job format does not
    carry, such as retry backoff or missed-run policy) are then set as a user would in the admin.
    minimal: bulk_create of GET endpoints with no headers or body, `fields` included, next_run_at
    computed here (the benchmarks' earlier way, kept for comparison).
    """
    from endpoints.models import Endpoint

    if jobs == "realistic":
        path = Path(f"/tmp/{env.name}_jobs.json")
        objects = [
            job_object(s["name"], s["url"], s["cron"], s.get("timeout"), **s.get("job", {}))
            for s in specs
        ]
        path.write_text(json.dumps(objects))
        out = env.manage("applyjobs", str(path))
        if out.returncode != 0:
            raise RuntimeError(f"applyjobs failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
        names = [s["name"] for s in specs]
        by_name = Endpoint.objects.in_bulk(names, field_name="name")
        if any(spec.get("fields") for spec in specs):
            for spec in specs:
                if spec.get("fields"):
                    Endpoint.objects.filter(pk=by_name[spec["name"]].pk).update(**spec["fields"])
            by_name = Endpoint.objects.in_bulk(names, field_name="name")
        return [by_name[name] for name in names]
    now = datetime.now(UTC)
    endpoints = Endpoint.objects.bulk_create(
        (
            Endpoint(
                name=s["name"],
                url=s["url"],
                cron_expression=s["cron"],
                timezone="UTC",
                **({"timeout_seconds": s["timeout"]} if s.get("timeout") else {}),
                **s.get("job", {}),
                **s.get("fields", {}),
            )  # fmt: skip
            for s in specs
        ),
        batch_size=2000,
    )
    for endpoint in endpoints:
        endpoint.created_at = now
        endpoint.next_run_at = endpoint.compute_next_run_at(now)
    Endpoint.objects.bulk_update(endpoints, ["next_run_at", "created_at"], batch_size=2000)
    return endpoints


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- figures --------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50/p95/p99/max of `values` (nearest rank), rounded; None when there are none."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    ordered = sorted(values)

    def rank(p: float) -> float:
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    return {
        "n": len(ordered),
        "p50": round(rank(50), 3),
        "p95": round(rank(95), 3),
        "p99": round(rank(99), 3),
        "max": round(ordered[-1], 3),
    }


def tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def tree_cpu_seconds(pid: int) -> float:
    total = 0.0
    for process in tree(pid):
        try:
            times = process.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def tree_memory_mb(pid: int) -> dict[str, float]:
    """RSS summed over the process tree, and PSS (shared pages split between the processes)."""
    rss = pss = 0
    each = []
    for process in tree(pid):
        try:
            info = process.memory_full_info()
        except psutil.NoSuchProcess:
            continue
        rss += info.rss
        pss += getattr(info, "pss", info.rss)
        each.append(round(info.rss / 2**20, 1))
    return {
        "processes": len(each), "rss_mb": round(rss / 2**20, 1), "pss_mb": round(pss / 2**20, 1),
        "rss_each_mb": each,  # in process-tree order: the sentinel first
    }  # fmt: skip


def next_second(after: float = 3.0) -> datetime:
    """A whole second at least `after` seconds from now (a slot the dispatcher will see coming)."""
    now = datetime.now(UTC)
    return (now + timedelta(seconds=after + 1)).replace(microsecond=0)


def next_minute(after: float = 8.0) -> datetime:
    """A whole minute at least `after` seconds from now (django-q2's cron has minute slots)."""
    now = datetime.now(UTC) + timedelta(seconds=after)
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def sleep_until(when: datetime) -> None:
    time.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


def wait_for(predicate, timeout: float, poll: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(poll)
    return predicate()


def print_table(title: str, rows: list[tuple], headers: tuple) -> None:
    cells = [tuple(_fmt(value) for value in row) for row in [headers, *rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    print(f"\n{title}")
    for index, row in enumerate(cells):
        print("| " + " | ".join(value.ljust(widths[i]) for i, value in enumerate(row)) + " |")
        if index == 0:
            print("|" + "|".join("-" * (width + 2) for width in widths) + "|")


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
