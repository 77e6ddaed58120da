"""Datasets that grow one dump part at a time: shards, manifest, split stability, refusals, crash safety."""

from __future__ import annotations

import bz2
import hashlib
import signal
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest

import wikigpt
from wikigpt import Dataset, DatasetError, DiskSpaceError, ShardError, _core
from wikigpt.data.shards import HEADER_BYTES, read_shard, write_shard


def sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def llmc_load(path: Path) -> np.ndarray:
    """llm.c's dev/data reader, re-stated: header of 256 int32, magic/version checks, then uint16 tokens."""
    header = np.fromfile(path, dtype=np.int32, count=256)
    assert header[0] == 20240520, "magic number mismatch in the data .bin file"
    assert header[1] == 1, "unsupported version"
    ntok = header[2]
    with open(path, "rb") as f:
        f.seek(256 * 4)
        tokens = np.frombuffer(f.read(), dtype=np.uint16)
    assert len(tokens) == ntok, "number of tokens read does not match header?"
    return tokens


def test_sample_dataset_manifest(sample_dataset):
    ds = Dataset(sample_dataset)
    m = ds.manifest
    assert m["format"] == "wikigpt-dataset" and m["version"] == 1
    assert m["tokenizer"]["encoding"] == "r50k_base" and m["split"]["val_fraction"] == 0.05
    (part,) = m["parts"]
    assert part["name"] == "enwiki-sample-pages-articles1"
    assert part["files"][0]["sha1"] == hashlib.sha1(
        (Path(wikigpt.__file__).parent / "data" / "sample" / part["files"][0]["name"]).read_bytes()).hexdigest()
    assert part["pages"]["seen"] == 206 and part["pages"]["dropped"]["redirect"] == 99  # + 1 redirect in ns 4
    assert part["pages"]["kept"] + sum(part["pages"]["dropped"].values()) == 206
    assert part["page_ids"][0] == 10
    assert part["tokens"]["train"] > 300_000 and part["tokens"]["val"] > 0
    for split in ("train", "val"):
        shards = ds.shards(split)
        assert sum(n for _, n in shards) == part["tokens"][split]
        for (path, n), rec in zip(shards, part["shards"][split]):
            assert path.stat().st_size == HEADER_BYTES + 2 * n
            assert sha256(path) == rec["sha256"]
            toks = read_shard(path)
            assert np.array_equal(toks, llmc_load(path))  # an llm.c reader accepts it
            assert np.array_equal(toks, np.array(_core.read_shard_rust(str(path)), dtype=np.uint16))
    # Fixed-size shards: all but the last of a split are exactly shard_tokens long.
    sizes = [n for _, n in ds.shards("train")]
    assert len(sizes) >= 2 and all(s == m["shard_tokens"] for s in sizes[:-1])


def test_documents_are_eot_then_title_and_text(sample_dataset, sample_bz2):
    ds = Dataset(sample_dataset)
    toks = np.concatenate([read_shard(p) for p, _ in ds.shards("train")])
    assert toks[0] == 50256
    docs = np.split(toks, np.flatnonzero(toks == 50256))[1:]
    arts = [a for a in wikigpt.iter_articles(sample_bz2, min_chars=200) if not _core.is_val(a.id, 0.05)]
    assert len(docs) == len(arts)
    enc = wikigpt.tokenizer()
    assert docs[0][1:].tolist() == enc.encode_ordinary(arts[0].title + "\n\n" + arts[0].text)


def test_val_pages_follow_the_split_rule(sample_dataset):
    ds = Dataset(sample_dataset)
    part = ds.parts[0]
    rows = ds.val_pages(part["name"])
    assert len(rows) == part["documents"]["val"] > 0
    assert all(_core.is_val(pid, 0.05) for pid, *_ in rows)
    val = np.concatenate([read_shard(p) for p, _ in ds.shards("val")])
    for _pid, _title, shard, off, _n in rows:
        assert shard == "val_000000.bin" and val[off] == 50256
    assert sum(n for *_, n in rows) == part["tokens"]["val"]


