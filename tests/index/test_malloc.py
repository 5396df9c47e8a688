"""Returning freed heap to the system (index.malloc), measured on this process's RSS."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from index.malloc import _libc, release_free_memory

pytestmark = pytest.mark.skipif(_libc() is None, reason="needs glibc")


def _rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_trim_returns_freed_heap() -> None:
    # 64 KB blocks stay under glibc's mmap threshold, so they live on the heap; freeing them
    # in allocation order leaves the memory to glibc until it is trimmed.
    blocks = [bytearray(64 * 1024) for _ in range(3000)]  # about 190 MB, touched (zeroed)
    keep = blocks[-1]  # pins the top of the heap: without a trim nothing below it is released
    del blocks
    before = _rss_mb()
    assert release_free_memory() is True
    after = _rss_mb()
    assert before - after > 100, (before, after)
    del keep


def _limit_in_child(env: dict[str, str]) -> str:
    code = "from index.malloc import limit_arenas; print(limit_arenas(2))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_arena_cap_applies_unless_the_environment_sets_one() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    assert _limit_in_child(env) == "True"
    assert _limit_in_child({**env, "MALLOC_ARENA_MAX": "4"}) == "False"


_PROBE = """
import ctypes, sys
from index.malloc import _libc, fix_mmap_threshold

class MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split())]

libc = _libc()
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
libc.mallinfo2.restype = MallInfo2
fixed = fix_mmap_threshold(int(sys.argv[1]))
libc.free(libc.malloc(8 << 20))  # a dynamic threshold rises to 8 MiB on this free
before = libc.mallinfo2().hblks
block = libc.malloc(2 << 20)
print(fixed, libc.mallinfo2().hblks - before)
"""


def _probe(kib: int, env: dict[str, str]) -> str:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE, str(kib)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_fixed_mmap_threshold_keeps_large_blocks_out_of_the_heap() -> None:
    env = {
        k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
    }
    # glibc's default: after a large block is freed, blocks up to its size come from the heap.
    assert _probe(0, env) == "False 0"
    # Fixed at 1 MiB: a 2 MiB block is still mmapped (one more mmapped block while it lives).
    assert _probe(1024, env) == "True 1"
    # The environment's own threshold wins, so the call changes nothing.
    assert _probe(1024, {**env, "MALLOC_MMAP_THRESHOLD_": "4194304"}) == "False 0"
