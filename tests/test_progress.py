"""util/progress.py: the smoothed rate, the one terminal-vs-log policy (LiveLines), and run_with_progress (a job on
a worker thread, polled; Ctrl-C cancels it through its handle). Download bars are in tests/test_download.py."""

from __future__ import annotations

import io
import math
import signal
import threading
import time

import pytest

from wikigpt.util.progress import LOG_INTERVAL, LiveLines, RateMeter, TransferProgress, run_with_progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


class FakeHandle:
    """The counters of a Rust ProgressHandle, set by the test's job."""

    def __init__(self, total: int = 1000):
        self.compressed_done, self.compressed_total = 0, total
        self.pages = self.docs = self.tokens = 0
        self.cancelled = threading.Event()

    def cancel(self):
        self.cancelled.set()


def test_rate_meter_forgets_old_bursts():
    m = RateMeter(window=5.0)
    assert m.rate(0.0) == 0.0 and math.isnan(m.eta(100, 0.0))
    m.add(0.0, 0)
    m.add(0.5, 1_000_000)  # a burst at the start
    for t in range(1, 21):  # then 10 per second for 20 s
        m.add(float(t), 10)
    assert m.count == 1_000_200
    assert m.rate(20.0) == pytest.approx(10, rel=0.25)
    assert m.eta(100, 20.0) == pytest.approx(10, rel=0.25)


def test_live_lines_off_a_terminal_write_one_block_per_interval():
    now = [0.0]
    out = io.StringIO()
    live = LiveLines(lambda t: [f"line at {t:.0f}"], stream=out, clock=lambda: now[0])
    for _ in range(100):  # 100 s of refreshes every second: a plain line every 30 s, no terminal codes
        now[0] += 1
        live.refresh()
    live.print("permanent")
    live.close(final=["done"])
    assert out.getvalue().splitlines() == ["line at 30", "line at 60", "line at 90", "permanent", "done"]
    assert live.draws == 0 and "\x1b" not in out.getvalue()


def test_live_lines_on_a_terminal_redraw_in_place():
    now = [0.0]
    out = FakeTTY()
    live = LiveLines(lambda t: ["a", "b"], stream=out, clock=lambda: now[0])
    live.refresh()
    live.refresh()  # the same instant: not redrawn
    now[0] += 0.3
    live.refresh()
    live.print("kept")  # above the block: the block is cleared, the line printed, the block drawn again
    assert live.draws == 3
    assert out.getvalue() == "a\nb\n" + "\x1b[2F\x1b[J" + "a\nb\n" + "\x1b[2F\x1b[J" + "kept\n" + "a\nb\n"
    live.close(final=["end"])
    assert out.getvalue().endswith("kept\na\nb\n\x1b[2F\x1b[Jend\n")


def test_disabled_lines_write_nothing():
    out = FakeTTY()
    live = LiveLines(lambda t: ["x"], stream=out, enabled=False)
    live.refresh(force=True)
    live.print("y")
    live.close(final=["z"])
    assert out.getvalue() == ""


def _job(handle: FakeHandle, steps: int = 5, delay: float = 0.02):
    def job():
        for _ in range(steps):
            time.sleep(delay)
            handle.compressed_done += handle.compressed_total // steps
            handle.pages += 10
        return "result"

    return job


def test_run_with_progress_on_a_terminal_ends_with_one_final_line():
    handle, out = FakeHandle(), FakeTTY()
    assert run_with_progress(_job(handle), handle, "add", progress=True, interval=0.01, stream=out) == "result"
    text = out.getvalue()
    final = text.split("\x1b[J")[-1]
    assert final.count("\n") == 1 and final.startswith("add  1.0 kB/1.0 kB 100%  pages 50")
    assert "ETA" in final and "MB/s (bz2)" in final


def test_run_with_progress_in_a_log_is_quiet_until_the_end():
    handle, out = FakeHandle(), io.StringIO()
    run_with_progress(_job(handle), handle, "extract", progress=True, interval=0.01, stream=out)
    lines = out.getvalue().splitlines()
    assert LOG_INTERVAL >= 30 and len(lines) == 1 and lines[0].startswith("extract  1.0 kB/1.0 kB 100%")


def test_run_with_progress_callback_and_errors():
    handle, seen = FakeHandle(), []
    run_with_progress(_job(handle), handle, "add", progress=seen.append, interval=0.01)
    assert len(seen) >= 2 and seen[-1]["compressed_done"] == 1000 and seen[-1]["pages"] == 50
    assert set(seen[-1]) >= {"compressed_total", "articles", "tokens", "elapsed_s", "compressed_mb_per_s", "eta_s"}

    def failing():
        raise ValueError("from the job")

    with pytest.raises(ValueError, match="from the job"):
        run_with_progress(failing, FakeHandle(), "add", progress=None)


def test_ctrl_c_cancels_the_job_and_waits_for_it_to_end():
    """A real SIGINT to the main thread while it waits on the job: the job is cancelled through its handle, and
    run_with_progress raises only once the job has ended. (On Python < 3.12 a Ctrl-C landing inside Thread.join()
    marked the thread as stopped while it ran on, and `extract` then deleted a staging folder that the job went on
    writing into: a Parquet file was left behind.)"""
    handle = FakeHandle()
    ended = threading.Event()

    def job():  # like a Rust job: stops soon after its cancel flag is set, after cleaning up its files
        assert handle.cancelled.wait(10)
        time.sleep(0.2)
        ended.set()
        raise KeyboardInterrupt

    main = threading.main_thread().ident
    threading.Timer(0.2, signal.pthread_kill, (main, signal.SIGINT)).start()
    with pytest.raises(KeyboardInterrupt):
        run_with_progress(job, handle, "add", progress=False, interval=0.01)
    assert handle.cancelled.is_set()
    assert ended.is_set(), "run_with_progress returned while the job was still running"


def test_download_progress_in_a_log_is_a_block_every_30_s():
    from pathlib import Path

    from wikigpt.data.download import FileTask

    now = [0.0]
    out = io.StringIO()
    prog = TransferProgress(total=3_000_000, stream=out, clock=lambda: now[0])
    task = FileTask("http://x/a", Path("a.bz2"), 3_000_000, "0" * 40, "a")
    prog.start(task)
    for _ in range(60):  # 60 s at 50 kB/s
        now[0] += 1
        prog.advance(task, 50_000)
    prog.note(task, "HTTP 503 Service Unavailable; retry 1/5")
    prog.finished(task)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["a", "total", "a", "total", "a.bz2:", "a.bz2:"]
    assert "50.0%" in lines[0] and "50.0 kB/s" in lines[0] and "ETA 00:30" in lines[0]
    assert lines[4] == "a.bz2: HTTP 503 Service Unavailable; retry 1/5" and "verified (sha1 000000000000" in lines[5]
