"""What dump parts will cost before anything is fetched: disk (compressed, XML, clean text, tokens, shards), the time
`wikigpt add` takes on this machine, the time one training pass takes at a run's measured speed, and whether a
download fits in the free space of its folder (`plan`). Every number printed from here is labelled an estimate.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Union

from ..errors import ConfigError, DownloadError
from ..util.fmt import fmt_duration, fmt_tokens, human_bytes
from ..util.metrics import read_records
from . import SAMPLE
from .download import part_path
from .extract import default_processes

# Estimates printed next to every size (always labelled as estimates). Where each number comes from:
# - XML bytes per compressed byte: 6,089,746 / 1,695,871 = 3.591, `bzip2 -dc | wc -c` over the file size of the bundled
#   sample (data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2: 2016, 206 pages). Re-measure on a
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
    run = Path(run_dir)
    steps = read_records(run, "step")
    meta, cfg = _read_run_json(run / "meta.json"), _read_run_json(run / "config.json")
    # where each session (the first run, then every --resume) started: meta.json's start_iter and its history's
    session_starts = {0} | {m["start_iter"] for m in [meta, *meta.get("history", [])]
                            if isinstance(m, dict) and isinstance(m.get("start_iter"), int)}
    speeds = _steady_speeds(steps, session_starts)
    if not speeds:
        raise ConfigError(f"{run}: no training speed logged yet (it needs at least two logged step windows)")
    about = _describe_run(meta, cfg)
    what = f"{run}" + (f": {', '.join(about)}" if about else "")
    return TrainSpeed(statistics.median(speeds), len(speeds), what)


def _read_run_json(path: Path) -> dict:
    """config.json or meta.json: they only describe the run, so a missing or broken one is an empty dict."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def _steady_speeds(steps: list, session_starts: set) -> list:
    """tokens/s of every logged window but each session's first (torch.compile and warm-up: not the steady speed)."""
    speeds: list = []
    last_step = None
    for rec in steps:
        step, tps = rec.get("step"), rec.get("tokens_per_s")
        if not isinstance(step, int):
            continue
        first_of_session = last_step is None or step <= last_step or any(last_step <= s < step for s in session_starts)
        last_step = step
        if not first_of_session and isinstance(tps, (int, float)) and tps > 0:
            speeds.append(float(tps))
    return speeds


def _describe_run(meta: dict, cfg: dict) -> list:
    """'3.3M parameters', 'T=32', ... for the printed line; a courtesy, so whatever is missing or odd is left out."""
    about = []
    try:
        derived = cfg.get("derived", {})
        if derived.get("parameters"):
            about.append(f"{derived['parameters'] / 1e6:.1f}M parameters")
        if cfg.get("model", {}).get("block_size"):
            about.append(f"T={cfg['model']['block_size']}")
        if derived.get("micro_batch"):
            about.append(f"micro-batch {derived['micro_batch']}")
        if meta.get("device"):
            world = derived.get("world_size", 1)
            about.append(f"on {meta['device']}" + (f" x{world}" if world > 1 else ""))
    except (TypeError, AttributeError, ValueError):
        pass
    return about


def describe_train_time(tokens: int, speed: Optional[TrainSpeed]) -> str:
    """One line: how long one pass over `tokens` takes at a run's measured speed, or how to get that estimate."""
    if speed is None:
        return ("est. time to train: add --run RUN_FOLDER (one of your `wikigpt train` runs) to estimate it from "
                "that run's measured tokens/s")
    count = f"{tokens / 1e9:.2f}B" if tokens >= 1e9 else f"{tokens / 1e6:.1f}M"
    return (f"est. time to train one pass over their ~{count} tokens: {fmt_duration(tokens / speed.tokens_per_s)}"
            f" at {speed.tokens_per_s:,.0f} tokens/s (the median of {speed.windows} logged windows of {speed.what}; "
            f"a bigger model, batch or another card changes it)")


# ------------------------------------------------------------------------------------------------- disk and tables


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


def estimates_note() -> str:
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
        f"{label}: {len(pl.files)} file{'s' if len(pl.files) != 1 else ''}, {human_bytes(pl.total)} compressed, "
        f"{human_bytes(pl.needed)} to download{have}\n"
        f"  est. {human_bytes(e.xml)} XML -> {human_bytes(e.text)} clean text -> {fmt_tokens(e.tokens)} tokens -> "
        f"{human_bytes(e.shard_bytes)} of shards ({estimates_note()})\n"
        f"  {describe_add_time(pl.total)}\n"
        f"  free space in {dest}: {human_bytes(pl.free)}"
    )

