"""Dump files → clean articles through the Python API and the CLI: outputs, determinism, bad input, Ctrl-C."""

from __future__ import annotations

import bz2
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import wikigpt
from wikigpt import CorruptDumpError, DumpXMLError

N_PAGES = 206
N_REDIRECTS = 100


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "wikigpt", *map(str, args)], capture_output=True, **kw)


# ------------------------------------------------------------------------------------------------ decoding (cat)


@pytest.mark.parametrize("threads", [1, 2, 3])
def test_cat_is_byte_identical_to_libbz2(tmp_path, sample_bz2, sample_xml, threads):
    out = tmp_path / "out.xml"
    with open(out, "wb") as f:
        n = wikigpt.cat([sample_bz2], out=f, processes=threads)
    assert n == len(sample_xml)
    assert out.read_bytes() == sample_xml


def test_cat_multistream_and_plain_xml(tmp_path, sample_xml):
    # A multistream file: independent bzip2 streams of consecutive pieces, as in pages-articles-multistream.
    pieces = [sample_xml[i : i + 700_000] for i in range(0, len(sample_xml), 700_000)]
    multi = tmp_path / "multi.xml.bz2"
    multi.write_bytes(b"".join(bz2.compress(p, 9) for p in pieces))
    plain = tmp_path / "plain.xml"
    plain.write_bytes(sample_xml)
    out = tmp_path / "out"
    with open(out, "wb") as f:
        wikigpt.cat([multi, plain], out=f, processes=2)
    assert out.read_bytes() == sample_xml + sample_xml


@pytest.mark.skipif(shutil.which("lbzip2") is None, reason="lbzip2 (Debian package) not installed")
@pytest.mark.parametrize("level", [1, 9])
def test_cat_reads_what_lbzip2_writes(tmp_path, sample_xml, level):
    # Another encoder's choices (block cuts, Huffman tables, selectors): the native block decoder must read them too.
    src = tmp_path / "sample.xml"
    src.write_bytes(sample_xml)
    comp = tmp_path / "sample.xml.bz2"
    with open(comp, "wb") as f:
        subprocess.run(["lbzip2", f"-{level}", "-n", "2", "-c", str(src)], stdout=f, check=True)
    out = tmp_path / "out.xml"
    with open(out, "wb") as f:
        wikigpt.cat([comp], out=f, processes=2)
    assert out.read_bytes() == sample_xml


def test_cli_cat_matches_bzip2(sample_bz2, sample_xml):
    r = run_cli("cat", sample_bz2, "--processes", "2")
    assert r.returncode == 0, r.stderr
    assert r.stdout == sample_xml


# ------------------------------------------------------------------------------------------------ articles


def test_iter_articles_counts_and_order(sample_bz2):
    arts = list(wikigpt.iter_articles(sample_bz2, processes=2))
    assert 100 <= len(arts) <= N_PAGES - N_REDIRECTS
    ids = [a.id for a in arts]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(a.ns == 0 and a.text.strip() for a in arts)
    first = arts[0]
    assert first.title == "Anarchism" and first.id == 12
    assert "anarchism" in first.text.lower()
    assert first.url.startswith("https://en.wikipedia.org/")


def test_iter_articles_can_stop_early(sample_bz2):
    it = wikigpt.iter_articles(sample_bz2, processes=2)
    assert next(it).id == 12
    it.close()  # must not hang the background pipeline


def test_extract_jsonl(tmp_path, sample_bz2):
    stats = wikigpt.extract_parallel([sample_bz2], tmp_path / "out", processes=2, format="jsonl")
    assert stats.pages_seen == N_PAGES
    assert stats.dropped["redirect"] + stats.dropped["namespace"] == N_REDIRECTS  # one redirect is in ns 4
    assert stats.pages_seen == stats.articles + sum(stats.dropped.values())
    rows = [json.loads(line) for f in stats.files for line in Path(f).read_text(encoding="utf-8").splitlines()]
    assert len(rows) == stats.articles
    assert set(rows[0]) == {"id", "revid", "url", "title", "text"}  # wikiextractor --json keys
    assert rows[0]["id"] == "12" and rows[0]["title"] == "Anarchism" and rows[0]["revid"].isdigit()
    # Only complete, final files in the output folder: no temp or staging leftovers.
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(Path(f).name for f in stats.files)


