"""What a job's `run_after` means: the chain links between jobs, checked and kept in step.

`Endpoint.run_after` is what a user writes — `[{"job_name": "extract", "on": "success"}]` — and
`ChainLink` is its derived table, one row per (downstream, upstream), keyed by id: the record
path (runs/chains.py) asks it "who runs after these endpoints?" in one indexed read, and a
renamed upstream keeps its downstreams. Saving an endpoint rewrites its links; renaming one
rewrites the names in its downstreams' `run_after`; deleting one removes it from theirs.

Cycles are refused on save, naming the cycle ("extract → load → extract"). Two edits saved at
the same instant that together close a cycle are not caught (each checks the links committed
before it); a chained run is only ever caused by a run that ended, so such a cycle runs one job
after the other until someone breaks it, it never multiplies runs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.db import models

if TYPE_CHECKING:
    from endpoints.models import Endpoint

SUCCESS, FAILURE, FINISHED = "success", "failure", "finished"
ON_CHOICES = [
    (SUCCESS, "When it succeeds"),
    (FAILURE, "When it fails (after its retries)"),
    (FINISHED, "When it ends either way"),
]
MAX_UPSTREAMS = 20
# Jobs that a job file creates beside the one being checked (endpoints/jobs.py: applying).
_ARRIVING: ContextVar[frozenset[str]] = ContextVar("run_after_arriving", default=frozenset())


class ChainLink(models.Model):
    """`downstream` runs after a run of `upstream` ends the way `on` says."""

    downstream = models.ForeignKey(
        "endpoints.Endpoint", on_delete=models.CASCADE, related_name="upstream_links"
    )
    upstream = models.ForeignKey(
        "endpoints.Endpoint", on_delete=models.CASCADE, related_name="downstream_links"
    )
    on = models.CharField(max_length=10, choices=ON_CHOICES, default=SUCCESS)

    class Meta:
        app_label = "endpoints"
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["downstream", "upstream"], name="chainlink_one_per_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.upstream_id} → {self.downstream_id} on {self.on}"


def normalized(value: Any) -> tuple[list[dict[str, str]], str | None]:
    """`run_after` as stored (each entry {"job_name", "on"}, `on` defaulting to success), or
    why it cannot be."""
    if value in (None, ""):
        return [], None
    if not isinstance(value, list):
        return [], 'A list of {"job_name": …, "on": "success" | "failure" | "finished"}.'
    entries, seen = [], set()
    choices = [choice for choice, _ in ON_CHOICES]
    for item in value:
        if isinstance(item, str):
            item = {"job_name": item}
        if not isinstance(item, dict) or set(item) - {"job_name", "on"}:
            return [], 'Each entry is {"job_name": …, "on": …} and nothing else.'
        name, on = item.get("job_name"), item.get("on", SUCCESS)
        if not isinstance(name, str) or not name:
            return [], "Each entry needs the job_name of the job to run after."
        if on not in choices:
            return [], f"'on' is one of {', '.join(choices)}, not {on!r}."
        if name in seen:
            return [], f"'{name}' is listed twice."
        seen.add(name)
        entries.append({"job_name": name, "on": on})
    if len(entries) > MAX_UPSTREAMS:
        return [], f"At most {MAX_UPSTREAMS} jobs to run after."
    return entries, None


def entries(value: Any) -> list[dict[str, str]]:
    """A job object's run_after as stored; ValueError says what is wrong with it."""
    found, problem = normalized(value)
    if problem:
        raise ValueError(problem)
    return found


def problem(endpoint: Endpoint, entries: list[dict[str, str]]) -> str | None:
    """Why `endpoint` cannot run after these jobs (unknown, a heartbeat, itself, a cycle)."""
    from endpoints.models import Endpoint

    if not entries:
        return None
    if endpoint.kind == Endpoint.Kind.HEARTBEAT:
        return "A heartbeat is pinged from elsewhere: it cannot run after another job."
    names = [entry["job_name"] for entry in entries]
    if endpoint.name in names:
        return f"'{endpoint.name}' cannot run after itself."
    found = dict(Endpoint.objects.filter(name__in=names).values_list("name", "kind"))
    for name in names:
        if name not in found and name in _ARRIVING.get():
            continue  # created by the same file: linked, and checked for cycles, once saved
        if name not in found:
            return f"No job named '{name}'."
        if found[name] == Endpoint.Kind.HEARTBEAT:
            return f"'{name}' is a heartbeat: its runs are pinged in, chains do not follow them."
    if endpoint.pk is None:
        return None  # nothing can run after a job that does not exist yet: no cycle
    if cycle := _cycle_through(endpoint, names):
        return "That makes a cycle: " + " → ".join(cycle) + "."
    return None


