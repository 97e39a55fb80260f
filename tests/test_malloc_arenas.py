"""`qcluster` holds glibc's malloc to two arenas (runs/management/commands/qcluster.py): each
thread that allocates would otherwise get an arena of its own, which keeps what it freed."""

import subprocess
import sys

import pytest

from tests.processes import ROOT, manage_env

# Six threads allocating at once, then glibc's own report of its arenas (malloc_info).
SCRIPT = """
import ctypes, os, sys, tempfile, threading
import django
django.setup()
from runs.management.commands.qcluster import fewer_malloc_arenas
if sys.argv[1] == "fewer":
    print("set:", fewer_malloc_arenas())
barrier = threading.Barrier(6)
def allocate():
    barrier.wait()
    kept = [bytearray(4096) for _ in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=allocate) for _ in range(6)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
libc.fopen.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes = [ctypes.c_int, ctypes.c_void_p]
libc.fclose.argtypes = [ctypes.c_void_p]
path = tempfile.mktemp()
stream = libc.fopen(path.encode(), b"w")
libc.malloc_info(0, stream)
libc.fclose(stream)
print("arenas:", open(path).read().count("<heap nr="))
os.unlink(path)
"""


def arenas(mode: str) -> tuple[str, int]:
    env = manage_env()
    env.pop("MALLOC_ARENA_MAX", None)
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, mode], cwd=ROOT, env=env, capture_output=True,
        text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    return out.stdout, int(out.stdout.rsplit("arenas:", 1)[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_the_cluster_holds_malloc_to_two_arenas():
    default_output, default = arenas("default")
    output, fewer = arenas("fewer")
    if "set: False" in output:
        pytest.skip("malloc is not glibc's")
    assert default > 2, default_output  # one a thread, as glibc does by itself
    assert fewer <= 2, output
