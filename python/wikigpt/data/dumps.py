"""Which dump parts exist, what they will cost, and fetching them: `wikigpt parts` and `wikigpt download`.

The index is the dump's own `dumpstatus.json` (`{mirror}/{wiki}/{date}/dumpstatus.json`): `jobs.articlesdump.files`
(or `jobs.articlesmultistreamdump.files` with multistream=True) maps each file name to its size, relative url, md5
and sha1. Files are grouped into parts by the number in their name (enwiki's parts 11-27 have several files each);
nothing about a wiki's layout is hard-coded. Where a mirror's index lacks hashes, `{wiki}-{date}-sha1sums.txt`
supplies them. `date="latest"` lists `{mirror}/{wiki}/` and takes the newest date whose articles job is done.

The index is treated as untrusted input: every file name must match the expected pattern for that wiki and date
(so no path separator or `..` can reach the file system), every url must be exactly `/{wiki}/{date}/{name}`, and
sizes must be plain integers that the server's Content-Length then has to agree with. Nothing from it reaches a shell.

Downloads (`fetch_file`, `fetch_files`; standard library HTTP only). What one file goes through (`fetch_file`):
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
Nothing taken from a server or an index ever reaches a shell; file names are checked (parts_from_dumpstatus) before
they reach the engine.

(One module rather than a separate `wikigpt.download`: a submodule of that name would shadow the public function
`wikigpt.download` as soon as it was imported.)
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import http.client
import json
import os
import re
import shutil
import socket
import statistics
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
from typing import Any, Callable, Iterable, Optional, TextIO, Union

from ..util.fmt import fmt_duration, fmt_eta, fmt_tokens, human_bytes
from ..util.io import fsync_dir
from ..errors import ChecksumError, ConfigError, DiskSpaceError, DownloadError
from . import SAMPLE
from .extract import default_processes

try:  # POSIX advisory locks; on Windows the lock is skipped (the sha1 check still catches interleaved writers)
    import fcntl
except ImportError:  # pragma: no cover - not on the platforms we test
    fcntl = None  # type: ignore[assignment]

DEFAULT_MIRROR = "https://dumps.wikimedia.org"

# Estimates printed next to every size (always labelled as estimates). Where each number comes from:
# - XML bytes per compressed byte: 6,089,746 / 1,695,871 = 3.591, `bzip2 -dc | wc -c` over the file size of the bundled
#   sample (python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2: 2016, 206 pages). Re-measure on a
#   real part with `bzip2 -dc PART.bz2 | wc -c` and `stat -c %s PART.bz2`. DESIGN.md quotes ~4.5x for 2023 enwiki
#   parts, so XML may be underestimated by ~20% there.
# - clean text bytes per XML byte 0.467 and UTF-8 bytes per GPT-2 token 4.635: what wikigpt's own pipeline makes of
#   the same sample (`wikigpt add`: 2,842,234 text bytes, 613,235 tokens EOTs included; tests/test_dumps.py recomputes
#   both). wikiextractor 3.1.0 keeps less of the same pages (0.429; tiktoken gives it 4.73 bytes/token).
# - shard bytes per token: 2 exactly (uint16 tokens; the 1 kB header per shard is negligible).
# - time to `add` (.bz2 to token shards): measured on this machine when asked (`add_seconds` below).
# - time to train one pass over the parts (`parts --run RUN`): the estimated tokens over the median tokens/s that
#   the user's own run logged (`run_train_speed`); nothing is assumed about a card we have not seen run.
XML_PER_COMPRESSED = 3.591
TEXT_PER_XML = 0.467
BYTES_PER_TOKEN = 4.635
SHARD_BYTES_PER_TOKEN = 2

_WIKI_RE = re.compile(r"^[a-z][a-z0-9_]{1,63}$")  # database names: enwiki, dewiki, zh_yuewiki, be_x_oldwiki
_DATE_RE = re.compile(r"^\d{8}$")
_SHA1_RE = re.compile(r"^[0-9a-f]{40}$")
_MD5_RE = re.compile(r"^[0-9a-f]{32}$")
_INDEX_LIMIT = 16 << 20  # dumpstatus.json of enwiki is ~130 kB; anything near this limit is not an index
_LATEST_TRIES = 5  # dates tried, newest first, when resolving --date latest


@dataclass(frozen=True)
class DumpFile:
    """One file of a dump, as the dump's index describes it. `url` is absolute (mirror base + the index's path)."""

    name: str
    size: int
    sha1: Optional[str]
    url: str
    md5: Optional[str] = None
    first_page_id: Optional[int] = None  # from the name's pA pB suffix; None for a wiki dumped as a single file
    last_page_id: Optional[int] = None


@dataclass(frozen=True)
class Part:
    """Part `number` of a dump: every file whose name carries that number, in page-id order."""

    number: int
    files: tuple

    @property
    def size(self) -> int:
        return sum(f.size for f in self.files)


@dataclass(frozen=True)
class Estimate:
    """What `compressed` bytes of dump are expected to become (from the ratios above; estimates, not measurements)."""

    compressed: int
    xml: int
    text: int
    tokens: int
    shard_bytes: int


def estimate(compressed: int) -> Estimate:
    xml = compressed * XML_PER_COMPRESSED
    text = xml * TEXT_PER_XML
    tokens = text / BYTES_PER_TOKEN
    return Estimate(compressed, round(xml), round(text), round(tokens), round(tokens * SHARD_BYTES_PER_TOKEN))


_add_speed_cache: dict = {}


def add_speed() -> Optional[float]:
    """Bytes of XML per second that one thread of `wikigpt add` (decode, parse, clean, tokenize, shard) reaches on
    this machine, measured now on the bundled sample (~6 MB of XML, about a quarter of a second; the best of two runs,
    the first also warms the tokenizer). Cached per process; None if it cannot be measured (no extension, no sample).
    """
    if "speed" not in _add_speed_cache:
        _add_speed_cache["speed"] = None
        try:
            import tempfile

            from .. import _core

            best = None
            for _ in range(2):
                with tempfile.TemporaryDirectory(prefix="wikigpt-speed-") as tmp:
                    t0 = time.perf_counter()
                    raw = _core.build_shards([str(SAMPLE)], tmp, 0.005, 100_000_000, 1, [0], False, 200, True, True,
                                             False, _core.ProgressHandle())
                    secs = time.perf_counter() - t0
                xml = sum(s["xml_bytes"] for s in json.loads(raw)["stats"])
                best = max(best or 0.0, xml / secs)
            _add_speed_cache["speed"] = best
        except Exception:  # an estimate must never be the reason a command fails
            pass
    return _add_speed_cache["speed"]


#: How much of one more thread's speed `add` gains: on 2 cores the 1 GB bench corpus ran at 76.9 MB/s of XML with 2
#: threads (benches/shards.py, 2026-11-28) while the sample ran at ~50 MB/s on one thread minutes later: 0.77.
#: More cores are not measured on our machines (benches/cores.py measures them).
ADD_THREAD_EFFICIENCY = 0.8


def add_seconds(compressed: int, threads: int) -> Optional[float]:
    """Estimated wall seconds for `wikigpt add` of `compressed` bytes of dump on `threads` threads of this machine:
    the estimated XML over the measured one-thread speed, each further thread adding ADD_THREAD_EFFICIENCY of it."""
    speed = add_speed()
    if not speed:
        return None
    return estimate(compressed).xml / (speed * (1 + ADD_THREAD_EFFICIENCY * (max(1, threads) - 1)))


def describe_add_time(compressed: int, threads: Optional[int] = None) -> str:
    """One line: how long `wikigpt add` of these bytes should take here, and what the figure rests on."""
    threads = threads or default_processes()
    secs = add_seconds(compressed, threads)
    if secs is None:
        return "est. time to add: unknown (the speed test on the bundled sample could not run)"
    about = "" if secs < 1 else "~"
    return (f"est. time to add: {about}{fmt_duration(secs)} on {threads} thread{'s' if threads != 1 else ''} "
            f"(this machine ran the bundled sample at {add_speed() / 1e6:.0f} MB/s of XML per thread just now; "
            f"assumes each further thread adds {ADD_THREAD_EFFICIENCY:.0%} of that; more if cores are busy)")


@dataclass
class TrainSpeed:
    """Training throughput measured by one of the user's own runs (the estimate `parts --run` bases its time on)."""

    tokens_per_s: float
    windows: int  # logged step windows the median is over
    what: str  # the run, its model and its device, for the printed line


