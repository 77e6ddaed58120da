"""A dataset folder that defends itself (data/manifest.py, data/verify.py): a damaged manifest, shard or val-pages
file is found and named in one line, exit 1, and no file of the dataset changes.

Each case damages a copy of a dataset that `wikigpt add` built from two parts of the real sample, runs the commands a
user would, and checks the one line, the exit code and every file's bytes afterwards.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import one_error_line
from wikigpt import Dataset, DatasetError
from wikigpt.data.shards import HEADER_BYTES


def run(*args, prefix: tuple = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "wikigpt", *map(str, args)], capture_output=True, text=True)


def snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory, sample_parts) -> Path:
    ds = tmp_path_factory.mktemp("built") / "ds"
    Dataset(ds, val_fraction=0.1).add(sample_parts[:2])
    return ds


@pytest.fixture()
def ds(built, tmp_path) -> Path:
    """A fresh copy of the two-part dataset for one test to damage."""
    return Path(shutil.copytree(built, tmp_path / "ds"))


def manifest_of(ds: Path) -> dict:
    return json.loads((ds / "manifest.json").read_text())


def shard(ds: Path, part: int = 0, split: str = "train") -> Path:
    p = manifest_of(ds)["parts"][part]
    return ds / p["dir"] / p["shards"][split][0]["file"]


def train_args(ds: Path, out: Path) -> list:
    return ["train", ds, "--out", out, "--preset", "tiny", "--max-iters", "2", "--batch-size", "2", "--block-size",
            "32", "--eval-interval", "2", "--eval-iters", "1", "--device", "cpu", "--no-compile"]


# ------------------------------------------------------------------------------------------------ the manifest


WRONG_SHAPES = {
    "null": (lambda m: None, "the manifest: null, expected an object"),
    "a list": (lambda m: [m], "the manifest: [{"),
    "no parts": (lambda m: {k: v for k, v in m.items() if k != "parts"}, "the manifest: missing 'parts'"),
    "a part without tokens": (lambda m: {**m, "parts": [{k: v for k, v in m["parts"][0].items() if k != "tokens"},
                                                        m["parts"][1]]}, "parts[0]: missing 'tokens'"),
    "a token count as a string": (
        lambda m: {**m, "parts": [m["parts"][0], {**m["parts"][1], "tokens": {
            **m["parts"][1]["tokens"], "train": str(m["parts"][1]["tokens"]["train"])}}]},
        ".tokens.train: \""),
    "a part folder outside the dataset": (
        lambda m: {**m, "parts": [{**m["parts"][0], "dir": "../../elsewhere"}, m["parts"][1]]},
        ".dir: \"../../elsewhere\" (a string), expected a folder inside the dataset folder"),
    "a shard file name with a folder": (
        lambda m: {**m, "parts": [{**m["parts"][0], "shards": {**m["parts"][0]["shards"], "train": [
            {**m["parts"][0]["shards"]["train"][0], "file": "../../../etc/passwd"}]}}, m["parts"][1]]},
        ".shards.train[0].file: \"../../../etc/passwd\""),
    "version 2": (lambda m: {**m, "version": 2}, "version: 2 (a number); this wikigpt reads version 1"),
}


@pytest.mark.parametrize("case", WRONG_SHAPES)
def test_a_manifest_of_the_wrong_shape_is_one_line_for_every_command(ds, tmp_path, sample_parts, case):
    damage, expected = WRONG_SHAPES[case]
    (ds / "manifest.json").write_text(json.dumps(damage(manifest_of(ds)), indent=2))
    before = snapshot(ds)
    for args in (["status", ds], ["status", "--verify", ds], ["verify", ds], ["add", ds, sample_parts[2], "-q"],
                 ["export-nanogpt", ds, tmp_path / "nano"], ["remove", ds, "enwiki-20160101-pages-articles1"],
                 train_args(ds, tmp_path / "run")):
        r = run(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        line = one_error_line(r.stderr)
        assert f"{ds / 'manifest.json'}: invalid manifest: " in line and expected in line, (args, line)
        assert snapshot(ds) == before, args
    assert not (tmp_path / "nano").exists() or not list((tmp_path / "nano").iterdir())


def test_a_manifest_that_is_not_json_is_one_line(ds):
    (ds / "manifest.json").write_bytes(b'{"format": "wikigpt-dataset", "parts": [')
    r = run("status", ds)
    assert r.returncode == 1 and f"{ds / 'manifest.json'}: unreadable manifest" in one_error_line(r.stderr)


# ------------------------------------------------------------------------------------------------ damaged shards


def test_a_flipped_byte_in_a_shard_is_named_and_refused(ds, tmp_path):
    target = shard(ds, part=1)
    raw = bytearray(target.read_bytes())
    raw[HEADER_BYTES + 1000] ^= 0x01  # one token changes; size and header stay valid
    target.write_bytes(bytes(raw))
    before = snapshot(ds)
    # status reads the manifest alone: same totals; --verify re-reads and names the shard
    assert run("status", ds).returncode == 0
    r = run("verify", ds, "-q")
    assert r.returncode == 1, r.stdout
    line = one_error_line(r.stderr)
    rel = target.relative_to(ds)
    assert f"DAMAGED  {rel}: sha256 " in r.stdout, r.stdout
    assert line == f"wikigpt: error: {ds}: 1 problem(s) found (listed above): part enwiki-20160101-pages-articles2 " \
                   "is damaged; to repair, remove the part and add it again: " \
                   f"`wikigpt remove {ds} enwiki-20160101-pages-articles2`, then " \
                   f"`wikigpt add {ds} enwiki-20160101-pages-articles2.xml-p308p661.bz2`", line
    r = run("status", "--verify", ds, "-q")
    assert r.returncode == 1 and "total" in r.stdout and f"{rel}: sha256 " in r.stdout
    # export and train refuse it in one line that names the file and how to repair it
    r = run("export-nanogpt", ds, tmp_path / "nano")
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and f"{target}: damaged shard: its sha256 is " in line and "wikigpt remove" in line
    assert list((tmp_path / "nano").iterdir()) == []  # neither train.bin nor val.bin
    r = run(*train_args(ds, tmp_path / "run"))
    line = one_error_line(r.stderr)
    assert r.returncode == 1 and f"{target}: damaged shard" in line, r.stderr
    assert snapshot(ds) == before


def test_repair_by_removing_the_part_and_adding_it_again(ds, sample_parts):
    target = shard(ds, part=1)
    raw = bytearray(target.read_bytes())
    raw[-1] ^= 0xFF
    target.write_bytes(bytes(raw))
    assert run("verify", ds, "-q").returncode == 1
    r = run("remove", ds, "enwiki-20160101-pages-articles2")
    assert r.returncode == 0 and "removed enwiki-20160101-pages-articles2" in r.stdout, r.stderr
    assert not (ds / "parts" / "enwiki-20160101-pages-articles2").exists()
    r = run("add", ds, sample_parts[1], "-q")
    assert r.returncode == 0, r.stderr
    r = run("verify", ds, "-q")
    assert r.returncode == 0 and "ok: every file matches the manifest" in r.stdout, r.stdout + r.stderr
    r = run("remove", ds, "no-such-part")
    assert r.returncode == 1 and "no part named 'no-such-part'" in one_error_line(r.stderr)


@pytest.mark.parametrize("damage, expected", [
    ("truncated", "header says {n} tokens"),
    ("wrong header", "bad token shard: magic 20240521, expected 20240520"),
    ("missing", "shard listed in the manifest is missing"),
])
def test_truncated_or_rewritten_or_missing_shards(ds, tmp_path, damage, expected):
    target = shard(ds, part=0)
    n = manifest_of(ds)["parts"][0]["shards"]["train"][0]["tokens"]
    raw = target.read_bytes()
    if damage == "truncated":
        target.write_bytes(raw[:-100])
    elif damage == "wrong header":
        target.write_bytes((20240521).to_bytes(4, "little") + raw[4:])
    else:
        target.unlink()
    expected = expected.format(n=n)
    before = snapshot(ds)
    r = run("verify", ds, "-q")
    assert r.returncode == 1 and expected in r.stdout and str(target.relative_to(ds)) in r.stdout, r.stdout
    assert "wikigpt remove" in one_error_line(r.stderr)
    for args in (["export-nanogpt", ds, tmp_path / "nano"], train_args(ds, tmp_path / "run")):
        r = run(*args)
        line = one_error_line(r.stderr)
        assert r.returncode == 1 and f"{target}: " in line and expected in line and "wikigpt remove" in line, line
    assert snapshot(ds) == before


def test_missing_val_pages_and_extra_files_are_named(ds):
    part = manifest_of(ds)["parts"][0]
    (ds / part["dir"] / part["val_pages"]).unlink()
    (ds / part["dir"] / "notes.txt").write_text("mine")
    before = snapshot(ds)
    r = run("verify", ds, "-q")
    assert r.returncode == 1
    assert f"MISSING  {part['dir']}/val_pages.tsv" in r.stdout and f"EXTRA    {part['dir']}/notes.txt" in r.stdout
    line = one_error_line(r.stderr)
    assert "2 problem(s) found" in line and f"part {part['name']} is damaged" in line and "move them out" in line
    with pytest.raises(DatasetError, match=r"val_pages.tsv: the part's list of val pages is missing; to repair"):
        Dataset(ds).val_pages(part["name"])
    assert snapshot(ds) == before


# ------------------------------------------------------------------------------------------------ the folder


def test_a_read_only_dataset_folder_reads_but_refuses_to_change(ds, sample_parts, tmp_path):
    """status and verify work; add and remove refuse in one line. Tests run as root here, which writes anywhere, so
    the commands run in a user namespace (`unshare -U`) where this process is an ordinary user."""
    import os

    prefix: tuple = ()
    if os.geteuid() == 0:
        if subprocess.run(["unshare", "-U", "true"], capture_output=True).returncode != 0:
            pytest.skip("running as root and no user namespace to drop the right to write everywhere")
        prefix = ("unshare", "-U")
    for p in [ds, *ds.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    try:
        before = snapshot(ds)
        r = run("status", ds, prefix=prefix)
        assert r.returncode == 0 and "total" in r.stdout, r.stderr
        r = run("verify", ds, "-q", prefix=prefix)
        assert r.returncode == 0 and "ok: every file matches the manifest" in r.stdout, r.stderr
        for args in (["add", ds, sample_parts[2], "-q"], ["remove", ds, "enwiki-20160101-pages-articles1"]):
            r = run(*args, prefix=prefix)
            line = one_error_line(r.stderr)
            assert r.returncode == 1 and f"{ds}: cannot write to the dataset folder" in line, line
            assert "nothing changed" in line
        assert snapshot(ds) == before
    finally:
        for p in [ds, *ds.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)


def test_a_dataset_without_recorded_checksums_is_verified_by_computing_them_once(ds):
    m = manifest_of(ds)
    recorded = {}
    for p in m["parts"]:
        recorded[p["name"]] = p.pop("val_pages_sha256")
        for split in ("train", "val"):
            for rec in p["shards"][split]:
                recorded[rec["file"], p["name"]] = rec.pop("sha256")
    (ds / "manifest.json").write_text(json.dumps(m, indent=2))
    r = run("verify", ds, "-q")
    assert r.returncode == 0, r.stderr
    assert "had no recorded checksum (written by an older wikigpt): computed now, recorded in manifest.json" \
           in r.stdout, r.stdout
    after = manifest_of(ds)
    for p in after["parts"]:
        assert p["val_pages_sha256"] == recorded[p["name"]]
        for split in ("train", "val"):
            assert all(rec["sha256"] == recorded[rec["file"], p["name"]] for rec in p["shards"][split])
    r = run("verify", ds, "-q")
    assert r.returncode == 0 and "no recorded checksum" not in r.stdout


def test_add_records_every_checksum(ds):
    for p in manifest_of(ds)["parts"]:
        pdir = ds / p["dir"]
        assert p["val_pages_sha256"] == hashlib.sha256((pdir / p["val_pages"]).read_bytes()).hexdigest()
        for split in ("train", "val"):
            for rec in p["shards"][split]:
                assert rec["sha256"] == hashlib.sha256((pdir / rec["file"]).read_bytes()).hexdigest()
