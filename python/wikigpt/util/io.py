"""Small file helpers shared by every stage: writes that are atomic (temp file, fsync, rename, fsync the folder), so
a killed process or a full disk never leaves a half-written file under a final name."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def fsync_dir(path: str | os.PathLike) -> None:
    """fsync a folder so a rename inside it survives a power cut (a no-op where the OS does not allow it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class NamedWriteError(OSError):
    """An OSError whose message names the file that could not be written ("PATH: cannot write: No space left on
    device"), so writers around it pass it on as it is. `errno` is kept for callers that test it."""


def _named(e: OSError, path: Path) -> OSError:
    if isinstance(e, NamedWriteError) or e.errno is None or e.filename is not None:
        return e  # already says which file
    err = NamedWriteError(f"{path}: cannot write: {e.strerror or e}")
    err.errno = e.errno
    return err


@contextmanager
def write_errors_named(path: str | os.PathLike) -> Iterator[None]:
    """A failed write() says only "[Errno 28] No space left on device": name the file it was for."""
    try:
        yield
    except OSError as e:
        named = _named(e, Path(path))
        if named is e:
            raise
        raise named from e


@contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[Any]:
    """Open `path.tmp-<pid>` for writing; on success fsync and rename it over `path`; on any error remove it.
    Nested, several files commit together: the inner ones are renamed first, and an error anywhere removes all."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    f = open(tmp, mode)
    try:
        with write_errors_named(path):
            yield f
            f.flush()
            os.fsync(f.fileno())
            f.close()
            os.replace(tmp, path)
            fsync_dir(path.parent)
    except BaseException:
        try:
            f.close()  # may fail again flushing what is buffered (the disk is still full): the temp file goes anyway
        except OSError:
            pass
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=False) + "\n").encode("utf-8"))


@contextmanager
def exclusive_lock(lock_file: str | os.PathLike, busy_message: str, error: type = RuntimeError) -> Iterator[None]:
    """Hold an exclusive flock on `lock_file` (created if missing) or raise `error(busy_message)` at once if another
    process holds it. A killed holder releases it with its process, so a crash never leaves a stale lock."""
    import fcntl

    with open(lock_file, "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise error(busy_message) from None
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
