"""Which dump parts exist, what they will cost, and fetching them: `wikigpt parts` and `wikigpt download`.

The index is the dump's own `dumpstatus.json` (`{mirror}/{wiki}/{date}/dumpstatus.json`): `jobs.articlesdump.files`
(or `jobs.articlesmultistreamdump.files` with multistream=True) maps each file name to its size, relative url, md5
and sha1. Files are grouped into parts by the number in their name (enwiki's parts 11-27 have several files each);
nothing about a wiki's layout is hard-coded. Where a mirror's index lacks hashes, `{wiki}-{date}-sha1sums.txt`
supplies them. `date="latest"` lists `{mirror}/{wiki}/` and takes the newest date whose articles job is done.

The index is treated as untrusted input: every file name must match the expected pattern for that wiki and date
(so no path separator or `..` can reach the file system), every url must be exactly `/{wiki}/{date}/{name}`, and
sizes must be plain integers that the server's Content-Length then has to agree with. Nothing from it reaches a shell.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import shutil
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from ._io import human_bytes
from .download import FileTask, fetch_bytes, fetch_files, part_path
from .errors import ConfigError, DiskSpaceError, DownloadError

DEFAULT_MIRROR = "https://dumps.wikimedia.org"

# Estimates printed next to every size (always labelled as estimates). Where each number comes from:
# - XML bytes per compressed byte: 6,089,746 / 1,695,871 = 3.591, `bzip2 -dc | wc -c` on the bundled sample
#   (python/wikigpt/data/enwiki-sample-pages-articles1.xml-p10p30302.bz2, 2016, 206 pages). Re-measure on a real part:
#   `echo $(( $(bzip2 -dc PART.bz2 | wc -c) )) / $(stat -c %s PART.bz2)`. (DESIGN.md quotes ~4.5x for 2023 enwiki
#   parts, so XML may be underestimated by ~20% there; the lead's Rust-measured ratios replace these.)
# - clean text bytes per XML byte: 0.43, and UTF-8 bytes per GPT-2 token: 4.7, both measured on the same sample by the
#   Rust cleaner and tiktoken's r50k_base (`wikigpt extract` text bytes / XML bytes; text bytes / token count).
# - shard bytes per token: 2 exactly (uint16 tokens; the 1 kB header per shard is negligible).
XML_PER_COMPRESSED = 3.591
TEXT_PER_XML = 0.43
BYTES_PER_TOKEN = 4.7
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


def _fmt_tokens(n: float) -> str:
    for unit, div in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= div:
            return f"{n / div:.2f}{unit}" if n / div < 10 else f"{n / div:.1f}{unit}"
    return str(int(n))


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
                     _fmt_tokens(e.tokens), human_bytes(e.shard_bytes)))
    total = sum(p.size for p in parts)
    e = estimate(total)
    rows.append(("total", str(sum(len(p.files) for p in parts)), human_bytes(total), human_bytes(e.xml),
                 human_bytes(e.text), _fmt_tokens(e.tokens), human_bytes(e.shard_bytes)))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    fmt = lambda r: "  ".join(c.rjust(w) for c, w in zip(r, widths))  # noqa: E731
    lines = [fmt(head), *(fmt(r) for r in rows[:-1]), "-" * len(fmt(head)), fmt(rows[-1])]
    return "\n".join(lines)


def describe_plan(label: str, pl: Plan, dest: Union[str, os.PathLike]) -> str:
    e = estimate(pl.total)
    have = f" ({human_bytes(pl.done + pl.partial)} already in {dest})" if pl.done or pl.partial else ""
    return (
        f"{label}: {len(pl.files)} files, {human_bytes(pl.total)} compressed, {human_bytes(pl.needed)} to download{have}\n"
        f"  est. {human_bytes(e.xml)} XML -> {human_bytes(e.text)} clean text -> {_fmt_tokens(e.tokens)} tokens -> "
        f"{human_bytes(e.shard_bytes)} of shards ({_estimates_note()})\n"
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
    if args.json:
        out = [
            {"number": p.number, "size": p.size, "estimate": dataclasses.asdict(estimate(p.size)),
             "files": [dataclasses.asdict(f) for f in p.files]}
            for p in shown
        ]
        print(json.dumps({"wiki": args.wiki, "date": date, "mirror": base, "parts": out}, indent=2))
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
