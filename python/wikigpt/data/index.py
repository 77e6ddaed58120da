"""The dump index: which files a dump has, grouped into parts, and the names and numbers a user gives for them.

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

import dataclasses
import json
import os
import re
import urllib.parse
from dataclasses import dataclass
from typing import Any, Iterable, Optional, Union

from ..errors import ConfigError, DownloadError
from .download import fetch_bytes

DEFAULT_MIRROR = "https://dumps.wikimedia.org"

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


# ------------------------------------------------------------------------------------------------ names and numbers


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



def format_ranges(numbers: list) -> str:
    """[1,2,3,5] -> '1-3,5' (the inverse of parse_parts)."""
    out, i = [], 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        out.append(str(numbers[i]) if i == j else f"{numbers[i]}-{numbers[j]}")
        i = j + 1
    return ",".join(out)



# --------------------------------------------------------------------------------------------------- dumpstatus.json


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
    files = _job_files(status, job_name, wiki, date, source)
    numbered, single, index = _name_patterns(wiki, date, multistream)
    by_part: dict = {}
    n_single = 0
    for name, info in files.items():
        if not isinstance(name, str):
            raise _refusing(source, f"file name {_short(name)} is not a string")
        m = numbered.match(name)
        if m:
            number, first, last = int(m.group(1)), int(m.group(2)), int(m.group(3))
            if first > last:
                raise _refusing(source, f"file {name}: page range p{first}p{last} goes backwards")
        elif single.match(name):
            number, first, last = 1, None, None
            n_single += 1
        elif multistream and index.match(name):
            continue
        else:  # also catches '/', '..', NUL, other wikis' or dates' files
            raise _refusing(source, f"unexpected file name {_short(name)} in jobs.{job_name} "
                                    f"(expected {wiki}-{date}-pages-articles...)")
        f = _dump_file(name, info, wiki, date, base, (sha1sums or {}).get(name), source)
        by_part.setdefault(number, []).append(dataclasses.replace(f, first_page_id=first, last_page_id=last))
    if n_single and (n_single > 1 or len(by_part) > 1 or len(by_part[1]) > 1):
        raise _refusing(source, f"jobs.{job_name} mixes a single-file dump with numbered parts")
    if not by_part:
        raise _refusing(source, f"jobs.{job_name} lists no pages-articles files")
    return [
        Part(number=n, files=tuple(sorted(fs, key=lambda f: (f.first_page_id or 0, f.name))))
        for n, fs in sorted(by_part.items())
    ]


def _refusing(source: str, msg: str) -> DownloadError:
    return DownloadError(f"refusing {source}: {msg}")


def _job_files(status: Any, job_name: str, wiki: str, date: str, source: str) -> dict:
    """jobs.{job_name}.files of a finished job, or a one-line error saying what the document is instead."""
    jobs = status.get("jobs") if isinstance(status, dict) else None
    if not isinstance(jobs, dict):
        raise _refusing(source, "no 'jobs' object (not a dumpstatus.json?)")
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
        raise _refusing(source, f"jobs.{job_name}.files is empty or not an object")
    return files


def _dump_file(
    name: str, info: Any, wiki: str, date: str, base: str, listed_sha1: Optional[str], source: str
) -> DumpFile:
    """One index entry, every field checked; `listed_sha1` (from sha1sums.txt) stands in for a missing sha1."""
    if not isinstance(info, dict):
        raise _refusing(source, f"entry of {name} is not an object")
    size = info.get("size")
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0 or size > 1 << 44:
        raise _refusing(source, f"file {name}: bad size {_short(size)}")
    url = info.get("url")
    if url != f"/{wiki}/{date}/{name}":
        raise _refusing(source, f"file {name}: url {_short(url)} is not /{wiki}/{date}/{name}")
    sha1 = info.get("sha1")
    if sha1 is not None and not (isinstance(sha1, str) and _SHA1_RE.match(sha1.lower())):
        raise _refusing(source, f"file {name}: bad sha1 {_short(sha1)}")
    if sha1 is None:
        sha1 = listed_sha1
    md5 = info.get("md5")
    if md5 is not None and not (isinstance(md5, str) and _MD5_RE.match(md5.lower())):
        raise _refusing(source, f"file {name}: bad md5 {_short(md5)}")
    return DumpFile(name=name, size=size, sha1=sha1.lower() if sha1 else None, url=base + url,
                    md5=md5.lower() if md5 else None)


# ---------------------------------------------------------------------------------------------------- from a mirror


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


def _job_of(status: Any, multistream: bool) -> Optional[dict]:
    job = status.get("jobs", {}).get(_job_name(multistream)) if isinstance(status, dict) else None
    return job if isinstance(job, dict) else None


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
        job = _job_of(_get_status(base, wiki, d), multistream)
        if job is not None and job.get("status") == "done":
            return d
    if not dates:
        raise DownloadError(f"no dump dates listed at {base}/{wiki}/")
    raise DownloadError(f"no finished {wiki} {_job_name(multistream)} among the newest dumps at {base}/{wiki}/ "
                        f"(tried {', '.join(tried)})")


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
    files = (_job_of(status, multistream) or {}).get("files")
    if isinstance(files, dict) and any(isinstance(v, dict) and not v.get("sha1") for v in files.values()):
        # some mirrors (and every multistream job) carry no hashes in dumpstatus.json; sha1sums.txt has them all
        sums_url = _dump_url(base, wiki, date, f"{wiki}-{date}-sha1sums.txt")
        raw = fetch_bytes(sums_url, limit=_INDEX_LIMIT, missing_ok=True)
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
            f"no part {', '.join(map(str, missing))} in this dump; it has parts {format_ranges(sorted(have))}"
        )
    return [have[n] for n in wanted]
