"""`make run` installs the app and nothing else: on a fresh copy of the repository its venv has
no pytest, Playwright, schemathesis or ruff, and the app's checks pass in it.

It downloads the runtime dependencies (pip's cache makes it quick), so it runs where asked:
`.ci/run` sets TEST_RUNTIME_INSTALL=1 and selects `-m install`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.install,
    pytest.mark.skipif(
        not os.environ.get("TEST_RUNTIME_INSTALL"), reason="needs TEST_RUNTIME_INSTALL=1 (network)"
    ),
]

REPO = Path(__file__).resolve().parent.parent
TEST_TOOLS = ("pytest", "pytest_django", "playwright", "schemathesis", "ruff", "responses")


def fresh_copy(destination: Path) -> Path:
    """The repository's files as a clone has them (tracked and new, not ignored), no venv."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    return destination


def test_make_run_installs_the_app_without_the_test_tools(tmp_path):
    clone = fresh_copy(tmp_path / "cronplane")
    python = Path(sys.executable).resolve()

    subprocess.run(
        ["make", "install", f"PYTHON={python}"],
        cwd=clone,
        check=True,
        capture_output=True,
        timeout=300,
    )

    venv_python = clone / ".venv" / "bin" / "python"
    found = subprocess.run(
        [
            venv_python,
            "-c",
            "import importlib.util, sys; "
            "print(' '.join(m for m in sys.argv[1:] if importlib.util.find_spec(m)))",
            *TEST_TOOLS,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.split() == []
    env = {**os.environ, "SECRET_KEY": "a runtime-only install check, long enough to be accepted"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    check = subprocess.run(
        [venv_python, "manage.py", "check"], cwd=clone, env=env, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
