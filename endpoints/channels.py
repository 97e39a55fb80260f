"""Notification channels as Apprise URLs (`slack://…`, `tgram://…`, `ntfy://…`, `json://…`).

Apprise knows each service's URL form and its secrets, so it parses, checks and masks them:
one rule for the form, the admin, job files and every API. A channel that names a host of its
own (json://, ntfy://host, mailto://, gotify://…) goes through the same SSRF guard as a target;
services with a fixed API (slack://, tgram://…) name tokens, not hosts.

Apprise is imported when first needed: it costs every process that loads the models (each
cluster worker among them) about 17 MB and half a second, and its plugins as much again.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING

from calls.guard import url_problem as target_problem

if TYPE_CHECKING:
    from apprise.manager_plugins import NotificationManager

MAX_URLS = 20
MAX_URL_LENGTH = 2048


@functools.cache
def _services() -> NotificationManager:
    from apprise.manager_plugins import NotificationManager

    return NotificationManager()


def instantiate(url: str):
    """Apprise's plugin for `url`, or None when it is not a valid URL of a known service."""
    import apprise

    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def parse_urls(value: object) -> list[str]:
    """A list of URLs from a list, or from text with one URL a line (or space-separated: a URL
    may hold commas, never spaces)."""
    if value is None or value == "":
        return []
    if isinstance(value, str):
        items = value.split()
    elif isinstance(value, list | tuple):
        items = value
    else:
        raise ValueError("Give a list of Apprise URLs.")
    if not all(isinstance(item, str) for item in items):
        raise ValueError("Each notification URL must be a string.")
    return [item.strip() for item in items if item.strip()]


def url_problem(url: str) -> str | None:
    """What is wrong with `url` as a notification channel, for a field error; None if nothing."""
    if len(url) > MAX_URL_LENGTH:
        return f"A notification URL is longer than {MAX_URL_LENGTH} characters."
    scheme, found, _ = url.partition("://")
    if not found or not scheme:
        return f"'{mask_url(url)}' is not an Apprise URL (like slack://… or json://host/path)."
    if scheme.lower() not in _services():
        return (
            f"'{scheme}://' is not a notification service Apprise knows "
            "(see https://github.com/caronc/apprise/wiki for slack://, tgram://, ntfy://, …)."
        )
    plugin = instantiate(url)
    if plugin is None:
        return f"'{mask_url(url)}' is not a valid {scheme}:// URL (a token or host is missing)."
    host = getattr(plugin, "host", None)
    if host and _names_a_host(plugin):
        if problem := target_problem(f"http://{_bracketed(host)}:{plugin.port or 80}/"):
            return f"{scheme}:// to {host}: {problem}"
    return None


def urls_problem(urls: list[str]) -> str | None:
    if len(urls) > MAX_URLS:
        return f"At most {MAX_URLS} notification URLs."
    return next((problem for url in urls if (problem := url_problem(url))), None)


def _names_a_host(plugin: object) -> bool:
    return any("{host}" in template for template in getattr(plugin, "templates", ()))


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def mask_url(url: str) -> str:
    """The URL with its secrets (passwords, tokens, keys) hidden, as Apprise's privacy view."""
    plugin = instantiate(url)
    scheme = url.partition("://")[0] or "?"
    if plugin is None:
        return f"{scheme}://••••••"
    # The privacy URL lists every default option; the query is the user's, shown as elided.
    masked = plugin.url(privacy=True).partition("?")[0].rstrip("/")
    return masked + ("?…" if "?" in url else "")


def redact(text: str, url: str) -> str:
    """`text` (a service's error message) without any token, key or password of `url`: every
    part of the URL longer than a few characters, except its scheme and a real host name, is
    masked (slack://TokenA/… puts a token where a host would be)."""
    scheme, _, rest = url.partition("://")
    plugin = instantiate(url)
    host = str(getattr(plugin, "host", "") or "") if _names_a_host(plugin) else ""
    parts = {part for part in re.split(r"[/:@?&=#,]+", rest) if len(part) >= 4}
    for part in sorted(parts - {host, scheme}, key=len, reverse=True):
        text = text.replace(part, "••••••")
    return text


def mask_urls(urls: list[str]) -> list[str]:
    return [mask_url(url) for url in urls]


def keep_masked_urls(submitted: list[str], stored: list[str]) -> list[str]:
    """A submitted URL that is a stored URL's mask keeps the stored URL (an edit form, an
    exported job file and an API read-modify-write all send masks back)."""
    masks = {mask_url(url): url for url in reversed(stored)}
    kept = []
    for position, url in enumerate(submitted):
        same_place = stored[position] if position < len(stored) else None
        if same_place is not None and url == mask_url(same_place):
            kept.append(same_place)
        else:
            kept.append(masks.get(url, url))
    return kept


def check_global_urls(app_configs=None, **kwargs) -> list:
    """A system check: NOTIFY_URLS is refused at startup as an endpoint's URLs are on save."""
    from django.conf import settings
    from django.core import checks

    return [
        checks.Error(f"NOTIFY_URLS: {problem}", id="cronplane.E010")
        for url in settings.NOTIFY_URLS
        if (problem := url_problem(url))
    ]
