"""Fetching over HTTP: small index documents into memory (`fetch_bytes`) and dump files onto disk (`fetch_file`,
`fetch_files`), through urllib3.

Connections: one urllib3 PoolManager, or a ProxyManager when the environment names a proxy for the URL's scheme
(HTTPS_PROXY / HTTP_PROXY / ALL_PROXY, either case, and NO_PROXY, read as `urllib.request.getproxies()` and
`proxy_bypass` read them, so the same variables that steer curl, pip and requests steer this). At most two connections
per server (Wikimedia's dumps server allows two per client); every request carries a descriptive User-Agent.

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

`fetch_files` runs at most two files at a time on threads, shows progress (util/progress.py), and turns Ctrl-C into a
prompt stop of every transfer that keeps each `.part` resumable. Nothing taken from a server or an index ever reaches
a shell; file names are checked (index.parts_from_dumpstatus) before they reach this module.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import threading
import time
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, TextIO

import urllib3
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    IncompleteRead,
    MaxRetryError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ProxyError,
    ReadTimeoutError,
    SSLError,
)

from ..errors import ChecksumError, ConfigError, DownloadError
from ..util.fmt import human_bytes
from ..util.io import fsync_dir
from ..util.progress import TransferProgress

try:  # POSIX advisory locks; on Windows the lock is skipped (the sha1 check still catches interleaved writers)
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

CHUNK = 1 << 20  # at most 1 MiB per read1(): Python overhead is nothing next to the network, Ctrl-C stays prompt
MAX_WORKERS = 2  # Wikimedia's dumps server allows two concurrent connections per client
REHASH_CHUNK = 8 << 20
_RETRY_HTTP = {408, 425, 429, 500, 502, 503, 504}
INDEX_BACKOFF = 1.0  # seconds before the first retry of a small index fetch (doubles each retry)
# urllib3 follows redirects (a mirror may send http to https, or to another host) but retries nothing itself: the
# retry loops here know what a retry costs (the progress made, the bytes kept) and report each one.
_REDIRECTS_ONLY = urllib3.Retry(total=None, connect=0, read=0, status=0, other=0, redirect=10)


# ------------------------------------------------------------------------------------------------------ the client


def user_agent() -> str:
    """The User-Agent sent with every request. Wikimedia refuses generic agents (python-urllib) and asks for one that
    names the tool and a way to reach its operator; WIKIGPT_USER_AGENT replaces it (e.g. to add your e-mail)."""
    override = os.environ.get("WIKIGPT_USER_AGENT", "").strip()
    if override:
        return override
    from .._version import __version__

    py = f"{sys.version_info.major}.{sys.version_info.minor}"
    return f"wikigpt/{__version__} (Wikipedia dump downloader; https://pypi.org/project/wikigpt/) Python/{py}"


def proxy_for(url: str) -> Optional[str]:
    """The proxy URL the environment names for `url` (None: connect directly), as urllib and requests choose it:
    {scheme}_proxy, else all_proxy, upper or lower case, unless no_proxy lists the host (or is '*')."""
    parts = urllib.parse.urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.netloc):
        return None
    return proxy if "://" in proxy else "http://" + proxy  # 'proxy:3128' means an HTTP proxy, as curl reads it


_managers: dict = {}  # proxy URL (None: direct) -> the one PoolManager/ProxyManager for it
_managers_lock = threading.Lock()


def _manager(proxy: Optional[str]) -> urllib3.PoolManager:
    """The connection pools for `proxy` (or direct), made once: block=True holds every server to MAX_WORKERS
    connections, whatever the callers do."""
    with _managers_lock:
        manager = _managers.get(proxy)
        if manager is None:
            pools = dict(num_pools=8, maxsize=MAX_WORKERS, block=True)
            manager = urllib3.PoolManager(**pools) if proxy is None else _proxy_manager(proxy, pools)
            _managers[proxy] = manager
        return manager


def _proxy_manager(proxy: str, pools: dict) -> urllib3.ProxyManager:
    parsed = urllib3.util.parse_url(proxy)
    if parsed.scheme not in ("http", "https"):
        raise ConfigError(f"proxy {proxy!r}: only http:// and https:// proxies are supported")
    headers = {}
    if parsed.auth:  # http://user:password@proxy:3128, as requests reads it
        headers = urllib3.util.make_headers(proxy_basic_auth=urllib.parse.unquote(parsed.auth))
    return urllib3.ProxyManager(proxy, proxy_headers=headers, **pools)


@contextmanager
def _get(url: str, headers: dict, timeout: float) -> Iterator[urllib3.BaseHTTPResponse]:
    """GET `url` with its body left unread (any status); the connection goes back to its pool afterwards."""
    proxy = proxy_for(url)
    try:
        resp = _manager(proxy).request(
            "GET",
            url,
            headers={"User-Agent": user_agent(), "Accept-Encoding": "identity", **headers},
            preload_content=False,
            decode_content=False,  # the bytes hashed are the bytes the server sent
            retries=_REDIRECTS_ONLY,
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            pool_timeout=timeout,  # no free connection in this long means one leaked: fail, do not hang
        )
    except HTTPError as e:
        raise _classify(url, e, proxy) from None
    try:
        yield resp
    finally:
        _give_back(resp)


_SMALL_REST = 64 << 10


def _give_back(resp: urllib3.BaseHTTPResponse) -> None:
    """Return the response's connection to its pool: still open if the body was read (or is a short error page
    worth reading to keep the connection), else closed; an unread rest may be gigabytes, so it is never drained."""
    rest = resp.length_remaining
    if rest is not None and 0 < rest <= _SMALL_REST and resp.status >= 300:
        try:
            resp.drain_conn()
        except HTTPError:
            pass
    if resp.length_remaining != 0:
        resp.close()
    resp.release_conn()


class _Retry(Exception):
    """A transient failure: the transfer may be tried again from where it stopped."""


class _Stopped(Exception):
    """The transfer stopped because another file failed or the user pressed Ctrl-C; its .part stays resumable."""


def _host(url: str) -> str:
    return urllib.parse.urlsplit(url).netloc or url


def _classify(url: str, e: BaseException, proxy: Optional[str] = None) -> BaseException:
    """Map a urllib3 failure to _Retry (worth another try) or a one-line DownloadError."""
    if isinstance(e, MaxRetryError) and e.reason is not None:  # what failed, behind urllib3's retry bookkeeping
        e = e.reason
    if isinstance(e, ProxyError):
        return _Retry(f"cannot reach the proxy {_host(proxy or '')} (from the environment's proxy settings): "
                      f"{_why(getattr(e, 'original_error', None) or e)}")
    why = _why(e)
    if isinstance(e, NameResolutionError):  # DNS: retrying in a few seconds will not fix it
        return DownloadError(f"cannot resolve {_host(url)} ({why}): no network, or a wrong --mirror?")
    if isinstance(e, SSLError) and "CERTIFICATE_VERIFY_FAILED" in str(e):
        return DownloadError(f"{_host(url)}: TLS certificate check failed ({e})")
    if isinstance(e, NewConnectionError):
        return _Retry(f"cannot connect to {_host(url)}: {why}")
    if isinstance(e, (ConnectTimeoutError, ReadTimeoutError, TimeoutError)):
        return _Retry("timed out")
    if isinstance(e, (HTTPError, OSError)):
        return _Retry(f"connection failed: {type(e).__name__}: {e}")
    return e


def _why(e: BaseException) -> str:
    """The socket's own words ('Connection refused') rather than urllib3's wrapping of them, where there are some."""
    cause = e.__cause__
    return str(getattr(cause, "strerror", None) or cause or e)


def _status_error(url: str, resp: urllib3.BaseHTTPResponse) -> BaseException:
    """A non-2xx answer: _Retry for the statuses a busy server gives, else a one-line DownloadError."""
    if resp.status in _RETRY_HTTP:
        return _Retry(f"HTTP {resp.status} {resp.reason}")
    return DownloadError(f"{url}: HTTP {resp.status} {resp.reason}")


def _sleep(stop: Optional[threading.Event], seconds: float) -> None:
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise _Stopped()


def _backoff(backoff: float, attempt: int) -> float:
    return min(backoff * (2 ** (attempt - 1)), 30.0)


# ------------------------------------------------------------------------------------------------ small documents


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
            return _fetch_bytes_once(url, limit, missing_ok, timeout)
        except _Retry as e:
            attempt += 1
            if attempt > retries:
                raise DownloadError(f"{url}: {e} (gave up after {retries} retries)") from None
        _sleep(None, _backoff(INDEX_BACKOFF if backoff is None else backoff, attempt))


_MISSING = (404, 410)


def _fetch_bytes_once(url: str, limit: int, missing_ok: bool, timeout: float) -> Optional[bytes]:
    with _get(url, {}, timeout) as resp:
        if missing_ok and resp.status in _MISSING:
            return None
        if not 200 <= resp.status < 300:
            raise _status_error(url, resp)
        declared = resp.headers.get("Content-Length")
        data = bytearray()
        try:
            while len(data) <= limit:
                block = resp.read(min(CHUNK, limit + 1 - len(data)))
                if not block:
                    break
                data += block
        except HTTPError as e:  # a short body (IncompleteRead), a reset, a timeout
            raise _Retry(f"short answer after {len(data)} bytes ({_classify(url, e)})") from None
    if len(data) > limit:
        raise DownloadError(f"{url}: larger than {human_bytes(limit)}, refusing to read it as an index")
    if declared is not None and declared.isdigit() and int(declared) != len(data):
        raise _Retry(f"short answer: {len(data)} of {declared} bytes")
    return bytes(data)


# ------------------------------------------------------------------------------------------------------ dump files


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

    def __init__(self, task: FileTask, f, stop: threading.Event, progress: TransferProgress, timeout: float):
        self.task, self.f, self.stop, self.progress, self.timeout = task, f, stop, progress, timeout
        self.offset = 0
        self.sha1 = hashlib.sha1()
        self.part = part_path(task.path)
        self.restarted = False  # the .part was emptied during this run (Range ignored, 416, ...)

    def rehash_existing(self) -> None:
        """Hash the bytes a .part already holds (the sha1 must cover the whole file, not just this run's bytes)."""
        end = self.f.seek(0, os.SEEK_END)
        if end > self.task.size:  # longer than the file can be: not ours, or the index changed under it
            self.restart()
            return
        self.f.seek(0)
        self.sha1 = hashlib.sha1()
        self.offset = 0
        while self.offset < end:
            if self.stop.is_set():
                raise _Stopped()
            block = self.f.read(min(REHASH_CHUNK, end - self.offset))
            if not block:
                break
            self.sha1.update(block)
            self.offset += len(block)
        self.progress.have(self.task, self.offset)

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate()
        self.progress.lost(self.task, self.offset)
        self.offset = 0
        self.sha1 = hashlib.sha1()
        self.restarted = True

    def once(self) -> None:
        """One GET from the current offset to the end (or until it fails)."""
        headers = {"Range": f"bytes={self.offset}-"} if self.offset else {}
        with _get(self.task.url, headers, self.timeout) as resp:
            self._check_answer(resp)
            self._stream(resp)

    def _check_answer(self, resp: urllib3.BaseHTTPResponse) -> None:
        """Refuse any answer but the bytes asked for, of the size the index gave; a 200 to a resume starts over."""
        t, url = self.task, self.task.url
        if resp.status == 416 and self.offset:  # the server's file is shorter than our .part: that .part is not it
            at = self.offset
            self.restart()
            raise _Retry(f"HTTP 416 for a resume at byte {at}; starting over")
        if resp.status in _MISSING:
            raise DownloadError(f"{url}: HTTP {resp.status} {resp.reason} (not on this mirror?)")
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
        elif resp.status >= 300:
            raise _status_error(url, resp)
        else:
            raise DownloadError(f"{url}: unexpected HTTP {resp.status} {resp.reason}")
        declared = resp.headers.get("Content-Length")
        if declared is not None:
            if not declared.strip().isdigit():
                raise DownloadError(f"{url}: bad Content-Length {declared!r}")
            if int(declared) != t.size - self.offset:
                total = int(declared) + self.offset
                raise DownloadError(f"{url}: the server sends {total} bytes, the dump index says {t.size}; refusing")

    def _stream(self, resp: urllib3.BaseHTTPResponse) -> None:
        """Append and hash the body up to the file's size, then make sure the server has nothing more."""
        t = self.task
        self.f.seek(self.offset)
        while self.offset < t.size:
            if self.stop.is_set():
                raise _Stopped()
            try:
                # read1: whatever has arrived (up to CHUNK), so progress and Ctrl-C stay prompt on a slow link
                chunk = resp.read1(min(CHUNK, t.size - self.offset))
            except ProtocolError as e:
                raise self._broken(e) from None
            except HTTPError as e:
                raise _classify(t.url, e) from None
            if not chunk:  # the server closed a body without a Content-Length early
                raise _Retry(f"connection closed at byte {self.offset} of {t.size}")
            self._write(chunk)
        try:
            extra = resp.read(1)
        except HTTPError:
            extra = b""
        if extra:
            raise DownloadError(f"{t.url}: the server sends more than the {t.size} bytes the dump index says; refusing")

    def _broken(self, e: ProtocolError) -> _Retry:
        """A body cut short: urllib3 says IncompleteRead when the server closed early, else names the socket error."""
        if any(isinstance(a, IncompleteRead) for a in e.args):
            return _Retry(f"connection closed at byte {self.offset} of {self.task.size}")
        return _Retry(f"connection broken at byte {self.offset} of {self.task.size}: {e.args[-1]!r}")

    def _write(self, chunk: bytes) -> None:
        try:
            self.f.write(chunk)
        except OSError as e:  # a full disk is not something a retry fixes
            raise DownloadError(f"cannot write {self.part}: {e.strerror or e}") from None
        self.sha1.update(chunk)
        self.offset += len(chunk)
        self.progress.advance(self.task, len(chunk))


def fetch_file(
    task: FileTask,
    *,
    stop: Optional[threading.Event] = None,
    progress: Optional[TransferProgress] = None,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Download `task.url` to `task.path`, resuming `task.path.part`, and verify its sha1. Returns `task.path`."""
    stop = stop or threading.Event()
    progress = progress or TransferProgress(enabled=False)
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
    f = _open_part(part)
    try:
        progress.start(task)
        transfer = _Transfer(task, f, stop, progress, timeout)
        transfer.rehash_existing()
        _download_and_verify(transfer, retries, backoff)
        os.replace(part, path)  # still holding the lock: nobody appends to the .part between hash and rename
        fsync_dir(path.parent)
    except BaseException:
        try:  # an empty .part (e.g. after a 404) is litter, not something to resume
            if f.seek(0, os.SEEK_END) == 0:
                part.unlink()
        except OSError:
            pass
        raise
    finally:
        f.close()
    progress.finished(task)
    return path


def _open_part(part: Path):
    """The .part, opened for appending and locked against a second download into the same folder."""
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
    f = os.fdopen(fd, "r+b")
    if fcntl is not None:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise DownloadError(f"{part} is being written by another download; wait for it or stop it") from None
    return f


def _download_and_verify(x: _Transfer, retries: int, backoff: float) -> None:
    """Fetch until the .part holds `size` bytes and their sha1 matches; a resumed prefix that fails the hash earns
    one download from zero."""
    task = x.task
    fresh_retry_left = x.offset > 0
    while True:
        _download_rest(x, retries, backoff)
        x.f.flush()
        os.fsync(x.f.fileno())
        got = x.sha1.hexdigest()
        if got == task.sha1.lower():
            return
        if fresh_retry_left and not x.restarted:
            fresh_retry_left = False
            x.progress.note(task, "sha1 mismatch after a resume; downloading it again from zero")
            x.restart()
            continue
        raise ChecksumError(
            f"{task.path.name}: sha1 {got} does not match the dump index's {task.sha1}; the bytes are kept only as "
            f"{x.part} (the next run downloads it again)"
        )


def _download_rest(x: _Transfer, retries: int, backoff: float) -> None:
    """GET from the .part's end until the file is complete; `retries` bounds the attempts in a row that got nowhere."""
    task = x.task
    fruitless = 0
    while x.offset < task.size:
        before = x.offset
        try:
            x.once()
        except _Retry as e:
            if x.offset > before:  # this attempt got somewhere: the retry budget starts afresh
                fruitless = 0
            if fruitless >= retries:
                x.f.flush()
                raise DownloadError(
                    f"{task.url}: {e}; gave up after {retries} retries without progress ({human_bytes(x.offset)} "
                    f"of {human_bytes(task.size)} kept in {x.part.name}, run again to resume)"
                ) from None
            fruitless += 1
            x.progress.note(task, f"{e}; retry {fruitless}/{retries}")
            _sleep(x.stop, _backoff(backoff, fruitless))


def fetch_files(
    tasks: list,
    *,
    workers: int = MAX_WORKERS,
    progress: bool = True,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
    stream: Optional[TextIO] = None,
) -> list:
    """Fetch every FileTask, at most `workers` (<= 2) at a time, and return their final paths in the order given.

    The first failure stops the other transfers at their next chunk (their .part files stay resumable) and is raised;
    so is KeyboardInterrupt, after every worker has closed its file.
    """
    if not tasks:
        return []
    workers = max(1, min(workers, MAX_WORKERS, len(tasks)))
    stop = threading.Event()
    prog = TransferProgress(total=sum(t.size for t in tasks), enabled=progress, stream=stream)

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
