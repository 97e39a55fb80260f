"""`make run`'s process manager: honcho on the Procfile, with time for the worker's clean stop.

honcho kills whatever is still running 5 s after Ctrl-C. The worker's clean stop lets the
calls in flight finish within their own deadlines (at most MAX_TIMEOUT_SECONDS), so here honcho
waits that long, and 5 s more, before it kills anything.

    python -m scheduler_site.procfile start --port 8000
"""

from honcho import command, manager

from scheduler_site.limits import MAX_TIMEOUT_SECONDS


def main() -> None:
    manager.KILL_WAIT = MAX_TIMEOUT_SECONDS + 5
    command.main()


if __name__ == "__main__":
    main()
