"""The HTTP engine behind `wikigpt download`: resumable, verified downloads of dump files, standard library only.

What one file goes through (`fetch_file`):
  1. `NAME.part` is opened and locked (two processes downloading into one folder refuse instead of interleaving).
  2. Whatever the .part already holds is re-hashed: the sha1 of the finished file is computed over every byte, the
     resumed prefix included, so a prefix left by another run or another tool cannot slip through unverified.
  3. `GET` with `Range: bytes=N-`. 206 with the matching Content-Range appends; 200 means the server ignored the Range,
     so the .part is emptied and the download starts over. Content-Length must agree with the size from the index.
  4. Bytes are written and hashed as they stream in. A dropped connection, a timeout, a short body or a 5xx is retried
     with exponential backoff, resuming where it stopped; the retry budget counts attempts that made no progress, so
     a flaky link that drops every few hundred MB still finishes a 2 GB part.
  5. Only when the sha1 matches is `NAME.part` renamed to `NAME`. A mismatch keeps the bytes as `.part`, never under
     the final name; if the prefix came from an earlier run it is downloaded once more from zero before giving up.

`fetch_files` runs at most two files at a time on threads (Wikimedia asks for no more than two connections per
client), shows progress, and turns Ctrl-C into a prompt stop of every transfer that keeps each `.part` resumable.
Nothing taken from a server or an index ever reaches a shell; file names are checked by the caller (wikigpt.dumps)
before they get here.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import shutil
import socket
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TextIO

from ._io import fsync_dir, human_bytes
from .errors import ChecksumError, DownloadError

try:  # POSIX advisory locks; on Windows the lock is skipped (the sha1 check still catches interleaved writers)
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20  # 1 MiB reads: large enough that Python overhead is nothing next to the network, small for Ctrl-C
MAX_WORKERS = 2  # Wikimedia's dumps server allows two concurrent connections per client
REHASH_CHUNK = 8 << 20
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
INDEX_BACKOFF = 1.0  # seconds before the first retry of a small index fetch (doubles each retry)


def user_agent() -> str:
    """The User-Agent sent with every request. Wikimedia refuses generic agents (python-urllib) and asks for one that
    names the tool and a way to reach its operator; WIKIGPT_USER_AGENT replaces it (e.g. to add your e-mail)."""
    override = os.environ.get("WIKIGPT_USER_AGENT", "").strip()
    if override:
        return override
    from . import __version__

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"wikigpt/{__version__} (Wikipedia dump downloader; https://pypi.org/project/wikigpt/) Python/{py}"


class _Retry(Exception):
    """A transient failure: the transfer may be tried again from where it stopped."""


class _Stopped(Exception):
    """The transfer stopped because another file failed or the user pressed Ctrl-C; its .part stays resumable."""


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _classify(url: str, e: BaseException) -> BaseException:
    """Map a urllib/http.client/socket failure to _Retry (worth another try) or a one-line DownloadError."""
    if isinstance(e, urllib.error.HTTPError):
        if e.code in _RETRY_HTTP:
            return _Retry(f"HTTP {e.code} {e.reason}")
        return DownloadError(f"{url}: HTTP {e.code} {e.reason}")
    if isinstance(e, urllib.error.URLError):
        reason = e.reason
        if isinstance(reason, socket.gaierror):  # DNS: retrying in a few seconds will not fix it
            return DownloadError(f"cannot resolve {_host(url)} ({reason.strerror or reason}): no network, or a wrong --mirror?")
        if "CERTIFICATE_VERIFY_FAILED" in str(reason):
            return DownloadError(f"{_host(url)}: TLS certificate check failed ({reason})")
        return _Retry(f"cannot connect to {_host(url)}: {getattr(reason, 'strerror', None) or reason}")
    if isinstance(e, (TimeoutError, socket.timeout)):
        return _Retry("timed out")
    if isinstance(e, (ConnectionError, http.client.HTTPException, OSError)):
        return _Retry(f"connection failed: {type(e).__name__}: {e}")
    return e


def _open(url: str, headers: dict, timeout: float):
    req = urllib.request.Request(url, headers={"User-Agent": user_agent(), "Accept-Encoding": "identity", **headers})
    return urllib.request.urlopen(req, timeout=timeout)


def _sleep(stop: Optional[threading.Event], seconds: float) -> None:
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise _Stopped()


def _backoff(backoff: float, attempt: int) -> float:
    return min(backoff * (2 ** (attempt - 1)), 30.0)


def fetch_bytes(
    url: str,
    *,
    limit: int,
    missing_ok: bool = False,
    retries: int = 2,
    backoff: Optional[float] = None,
    timeout: float = 30.0,
) -> Optional[bytes]:
    """GET a small document (dumpstatus.json, sha1sums.txt, a directory index) into memory, at most `limit` bytes, so
    a hostile or broken server cannot exhaust memory. 404/410 -> None if `missing_ok`, else DownloadError."""
    attempt = 0
    while True:
        try:
            with _open(url, {}, timeout) as resp:
                declared = resp.headers.get("Content-Length")
                data = b""
                while len(data) <= limit:
                    block = resp.read(min(CHUNK, limit + 1 - len(data)))
                    if not block:
                        break
                    data += block
            if len(data) > limit:
                raise DownloadError(f"{url}: larger than {human_bytes(limit)}, refusing to read it as an index")
            if declared is not None and declared.isdigit() and int(declared) != len(data):
                raise _Retry(f"short answer: {len(data)} of {declared} bytes")
            return data
        except DownloadError:
            raise
        except _Retry as e:
            err: BaseException = e
        except urllib.error.HTTPError as e:
            if missing_ok and e.code in (404, 410):
                return None
            err = _classify(url, e)
        except (OSError, http.client.HTTPException) as e:
            err = _classify(url, e)
        if not isinstance(err, _Retry):
            raise err from None
        attempt += 1
        if attempt > retries:
            raise DownloadError(f"{url}: {err} (gave up after {retries} retries)") from None
        _sleep(None, _backoff(INDEX_BACKOFF if backoff is None else backoff, attempt))


@dataclass(frozen=True)
class FileTask:
    """One file to fetch: where from, where to, and what it must be."""

    url: str
    path: Path  # final name; the download goes to path + ".part"
    size: int
    sha1: str  # lowercase hex
    label: str = ""  # short name for the progress line


def part_path(path: Path) -> Path:
    return path.with_name(path.name + ".part")


_CONTENT_RANGE = re.compile(r"^\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*$")


class _Transfer:
    """The state of one file's download: the open .part, how many bytes it holds, and their running sha1."""

    def __init__(self, task: FileTask, f, stop: threading.Event, progress: "Progress", timeout: float):
        self.task, self.f, self.stop, self.progress, self.timeout = task, f, stop, progress, timeout
        self.offset = 0
        self.h = hashlib.sha1()
        self.part = part_path(task.path)
        self.restarted = False  # the .part was emptied during this run (Range ignored, 416, ...)

    def rehash_existing(self) -> None:
        """Hash the bytes a .part already holds (the sha1 must cover the whole file, not just this run's bytes)."""
        end = self.f.seek(0, os.SEEK_END)
        if end > self.task.size:  # longer than the file can be: not ours, or the index changed under it
            self.restart()
            return
        self.f.seek(0)
        self.h = hashlib.sha1()
        self.offset = 0
        while self.offset < end:
            if self.stop.is_set():
                raise _Stopped()
            block = self.f.read(min(REHASH_CHUNK, end - self.offset))
            if not block:
                break
            self.h.update(block)
            self.offset += len(block)
        self.progress.have(self.task, self.offset)

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.progress.lost(self.task, self.offset)
        self.offset = 0
        self.h = hashlib.sha1()
        self.restarted = True

    def _write(self, chunk: bytes) -> None:
        try:
            self.f.write(chunk)
        except OSError as e:  # a full disk is not something a retry fixes
            raise DownloadError(f"cannot write {self.part}: {e.strerror or e}") from None
        self.h.update(chunk)
        self.offset += len(chunk)
        self.progress.advance(self.task, len(chunk))

    def once(self) -> None:
        """One GET from the current offset to the end (or until it fails)."""
        t, url = self.task, self.task.url
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        try:
            resp = _open(url, headers, self.timeout)
        except urllib.error.HTTPError as e:
            if e.code == 416 and self.offset:  # the server's file is shorter than our .part: that .part is not it
                self.restart()
                raise _Retry(f"HTTP 416 for a resume at byte {self.offset}; starting over") from None
            if e.code in (404, 410):
                raise DownloadError(f"{url}: HTTP {e.code} {e.reason} (not on this mirror?)") from None
            raise _classify(url, e) from None
        except (OSError, http.client.HTTPException) as e:
            raise _classify(url, e) from None
        with resp:
            if resp.status == 206:
                cr = resp.headers.get("Content-Range", "")
                m = _CONTENT_RANGE.match(cr)
                if m and m.group(3) != "*" and int(m.group(3)) != t.size:
                    raise DownloadError(
                        f"{url}: the server has {int(m.group(3))} bytes, the dump index says {t.size}; refusing"
                    )
                if not m or int(m.group(1)) != self.offset or int(m.group(2)) != t.size - 1:
                    raise DownloadError(f"{url}: asked for bytes {self.offset}- and got Content-Range {cr!r}; refusing")
            elif resp.status == 200:
                if self.offset:  # Range ignored: what follows is the whole file, so the .part starts over
                    self.restart()
            else:
                raise DownloadError(f"{url}: unexpected HTTP {resp.status} {resp.reason}")
            declared = resp.headers.get("Content-Length")
            if declared is not None:
                if not declared.strip().isdigit():
                    raise DownloadError(f"{url}: bad Content-Length {declared!r}")
                if int(declared) != t.size - self.offset:
                    total = int(declared) + self.offset
                    raise DownloadError(f"{url}: the server sends {total} bytes, the dump index says {t.size}; refusing")
            self.f.seek(self.offset)
            while self.offset < t.size:
                if self.stop.is_set():
                    raise _Stopped()
                try:
                    chunk = resp.read(min(CHUNK, t.size - self.offset))
                except (OSError, http.client.HTTPException) as e:
                    raise _classify(url, e) from None
                if not chunk:  # http.client returns b"" on an early close instead of raising
                    raise _Retry(f"connection closed at byte {self.offset} of {t.size}")
                self._write(chunk)
            try:
                extra = resp.read(1)
            except (OSError, http.client.HTTPException):
                extra = b""
            if extra:
                raise DownloadError(f"{url}: the server sends more than the {t.size} bytes the dump index says; refusing")