def _cycle_through(endpoint: Endpoint, upstream_names: list[str]) -> list[str] | None:
    """The names along a path endpoint → … → one of its new upstreams → endpoint, if any."""
    from endpoints.models import Endpoint

    downstreams: dict[int, list[int]] = {}
    for upstream_id, downstream_id in ChainLink.objects.exclude(
        downstream_id=endpoint.pk
    ).values_list("upstream_id", "downstream_id"):
        downstreams.setdefault(upstream_id, []).append(downstream_id)
    targets = set(Endpoint.objects.filter(name__in=upstream_names).values_list("pk", flat=True))
    path, stack, seen = [], [(endpoint.pk, 0)], set()
    while stack:
        node, depth = stack.pop()
        del path[depth:]
        path.append(node)
        if node in targets:
            names = dict(Endpoint.objects.filter(pk__in=path).values_list("pk", "name"))
            return [names[pk] for pk in path] + [endpoint.name]
        if node in seen:
            continue
        seen.add(node)
        stack += [(child, depth + 1) for child in downstreams.get(node, [])]
    return None


@contextmanager
def arriving(names: Iterable[str]) -> Iterator[None]:
    """While checking a job file: its jobs count as existing for each other's run_after."""
    token = _ARRIVING.set(frozenset(names))
    try:
        yield
    finally:
        _ARRIVING.reset(token)


def link_saved(endpoints: list[Endpoint]) -> list[tuple[Endpoint, str]]:
    """After a job file's jobs are saved: link each to upstreams created after it, and return
    the cycles they make together, (endpoint, problem) each (the caller rolls back)."""
    chained = [endpoint for endpoint in endpoints if endpoint.run_after]
    for endpoint in chained:
        save_links(endpoint)
    found = []
    for endpoint in chained:
        names = [entry["job_name"] for entry in normalized(endpoint.run_after)[0]]
        if cycle := _cycle_through(endpoint, names):
            found.append((endpoint, "That makes a cycle: " + " → ".join(cycle) + "."))
    return found


def save_links(endpoint: Endpoint) -> None:
    """Make the endpoint's links what its run_after says (names resolved now)."""
    from endpoints.models import Endpoint

    entries, _ = normalized(endpoint.run_after)
    ids = dict(
        Endpoint.objects.filter(name__in=[e["job_name"] for e in entries]).values_list("name", "pk")
    )
    wanted = {ids[e["job_name"]]: e["on"] for e in entries if e["job_name"] in ids}
    current = {link.upstream_id: link for link in endpoint.upstream_links.all()}
    endpoint.upstream_links.exclude(upstream_id__in=list(wanted)).delete()
    for upstream_id, on in wanted.items():
        link = current.get(upstream_id)
        if link is None:
            ChainLink.objects.create(downstream=endpoint, upstream_id=upstream_id, on=on)
        elif link.on != on:
            ChainLink.objects.filter(pk=link.pk).update(on=on)


def rename(endpoint: Endpoint, old_name: str) -> None:
    """The endpoint's downstreams name it by its new name in their run_after."""
    _rewrite_downstreams(
        endpoint,
        lambda entry: (
            {**entry, "job_name": endpoint.name} if entry["job_name"] == old_name else entry
        ),
    )


def forget(endpoint: Endpoint) -> None:
    """Deleted: the endpoint leaves its downstreams' run_after (its links go with it)."""
    _rewrite_downstreams(
        endpoint, lambda entry: None if entry["job_name"] == endpoint.name else entry
    )


def _rewrite_downstreams(endpoint: Endpoint, change) -> None:
    from endpoints.models import Endpoint

    downstream_ids = endpoint.downstream_links.values_list("downstream_id", flat=True)
    for pk, run_after in Endpoint.objects.filter(pk__in=list(downstream_ids)).values_list(
        "pk", "run_after"
    ):
        entries = [changed for e in run_after or [] if (changed := change(e)) is not None]
        Endpoint.objects.filter(pk=pk).update(run_after=entries)


def links_of(endpoint: Endpoint) -> tuple[list[ChainLink], list[ChainLink]]:
    """(The links to the jobs it runs after, the links to the jobs that run after it): one read."""
    links = (
        ChainLink.objects.filter(models.Q(downstream=endpoint) | models.Q(upstream=endpoint))
        .select_related("upstream", "downstream")
        .order_by("id")
    )
    upstreams, downstreams = [], []
    for link in links:
        (upstreams if link.downstream_id == endpoint.pk else downstreams).append(link)
    upstreams.sort(key=lambda link: link.upstream.name)
    downstreams.sort(key=lambda link: link.downstream.name)
    return upstreams, downstreams


def forget_deleted(sender, instance: Endpoint, **kwargs) -> None:
    """pre_delete: before the cascade takes its links, so the downstreams can still be found."""
    forget(instance)
