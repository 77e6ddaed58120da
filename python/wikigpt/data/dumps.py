"""`wikigpt parts` and `wikigpt download`, and `download()`, the one call from a part list to verified files on disk.

The work is in three modules, by job:
  index.py     which files a dump has (dumpstatus.json, sha1sums.txt), grouped into parts; names, dates, part lists
  estimate.py  what the parts will cost: disk, time to add here, time to train at a run's speed, free space
  download.py  the HTTP client (urllib3, the environment's proxy settings) and the resumable, sha1-verified transfers

This module wires them for a user: the shared --wiki/--date/--parts/--mirror/--multistream arguments (`add --download`
uses them too), the plan printed before a download, and the disk-space refusal.

(`download` is a function here and the engine a module of another name: a submodule named like a public function
would shadow it as soon as it was imported.)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from ..errors import ConfigError, DiskSpaceError, DownloadError
from ..util.fmt import human_bytes
from .download import FileTask, fetch_files
from .estimate import (
    add_seconds,
    add_speed,
    describe_add_time,
    describe_plan,
    describe_train_time,
    estimate,
    estimates_note,
    parts_table,
    plan,
    run_train_speed,
)
from .extract import default_processes
from .index import (
    DEFAULT_MIRROR,
    DumpFile,
    Part,
    check_date,
    check_wiki,
    format_ranges,
    list_parts,
    mirror_base,
    parse_parts,
    resolve_date,
    select_parts,
)

# What is imported from here: the public API (wikigpt.download, .list_parts, .Part, .DumpFile, resolved through
# wikigpt/__init__.py's _LAZY) and add --download's arguments; the index's names are re-exported for older imports.
__all__ = ["download", "add_download_arguments", "add_cli", "list_parts", "resolve_date", "Part", "DumpFile",
           "check_wiki", "check_date"]


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
    label = f"{wiki} {date} part{'s' if len(chosen) > 1 else ''} {format_ranges([p.number for p in chosen])}"
    _check_space(chosen, dest, label, free_space, progress)
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(f"cannot create {dest}: {e.strerror or e}") from None
    prefix = f"{wiki}-{date}-pages-"  # the progress lines show 'articles12.xml-p...' rather than the whole name
    tasks = [FileTask(url=f.url, path=dest / f.name, size=f.size, sha1=f.sha1, label=f.name[len(prefix):])
             for f in files]
    return fetch_files(tasks, progress=progress, retries=retries, backoff=backoff, timeout=timeout)


def _check_space(chosen: list, dest: Path, label: str, free_space: Callable, progress: bool) -> None:
    """Print the plan (with progress) and refuse, before any file request, what would not fit in `dest`."""
    pl = plan(chosen, dest, free_space)
    if progress:
        print(describe_plan(label, pl, dest), file=sys.stderr, flush=True)
    if not pl.fits:
        raise DiskSpaceError(
            f"not enough space in {dest}: {label} need{'s' if len(chosen) == 1 else ''} {human_bytes(pl.needed)} more "
            f"({human_bytes(pl.total)} in all, {human_bytes(pl.done + pl.partial)} already there), "
            f"{human_bytes(pl.free)} free"
        )


# ---------------------------------------------------------------------------------------------------------- arguments


def _parts_type(text: str) -> list:
    try:
        return parse_parts(text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_download_arguments(parser: argparse.ArgumentParser, *, parts_required: bool = True) -> None:
    """Add --wiki, --date, --parts, --mirror, --multistream (shared by `download`, `parts` and `add --download`).
    args.parts is already a sorted list of ints (or None when optional and absent)."""
    parser.add_argument("--wiki", default="enwiki",
                        help="wiki database name: enwiki, dewiki, simplewiki, ... (default enwiki)")
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


# ---------------------------------------------------------------------------------------------------------------- CLI


def _cmd_parts(args: argparse.Namespace) -> int:
    base = mirror_base(args.mirror)
    date = resolve_date(args.wiki, args.date, base, args.multistream)
    parts = list_parts(args.wiki, date, base, args.multistream)
    shown = select_parts(parts, args.parts) if args.parts else parts
    speed = run_train_speed(args.run) if args.run else None
    if args.json:
        print(json.dumps(_parts_json(args.wiki, date, base, shown, speed), indent=2))
        return 0
    kind = "pages-articles-multistream" if args.multistream else "pages-articles"
    print(f"{args.wiki} {date} {kind} from {base}: {len(parts)} parts, {sum(len(p.files) for p in parts)} files")
    print(parts_table(shown))
    pl = plan(shown, args.dest)
    print(estimates_note())
    fits = "fits" if pl.fits else "does NOT fit"
    print(
        f"free space in {args.dest}: {human_bytes(pl.free)}; downloading "
        f"{'these' if args.parts else 'all'} parts needs {human_bytes(pl.needed)} more ({fits}), "
        f"their shards about {human_bytes(estimate(pl.total).shard_bytes)}"
    )
    print(describe_add_time(pl.total))
    print(describe_train_time(estimate(pl.total).tokens, speed))
    return 0


def _parts_json(wiki: str, date: str, base: str, shown: list, speed: Any) -> dict:
    """What `parts --json` prints: each part with its files and estimates, and what the time estimates rest on."""
    threads = default_processes()

    def part_json(p: Part) -> dict:
        est = estimate(p.size)
        return {"number": p.number, "size": p.size,
                "estimate": {**dataclasses.asdict(est), "add_seconds": add_seconds(p.size, threads),
                             "train_seconds": est.tokens / speed.tokens_per_s if speed else None},
                "files": [dataclasses.asdict(f) for f in p.files]}

    return {"wiki": wiki, "date": date, "mirror": base, "threads": threads,
            "add_bytes_per_s_per_thread": add_speed(),
            "train_tokens_per_s": speed.tokens_per_s if speed else None,
            "train_speed_from": speed.what if speed else None, "parts": [part_json(p) for p in shown]}


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
        "Prints the verified files, one per line. Honours HTTPS_PROXY, HTTP_PROXY and NO_PROXY.",
    )
    add_download_arguments(d, parts_required=True)
    d.add_argument("--dest", default=".", help="folder to download into (created if missing; default .)")
    d.add_argument("--retries", type=int, default=5,
                   help="retries per file without progress before giving up (default 5)")
    d.add_argument("-q", "--quiet", action="store_true", help="no plan or progress on stderr")
    d.set_defaults(func=_cmd_download)
