"""Returning freed heap to the system (glibc only; a no-op elsewhere).

The models allocate and free tensors of tens of megabytes per forward pass. glibc keeps freed
heap in its arenas, one arena per thread up to 8 per core, so a long ingest or a server
answering from many threads holds more memory the longer it runs although nothing is live.
Measured on a 3,068-chunk ingest (2 cores): peak RSS 1,196 MB and 954 MB left at the end
without a trim; with a trim after each write group, 1,115 MB and 723 MB.

glibc's mmap threshold is dynamic: once a large block that was mmapped is freed, the threshold
rises to its size (up to 32 MiB), and later tensors of that size come from the arenas instead,
where Chroma's small allocations end up between them and a trim cannot return them. Ingest
therefore fixes the threshold (``fix_mmap_threshold``): on a 30k-chunk ingest the peak was
852 MB with a fixed 1 MiB against 907-920 MB with the dynamic default, in the same wall time.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from functools import cache
from typing import Any

log = logging.getLogger(__name__)

# mallopt parameter number from glibc's malloc.h.
_M_ARENA_MAX = -8
_M_MMAP_THRESHOLD = -3


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        libc = ctypes.CDLL(name)
    except OSError:
        return None
    # Only glibc has both; musl and others keep their own policies.
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


def release_free_memory() -> bool:
    """Give freed heap back to the system; False where the C library cannot."""
    libc = _libc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True


def limit_arenas(count: int) -> bool:
    """Cap glibc's malloc arenas at ``count`` for this process, unless ``MALLOC_ARENA_MAX``
    already says otherwise. Call before threads start; False where it does not apply."""
    libc = _libc()
    if libc is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    ok = bool(libc.mallopt(_M_ARENA_MAX, count))
    if not ok:  # pragma: no cover - glibc accepts any positive count
        log.warning("mallopt(M_ARENA_MAX, %d) was refused", count)
    return ok


def fix_mmap_threshold(kib: int) -> bool:
    """Serve allocations of at least ``kib`` KiB with mmap, always, so that freeing one returns
    it to the system; 0 keeps glibc's dynamic threshold. The environment's own setting
    (``MALLOC_MMAP_THRESHOLD_`` or ``GLIBC_TUNABLES``) wins. False where nothing changed."""
    libc = _libc()
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    if (
        kib <= 0
        or libc is None
        or "MALLOC_MMAP_THRESHOLD_" in os.environ
        or "mmap_threshold" in tunables
    ):
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, kib * 1024))
    if not ok:  # glibc refuses values above HEAP_MAX_SIZE / 2 (32 MiB on 64-bit)
        log.warning("mallopt(M_MMAP_THRESHOLD, %d KiB) was refused", kib)
    return ok