def fetch_file(
    task: FileTask,
    *,
    stop: Optional[threading.Event] = None,
    progress: Optional["Progress"] = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download `task.url` to `task.path`, resuming `task.path.part`, and verify its sha1. Returns `task.path`."""
    stop = stop or threading.Event()
    progress = progress or Progress(enabled=False)
    path, part = task.path, part_path(task.path)
    if path.exists():
        have = path.stat().st_size
        if have == task.size:  # only a verified download is ever renamed to the final name
            progress.skipped(task)
            return path
        raise DownloadError(
            f"{path} exists with {have} bytes but the dump index says {task.size}: not a file this tool finished; "
            "move it away and run again"
        )
    fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    f = os.fdopen(fd, "r+b")
    try:
        if fcntl is not None:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DownloadError(f"{part} is being written by another download; wait for it or stop it") from None
        progress.start(task)
        x = _Transfer(task, f, stop, progress, timeout)
        x.rehash_existing()
        fresh_retry_left = x.offset > 0  # a resumed prefix that fails the hash earns one download from zero
        fruitless = 0
        while True:
            while x.offset < task.size:
                before = x.offset
                try:
                    x.once()
                except _Retry as e:
                    fruitless = 0 if x.offset > before else fruitless + 1
                    if fruitless > retries:
                        f.flush()
                        raise DownloadError(
                            f"{task.url}: {e}; gave up after {retries} retries without progress "
                            f"({human_bytes(x.offset)} of {human_bytes(task.size)} kept in {part.name}, run again to resume)"
                        ) from None
                    progress.note(task, f"{e}; retry {fruitless}/{retries}")
                    _sleep(stop, _backoff(backoff, fruitless))
            f.flush()
            os.fsync(f.fileno())
            got = x.h.hexdigest()
            if got == task.sha1.lower():
                break
            if fresh_retry_left and not x.restarted:
                fresh_retry_left = False
                progress.note(task, "sha1 mismatch after a resume; downloading it again from zero")
                x.restart()
                continue
            raise ChecksumError(
                f"{path.name}: sha1 {got} does not match the dump index's {task.sha1}; the bytes are kept only as "
                f"{part} (the next run downloads it again)"
            )
        os.replace(part, path)  # still holding the lock: nobody appends to the .part between hash and rename
        fsync_dir(path.parent)
    finally:
        f.close()
    progress.finished(task)
    return path


def fetch_files(
    tasks: list[FileTask],
    *,
    workers: int = MAX_WORKERS,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    stream: Optional[TextIO] = None,
) -> list[Path]:
    """Fetch every task, at most `workers` (<= 2) at a time, and return their final paths in the order given.

    The first failure stops the other transfers at their next chunk (their .part files stay resumable) and is raised;
    so is KeyboardInterrupt, after every worker has closed its file.
    """
    if not tasks:
        return []
    workers = max(1, min(workers, MAX_WORKERS, len(tasks)))
    stop = threading.Event()
    prog = Progress(
        total=sum(t.size for t in tasks), enabled=progress, stream=stream if stream is not None else sys.stderr
    )

    def run(task: FileTask) -> Path:
        if stop.is_set():
            raise _Stopped()
        return fetch_file(task, stop=stop, progress=prog, retries=retries, backoff=backoff, timeout=timeout)

    ex = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wikigpt-download")
    futures = [ex.submit(run, t) for t in tasks]
    try:
        pending = set(futures)
        while pending:
            # a timeout so the main thread wakes up for Ctrl-C (signals are only delivered between bytecodes here)
            done, pending = wait(pending, timeout=0.25, return_when=FIRST_EXCEPTION)
            for fut in done:
                err = fut.exception()
                if err is not None and not isinstance(err, _Stopped):
                    raise err
        return [fut.result() for fut in futures]
    except BaseException:
        stop.set()
        for fut in futures:
            fut.cancel()
        raise
    finally:
        ex.shutdown(wait=True)
        prog.close()


def _fmt_eta(seconds: float) -> str:
    if seconds != seconds or seconds < 0 or seconds > 99 * 3600:
        return "--:--"
    s = int(seconds + 0.5)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60:02d}:{s % 60:02d}"


def _bar(frac: float, width: int = 20) -> str:
    filled = int(max(0.0, min(1.0, frac)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


class _Rate:
    """Bytes per second over the last few seconds (a whole-run average would hide a stall or a recovery)."""

    WINDOW = 5.0

    def __init__(self) -> None:
        self.samples: deque = deque()
        self.count = 0

    def add(self, now: float, n: int) -> None:
        self.count += n
        self.samples.append((now, self.count))
        while len(self.samples) > 2 and now - self.samples[1][0] > self.WINDOW:
            self.samples.popleft()

    def rate(self, now: float) -> float:
        if len(self.samples) < 2:
            return 0.0
        t0, c0 = self.samples[0]
        return (self.count - c0) / max(now - t0, 1e-3)


class Progress:
    """A line per active file plus a total line, redrawn in place on a terminal at most 4 times a second; on a pipe or
    a log file only one final line per file. Thread safe: the download threads report, whichever reports when a
    redraw is due draws."""

    INTERVAL = 0.25

    def __init__(
        self,
        total: int = 0,
        *,
        enabled: bool = True,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self.clock = clock
        self.total = total
        self.done = 0  # bytes on disk and hashed, over all files
        self.lock = threading.Lock()
        self.active: dict = {}  # task.path -> [task, done, _Rate, started, note]
        self.rate = _Rate()
        self.drawn = 0  # lines of the live block now on screen
        self.last_draw = -1e9
        self.draws = 0

    # -- events from the download threads
    def start(self, task: FileTask) -> None:
        with self.lock:
            self.active[task.path] = [task, 0, _Rate(), self.clock(), ""]

    def have(self, task: FileTask, n: int) -> None:
        """`n` bytes were already in the .part (resumed): they count as done but not towards the speed."""
        with self.lock:
            self.active[task.path][1] += n
            self.done += n
        self._maybe_draw()

    def advance(self, task: FileTask, n: int) -> None:
        now = self.clock()
        with self.lock:
            st = self.active[task.path]
            st[1] += n
            st[2].add(now, n)
            st[4] = ""
            self.done += n
            self.rate.add(now, n)
        self._maybe_draw()

    def lost(self, task: FileTask, n: int) -> None:
        with self.lock:
            st = self.active.get(task.path)
            if st is not None:
                st[1] -= n
            self.done -= n

    def note(self, task: FileTask, text: str) -> None:
        with self.lock:
            st = self.active.get(task.path)
            if st is not None:
                st[4] = text
        if self.enabled and not self.tty:  # retries are worth a line in a log
            self._emit(f"{task.path.name}: {text}")
        self._maybe_draw(force=True)

    def skipped(self, task: FileTask) -> None:
        with self.lock:
            self.done += task.size
        self._emit(f"{task.path.name}: already downloaded and verified, skipped")

    def finished(self, task: FileTask) -> None:
        now = self.clock()
        with self.lock:
            st = self.active.pop(task.path, None)
        fetched = st[2].count if st else 0
        secs = now - st[3] if st else 0.0
        speed = f", {human_bytes(fetched / secs)}/s" if secs > 0 and fetched else ""
        self._emit(
            f"{task.path.name}: {human_bytes(task.size)} verified (sha1 {task.sha1[:12]}…), "
            f"{human_bytes(fetched)} fetched in {secs:.1f} s{speed}"
        )

    def close(self) -> None:
        with self.lock:
            self._clear()
            self.active.clear()

    # -- drawing
    def _emit(self, line: str) -> None:
        if not self.enabled:
            return
        with self.lock:
            self._clear()
            print(line, file=self.stream, flush=True)
            self._draw(self.clock())

    def _maybe_draw(self, force: bool = False) -> None:
        if not self.tty:
            return
        now = self.clock()
        with self.lock:
            if force or now - self.last_draw >= self.INTERVAL:
                self._clear()
                self._draw(now)

    def _clear(self) -> None:
        if self.tty and self.drawn:
            # up to the first line of the block, then erase to the end of the screen
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def lines(self, now: float) -> list:
        """The live block's lines (one per active file, then the total), without terminal codes."""
        width = shutil.get_terminal_size((100, 20)).columns
        out = []
        for task, done, rate, _, note in self.active.values():
            out.append(self._line(task.label or task.path.name, done, task.size, rate.rate(now), note, width))
        if self.total:
            out.append(self._line("total", self.done, self.total, self.rate.rate(now), "", width))
        return out

    @staticmethod
    def _line(label: str, done: int, size: int, rate: float, note: str, width: int) -> str:
        frac = done / size if size else 1.0
        eta = _fmt_eta((size - done) / rate) if rate > 0 else "--:--"
        tail = f" {_bar(frac)} {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(size)} {human_bytes(rate)}/s ETA {eta}"
        if note:
            tail += f"  {note}"
        room = max(10, width - 1 - len(tail))
        if len(label) > room:
            label = "…" + label[-(room - 1):]
        return (label.ljust(min(room, 40)) + tail)[: width - 1]

    def _draw(self, now: float) -> None:
        if not self.tty:
            return
        lines = self.lines(now)
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.drawn = len(lines)
        self.last_draw = now
        self.draws += 1
