"""Progress for every long job: extract and add (a Rust job polled from Python), download (threads moving bytes).

One policy for where lines go (`LiveLines`): on a terminal, a block of live lines is redrawn in place at most four
times a second; on a pipe or a log file the same lines are written plainly at most every 30 s, so a log shows the job
moving without filling up. Permanent lines (a file verified, a retry) are printed above the live block either way.
Bytes, counts and ETAs are formatted by util/fmt.py only; speeds are smoothed over the last seconds (`RateMeter`).

Rust jobs (`run_with_progress`): the Rust call releases the GIL and updates atomic counters in a `ProgressHandle`;
this module polls them a few times a second. Ctrl-C arrives in the main thread (Python only delivers signals there),
which sets the handle's cancel flag: every Rust thread stops at its next check and the job raises KeyboardInterrupt
after cleaning up its temp files.
"""

from __future__ import annotations

import shutil
import sys
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Optional, Protocol, TextIO

from .fmt import fmt_count, fmt_eta, human_bytes

ProgressCallback = Callable[[dict], None]

#: How often live lines are redrawn on a terminal, and written to a pipe or a log file, at most.
TTY_INTERVAL = 0.25
LOG_INTERVAL = 30.0


class RateMeter:
    """A count per second over the last `window` seconds (a whole-run average would hide a stall or a recovery).

    Counts anything: bytes of a download, tokens of a training step. `add(now, n)` after each piece of work,
    `rate(now)` and `eta(remaining, now)` when a line is drawn; `count` is everything added so far.
    """

    def __init__(self, window: float = 5.0) -> None:
        self.window = window
        self.samples: deque = deque()  # (time, count so far); the oldest is kept as the window's baseline
        self.count = 0

    def add(self, now: float, n: float) -> None:
        self.count += n
        self.samples.append((now, self.count))
        while len(self.samples) > 2 and now - self.samples[1][0] > self.window:
            self.samples.popleft()

    def rate(self, now: float) -> float:
        if len(self.samples) < 2:
            return 0.0
        t0, c0 = self.samples[0]
        return (self.count - c0) / max(now - t0, 1e-3)

    def eta(self, remaining: float, now: float) -> float:
        """Seconds until `remaining` more at the current rate; NaN while the rate is unknown (fmt_eta shows --:--)."""
        rate = self.rate(now)
        return remaining / rate if rate > 0 else float("nan")


def bar(frac: float, width: int = 20) -> str:
    filled = int(max(0.0, min(1.0, frac)) * width)
    return "[" + "#" * filled + "." * (width - filled) + "]"


def transfer_tail(done: int, size: int, rate: float, note: str = "") -> str:
    """' [####....]  55.0% 11.0 MB/20.0 MB 1.0 MB/s ETA 00:09  note': where a byte transfer stands."""
    frac = done / size if size else 1.0
    eta = fmt_eta((size - done) / rate) if rate > 0 else fmt_eta(float("nan"))
    tail = f" {bar(frac)} {frac * 100:5.1f}% {human_bytes(done)}/{human_bytes(size)} {human_bytes(rate)}/s ETA {eta}"
    return tail + (f"  {note}" if note else "")


def _is_tty(stream: Any) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


