"""keep_freed_memory (the trainer's CPU loop runs inside it): a large freed block stays in malloc's heap for the next
step instead of going back to the OS, and leaving the block puts the thresholds where glibc's dynamic ones settle
(32 MiB mmap). Read through mallinfo2, so
only on Linux with glibc >= 2.33."""

from __future__ import annotations

import ctypes

import pytest

from wikigpt.training.cpu_memory import _glibc, keep_freed_memory

libc = _glibc()
pytestmark = pytest.mark.skipif(libc is None or not hasattr(libc, "mallinfo2"), reason="needs glibc >= 2.33")

MB64 = 64 << 20


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _info() -> _Mallinfo2:
    libc.mallinfo2.restype = _Mallinfo2
    return libc.mallinfo2()


def _where_64mb_goes() -> tuple[int, int]:
    """(bytes mmapped while a 64 MiB block is held, bytes free in the heap after it is freed)"""
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    before = _info().hblkhd
    p = libc.malloc(MB64)
    assert p
    ctypes.memset(p, 1, MB64)
    mapped = _info().hblkhd - before
    libc.free(p)
    return mapped, _info().fordblks


def test_freed_blocks_stay_in_the_heap_and_thresholds_come_back():
    with keep_freed_memory() as ok:
        assert ok
        mapped, free_after = _where_64mb_goes()
        assert mapped == 0, "inside: a 64 MiB block must come from the heap, not its own mmap"
        assert free_after >= MB64, "inside: the freed block must stay in the heap for the next step"
    # after: a 64 MiB block (over the 32 MiB threshold) gets its own mapping again. (Whether malloc_trim gave pages
    # back cannot be read here: mallinfo2 counts trimmed free chunks inside the heap as free bytes all the same.)
    mapped, _ = _where_64mb_goes()
    assert mapped >= MB64
