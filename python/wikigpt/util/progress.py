"""Running a Rust job on a worker thread while the main thread shows progress and catches Ctrl-C.

The Rust call releases the GIL and updates atomic counters in a `ProgressHandle`; this module polls them a few times a
second. Ctrl-C arrives in the main thread (Python only delivers signals there), which sets the handle's cancel flag:
every Rust thread stops at its next check and the job raises KeyboardInterrupt after cleaning up its temp files.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any, Callable

from .fmt import fmt_count, fmt_eta, human_bytes

ProgressCallback = Callable[[dict], None]


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

    progress: True → a one-line bar on stderr (redrawn on a TTY, a line every 30 s otherwise); a callable → called
    with `snapshot(...)` dicts; False/None → silent.
    """
    stream = stream or sys.stderr
    result: dict = {}

    def target() -> None:
        try:
            result["value"] = job()
        except BaseException as e:  # re-raised in the caller's thread
            result["error"] = e

    started = time.monotonic()
    worker = threading.Thread(target=target, name=f"wikigpt-{label}", daemon=True)
    worker.start()
    tty = progress is True and hasattr(stream, "isatty") and stream.isatty()
    last_line = started
    try:
        while worker.is_alive():
            worker.join(interval)
            if not progress:
                continue
            snap = snapshot(handle, started)
            if callable(progress):
                progress(snap)
            elif tty:
                stream.write("\r\x1b[K" + format_line(label, snap))
                stream.flush()
            elif time.monotonic() - last_line >= 30:
                stream.write(format_line(label, snap) + "\n")
                stream.flush()
                last_line = time.monotonic()
    except KeyboardInterrupt:
        handle.cancel()
        worker.join()
        if tty:
            stream.write("\n")
        raise
    if progress is True:
        line = format_line(label, snapshot(handle, started))
        stream.write(("\r\x1b[K" if tty else "") + line + "\n")
        stream.flush()
    elif callable(progress):
        progress(snapshot(handle, started))
    if "error" in result:
        raise result["error"]
    return result.get("value")