class LiveLines:
    """Where a job's progress lines go: live lines that `render(now)` returns, and permanent lines (`print`).

    Thread safe: whichever thread reports when a redraw is due draws, under `lock` (an RLock, so `render` may take it
    too to read the job's state consistently).
    """

    def __init__(
        self,
        render: Callable[[float], list],
        *,
        stream: Optional[TextIO] = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        self.render = render
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and _is_tty(self.stream)
        self.clock = clock
        self.log_interval = log_interval
        self.lock = threading.RLock()
        self.drawn = 0  # lines of the live block now on screen
        self.last_draw = -1e9
        self.last_log = clock()  # the first plain line comes one interval after the start, not at once
        self.draws = 0

    def refresh(self, force: bool = False) -> None:
        """Redraw the live block if one is due (on a terminal), or write it as plain lines if one is due (elsewhere)."""
        if not self.enabled:
            return
        now = self.clock()
        with self.lock:
            if self.tty and (force or now - self.last_draw >= TTY_INTERVAL):
                self._clear()
                self._draw(now)
            elif not self.tty and now - self.last_log >= self.log_interval:
                self._write(self.render(now))
                self.last_log = now

    def print(self, line: str) -> None:
        """A permanent line, above the live block."""
        if not self.enabled:
            return
        with self.lock:
            self._clear()
            self._write([line])
            if self.tty:
                self._draw(self.clock())

    def close(self, final: Optional[list] = None) -> None:
        """Take the live block off the screen and leave `final` lines (if any) in its place."""
        with self.lock:
            self._clear()
            if final and self.enabled:
                self._write(final)

    def fit(self, line: str) -> str:
        """A live line cut to the terminal's width: a wrapped line would break redrawing in place."""
        return line[: shutil.get_terminal_size((100, 20)).columns - 1] if self.tty else line

    def _clear(self) -> None:
        if self.tty and self.drawn:
            # up to the first line of the block, then erase to the end of the screen
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.drawn = 0

    def _draw(self, now: float) -> None:
        lines = [self.fit(line) for line in self.render(now)]
        self._write(lines)
        self.drawn = len(lines)
        self.last_draw = now
        self.draws += 1

    def _write(self, lines: list) -> None:
        for line in lines:
            self.stream.write(line + "\n")
        self.stream.flush()


# ---------------------------------------------------------------------------------------------------- byte transfers


class Transfer(Protocol):
    """What TransferProgress needs to know of a file being fetched (data/download.py's FileTask)."""

    path: Path
    size: int
    sha1: str
    label: str


class _Active:
    """One file in flight: bytes it holds, their speed, when it started, the latest note (a retry)."""

    def __init__(self, task: Transfer, started: float) -> None:
        self.task = task
        self.done = 0
        self.meter = RateMeter()
        self.started = started
        self.note = ""


class TransferProgress:
    """A line per file in flight plus a total line; a permanent line when a file is verified or skipped, and (off a
    terminal, where the live lines are rare) for each retry. The download threads report; see LiveLines for drawing.
    """

    def __init__(
        self,
        total: int = 0,
        *,
        enabled: bool = True,
        stream: Optional[TextIO] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.done = 0  # bytes on disk and hashed, over all files
        self.active: dict = {}  # task.path -> _Active
        self.meter = RateMeter()
        self.clock = clock
        self.display = LiveLines(self.lines, stream=stream, enabled=enabled, clock=clock)

    @property
    def draws(self) -> int:
        return self.display.draws

    # -- events from the download threads
    def start(self, task: Transfer) -> None:
        with self.display.lock:
            self.active[task.path] = _Active(task, self.clock())

    def have(self, task: Transfer, n: int) -> None:
        """`n` bytes were already in the .part (resumed): they count as done but not towards the speed."""
        with self.display.lock:
            self.active[task.path].done += n
            self.done += n
        self.display.refresh()

    def advance(self, task: Transfer, n: int) -> None:
        now = self.clock()
        with self.display.lock:
            st = self.active[task.path]
            st.done += n
            st.meter.add(now, n)
            st.note = ""
            self.done += n
            self.meter.add(now, n)
        self.display.refresh()

    def lost(self, task: Transfer, n: int) -> None:
        """`n` bytes of a .part were thrown away (the download of that file starts over)."""
        with self.display.lock:
            st = self.active.get(task.path)
            if st is not None:
                st.done -= n
            self.done -= n

    def note(self, task: Transfer, text: str) -> None:
        with self.display.lock:
            st = self.active.get(task.path)
            if st is not None:
                st.note = text
        if not self.display.tty:  # retries are worth a line in a log
            self.display.print(f"{task.path.name}: {text}")
        self.display.refresh(force=True)

    def skipped(self, task: Transfer) -> None:
        with self.display.lock:
            self.done += task.size
        self.display.print(f"{task.path.name}: already downloaded and verified, skipped")

    def finished(self, task: Transfer) -> None:
        now = self.clock()
        with self.display.lock:
            st = self.active.pop(task.path, None)
        fetched = st.meter.count if st else 0
        secs = now - st.started if st else 0.0
        speed = f", {human_bytes(fetched / secs)}/s" if secs > 0 and fetched else ""
        self.display.print(
            f"{task.path.name}: {human_bytes(task.size)} verified (sha1 {task.sha1[:12]}…), "
            f"{human_bytes(fetched)} fetched in {secs:.1f} s{speed}"
        )

    def close(self) -> None:
        with self.display.lock:
            self.display.close()
            self.active.clear()

    # -- what is drawn
    def lines(self, now: float) -> list:
        """The live block's lines (one per file in flight, then the total), without terminal codes."""
        with self.display.lock:
            rows = [(st.task.label or st.task.path.name, st.done, st.task.size, st.meter.rate(now), st.note)
                    for st in self.active.values()]
            if self.total:
                rows.append(("total", self.done, self.total, self.meter.rate(now), ""))
        tails = [transfer_tail(*row[1:]) for row in rows]
        # one label width for every line so the bars line up; narrow terminals shorten labels (from the left) first
        width = shutil.get_terminal_size((100, 20)).columns
        room = min(32, max(10, width - 1 - max((len(t) for t in tails), default=0)))
        out = []
        for (label, *_), tail in zip(rows, tails):
            if len(label) > room:
                label = "…" + label[-(room - 1):]
            out.append(label.ljust(room) + tail)
        return out


# ------------------------------------------------------------------------------------------------------- Rust jobs


def snapshot(handle: Any, started: float) -> dict:
    """The handle's counters plus rates, as a plain dict (what progress callbacks receive)."""
    elapsed = max(time.monotonic() - started, 1e-9)
    done, total = handle.compressed_done, handle.compressed_total
    rate = done / elapsed
    return {
        "compressed_done": done,
        "compressed_total": total,
        "pages": handle.pages,
        "articles": handle.docs,
        "tokens": handle.tokens,
        "elapsed_s": elapsed,
        "compressed_mb_per_s": rate / 1e6,
        "eta_s": (total - done) / rate if rate > 0 and total else float("nan"),
    }


def format_line(label: str, s: dict) -> str:
    total = s["compressed_total"]
    pct = f"{100 * s['compressed_done'] / total:3.0f}%" if total else ""
    parts = [
        f"{label}",
        f"{human_bytes(s['compressed_done'])}/{human_bytes(total)} {pct}",
        f"pages {fmt_count(s['pages'])}",
        f"articles {fmt_count(s['articles'])}",
    ]
    if s["tokens"]:
        parts.append(f"tokens {fmt_count(s['tokens'])}")
    parts.append(f"{s['compressed_mb_per_s']:.1f} MB/s (bz2)")
    parts.append(f"ETA {fmt_eta(s['eta_s'])}")
    return "  ".join(parts)


def run_with_progress(
    job: Callable[[], Any],
    handle: Any,
    label: str,
    progress: "bool | ProgressCallback | None" = None,
    interval: float = 0.25,
    stream=None,
) -> Any:
    """Run `job()` (a Rust call that updates `handle`) on a thread; report progress; turn Ctrl-C into a clean cancel.

    progress: True → a one-line bar on stderr (redrawn on a TTY, a line every 30 s otherwise; LiveLines), then a
    final line; a callable → called with `snapshot(...)` dicts every `interval` s and once at the end; False/None →
    silent.
    """
    result: dict = {}
    # The job's end is this event, not the thread's: on Python < 3.12 a Ctrl-C that lands inside Thread.join()
    # marks the thread as stopped while it still runs (CPython's _wait_for_tstate_lock releases the lock the running
    # thread holds), so join() and is_alive() would let the caller delete a staging folder that the job is still
    # writing into (seen: `extract --format parquet` left a staging folder with one file after Ctrl-C).
    finished = threading.Event()

    def target() -> None:
        try:
            result["value"] = job()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e
        finally:
            finished.set()

    started = time.monotonic()
    line = LiveLines(lambda now: [format_line(label, snapshot(handle, started))], stream=stream,
                     enabled=progress is True)
    worker = threading.Thread(target=target, name=f"wikigpt-{label}", daemon=True)
    try:
        worker.start()
        while not finished.wait(interval):
            if callable(progress):
                progress(snapshot(handle, started))
            else:
                line.refresh()
    except KeyboardInterrupt:
        handle.cancel()
        # Wait for the job to wind down (its threads stop at their next check). A second Ctrl-C ends this wait.
        if worker.ident is not None:
            finished.wait()
        raise
    if callable(progress):
        progress(snapshot(handle, started))
    line.close(final=line.render(time.monotonic()) if progress is True else None)
    if "error" in result:
        raise result["error"]
    return result.get("value")