def run_train_speed(run_dir: Union[str, os.PathLike]) -> TrainSpeed:
    """Median tokens/s over a `wikigpt train` run's logged step windows (metrics.jsonl), leaving out the first window
    of each session (torch.compile and warm-up). Reads only the run's JSON files (no torch)."""
    from ..util.metrics import read_records

    run = Path(run_dir)
    steps = read_records(run, "step")

    def read_json(name: str) -> dict:  # config.json and meta.json only describe the run: missing is not fatal
        try:
            doc = json.loads((run / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    meta, cfg = read_json("meta.json"), read_json("config.json")
    # where each session (the first run, then every --resume) started: meta.json's start_iter and its history's
    session_starts = {0} | {m["start_iter"] for m in [meta, *meta.get("history", [])]
                            if isinstance(m, dict) and isinstance(m.get("start_iter"), int)}
    speeds: list[float] = []
    last_step = None
    for rec in steps:
        step, tps = rec.get("step"), rec.get("tokens_per_s")
        if not isinstance(step, int):
            continue
        # the first window after a session's start includes torch.compile and warm-up: not the steady speed
        first_of_session = last_step is None or step <= last_step or any(last_step <= s < step for s in session_starts)
        last_step = step
        if not first_of_session and isinstance(tps, (int, float)) and tps > 0:
            speeds.append(float(tps))
    if not speeds:
        raise ConfigError(f"{run}: no training speed logged yet (it needs at least two logged step windows)")
    median = statistics.median(speeds)
    about = []
    try:  # a courtesy for the printed line; the speed itself came from metrics.jsonl
        derived = cfg.get("derived", {})
        if derived.get("parameters"):
            about.append(f"{derived['parameters'] / 1e6:.1f}M parameters")
        if cfg.get("model", {}).get("block_size"):
            about.append(f"T={cfg['model']['block_size']}")
        if derived.get("micro_batch"):
            about.append(f"micro-batch {derived['micro_batch']}")
        if meta.get("device"):
            about.append(f"on {meta['device']}" + (f" x{derived['world_size']}" if derived.get("world_size", 1) > 1
                                                   else ""))
    except (TypeError, AttributeError, ValueError):
        pass
    what = f"{run}" + (f": {', '.join(about)}" if about else "")
    return TrainSpeed(median, len(speeds), what)


def describe_train_time(tokens: int, speed: Optional[TrainSpeed]) -> str:
    """One line: how long one pass over `tokens` takes at a run's measured speed, or how to get that estimate."""
    if speed is None:
        return ("est. time to train: add --run RUN_FOLDER (one of your `wikigpt train` runs) to estimate it from "
                "that run's measured tokens/s")
    count = f"{tokens / 1e9:.2f}B" if tokens >= 1e9 else f"{tokens / 1e6:.1f}M"
    return (f"est. time to train one pass over their ~{count} tokens: {fmt_duration(tokens / speed.tokens_per_s)}"
            f" at {speed.tokens_per_s:,.0f} tokens/s (the median of {speed.windows} logged windows of {speed.what}; "
            f"a bigger model, batch or another card changes it)")


# ------------------------------------------------------------------------------------------------------- HTTP engine

CHUNK = 1 << 20  # at most 1 MiB per read1(): Python overhead is nothing next to the network, Ctrl-C stays prompt
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
    from .._version import __version__

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
            e.close()  # the error carries the open response; close it now rather than at garbage collection
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
            e.close()  # the error carries the open response; close it now rather than at garbage collection
            if e.code == 416 and self.offset:  # the server's file is shorter than our .part: that .part is not it
                at = self.offset
                self.restart()
                raise _Retry(f"HTTP 416 for a resume at byte {at}; starting over") from None
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
            read = getattr(resp, "read1", resp.read)
            while self.offset < t.size:
                if self.stop.is_set():
                    raise _Stopped()
                try:
                    # read1: whatever has arrived (up to CHUNK), so progress and Ctrl-C stay prompt on a slow link
                    chunk = read(min(CHUNK, t.size - self.offset))
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
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DownloadError(f"cannot write {part}: {e.strerror or e}") from None
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
                    if x.offset > before:  # this attempt got somewhere: the retry budget starts afresh
                        fruitless = 0
                    if fruitless >= retries:
                        f.flush()
                        raise DownloadError(
                            f"{task.url}: {e}; gave up after {retries} retries without progress "
                            f"({human_bytes(x.offset)} of {human_bytes(task.size)} kept in {part.name}, run again to resume)"
                        ) from None
                    fruitless += 1
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
        rows = [(t.label or t.path.name, done, t.size, rate.rate(now), note) for t, done, rate, _, note in self.active.values()]
        if self.total:
            rows.append(("total", self.done, self.total, self.rate.rate(now), ""))
        tails = [self._tail(*row[1:]) for row in rows]
        # one label width for every line so the bars line up; narrow terminals shorten labels (from the left) first
        room = min(32, max(10, width - 1 - max((len(t) for t in tails), default=0)))
        out = []
        for (label, *_), tail in zip(rows, tails):
            if len(label) > room:
                label = "…" + label[-(room - 1):]
            out.append((label.ljust(room) + tail)[: width - 1])
        return out

    @staticmethod
    def _tail(done: int, size: int, rate: float, note: str) -> str:
        frac = done / size if size else 1.0
        eta = fmt_eta((size - done) / rate) if rate > 0 else "--:--"
        tail = f" {_bar(frac)} {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(size)} {human_bytes(rate)}/s ETA {eta}"
        return tail + (f"  {note}" if note else "")

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


# ---------------------------------------------------------------------------------------------------------- arguments


def mirror_base(mirror: Optional[str] = None) -> str:
    """The mirror base URL: `mirror`, else $WIKIGPT_MIRROR, else dumps.wikimedia.org; without a trailing slash."""
    base = (mirror or os.environ.get("WIKIGPT_MIRROR") or DEFAULT_MIRROR).strip()
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ConfigError(f"bad mirror {base!r}: expected an http(s) base URL such as {DEFAULT_MIRROR}")
    return base.rstrip("/")


def check_wiki(wiki: str) -> str:
    if not isinstance(wiki, str) or not _WIKI_RE.match(wiki):
        raise ConfigError(f"bad wiki name {wiki!r}: expected a database name such as enwiki, dewiki or simplewiki")
    return wiki


def check_date(date: str) -> str:
    if date != "latest" and not (isinstance(date, str) and _DATE_RE.match(date)):
        raise ConfigError(f"bad dump date {date!r}: expected YYYYMMDD (e.g. 20251101) or 'latest'")
    return date


def parse_parts(spec: Union[str, Iterable[int]]) -> list:
    """'1-3,5' -> [1, 2, 3, 5]: sorted, without duplicates. A list of ints is checked and normalized the same way."""
    if isinstance(spec, str):
        numbers: list = []
        for item in spec.replace(" ", "").split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", item)
            if not m:
                raise ConfigError(f"bad part list {spec!r}: expected numbers and ranges like 1-3,5")
            lo = int(m.group(1))
            hi = int(m.group(2)) if m.group(2) else lo
            if hi < lo:
                raise ConfigError(f"bad part list {spec!r}: range {item} goes backwards")
            if hi - lo > 100_000:
                raise ConfigError(f"bad part list {spec!r}: range {item} is too long")
            numbers.extend(range(lo, hi + 1))
    else:
        numbers = list(spec)
        if any(isinstance(n, bool) or not isinstance(n, int) for n in numbers):
            raise ConfigError(f"bad part list {numbers!r}: expected part numbers (ints)")
    if not numbers:
        raise ConfigError("empty part list")
    if min(numbers) < 1:
        raise ConfigError(f"bad part list {spec!r}: part numbers start at 1")
    return sorted(set(numbers))


def _parts_type(text: str) -> list:
    try:
        return parse_parts(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_download_arguments(parser: argparse.ArgumentParser, *, parts_required: bool = True) -> None:
    """Add --wiki, --date, --parts, --mirror, --multistream (shared by `download`, `parts` and `add --download`).
    args.parts is already a sorted list of ints (or None when optional and absent)."""
    parser.add_argument("--wiki", default="enwiki", help="wiki database name: enwiki, dewiki, simplewiki, ... (default enwiki)")
    parser.add_argument(
        "--date", default="latest", help="dump date YYYYMMDD, or 'latest' for the newest finished dump (default latest)"
    )
    parser.add_argument(
        "--parts",
        type=_parts_type,
        required=parts_required,
        default=None,
        metavar="LIST",
        help="part numbers and ranges, e.g. 1-3,5 (a part is every file with that number in its name)",
    )
    parser.add_argument(
        "--mirror",
        default=None,
        help=f"base URL of a dumps mirror laid out like {DEFAULT_MIRROR} (default $WIKIGPT_MIRROR or that)",
    )
    parser.add_argument(
        "--multistream",
        action="store_true",
        help="use the pages-articles-multistream files (many 100-page bz2 streams) instead of pages-articles",
    )


# -------------------------------------------------------------------------------------------------------------- index


def _job_name(multistream: bool) -> str:
    return "articlesmultistreamdump" if multistream else "articlesdump"


def _name_patterns(wiki: str, date: str, multistream: bool):
    prefix = re.escape(f"{wiki}-{date}-pages-articles") + ("-multistream" if multistream else "")
    numbered = re.compile(rf"^{prefix}([1-9][0-9]{{0,3}})\.xml-p([0-9]{{1,12}})p([0-9]{{1,12}})\.bz2$")
    single = re.compile(rf"^{prefix}\.xml\.bz2$")  # small wikis: one file, no part number (taken as part 1)
    # the multistream job also lists each part's offset index, which the pipeline does not need
    index = re.compile(rf"^{prefix}-index([1-9][0-9]{{0,3}})?\.txt(-p[0-9]{{1,12}}p[0-9]{{1,12}})?\.bz2$")
    return numbered, single, index


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def parse_sha1sums(text: str) -> dict:
    """`<sha1>  <name>` lines (sha1sum's format, as in {wiki}-{date}-sha1sums.txt) -> {name: sha1}."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^([0-9a-fA-F]{40}) [ *]?(\S+)\s*$", line)
        if m:
            out[m.group(2)] = m.group(1).lower()
    return out


def parts_from_dumpstatus(
    status: Any,
    wiki: str,
    date: str,
    *,
    mirror: Optional[str] = None,
    multistream: bool = False,
    sha1sums: Optional[dict] = None,
    source: str = "dumpstatus.json",
) -> list:
    """The parts described by a parsed dumpstatus.json, checked as untrusted input; `sha1sums` fills missing hashes."""
    check_wiki(wiki)
    if not _DATE_RE.match(date):
        raise ConfigError(f"bad dump date {date!r}: expected YYYYMMDD")
    base = mirror_base(mirror)
    job_name = _job_name(multistream)

    def bad(msg: str) -> DownloadError:
        return DownloadError(f"refusing {source}: {msg}")

    jobs = status.get("jobs") if isinstance(status, dict) else None
    if not isinstance(jobs, dict):
        raise bad("no 'jobs' object (not a dumpstatus.json?)")
    job = jobs.get(job_name)
    if not isinstance(job, dict):
        raise DownloadError(f"{source} has no {job_name} job: {wiki} {date} has no pages-articles dump")
    if job.get("status") != "done":
        raise DownloadError(
            f"{wiki} {date}: the {job_name} job is {_short(job.get('status'))}, not done; "
            "pick an older --date or --date latest"
        )
    files = job.get("files")
    if not isinstance(files, dict) or not files:
        raise bad(f"jobs.{job_name}.files is empty or not an object")
    numbered, single, index = _name_patterns(wiki, date, multistream)
    by_part: dict = {}
    n_single = 0
    for name, info in files.items():
        if not isinstance(name, str):
            raise bad(f"file name {_short(name)} is not a string")
        m = numbered.match(name)
        if m:
            number, first, last = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if first > last:
                raise bad(f"file {name}: page range p{first}p{last} goes backwards")
        elif single.match(name):
            number, first, last = 1, None, None
            n_single += 1
        elif multistream and index.match(name):
            continue
        else:  # also catches '/', '..', NUL, other wikis' or dates' files
            raise bad(f"unexpected file name {_short(name)} in jobs.{job_name} (expected {wiki}-{date}-pages-articles...)")
        if not isinstance(info, dict):
            raise bad(f"entry of {name} is not an object")
        size = info.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size > 1 << 44:
            raise bad(f"file {name}: bad size {_short(size)}")
        url = info.get("url")
        if url != f"/{wiki}/{date}/{name}":
            raise bad(f"file {name}: url {_short(url)} is not /{wiki}/{date}/{name}")
        sha1 = info.get("sha1")
        if sha1 is not None and not (isinstance(sha1, str) and _SHA1_RE.match(sha1.lower())):
            raise bad(f"file {name}: bad sha1 {_short(sha1)}")
        if sha1 is None and sha1sums:
            sha1 = sha1sums.get(name)
        md5 = info.get("md5")
        if md5 is not None and not (isinstance(md5, str) and _MD5_RE.match(md5.lower())):
            raise bad(f"file {name}: bad md5 {_short(md5)}")
        f = DumpFile(
            name=name,
            size=size,
            sha1=sha1.lower() if sha1 else None,
            url=base + url,
            md5=md5.lower() if md5 else None,
            first_page_id=first,
            last_page_id=last,
        )
        by_part.setdefault(number, []).append(f)
    if n_single and (n_single > 1 or len(by_part) > 1 or len(by_part[1]) > 1):
        raise bad(f"jobs.{job_name} mixes a single-file dump with numbered parts")
    if not by_part:
        raise bad(f"jobs.{job_name} lists no pages-articles files")
    return [
        Part(number=n, files=tuple(sorted(fs, key=lambda f: (f.first_page_id or 0, f.name))))
        for n, fs in sorted(by_part.items())
    ]


def _dump_url(base: str, wiki: str, date: str, name: str = "") -> str:
    return f"{base}/{wiki}/{date}/{name}"


def _get_status(base: str, wiki: str, date: str) -> Optional[dict]:
    url = _dump_url(base, wiki, date, "dumpstatus.json")
    raw = fetch_bytes(url, limit=_INDEX_LIMIT, missing_ok=True)
    if raw is None:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise DownloadError(f"{url}: not valid JSON ({e})") from None


def _list_dates(base: str, wiki: str) -> Optional[list]:
    """The dump dates in the mirror's directory index of `{base}/{wiki}/`, newest first (None if it is a 404)."""
    raw = fetch_bytes(f"{base}/{wiki}/", limit=_INDEX_LIMIT, missing_ok=True)
    if raw is None:
        return None
    html = raw.decode("utf-8", "replace")
    return sorted(set(re.findall(r'href="(?:\./)?(\d{8})/?"', html)), reverse=True)


def resolve_date(wiki: str, date: str = "latest", mirror: Optional[str] = None, multistream: bool = False) -> str:
    """`date` itself, or for 'latest' the newest date on the mirror whose articles job is done."""
    check_wiki(wiki)
    if check_date(date) != "latest":
        return date
    base = mirror_base(mirror)
    dates = _list_dates(base, wiki)
    if dates is None:
        raise DownloadError(f"unknown wiki {wiki!r}: {base}/{wiki}/ answered 404")
    tried = []
    for d in dates[:_LATEST_TRIES]:
        tried.append(d)
        status = _get_status(base, wiki, d)
        job = status.get("jobs", {}).get(_job_name(multistream)) if isinstance(status, dict) else None
        if isinstance(job, dict) and job.get("status") == "done":
            return d
    if not dates:
        raise DownloadError(f"no dump dates listed at {base}/{wiki}/")
    raise DownloadError(
        f"no finished {wiki} {_job_name(multistream)} among the newest dumps at {base}/{wiki}/ (tried {', '.join(tried)})"
    )


def list_parts(
    wiki: str = "enwiki", date: str = "latest", mirror: Optional[str] = None, multistream: bool = False
) -> list:
    """The parts of a dump, from its dumpstatus.json on the mirror: `[Part(number=1, files=(DumpFile(...),)), ...]`."""
    check_wiki(wiki)
    base = mirror_base(mirror)
    date = resolve_date(wiki, date, base, multistream)
    status = _get_status(base, wiki, date)
    url = _dump_url(base, wiki, date, "dumpstatus.json")
    if status is None:
        dates = _list_dates(base, wiki)
        if dates is None:
            raise DownloadError(f"unknown wiki {wiki!r}: {base}/{wiki}/ answered 404")
        near = f"; dates there: {', '.join(dates[:6])}" if dates else ""
        raise DownloadError(f"no {wiki} dump dated {date}: {url} answered 404{near}")
    sha1sums = None
    job = status.get("jobs", {}).get(_job_name(multistream)) if isinstance(status, dict) else None
    files = job.get("files") if isinstance(job, dict) else None
    if isinstance(files, dict) and any(isinstance(v, dict) and not v.get("sha1") for v in files.values()):
        # some mirrors (and every multistream job) carry no hashes in dumpstatus.json; sha1sums.txt has them all
        raw = fetch_bytes(_dump_url(base, wiki, date, f"{wiki}-{date}-sha1sums.txt"), limit=_INDEX_LIMIT, missing_ok=True)
        sha1sums = parse_sha1sums(raw.decode("utf-8", "replace")) if raw is not None else None
    return parts_from_dumpstatus(
        status, wiki, date, mirror=base, multistream=multistream, sha1sums=sha1sums, source=url
    )


def select_parts(parts: list, numbers: Iterable[int]) -> list:
    """The parts with these numbers, in order; a number the dump does not have is an error naming what it has."""
    wanted = parse_parts(numbers)
    have = {p.number: p for p in parts}
    missing = [n for n in wanted if n not in have]
    if missing:
        raise DownloadError(
            f"no part {', '.join(map(str, missing))} in this dump; it has parts {_ranges(sorted(have))}"
        )
    return [have[n] for n in wanted]


def _ranges(numbers: list) -> str:
    """[1,2,3,5] -> '1-3,5' (the inverse of parse_parts)."""
    out, i = [], 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ",".join(out)


# ----------------------------------------------------------------------------------------------------------- planning


def _existing_dir(path: Path) -> Path:
    """`path` or its nearest existing parent (free space of a folder that does not exist yet is its parent's)."""
    path = path.absolute()
    while not path.exists() and path.parent != path:
        path = path.parent
    return path


@dataclass(frozen=True)
class Plan:
    """What downloading some parts into `dest` costs: bytes still to fetch, bytes already there, free space."""

    files: tuple
    total: int  # compressed bytes of every file
    done: int  # bytes of files already complete under their final names
    partial: int  # bytes in .part files that a resume keeps
    free: int

    @property
    def needed(self) -> int:
        return self.total - self.done - self.partial

    @property
    def fits(self) -> bool:
        return self.needed <= self.free


def plan(parts: list, dest: Union[str, os.PathLike], free_space: Callable = shutil.disk_usage) -> Plan:
    dest = Path(dest)
    files = tuple(f for p in parts for f in p.files)
    done = partial = 0
    for f in files:
        final, part = dest / f.name, part_path(dest / f.name)
        if final.exists():
            have = final.stat().st_size
            if have != f.size:
                raise DownloadError(
                    f"{final} exists with {have} bytes but the dump index says {f.size}: not a file this tool "
                    "finished; move it away and run again"
                )
            done += f.size
        elif part.exists():
            have = part.stat().st_size
            partial += have if have <= f.size else 0  # a .part longer than its file is discarded on resume
    free = int(free_space(str(_existing_dir(dest))).free)
    return Plan(files=files, total=sum(f.size for f in files), done=done, partial=partial, free=free)


def _estimates_note() -> str:
    return (
        f"estimates: XML = {XML_PER_COMPRESSED:g} x compressed, clean text = {TEXT_PER_XML:g} x XML, "
        f"{BYTES_PER_TOKEN:g} bytes/token (GPT-2 BPE), shards {SHARD_BYTES_PER_TOKEN} bytes/token "
        "(ratios measured on the bundled enwiki sample)"
    )


def parts_table(parts: list) -> str:
    """The table `wikigpt parts` prints: one row per part and a totals row."""
    head = ("part", "files", "compressed", "est. XML", "est. text", "est. tokens", "est. shards")
    rows = []
    for p in parts:
        e = estimate(p.size)
        rows.append((str(p.number), str(len(p.files)), human_bytes(p.size), human_bytes(e.xml), human_bytes(e.text),
                     fmt_tokens(e.tokens), human_bytes(e.shard_bytes)))
    total = sum(p.size for p in parts)
    e = estimate(total)
    rows.append(("total", str(sum(len(p.files) for p in parts)), human_bytes(total), human_bytes(e.xml),
                 human_bytes(e.text), fmt_tokens(e.tokens), human_bytes(e.shard_bytes)))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [fmt(head), *(fmt(r) for r in rows[:-1]), "-" * len(fmt(head)), fmt(rows[-1])]
    return "\n".join(lines)


def describe_plan(label: str, pl: Plan, dest: Union[str, os.PathLike]) -> str:
    e = estimate(pl.total)
    have = f" ({human_bytes(pl.done + pl.partial)} already in {dest})" if pl.done or pl.partial else ""
    return (
        f"{label}: {len(pl.files)} file{'s' if len(pl.files) != 1 else ''}, {human_bytes(pl.total)} compressed, {human_bytes(pl.needed)} to download{have}\n"
        f"  est. {human_bytes(e.xml)} XML -> {human_bytes(e.text)} clean text -> {fmt_tokens(e.tokens)} tokens -> "
        f"{human_bytes(e.shard_bytes)} of shards ({_estimates_note()})\n"
        f"  {describe_add_time(pl.total)}\n"
        f"  free space in {dest}: {human_bytes(pl.free)}"
    )


# ----------------------------------------------------------------------------------------------------------- download


def download(
    parts: Union[str, Iterable[int]],
    wiki: str = "enwiki",
    date: str = "latest",
    dest: Union[str, os.PathLike] = ".",
    mirror: Optional[str] = None,
    multistream: bool = False,
    progress: bool = True,
    free_space: Callable = shutil.disk_usage,
    *,
    retries: int = 5,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> list:
    """Download, verify (sha1) and return the files of `parts` in `dest`, in part order then page-id order.

    Resumes `.part` files, skips files already verified, refuses (DiskSpaceError) when what is left to fetch does not
    fit in `dest`'s free space (`free_space(path).free`, shutil.disk_usage by default), and raises DownloadError /
    ChecksumError with one line on any failure. With progress=True the plan and a progress display go to stderr.
    """
    numbers = parse_parts(parts)
    check_wiki(wiki)
    base = mirror_base(mirror)
    date = resolve_date(wiki, date, base, multistream)
    chosen = select_parts(list_parts(wiki, date, base, multistream), numbers)
    files = [f for p in chosen for f in p.files]
    unhashed = [f.name for f in files if not f.sha1]
    if unhashed:
        raise DownloadError(
            f"no sha1 for {unhashed[0]}{' and others' if len(unhashed) > 1 else ''} in dumpstatus.json nor in "
            f"{wiki}-{date}-sha1sums.txt on {base}: refusing to download what cannot be verified"
        )
    dest = Path(dest)
    pl = plan(chosen, dest, free_space)
    label = f"{wiki} {date} part{'s' if len(chosen) > 1 else ''} {_ranges([p.number for p in chosen])}"
    if progress:
        print(describe_plan(label, pl, dest), file=sys.stderr, flush=True)
    if not pl.fits:
        raise DiskSpaceError(
            f"not enough space in {dest}: {label} need{'s' if len(chosen) == 1 else ''} {human_bytes(pl.needed)} more "
            f"({human_bytes(pl.total)} in all, {human_bytes(pl.done + pl.partial)} already there), "
            f"{human_bytes(pl.free)} free"
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {dest}: {e.strerror or e}") from None
    prefix = f"{wiki}-{date}-pages-"
    tasks = [
        FileTask(url=f.url, path=dest / f.name, size=f.size, sha1=f.sha1, label=f.name[len(prefix):])  # type: ignore[arg-type]
        for f in files
    ]
    return fetch_files(tasks, progress=progress, retries=retries, backoff=backoff, timeout=timeout)


# ---------------------------------------------------------------------------------------------------------------- CLI


def _cmd_parts(args: argparse.Namespace) -> int:
    base = mirror_base(args.mirror)
    date = resolve_date(args.wiki, args.date, base, args.multistream)
    parts = list_parts(args.wiki, date, base, args.multistream)
    shown = select_parts(parts, args.parts) if args.parts else parts
    speed = run_train_speed(args.run) if args.run else None
    if args.json:
        threads = default_processes()

        def train_seconds(p: Any) -> Optional[float]:
            return estimate(p.size).tokens / speed.tokens_per_s if speed else None

        out = [
            {"number": p.number, "size": p.size,
             "estimate": {**dataclasses.asdict(estimate(p.size)), "add_seconds": add_seconds(p.size, threads),
                          "train_seconds": train_seconds(p)},
             "files": [dataclasses.asdict(f) for f in p.files]}
            for p in shown
        ]
        print(json.dumps({"wiki": args.wiki, "date": date, "mirror": base, "threads": threads,
                          "add_bytes_per_s_per_thread": add_speed(),
                          "train_tokens_per_s": speed.tokens_per_s if speed else None,
                          "train_speed_from": speed.what if speed else None, "parts": out}, indent=2))
        return 0
    kind = "pages-articles-multistream" if args.multistream else "pages-articles"
    print(f"{args.wiki} {date} {kind} from {base}: {len(parts)} parts, {sum(len(p.files) for p in parts)} files")
    print(parts_table(shown))
    pl = plan(shown, args.dest)
    print(_estimates_note())
    fits = "fits" if pl.fits else "does NOT fit"
    print(
        f"free space in {args.dest}: {human_bytes(pl.free)}; downloading "
        f"{'these' if args.parts else 'all'} parts needs {human_bytes(pl.needed)} more ({fits}), "
        f"their shards about {human_bytes(estimate(pl.total).shard_bytes)}"
    )
    print(describe_add_time(pl.total))
    print(describe_train_time(estimate(pl.total).tokens, speed))
    return 0


def _cmd_download(args: argparse.Namespace) -> int:
    paths = download(
        args.parts,
        wiki=args.wiki,
        date=args.date,
        dest=args.dest,
        mirror=args.mirror,
        multistream=args.multistream,
        progress=not args.quiet,
        retries=args.retries,
    )
    for p in paths:
        print(p)
    return 0


def add_cli(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "parts",
        help="list a dump's parts with sizes and estimated XML, text and tokens",
        description="List the parts of a Wikipedia dump (from its dumpstatus.json) with compressed size, estimated "
        "XML, clean text and tokens, and the free space of --dest.",
    )
    add_download_arguments(p, parts_required=False)
    p.add_argument("--dest", default=".", help="folder whose free space is compared with the sizes (default .)")
    p.add_argument("--json", action="store_true", help="print the parts and their files as JSON instead of a table")
    p.add_argument("--run", metavar="RUN_FOLDER", help="a run folder of `wikigpt train`: estimate the time to train "
                   "one pass over the parts from its measured tokens/s")
    p.set_defaults(func=_cmd_parts)

    d = subparsers.add_parser(
        "download",
        help="download dump parts: resumable, sha1-verified, two files at a time",
        description="Download the files of some dump parts into --dest. Interrupted downloads resume from their "
        ".part files; each file is renamed to its final name only after its sha1 matches the dump's index. "
        "Prints the verified files, one per line.",
    )
    add_download_arguments(d, parts_required=True)
    d.add_argument("--dest", default=".", help="folder to download into (created if missing; default .)")
    d.add_argument("--retries", type=int, default=5, help="retries per file without progress before giving up (default 5)")
    d.add_argument("-q", "--quiet", action="store_true", help="no plan or progress on stderr")
    d.set_defaults(func=_cmd_download)
