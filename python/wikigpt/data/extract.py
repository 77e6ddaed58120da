"""Dump files → clean article text: `wikigpt cat`, `wikigpt extract`, `extract_parallel`, `iter_articles`.

All the work happens in the Rust pipeline (rust/pipeline.rs); this module checks inputs, stages outputs so that a
failed or interrupted run leaves nothing that looks complete, and shows progress.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional, Sequence, Union

from ..errors import ConfigError
from ..util.progress import ProgressCallback, run_with_progress

PathLike = Union[str, os.PathLike]

FORMATS = ("jsonl", "text", "parquet")
#: wikiextractor's default output file size is 1 MB; ours is larger because fewer, bigger files are easier to move.
DEFAULT_FILE_SIZE = 100 * 1000 * 1000


@dataclass(frozen=True)
class Article:
    """One kept page: its id, revision id, namespace, title, URL and clean text."""

    id: int
    revid: Optional[int]
    ns: int
    title: str
    url: str
    text: str


@dataclass
class ExtractStats:
    """What `extract_parallel` did, summed over its inputs (`inputs` has the per-file stats from the core)."""

    files: list = field(default_factory=list)
    compressed_bytes: int = 0
    xml_bytes: int = 0
    pages_seen: int = 0
    articles: int = 0
    dropped: dict = field(default_factory=dict)
    text_bytes: int = 0
    elapsed_s: float = 0.0
    inputs: list = field(default_factory=list)

    @property
    def xml_mb_per_s(self) -> float:
        return self.xml_bytes / 1e6 / self.elapsed_s if self.elapsed_s else 0.0


def default_processes() -> int:
    return os.cpu_count() or 2


def resolve_processes(processes: Optional[int]) -> int:
    """Threads for a Rust job: None or 0 = all cores; a negative count is a mistake the user hears about in one line
    (it would otherwise fail in the Rust binding's unsigned conversion with a traceback)."""
    if processes is None or processes == 0:
        return default_processes()
    if processes < 0:
        raise ConfigError(f"--processes {processes}: use a thread count of at least 1 (or 0 for all cores)")
    return int(processes)


def _core():
    from .. import _core

    return _core


def check_inputs(paths: Sequence[PathLike]) -> list[Path]:
    """Every input must exist and be a readable file; say which one is not, before any work starts."""
    if not paths:
        raise ConfigError("no input files given")
    out = []
    for p in paths:
        p = Path(p)
        if not p.exists():
            raise FileNotFoundError(f"{p}: no such file")
        if not p.is_file():
            raise IsADirectoryError(f"{p}: not a file")
        if not os.access(p, os.R_OK):
            raise PermissionError(f"{p}: not readable")
        out.append(p)
    return out


def part_stem(path: PathLike) -> str:
    """`enwiki-…-pages-articles1.xml-p1p41242.bz2` → `enwiki-…-pages-articles1.xml-p1p41242` (names outputs)."""
    name = Path(path).name
    for suffix in (".bz2", ".xml"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def parse_size(text: Union[str, int]) -> int:
    """'100M' / '500K' / '1G' / '12345' → bytes (decimal units, like wikiextractor's --bytes)."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)[bB]?\s*", str(text))
    if not m:
        raise ConfigError(f"not a size: {text!r} (use e.g. 500K, 100M, 1G)")
    mult = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9}[m.group(2).lower()]
    return max(1, int(float(m.group(1)) * mult))


def _clean_stale_staging(out_dir: Path, prefix: str) -> None:
    """Remove staging folders left by killed runs (their pid is gone)."""
    for d in out_dir.glob(f"{prefix}*"):
        pid = d.name.rsplit("-", 1)[-1]
        if d.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def extract_parallel(
    inputs: Sequence[PathLike],
    out_dir: PathLike,
    processes: Optional[int] = None,
    format: str = "jsonl",
    min_chars: int = 0,
    namespaces: Sequence[int] = (0,),
    keep_redirects: bool = False,
    headings: bool = True,
    lists: bool = True,
    math: bool = False,
    file_size: Union[int, str] = DEFAULT_FILE_SIZE,
    progress: "bool | ProgressCallback | None" = None,
) -> ExtractStats:
    """Extract the clean articles of dump files (.xml.bz2 of any layout, or .xml) into `out_dir`.

    format "jsonl": one {"id","revid","url","title","text"} object per line (wikiextractor --json's keys);
    format "text": title line, then paragraphs, a blank line between articles;
    format "parquet": columns id, url, title, text (Hugging Face's wikimedia/wikipedia; needs wikigpt[parquet]),
    the same rows as "jsonl". Output files are named
    `<input stem>-NNNNN.<ext>`, at most about `file_size` bytes each, and appear only when complete: they are
    written in a staging folder and moved in at the end, so an error or Ctrl-C leaves nothing that looks finished.
    """
    import time

    if format not in FORMATS:
        raise ConfigError(f"format must be one of {', '.join(FORMATS)}, not {format!r}")
    if format == "parquet":
        from .parquet import import_pyarrow

        import_pyarrow()  # a missing extra is one line before the output folder exists
    paths = check_inputs(inputs)
    threads = resolve_processes(processes)  # before the output folder exists: a bad count changes nothing
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise type(e)(e.errno, f"cannot create output folder {out}: {e.strerror}") from None
    if not os.access(out, os.W_OK):
        raise PermissionError(f"{out}: output folder is not writable")
    _clean_stale_staging(out, ".wikigpt-extract-")
    staging = out / f".wikigpt-extract-{os.getpid()}"
    staging.mkdir(exist_ok=True)

    core = _core()
    handle = core.ProgressHandle()
    handle.compressed_total = sum(p.stat().st_size for p in paths)
    prefixes = [part_stem(p) for p in paths]
    clean = _clean_options(namespaces, keep_redirects, min_chars, headings, lists, math)
    started = time.monotonic()
    try:
        results = run_with_progress(
            lambda: _write_outputs(core, paths, staging, prefixes, format, parse_size(file_size), threads, clean,
                                   handle),
            handle,
            "extract",
            progress,
        )
        moved = []
        for r in results:
            for f in r["files"]:
                dest = out / Path(f).name
                os.replace(f, dest)
                moved.append(str(dest))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    stats = ExtractStats(files=moved, elapsed_s=time.monotonic() - started, inputs=[r["stats"] for r in results])
    for s in stats.inputs:
        stats.compressed_bytes += s["compressed_bytes"]
        stats.xml_bytes += s["xml_bytes"]
        stats.pages_seen += s["pages_seen"]
        stats.articles += s["pages_kept"]
        stats.text_bytes += s["text_bytes"]
        for k, v in s["dropped"].items():
            stats.dropped[k] = stats.dropped.get(k, 0) + v
    return stats


def _write_outputs(core, paths, staging: Path, prefixes, format: str, file_size: int, threads: int, clean: dict,
                   handle) -> list[dict]:
    """The output files of every input in `staging`: one {"files", "stats"} per input, in input order."""
    if format == "parquet":
        from .parquet import write_parquet_files

        return write_parquet_files(paths, staging, prefixes, file_size,
                                   lambda path: _article_stream(core, path, threads, clean, handle))
    raw = core.extract_files(
        [str(p) for p in paths], str(staging), prefixes, format == "jsonl", file_size, threads,
        clean["namespaces"], clean["keep_redirects"], clean["min_chars"], clean["headings"], clean["lists"],
        clean["math"], handle,
    )
    return json.loads(raw)


def _clean_options(namespaces, keep_redirects: bool, min_chars: int, headings: bool, lists: bool, math: bool) -> dict:
    """The cleaning flags of extract and iter_articles as one dict, in the form the Rust pipeline takes them."""
    return dict(namespaces=list(namespaces), keep_redirects=keep_redirects, min_chars=min_chars, headings=headings,
                lists=lists, math=math)


def _article_stream(core, path: Path, threads: int, clean: dict, handle):
    """The Rust pipeline over one dump file as an iterator of article tuples (id, revid, ns, title, url, text)."""
    return core.ArticleStream(
        str(path), threads, clean["namespaces"], clean["keep_redirects"], clean["min_chars"], clean["headings"],
        clean["lists"], clean["math"], False, handle,
    )


def iter_articles(
    path: PathLike,
    processes: Optional[int] = None,
    min_chars: int = 0,
    namespaces: Sequence[int] = (0,),
    keep_redirects: bool = False,
    headings: bool = True,
    lists: bool = True,
    math: bool = False,
) -> Iterator[Article]:
    """Yield the clean articles of one dump file in file order while the pipeline runs on background threads."""
    (p,) = check_inputs([path])
    core = _core()
    clean = _clean_options(namespaces, keep_redirects, min_chars, headings, lists, math)
    stream = _article_stream(core, p, resolve_processes(processes), clean, core.ProgressHandle())
    try:
        for t in stream:
            yield Article(*t)
    finally:
        stream.close()


def cat(
    inputs: Sequence[PathLike],
    out=None,
    processes: Optional[int] = None,
    progress: "bool | ProgressCallback | None" = None,
) -> int:
    """Decode dump files to a binary file object (default: stdout) in order, like `bzip2 -dc` but on N threads."""
    paths = check_inputs(inputs)
    out = out if out is not None else sys.stdout.buffer
    out.flush()
    core = _core()
    handle = core.ProgressHandle()
    handle.compressed_total = sum(p.stat().st_size for p in paths)
    return run_with_progress(
        lambda: core.cat([str(p) for p in paths], out.fileno(), resolve_processes(processes), handle),
        handle,
        "cat",
        progress,
    )


# ---------------------------------------------------------------------------------------------------------- CLI


def _add_clean_flags(p) -> None:
    p.add_argument("--processes", "-p", type=int, default=None, help="threads to use (default: all cores)")
    p.add_argument("--min-chars", type=int, default=0,
                   help="drop articles shorter than this many characters of clean text")
    p.add_argument("--namespaces", default="0", help="comma-separated namespace keys to keep (default 0 = articles)")
    p.add_argument("--keep-redirects", action="store_true", help="keep redirect pages (dropped by default)")
    p.add_argument("--no-headings", action="store_true", help="drop section headings instead of keeping them as lines")
    p.add_argument("--no-lists", action="store_true", help="drop list items instead of keeping their text")
    p.add_argument("--keep-math", action="store_true", help="keep the TeX source of <math> (dropped by default)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")


def _namespaces(text: str) -> list[int]:
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ConfigError(f"--namespaces takes comma-separated integers, not {text!r}") from None


def _cmd_cat(args) -> int:
    cat(args.files, processes=args.processes, progress=not args.quiet and sys.stderr.isatty())
    return 0


def _cmd_extract(args) -> int:
    stats = extract_parallel(
        args.files, args.output, processes=args.processes, format=args.format, min_chars=args.min_chars,
        namespaces=_namespaces(args.namespaces), keep_redirects=args.keep_redirects, headings=not args.no_headings,
        lists=not args.no_lists, math=args.keep_math, file_size=args.file_size, progress=not args.quiet,
    )
    dropped = ", ".join(f"{k} {v}" for k, v in sorted(stats.dropped.items()) if v)
    print(
        f"{stats.articles} articles from {stats.pages_seen} pages (dropped: {dropped or 'none'}); "
        f"{stats.xml_bytes / 1e6:.1f} MB of XML in {stats.elapsed_s:.1f} s ({stats.xml_mb_per_s:.1f} MB/s); "
        f"{len(stats.files)} file(s) in {args.output}",
        file=sys.stderr,
    )
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("cat", help="decode dump files to stdout on all cores (a parallel bzcat for dumps)")
    p.add_argument("files", nargs="+", help=".xml.bz2 (single- or multistream) or .xml files")
    p.add_argument("--processes", "-p", type=int, default=None, help="threads to use (default: all cores)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar on stderr")
    p.set_defaults(func=_cmd_cat)

    p = sub.add_parser("extract", help="extract clean article text from dump files")
    p.add_argument("files", nargs="+", help=".xml.bz2 or .xml dump files")
    p.add_argument("--output", "-o", required=True, help="output folder (created if missing)")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl: wikiextractor --json keys per line; text: title then paragraphs, blank line between; "
                   "parquet: Hugging Face wikimedia/wikipedia columns (id, url, title, text), needs wikigpt[parquet]")
    p.add_argument("--file-size", default="100M", help="roll to a new output file past this size (e.g. 1M, 100M)")
    _add_clean_flags(p)
    p.set_defaults(func=_cmd_extract)
