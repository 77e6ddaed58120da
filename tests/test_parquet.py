"""`extract --format parquet`: Hugging Face wikimedia/wikipedia's columns, the JSONL output's rows, rolled by size,
nothing left behind on bad input or Ctrl-C. Runs on the bundled real sample (CC BY-SA; see
python/wikigpt/data/sample/ATTRIBUTION.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import wikigpt
from wikigpt.errors import CorruptDumpError, MissingExtraError

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

COLUMNS = ["id", "url", "title", "text"]


def _jsonl_rows(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines()]
    return [{k: r[k] for k in COLUMNS} for r in rows]


def _parquet_rows(folder: Path) -> list[dict]:
    files = sorted(folder.glob("*.parquet"))
    return pq.read_table(files).to_pylist() if files else []


def test_rows_equal_the_jsonl_output_and_files_roll_by_size(tmp_path, sample_bz2):
    wikigpt.extract_parallel([sample_bz2], tmp_path / "jsonl", processes=2, format="jsonl")
    stats = wikigpt.extract_parallel([sample_bz2], tmp_path / "pq", processes=2, format="parquet", file_size="500K")

    expected = _jsonl_rows(tmp_path / "jsonl")
    assert len(expected) == stats.articles == 106
    assert _parquet_rows(tmp_path / "pq") == expected  # same rows, same order, strings throughout

    files = sorted((tmp_path / "pq").iterdir())
    assert [f.name for f in files] == [f"{sample_bz2.name.removesuffix('.bz2')}-{i:05d}.parquet"
                                       for i in range(len(files))]
    assert len(files) >= 2 and stats.files == [str(f) for f in files]
    for f in files:
        schema = pq.read_schema(f)
        assert schema.names == COLUMNS and all(t == pa.string() for t in schema.types)
        # each file closes once it passes the size; a row group holds at most file_size of text
        assert f.stat().st_size < 2 * 500_000


def test_several_inputs_keep_their_order_and_names(tmp_path, sample_parts):
    wikigpt.extract_parallel(sample_parts, tmp_path / "jsonl", processes=2)
    stats = wikigpt.extract_parallel(sample_parts, tmp_path / "pq", processes=2, format="parquet")
    assert [Path(f).name for f in stats.files] == [p.name.removesuffix(".bz2") + "-00000.parquet" for p in sample_parts]
    for part in sample_parts:
        stem = part.name.removesuffix(".bz2")
        got = pq.read_table(tmp_path / "pq" / f"{stem}-00000.parquet").to_pylist()
        want = [{k: r[k] for k in COLUMNS} for r in map(json.loads, (tmp_path / "jsonl" / f"{stem}-00000.jsonl")
                                                       .read_text(encoding="utf-8").splitlines())]
        assert got == want and got
    assert stats.pages_seen == 206 and stats.xml_bytes > 0


def test_the_cleaning_flags_apply(tmp_path, sample_bz2):
    flags = dict(min_chars=20_000, headings=False, lists=False)
    wikigpt.extract_parallel([sample_bz2], tmp_path / "jsonl", **flags)
    stats = wikigpt.extract_parallel([sample_bz2], tmp_path / "pq", format="parquet", **flags)
    rows = _parquet_rows(tmp_path / "pq")
    assert rows == _jsonl_rows(tmp_path / "jsonl")
    assert 0 < len(rows) == stats.articles < 106 and stats.dropped["too_short"] > 0
    assert all(len(r["text"]) >= 20_000 for r in rows)


def test_truncated_bz2_leaves_nothing(tmp_path, sample_bz2):
    bad = tmp_path / "trunc.xml.bz2"
    bad.write_bytes(sample_bz2.read_bytes()[:1_000_000])
    out = tmp_path / "out"
    with pytest.raises(CorruptDumpError, match=r"trunc\.xml\.bz2.*byte \d+"):
        wikigpt.extract_parallel([bad], out, processes=2, format="parquet", file_size="100K")
    assert not any(out.iterdir())  # neither finished files nor the staging folder


def test_without_pyarrow_one_line_before_anything(tmp_path, sample_bz2, monkeypatch):
    for name in ("pyarrow", "pyarrow.parquet"):
        monkeypatch.setitem(sys.modules, name, None)  # `import pyarrow` raises ImportError
    with pytest.raises(MissingExtraError, match=r'pip install "wikigpt\[parquet\]"'):
        wikigpt.extract_parallel([sample_bz2], tmp_path / "out", format="parquet")
    assert not (tmp_path / "out").exists()


def test_cli(tmp_path, sample_bz2):
    r = subprocess.run([sys.executable, "-m", "wikigpt", "extract", str(sample_bz2), "-o", str(tmp_path), "-q",
                        "--format", "parquet"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "106 articles from 206 pages" in r.stderr
    assert len(_parquet_rows(tmp_path)) == 106


@pytest.mark.slow
def test_ctrl_c_stops_promptly_and_leaves_no_output(tmp_path, sample_xml):
    from conftest import big_dump, interrupt_cli, output_started

    big = big_dump(tmp_path / "big.xml.bz2", sample_xml, 100)  # ~600 MB of XML: 5 s of work on 2 cores here
    out = tmp_path / "out"
    code, err, exit_s = interrupt_cli(["extract", big, "-o", out, "-q", "--format", "parquet", "--file-size", "1M"],
                                      started=output_started(out))
    assert code == 130, err
    assert exit_s < 5
    assert b"interrupted" in err
    assert b"Traceback" not in err and b"Exception ignored" not in err, err  # pyarrow's writer closed, not collected
    assert not out.exists() or not any(out.iterdir())