def test_split_does_not_depend_on_how_the_dump_is_cut(sample_dataset, sample_dataset_parts):
    one = Dataset(sample_dataset)
    three = Dataset(sample_dataset_parts)
    ids1 = {r[0] for r in one.val_pages(one.parts[0]["name"])}
    ids3 = {r[0] for p in three.parts for r in three.val_pages(p["name"])}
    assert ids1 == ids3
    assert one.tokens("train") == three.tokens("train") and one.tokens("val") == three.tokens("val")


def test_growth_appends_and_never_rewrites(tmp_path, sample_parts):
    ds = Dataset(tmp_path / "ds", val_fraction=0.05, shard_tokens=50_000)
    ds.add([sample_parts[2]], processes=2)  # parts in any order
    before = {p.name: sha256(p) for p in (tmp_path / "ds" / "parts").rglob("*.bin")}
    ds.add([sample_parts[0], sample_parts[1]], processes=2)
    assert [p["name"] for p in ds.parts] == [
        "enwiki-20160101-pages-articles3", "enwiki-20160101-pages-articles1", "enwiki-20160101-pages-articles2"]
    first = tmp_path / "ds" / "parts" / "enwiki-20160101-pages-articles3"
    assert {p.name: sha256(p) for p in first.glob("*.bin")} == before


def test_same_part_is_byte_identical_whatever_the_threads(tmp_path, sample_parts):
    a = Dataset(tmp_path / "a", shard_tokens=30_000)
    b = Dataset(tmp_path / "b", shard_tokens=30_000)
    a.add([sample_parts[0]], processes=1)
    b.add([sample_parts[0]], processes=3)
    sa = {p.name: sha256(p) for p in (tmp_path / "a").rglob("*.bin")}
    sb = {p.name: sha256(p) for p in (tmp_path / "b").rglob("*.bin")}
    assert sa == sb and len(sa) >= 2


def test_duplicates_are_refused_and_change_nothing(tmp_path, sample_parts):
    ds = Dataset(tmp_path / "ds")
    ds.add([sample_parts[0]], processes=2)
    manifest = (tmp_path / "ds" / "manifest.json").read_bytes()
    with pytest.raises(DatasetError, match="already in the dataset"):
        ds.add([sample_parts[0]])
    # The same file under another name: same sha1.
    renamed = tmp_path / "enwiki-20160101-pages-articles9.xml-p1p2.bz2"
    renamed.write_bytes(sample_parts[0].read_bytes())
    with pytest.raises(DatasetError, match="same sha1"):
        ds.add([renamed])
    # A different file under an existing file's name.
    other = tmp_path / "x" / sample_parts[0].name
    other.parent.mkdir()
    other.write_bytes(sample_parts[1].read_bytes())
    with pytest.raises(DatasetError, match="already in the dataset"):
        ds.add([other])
    assert (tmp_path / "ds" / "manifest.json").read_bytes() == manifest
    # Two copies of one new file in one call (the decoder hashes files as it reads them; a file that could be a
    # duplicate, by name or by size, is hashed before the work, so this is refused before either is added).
    twin_a = tmp_path / "enwiki-20160101-pages-articles7.xml-p1p2.bz2"
    twin_b = tmp_path / "enwiki-20160101-pages-articles8.xml-p3p4.bz2"
    twin_a.write_bytes(sample_parts[1].read_bytes())
    twin_b.write_bytes(sample_parts[1].read_bytes())
    with pytest.raises(DatasetError, match="same sha1"):
        ds.add([twin_a, twin_b])
    assert (tmp_path / "ds" / "manifest.json").read_bytes() == manifest
    assert not list((tmp_path / "ds").glob(".staging-*"))
    assert [p.name for p in (tmp_path / "ds" / "parts").iterdir()] == [sample_parts[0].name.split(".xml")[0]]


def test_fixed_settings_cannot_change(tmp_path, sample_parts):
    Dataset(tmp_path / "ds", val_fraction=0.01).add([sample_parts[0]])
    with pytest.raises(DatasetError, match="val_fraction is fixed at 0.01"):
        Dataset(tmp_path / "ds", val_fraction=0.02)


