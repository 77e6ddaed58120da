"""The benchmark corpus shared by benches/extract.py and benches/shards.py: ~N MB of real Wikipedia XML.

The bundled sample (python/wikigpt/data/, 206 real enwiki pages, CC BY-SA) is decoded and its <page> elements are
repeated with unique page ids (original id + k * 10^7) and unique titles ("Title (k)" for copy k >= 1) until the XML
reaches --size-mb megabytes (10^6 bytes). Repetition keeps the text real (markup density, redirects, templates,
non-ASCII) while the ids and titles stay unique, so filters, page-id splits and manifests behave as on a real part.
Caveat: a tokenizer or cleaner that caches pieces sees the same ~2.6 MB of text over and over; the benches say so
where it matters.

Two compressed files are written, both as Wikimedia writes them:
- `...-pages-articles1.xml-p10pL.bz2`: one `bzip2 -9` stream (900 kB blocks), like the ordinary dump parts.
- `...-pages-articles-multistream1.xml-p10pL.bz2`: concatenated level-9 streams, the siteinfo header alone in the
  first, then 100 pages per stream, then the closing tag, like the multistream parts.

Everything is cached under benches/_work/corpus-<size>MB/ (gitignored) and reused while meta.json matches; building
1 GB takes a few minutes of `bzip2 -9`. Usage: `python benches/_corpus.py --size-mb 100`.
"""

from __future__ import annotations

import argparse
import bz2
import hashlib
import json
import multiprocessing
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "python" / "wikigpt" / "data" / "sample" / "enwiki-sample-pages-articles1.xml-p10p30302.bz2"
WORK = ROOT / "benches" / "_work"
#: Bump when the recipe below changes, so cached corpora built by an older recipe are rebuilt.
RECIPE = 1
ID_STRIDE = 10**7  # sample ids are < 31,000, so copy k owns ids [k*10^7, (k+1)*10^7)
PAGES_PER_STREAM = 100  # Wikimedia's multistream layout

_TITLE_RE = re.compile(rb"<title>(.*?)</title>")
_ID_RE = re.compile(rb"<id>(\d+)</id>")  # the first <id> inside <page> is the page id (revision ids come later)


@dataclass
class Corpus:
    size_mb: int
    dir: Path
    xml: Path  # the uncompressed XML (the reference: every decoder must reproduce it byte for byte)
    bz2: Path  # one bzip2 -9 stream
    multistream: Path  # 100 pages per stream
    xml_bytes: int
    xml_sha256: str
    pages: int
    copies: float  # how many times the sample's pages were used (the last copy may be partial)
    bz2_bytes: int
    multistream_bytes: int
    streams: int

    def describe(self) -> str:
        return (
            f"{self.xml_bytes / 1e6:,.1f} MB of XML ({self.pages:,} pages = {self.copies:.1f} x the 206-page real "
            f"enwiki sample, unique ids/titles); {self.bz2.name}: {self.bz2_bytes / 1e6:,.1f} MB, one bzip2 -9 "
            f"stream; multistream: {self.multistream_bytes / 1e6:,.1f} MB, {self.streams:,} streams"
        )


def split_sample(xml: bytes) -> tuple[bytes, list[bytes], bytes]:
    """The sample XML → (header up to the first <page>, the page elements with indentation and newline, footer)."""
    start = xml.find(b"  <page>")
    if start < 0:
        raise ValueError(f"{SAMPLE}: no <page> element found")
    pages = []
    pos = start
    while True:
        end = xml.find(b"</page>\n", pos)
        if end < 0:
            break
        end += len(b"</page>\n")
        pages.append(xml[pos:end])
        nxt = xml.find(b"  <page>", end)
        if nxt < 0:
            pos = end
            break
        pos = nxt
    return xml[:start], pages, xml[pos:]


def renumber(page: bytes, k: int) -> tuple[bytes, int, bytes]:
    """Copy k of a page: page id + k*10^7 and title + " (k)" (copy 0 is the original). Returns (page, id, title)."""
    m = _ID_RE.search(page)
    t = _TITLE_RE.search(page)
    if not m or not t:
        raise ValueError(f"{SAMPLE}: a page without <id> or <title>: {page[:200]!r}")
    new_id = int(m.group(1)) + k * ID_STRIDE
    title = t.group(1) + (b" (%d)" % k if k else b"")
    # Replace the id first (it comes after the title), so the title's new length does not shift its offsets.
    page = page[: m.start(1)] + str(new_id).encode() + page[m.end(1) :]
    page = page[: t.start(1)] + title + page[t.end(1) :]
    return page, new_id, title


def iter_pages(pages: list[bytes], budget: int) -> Iterator[tuple[int, bytes, int]]:
    """(copy k, page bytes, page id) until `budget` bytes of pages have been produced (ends on a whole page)."""
    total = 0
    k = 0
    while True:
        for p in pages:
            page, pid, _ = renumber(p, k)
            yield k, page, pid
            total += len(page)
            if total >= budget:
                return
        k += 1


def _compress9(data: bytes) -> bytes:
    return bz2.compress(data, 9)


def _groups(header: bytes, pages: list[bytes], footer: bytes, budget: int) -> Iterator[bytes]:
    yield header
    group: list[bytes] = []
    for _, page, _ in iter_pages(pages, budget):
        group.append(page)
        if len(group) == PAGES_PER_STREAM:
            yield b"".join(group)
            group = []
    if group:
        yield b"".join(group)
    yield footer


