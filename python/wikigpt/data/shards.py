"""Token shards in llm.c's format (karpathy/llm.c dev/data): a 256 x int32 little-endian header, then uint16 tokens.

header[0] = 20240520 (magic), header[1] = 1 (version), header[2] = number of tokens, the rest 0; the file is exactly
1024 + 2 * count bytes. The Rust writer (rust/shards.rs) writes them; this module reads and checks them (and writes
them too, for tests and exports, from numpy). nanoGPT users can also `np.memmap(path, np.uint16, offset=1024)`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import ShardError

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4


def read_header(path: str | os.PathLike) -> int:
    """Check a shard's header and size; return its token count."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            raw = f.read(HEADER_BYTES)
    except OSError as e:
        raise ShardError(f"{path}: cannot read shard: {e.strerror or e}") from None
    if len(raw) < HEADER_BYTES:
        raise ShardError(f"{path}: bad token shard: {len(raw)} bytes, shorter than the {HEADER_BYTES}-byte header")
    header = np.frombuffer(raw, dtype="<i4")
    if header[0] != MAGIC:
        raise ShardError(f"{path}: bad token shard: magic {int(header[0])}, expected {MAGIC}")
    if header[1] != VERSION:
        raise ShardError(f"{path}: bad token shard: version {int(header[1])}, expected {VERSION}")
    count = int(header[2])
    if count < 0 or size != HEADER_BYTES + 2 * count:
        raise ShardError(
            f"{path}: bad token shard: header says {count} tokens ({HEADER_BYTES + 2 * count} bytes) "
            f"but the file has {size} bytes"
        )
    return count


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """Return a read-only `np.memmap` (uint16) over a shard's tokens, after checking magic, version and size."""
    count = read_header(path)
    if count == 0:
        return np.zeros(0, dtype=np.uint16)
    return np.memmap(path, dtype=np.uint16, mode="r", offset=HEADER_BYTES, shape=(count,))


def write_shard(path: str | os.PathLike, tokens: np.ndarray) -> None:
    """Write `tokens` as one shard, atomically (temp file, fsync, rename)."""
    path = Path(path)
    tokens = np.asarray(tokens)
    if tokens.size and (tokens.min() < 0 or tokens.max() > 0xFFFF):
        raise ShardError(f"{path}: token ids must fit in uint16")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0], header[1], header[2] = MAGIC, VERSION, tokens.size
    tmp = path.with_name(path.name + f".tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(header.tobytes())
        f.write(tokens.astype("<u2", copy=False).tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