def test_extract_text_format_and_file_size(tmp_path, sample_bz2):
    stats = wikigpt.extract_parallel([sample_bz2], tmp_path, processes=2, format="text", file_size="500K")
    assert len(stats.files) > 1  # ~2.5 MB of text rolled into 500 kB files
    text = "".join(Path(f).read_text(encoding="utf-8") for f in stats.files)
    blocks = [b for b in text.split("\n\n") if b.strip()]
    assert len(blocks) == stats.articles  # one article per paragraph block, title first
    assert blocks[0].startswith("Anarchism\n")


def test_output_is_identical_whatever_the_thread_count(tmp_path, sample_bz2):
    a = wikigpt.extract_parallel([sample_bz2], tmp_path / "a", processes=1)
    b = wikigpt.extract_parallel([sample_bz2], tmp_path / "b", processes=3)
    assert [Path(f).read_bytes() for f in a.files] == [Path(f).read_bytes() for f in b.files]


def test_min_chars_drops_short_articles(tmp_path, sample_bz2):
    all_ = wikigpt.extract_parallel([sample_bz2], tmp_path / "a", processes=2)
    some = wikigpt.extract_parallel([sample_bz2], tmp_path / "b", processes=2, min_chars=5000)
    assert 0 < some.dropped["too_short"] < all_.articles
    assert some.articles == all_.articles - some.dropped["too_short"]


def test_progress_callback(tmp_path, sample_bz2):
    seen = []
    wikigpt.extract_parallel([sample_bz2], tmp_path, processes=2, progress=seen.append)
    assert seen and seen[-1]["compressed_done"] == seen[-1]["compressed_total"] == sample_bz2.stat().st_size
    assert seen[-1]["pages"] == N_PAGES


# ------------------------------------------------------------------------------------------------ bad input


def _no_output(d: Path) -> bool:
    return not d.exists() or not any(d.iterdir())


def test_truncated_bz2(tmp_path, sample_bz2):
    bad = tmp_path / "trunc.xml.bz2"
    bad.write_bytes(sample_bz2.read_bytes()[:1_000_000])
    with pytest.raises(CorruptDumpError, match=r"trunc\.xml\.bz2.*byte \d+"):
        wikigpt.extract_parallel([bad], tmp_path / "out", processes=2)
    assert _no_output(tmp_path / "out")


def test_flipped_byte_is_a_crc_error(tmp_path, sample_bz2):
    data = bytearray(sample_bz2.read_bytes())
    data[800_000] ^= 0x10
    bad = tmp_path / "flip.xml.bz2"
    bad.write_bytes(bytes(data))
    with pytest.raises(CorruptDumpError, match=r"flip\.xml\.bz2.*byte \d+"):
        with open(tmp_path / "o", "wb") as f:
            wikigpt.cat([bad], out=f, processes=2)


def test_not_bz2(tmp_path):
    bad = tmp_path / "junk.bz2"
    bad.write_bytes(b"\x00\x01 this is not a dump " * 100)
    with pytest.raises(CorruptDumpError, match="junk.bz2"):
        wikigpt.extract_parallel([bad], tmp_path / "out")


def test_malformed_xml_names_the_page(tmp_path, sample_xml):
    xml = sample_xml.replace(b"<title>Anarchism</title>", b"<title>Anarchism</tilte>", 1)
    bad = tmp_path / "bad.xml"
    bad.write_bytes(xml)
    with pytest.raises(DumpXMLError, match=r"bad\.xml.*byte \d+"):
        wikigpt.extract_parallel([bad], tmp_path / "out", processes=2)
    assert _no_output(tmp_path / "out")