def test_disk_space_refusal(tmp_path, sample_parts):
    Usage = namedtuple("Usage", "total used free")
    ds = Dataset(tmp_path / "ds")
    with pytest.raises(DiskSpaceError, match=r"needs about .* but only .* is free"):
        ds.add([sample_parts[0]], free_space=lambda p: Usage(10**9, 10**9, 1000))
    assert not ds.exists


def test_status_reads_only_the_manifest(tmp_path, sample_parts):
    ds = Dataset(tmp_path / "ds")
    ds.add([sample_parts[0]])
    for p in (tmp_path / "ds" / "parts").rglob("*.bin"):
        p.unlink()
    text = ds.status()
    assert "enwiki-20160101-pages-articles1" in text and "total" in text


def test_missing_manifest_is_a_clear_error(tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        _ = Dataset(tmp_path).manifest


def test_export_nanogpt(tmp_path, sample_dataset):
    ds = Dataset(sample_dataset)
    counts = ds.export_nanogpt(tmp_path / "out")
    train = np.memmap(tmp_path / "out" / "train.bin", dtype=np.uint16, mode="r")
    assert len(train) == counts["train"] == ds.tokens("train")
    assert np.array_equal(train, np.concatenate([read_shard(p) for p, _ in ds.shards("train")]))


def test_python_shard_reader_checks_everything(tmp_path):
    p = tmp_path / "s.bin"
    write_shard(p, np.arange(10, dtype=np.uint16))
    assert read_shard(p).tolist() == list(range(10))
    raw = bytearray(p.read_bytes())
    (tmp_path / "short.bin").write_bytes(raw[:-2])
    with pytest.raises(ShardError, match="header says 10 tokens"):
        read_shard(tmp_path / "short.bin")
    raw[0] ^= 1
    (tmp_path / "magic.bin").write_bytes(raw)
    with pytest.raises(ShardError, match="magic"):
        read_shard(tmp_path / "magic.bin")


@pytest.mark.slow
def test_kill_9_at_any_moment_leaves_the_dataset_as_it_was(tmp_path, sample_parts, sample_xml):
    ds_path = tmp_path / "ds"
    ds = Dataset(ds_path, shard_tokens=1_000_000)
    ds.add([sample_parts[0]])
    from conftest import big_dump, wait_until_started

    # ~360 MB of XML: several seconds of work even on a fast decoder (150 MB finished within 2 s here)
    big = big_dump(tmp_path / "enwiki-20160101-pages-articles7.xml-p1p999.bz2", sample_xml, 60)
    manifest = (ds_path / "manifest.json").read_bytes()
    status = ds.status()
    shard_hashes = {p.name: sha256(p) for p in ds_path.rglob("*.bin")}
    # Kill during start-up (0.3 s in, before any staging), then at 0 s and 1 s after this process's staging folder
    # appears: moments tied to the work, not the clock, so a faster machine cannot outrun them.
    for staged, delay in ((False, 0.3), (True, 0.0), (True, 1.0)):
        # big_dump repeats the sample's page ids: --allow-overlap lets it in beside part 1
        p = subprocess.Popen([sys.executable, "-m", "wikigpt", "add", str(ds_path), str(big), "-q",
                              "--allow-overlap"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if staged:
            wait_until_started(p, lambda mine=f".staging-{p.pid}-*": any(ds_path.glob(mine)))
        time.sleep(delay)
        if p.poll() is not None:
            pytest.fail(f"add finished before the kill ({delay}s after staging={staged}); the input is too small")
        p.send_signal(signal.SIGKILL)
        p.wait()
        assert (ds_path / "manifest.json").read_bytes() == manifest
        assert Dataset(ds_path).status() == status
        assert {p.name: sha256(p) for p in (ds_path / "parts").rglob("*.bin")
                if p.parent.name == sample_parts[0].name.split(".xml")[0]} == shard_hashes
    # The next add cleans the leftovers and completes.
    Dataset(ds_path).add([big], processes=2, allow_overlap=True)
    assert not list(ds_path.glob(".staging-*"))
    assert [p["name"] for p in Dataset(ds_path).parts][-1] == "enwiki-20160101-pages-articles7"
    assert {d.name for d in (ds_path / "parts").iterdir()} == {p["name"] for p in Dataset(ds_path).parts}


def test_full_disk_during_add_is_one_line_and_changes_nothing(tmp_path, sample_parts):
    from conftest import one_error_line, run_with_file_size_limit

    ds_path = tmp_path / "ds"
    Dataset(ds_path).add([sample_parts[0]])
    manifest = (ds_path / "manifest.json").read_bytes()
    files = {p.relative_to(ds_path): sha256(p) for p in ds_path.rglob("*") if p.is_file()}
    # part 2's train shard is ~400 kB: the write fails partway through it
    r = run_with_file_size_limit(["add", ds_path, sample_parts[1], "-q"], 100_000)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert "File too large" in line and "train_000000.bin" in line, line
    assert (ds_path / "manifest.json").read_bytes() == manifest
    assert {p.relative_to(ds_path): sha256(p) for p in ds_path.rglob("*") if p.is_file()} == files
    # with room again the same add completes
    Dataset(ds_path).add([sample_parts[1]])
    assert len(Dataset(ds_path).parts) == 2
    # export for nanoGPT: the same one line, naming the file; no half-written train.bin
    r = run_with_file_size_limit(["export-nanogpt", ds_path, tmp_path / "nano"], 100_000)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert f"{tmp_path / 'nano' / 'train.bin'}: cannot write: File too large" in line, line
    assert list((tmp_path / "nano").iterdir()) == []


def test_overlapping_page_ids_are_refused(tmp_path, sample_parts, sample_xml):
    """The same articles twice: part 1 of another dump date (the file name's range says so before any work), or a
    file whose name gives no range (the page ids read say so before it goes in). Nothing changes; --allow-overlap
    adds it anyway."""
    ds_path = tmp_path / "ds"
    Dataset(ds_path).add([sample_parts[0], sample_parts[1]])
    files = {p.relative_to(ds_path): sha256(p) for p in ds_path.rglob("*") if p.is_file()}
    lo, hi = Dataset(ds_path).parts[0]["page_ids"]
    later = tmp_path / f"enwiki-20170101-pages-articles1.xml-p{lo}p{hi + 5}.bz2"
    later.write_bytes(bz2.compress(bz2.decompress(sample_parts[0].read_bytes()), 1))  # same pages, another sha1
    with pytest.raises(DatasetError, match=rf"enwiki-20170101-pages-articles1: its page ids {lo}–{hi + 5} \(from its "
                                           rf"file names\) overlap those of part enwiki-20160101-pages-articles1"):
        Dataset(ds_path).add([later])
    unnamed = tmp_path / "mine.xml.bz2"
    unnamed.write_bytes(later.read_bytes())
    with pytest.raises(DatasetError, match=rf"mine: its page ids {lo}–{hi} \(as read\) overlap those of part "
                                           "enwiki-20160101-pages-articles1 .*--allow-overlap"):
        Dataset(ds_path).add([unnamed])
    assert {p.relative_to(ds_path): sha256(p) for p in ds_path.rglob("*") if p.is_file()} == files
    added = Dataset(ds_path).add([unnamed], allow_overlap=True)
    assert added[0]["page_ids"] == [lo, hi] and len(Dataset(ds_path).parts) == 3
    # parts of one dump that follow each other are not an overlap (part 3 after parts 1 and 2)
    Dataset(ds_path).add([sample_parts[2]])


def test_cli_add_status_export(tmp_path, sample_parts):
    r = subprocess.run([sys.executable, "-m", "wikigpt", "add", str(tmp_path / "ds"), *map(str, sample_parts[:2]),
                        "-q"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "enwiki-20160101-pages-articles2" in r.stdout
    r = subprocess.run([sys.executable, "-m", "wikigpt", "add", str(tmp_path / "ds"), str(sample_parts[0]), "-q"],
                       capture_output=True, text=True)
    assert r.returncode == 1 and "Traceback" not in r.stderr and "already in the dataset" in r.stderr
    r = subprocess.run([sys.executable, "-m", "wikigpt", "status", str(tmp_path / "ds")], capture_output=True,
                       text=True)
    assert r.returncode == 0 and "total" in r.stdout
