"""Limits that code outside Django (the process manager) needs too: no imports, no settings."""

# Longest a single run may take; the per-endpoint timeout is capped by it.
MAX_TIMEOUT_SECONDS = 300