def test_wrong_file_fails_at_its_start(tmp_path, sample_xml):
    """A multistream index given instead of a dump part (an easy mix-up: the names differ by "-index"), or a bz2 of
    something else, fails at byte 0 with what the file is, without decoding or buffering the whole of it."""
    # the index's real line format (offset:page id:title), for the pages of the bundled sample
    ids_titles = re.findall(rb"<title>([^<]*)</title>\s*<ns>[^<]*</ns>\s*<id>(\d+)</id>", sample_xml)
    lines = b"".join(b"597:%s:%s\n" % (i, t) for t, i in ids_titles) * 2000  # ~8 MB of index
    index = tmp_path / "enwiki-20160101-pages-articles-multistream-index1.txt-p10p30302.bz2"
    index.write_bytes(bz2.compress(lines, 1))
    with pytest.raises(DumpXMLError, match=r"at decoded byte 0: not a MediaWiki XML export: it starts with "
                                           r"\"597:10:.*a multistream index file"):
        wikigpt.extract_parallel([index], tmp_path / "o1")
    noise = tmp_path / "noise.xml.bz2"
    noise.write_bytes(bz2.compress(bytes(range(256)) * 100))
    with pytest.raises(DumpXMLError, match=r"it starts with b\"\\x00\\x01\\x02"):
        wikigpt.extract_parallel([noise], tmp_path / "o2")


def test_non_utf8_xml(tmp_path, sample_xml):
    head = b'<?xml version="1.0" encoding="ISO-8859-1"?>\n'
    bad = tmp_path / "latin1.xml"
    bad.write_bytes(head + sample_xml.decode("utf-8").encode("latin-1", "replace"))
    with pytest.raises(DumpXMLError, match="UTF-8"):
        wikigpt.extract_parallel([bad], tmp_path / "out")


def test_missing_file_and_unwritable_output(tmp_path, sample_bz2):
    with pytest.raises(FileNotFoundError, match="nope.bz2"):
        wikigpt.extract_parallel([tmp_path / "nope.bz2"], tmp_path / "out")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="cannot create output folder"):
        wikigpt.extract_parallel([sample_bz2], blocker / "sub")


def test_full_disk_during_extract_is_one_line_and_keeps_earlier_output(tmp_path, sample_bz2):
    from conftest import one_error_line, run_with_file_size_limit

    out = tmp_path / "out"
    wikigpt.extract_parallel([sample_bz2], out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    # the same part again (its output is ~2.9 MB of JSON lines): the write fails at 100 kB
    r = run_with_file_size_limit(["extract", sample_bz2, "-o", out, "-q"], 100_000)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert "File too large" in line and str(out) in line, line
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing replaced, no temp folder left


def test_negative_thread_count_is_one_line_and_creates_nothing(tmp_path, sample_bz2):
    for args in (["extract", sample_bz2, "-o", tmp_path / "out", "-p", "-2"], ["add", tmp_path / "ds", sample_bz2,
                 "-p", "-1"], ["cat", sample_bz2, "-p", "-3"]):
        r = run_cli(*args)
        assert r.returncode == 1 and b"use a thread count of at least 1" in r.stderr, r
        assert b"Traceback" not in r.stderr and r.stdout == b""
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(wikigpt.WikiGPTError, match="--processes -1"):
        wikigpt.extract_parallel([sample_bz2], tmp_path / "api", processes=-1)


def test_cli_errors_are_one_line(tmp_path, sample_bz2):
    bad = tmp_path / "trunc.xml.bz2"
    bad.write_bytes(sample_bz2.read_bytes()[:500_000])
    for args in (["extract", bad, "-o", tmp_path / "o", "-q"], ["cat", tmp_path / "missing.bz2"], ["cat", bad]):
        r = run_cli(*args)
        assert r.returncode == 1, r
        err = r.stderr.decode()
        assert "Traceback" not in err
        lines = [line for line in err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("wikigpt: error:"), err


@pytest.mark.slow
def test_ctrl_c_stops_promptly_and_leaves_no_output(tmp_path, sample_xml):
    from conftest import big_dump, interrupt_cli, output_started

    big = big_dump(tmp_path / "big.xml.bz2", sample_xml, 100)  # ~600 MB of XML: 4 s of work on 2 cores here
    out = tmp_path / "out"
    code, err, exit_s = interrupt_cli(["extract", big, "-o", out, "-q"], started=output_started(out))
    assert code == 130, err
    assert exit_s < 5
    assert b"interrupted" in err
    assert _no_output(out)