def _fresh(meta_path: Path, size_mb: int, sample_sha1: str) -> Optional[Corpus]:
    """The cached corpus if meta.json matches this recipe, size and sample, and every file has its recorded size."""
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if meta.get("recipe") != RECIPE or meta.get("size_mb") != size_mb or meta.get("sample_sha1") != sample_sha1:
        return None
    c = meta["corpus"]
    corpus = Corpus(**{**c, "dir": Path(c["dir"]), "xml": Path(c["xml"]), "bz2": Path(c["bz2"]),
                       "multistream": Path(c["multistream"])})
    for path, size in ((corpus.xml, corpus.xml_bytes), (corpus.bz2, corpus.bz2_bytes),
                       (corpus.multistream, corpus.multistream_bytes)):
        if not path.is_file() or path.stat().st_size != size:
            return None
    return corpus


def build(size_mb: int = 1000, work: Path = WORK, processes: Optional[int] = None, log=print) -> Corpus:
    """Build (or reuse) the corpus of `size_mb` MB of XML under `work`/corpus-<size>MB/."""
    if size_mb < 1:
        raise ValueError(f"--size-mb must be at least 1, not {size_mb}")
    if not SAMPLE.is_file():
        raise FileNotFoundError(f"{SAMPLE}: the bundled sample is missing (run from a source checkout)")
    raw = SAMPLE.read_bytes()
    sample_sha1 = hashlib.sha1(raw).hexdigest()
    out = work / f"corpus-{size_mb}MB"
    meta_path = out / "meta.json"
    cached = _fresh(meta_path, size_mb, sample_sha1)
    if cached:
        return cached

    out.mkdir(parents=True, exist_ok=True)
    meta_path.unlink(missing_ok=True)  # the corpus is valid only once meta.json is written again, last
    for stale in out.iterdir():
        stale.unlink()
    header, pages, footer = split_sample(bz2.decompress(raw))
    budget = size_mb * 10**6 - len(header) - len(footer)

    # Pass 1: the XML itself, its hash, and the page-id range (which names the files, as on dumps.wikimedia.org).
    started = time.monotonic()
    h = hashlib.sha256(header)
    tmp_xml = out / "corpus.xml.tmp"
    n_pages = 0
    first_id = last_id = None
    with open(tmp_xml, "wb") as f:
        f.write(header)
        for _, page, pid in iter_pages(pages, budget):
            f.write(page)
            h.update(page)
            n_pages += 1
            first_id = pid if first_id is None else min(first_id, pid)
            last_id = pid if last_id is None else max(last_id, pid)
        f.write(footer)
        h.update(footer)
    xml_bytes = tmp_xml.stat().st_size
    stem = f"enwiki-bench{size_mb}mb-pages-articles{{ms}}1.xml-p{first_id}p{last_id}"
    xml = out / stem.format(ms="")
    os.replace(tmp_xml, xml)
    log(f"corpus: wrote {xml_bytes / 1e6:,.1f} MB of XML, {n_pages:,} pages in {time.monotonic() - started:.0f} s")

    # Pass 2: the single stream with the real bzip2 (level 9, 900 kB blocks, as MediaWiki's dump scripts pipe it)
    # in the background, while a process pool compresses the multistream groups at level 9 (same block size).
    single = out / (stem.format(ms="") + ".bz2")
    multi = out / (stem.format(ms="-multistream") + ".bz2")
    started = time.monotonic()
    with open(xml, "rb") as src, open(str(single) + ".tmp", "wb") as dst:
        proc = subprocess.Popen(["bzip2", "-9", "-c"], stdin=src, stdout=dst)
    streams = 0
    with open(str(multi) + ".tmp", "wb") as dst, multiprocessing.Pool(processes or os.cpu_count() or 2) as pool:
        for blob in pool.imap(_compress9, _groups(header, pages, footer, budget), chunksize=4):
            dst.write(blob)
            streams += 1
    if proc.wait() != 0:
        raise RuntimeError(f"bzip2 -9 failed with exit code {proc.returncode} compressing {xml}")
    os.replace(str(single) + ".tmp", single)
    os.replace(str(multi) + ".tmp", multi)
    log(f"corpus: compressed both layouts in {time.monotonic() - started:.0f} s")

    corpus = Corpus(
        size_mb=size_mb, dir=out, xml=xml, bz2=single, multistream=multi, xml_bytes=xml_bytes,
        xml_sha256=h.hexdigest(), pages=n_pages, copies=n_pages / len(pages), bz2_bytes=single.stat().st_size,
        multistream_bytes=multi.stat().st_size, streams=streams,
    )
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(corpus).items()}
    meta_path.write_text(json.dumps({"recipe": RECIPE, "size_mb": size_mb, "sample_sha1": sample_sha1,
                                     "corpus": record}, indent=1))
    return corpus


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mb", type=int, default=1000, help="megabytes (10^6 bytes) of XML (default 1000)")
    ap.add_argument("--work", type=Path, default=WORK, help="cache folder (default benches/_work)")
    args = ap.parse_args(argv)
    corpus = build(args.size_mb, args.work, log=lambda s: print(s, file=sys.stderr))
    print(corpus.describe())
    print(f"  single stream: {corpus.bz2}\n  multistream:   {corpus.multistream}\n  xml:           {corpus.xml}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
