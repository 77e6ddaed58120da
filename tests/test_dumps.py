"""The dump index (dumpstatus.json -> parts), planning, and `wikigpt parts`: against the real enwiki 2023-03-01
dumpstatus.json, and a small mirror of real files served over HTTP on 127.0.0.1 (tests/mirror_server.py)."""

from __future__ import annotations

import argparse
import bz2
import copy
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirror_server import DATE, SAMPLE, WIKI, MirrorServer, build_mirror
from wikigpt import cli
from wikigpt.data import download, dumps, index
from wikigpt.data import estimate as est
from wikigpt.errors import ConfigError, DownloadError

# the real enwiki 2023-03-01 dumpstatus.json, in a mirror layout (a copy of ../shared/data's; see its README.md)
REAL_MIRROR = Path(__file__).resolve().parent / "fixtures" / "mirror"
REAL_STATUS = REAL_MIRROR / "enwiki" / "20230301" / "dumpstatus.json"


@pytest.fixture(scope="module")
def real_status() -> dict:
    return json.loads(REAL_STATUS.read_text())


@pytest.fixture(autouse=True)
def _fast_index_retries(monkeypatch):
    monkeypatch.setattr(download, "INDEX_BACKOFF", 0.01)


def run_cli(monkeypatch, argv) -> int:
    # the real `wikigpt` entry point, with only this module's commands registered (the other stages may not be built)
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["wikigpt.data.dumps"])
    return cli.main(argv)


# ------------------------------------------------------------------------------------- the real enwiki dumpstatus.json


def test_real_dumpstatus_totals(real_status):
    parts = index.parts_from_dumpstatus(real_status, "enwiki", "20230301")
    assert [p.number for p in parts] == list(range(1, 28))
    assert sum(len(p.files) for p in parts) == 64
    assert sum(p.size for p in parts) == 20_680_430_735
    # parts 1-10 are one file each, 11-25 and 27 several; part 26 is one file again in this dump
    assert [len(p.files) for p in parts] == [1] * 10 + [2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 4, 4, 5, 4, 1, 7]
    first = parts[0].files[0]
    assert first.name == "enwiki-20230301-pages-articles1.xml-p1p41242.bz2"
    assert first.size == 267_338_836
    assert first.sha1 == "c5015f8e0f92a6a40c3adc7a422f67b4e315afde"
    assert first.md5 == "c9ff426c8333a7a39015f4e7b387c361"
    assert first.url == "https://dumps.wikimedia.org/enwiki/20230301/enwiki-20230301-pages-articles1.xml-p1p41242.bz2"
    # grouping and ordering are right if the page-id ranges tile 1..last with no gap or overlap
    files = [f for p in parts for f in p.files]
    assert files[0].first_page_id == 1
    for a, b in zip(files, files[1:]):
        assert b.first_page_id == a.last_page_id + 1, (a.name, b.name)
    assert all(f.sha1 and len(f.sha1) == 40 for f in files)


def test_real_dumpstatus_multistream(real_status):
    parts = index.parts_from_dumpstatus(real_status, "enwiki", "20230301", multistream=True)
    files = [f for p in parts for f in p.files]
    # 128 entries: 64 data files plus 64 offset indexes, which are left out
    assert len(parts) == 27 and len(files) == 64
    assert all("-multistream" in f.name and "index" not in f.name for f in files)
    job = real_status["jobs"]["articlesmultistreamdump"]["files"]
    assert sum(f.size for f in files) == sum(v["size"] for k, v in job.items() if "-index" not in k)
    # the real multistream job has no hashes: without sha1sums.txt they stay unknown, with it they are filled
    assert all(f.sha1 is None for f in files)
    sums = {f.name: f"{i:040x}" for i, f in enumerate(files)}
    filled = index.parts_from_dumpstatus(real_status, "enwiki", "20230301", multistream=True, sha1sums=sums)
    assert [f.sha1 for p in filled for f in p.files] == [sums[f.name] for f in files]


def test_real_dumpstatus_table(real_status):
    parts = index.parts_from_dumpstatus(real_status, "enwiki", "20230301")
    table = est.parts_table(parts)
    total = table.splitlines()[-1].split()
    assert total[:4] == ["total", "64", "20.7", "GB"]
    assert len(table.splitlines()) == 1 + 27 + 2
    e = est.estimate(20_680_430_735)
    assert e.xml == round(20_680_430_735 * est.XML_PER_COMPRESSED)
    assert e.tokens == round(e.xml * est.TEXT_PER_XML / est.BYTES_PER_TOKEN)
    assert e.shard_bytes == pytest.approx(2 * e.tokens, abs=2)


def test_text_and_token_ratios_are_what_add_makes_of_the_sample(tmp_path):
    # the estimates describe wikigpt's own output: recompute both ratios with the Rust pipeline on the sample
    from wikigpt import _core

    raw = _core.build_shards([str(SAMPLE)], str(tmp_path), 0.005, 100_000_000, 1, [0], False, 200, True, True, False,
                             _core.ProgressHandle())
    (st,) = json.loads(raw)["stats"]
    assert st["text_bytes"] / st["xml_bytes"] == pytest.approx(est.TEXT_PER_XML, abs=5e-4)
    assert st["text_bytes"] / st["tokens"] == pytest.approx(est.BYTES_PER_TOKEN, abs=5e-4)
    # and the shard estimate for the sample's own size is within 1% of the shards add writes
    shards = sum(p.stat().st_size for p in tmp_path.glob("*.bin"))
    assert est.estimate(SAMPLE.stat().st_size).shard_bytes == pytest.approx(shards, rel=0.01)


def test_add_time_estimate_is_measured_here():
    speed = est.add_speed()
    assert speed is not None and 1e6 < speed < 1e10  # bytes of XML per second per thread, measured just now
    one, four = est.add_seconds(10**9, 1), est.add_seconds(10**9, 4)
    assert one == pytest.approx(est.estimate(10**9).xml / speed)
    assert four == pytest.approx(one / (1 + 3 * est.ADD_THREAD_EFFICIENCY))
    line = est.describe_add_time(20_680_430_735, 8)
    assert line.startswith("est. time to add: ~") and "on 8 threads" in line and "MB/s of XML per thread" in line


def test_xml_ratio_matches_bundled_sample():
    # the constant is what bzip2 gives on the bundled sample; if either changes, this says so
    data = SAMPLE.read_bytes()
    assert len(bz2.decompress(data)) / len(data) == pytest.approx(est.XML_PER_COMPRESSED, abs=5e-4)


# ------------------------------------------------------------------------------------------- a hostile/broken index


def _tiny_status(name="enwiki-20240101-pages-articles1.xml-p1p10.bz2", **entry):
    e = {"size": 100, "url": f"/enwiki/20240101/{name}", "sha1": "a" * 40, "md5": "b" * 32}
    e.update(entry)
    return {"jobs": {"articlesdump": {"status": "done", "files": {name: e}}}}


@pytest.mark.parametrize(
    "status, words",
    [
        (_tiny_status("../../etc/enwiki-20240101-pages-articles1.xml-p1p10.bz2"), "unexpected file name"),
        (_tiny_status("enwiki-20240101-pages-articles1.xml-p1p10.bz2/x"), "unexpected file name"),
        (_tiny_status("enwiki-20240101-pages-articles1.xml-p1p10.bz2\x00"), "unexpected file name"),
        (_tiny_status("enwiki-20231201-pages-articles1.xml-p1p10.bz2"), "unexpected file name"),
        (_tiny_status("dewiki-20240101-pages-articles1.xml-p1p10.bz2"), "unexpected file name"),
        (_tiny_status("enwiki-20240101-pages-articles1.xml-p1p10.bz2.sh"), "unexpected file name"),
        (_tiny_status("enwiki-20240101-pages-articles1.xml-p9p1.bz2"), "goes backwards"),
        (_tiny_status(url="/enwiki/20240101/../../evil.bz2"), "url"),
        (_tiny_status(url="https://evil.example/enwiki/20240101/enwiki-20240101-pages-articles1.xml-p1p10.bz2"), "url"),
        (_tiny_status(url=None), "url"),
        (_tiny_status(size="100"), "bad size"),
        (_tiny_status(size=True), "bad size"),
        (_tiny_status(size=-5), "bad size"),
        (_tiny_status(size=10**20), "bad size"),
        (_tiny_status(sha1="../" + "a" * 37), "bad sha1"),
        (_tiny_status(md5=12), "bad md5"),
        ({"jobs": []}, "no 'jobs'"),
        ([], "no 'jobs'"),
        ({"jobs": {"articlesdump": {"status": "done", "files": []}}}, "empty or not an object"),
    ],
)
def test_hostile_index_refused(status, words):
    with pytest.raises(DownloadError, match="refusing") as e:
        index.parts_from_dumpstatus(status, "enwiki", "20240101")
    assert words in str(e.value)
    assert "\n" not in str(e.value)


def test_unfinished_job_refused():
    status = _tiny_status()
    status["jobs"]["articlesdump"]["status"] = "in-progress"
    with pytest.raises(DownloadError, match="in-progress', not done"):
        index.parts_from_dumpstatus(status, "enwiki", "20240101")


def test_single_file_wiki_is_part_1():
    # small wikis dump pages-articles as one file with no number or page range
    name = "tnwiki-20240101-pages-articles.xml.bz2"
    status = {"jobs": {"articlesdump": {"status": "done", "files": {
        name: {"size": 1234, "url": f"/tnwiki/20240101/{name}", "sha1": "c" * 40}}}}}
    (part,) = index.parts_from_dumpstatus(status, "tnwiki", "20240101")
    assert part.number == 1 and [f.name for f in part.files] == [name] and part.files[0].first_page_id is None
    mixed = copy.deepcopy(status)
    other = "tnwiki-20240101-pages-articles2.xml-p5p9.bz2"
    mixed["jobs"]["articlesdump"]["files"][other] = {"size": 1, "url": f"/tnwiki/20240101/{other}", "sha1": "d" * 40}
    with pytest.raises(DownloadError, match="mixes a single-file dump"):
        index.parts_from_dumpstatus(mixed, "tnwiki", "20240101")


def test_sha1sums_parsing():
    text = f"{'A' * 40}  x.bz2\n{'b' * 40} *y.bz2\nnot a line\n{'c' * 39}  short.bz2\n"
    assert index.parse_sha1sums(text) == {"x.bz2": "a" * 40, "y.bz2": "b" * 40}


# ------------------------------------------------------------------------------------------------------- arguments


def test_parse_parts():
    assert index.parse_parts("1-3,5") == [1, 2, 3, 5]
    assert index.parse_parts("5, 1-2,2") == [1, 2, 5]
    assert index.parse_parts("27") == [27]
    assert index.parse_parts([3, 1, 3]) == [1, 3]
    for bad in ["3-1", "", "a", "0", "1-", "1,,2", "-2", "1-1000000"]:
        with pytest.raises(ConfigError):
            index.parse_parts(bad)
    with pytest.raises(ConfigError):
        index.parse_parts([1, "2"])


def test_add_download_arguments(capsys):
    p = argparse.ArgumentParser(prog="wikigpt add")
    dumps.add_download_arguments(p)
    a = p.parse_args(["--wiki", "dewiki", "--date", "20251101", "--parts", "1-3,5", "--mirror", "http://m/x",
                      "--multistream"])
    assert (a.wiki, a.date, a.parts, a.mirror, a.multistream) == (
        "dewiki", "20251101", [1, 2, 3, 5], "http://m/x", True)
    a = p.parse_args(["--parts", "2"])
    assert (a.wiki, a.date, a.mirror, a.multistream) == ("enwiki", "latest", None, False)
    with pytest.raises(SystemExit):
        p.parse_args(["--parts", "3-1"])
    assert "range 3-1 goes backwards" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        p.parse_args([])  # --parts is required unless asked otherwise


def test_bad_names_and_mirrors():
    for wiki in ["../enwiki", "en/wiki", "EN", "", "e"]:
        with pytest.raises(ConfigError, match="bad wiki name"):
            index.check_wiki(wiki)
    for date in ["2025-11-01", "2025110", "../20251101", "newest"]:
        with pytest.raises(ConfigError, match="bad dump date"):
            index.check_date(date)
    for m in ["file:///etc", "ftp://x", "dumps.wikimedia.org", "http://x/?q=1"]:
        with pytest.raises(ConfigError, match="bad mirror"):
            index.mirror_base(m)
    assert index.mirror_base("https://mirror.example/wikimedia/dumps/") == "https://mirror.example/wikimedia/dumps"
    assert index.mirror_base(None) == index.DEFAULT_MIRROR


# ----------------------------------------------------------------------------------------------- over HTTP, end to end


def test_list_parts_over_http(server, mirror_root):
    info = build_mirror(mirror_root)
    parts = index.list_parts(WIKI, DATE, mirror=server.base)
    assert [p.number for p in parts] == [1, 2]
    assert [[f.name for f in p.files] for p in parts] == [info["parts"]["1"], info["parts"]["2"]]
    for f in (f for p in parts for f in p.files):
        assert f.size == info["sizes"][f.name] and f.sha1 == info["sha1"][f.name]
        assert f.url == f"{server.base}/{WIKI}/{DATE}/{f.name}"
    # hashes were in dumpstatus.json: sha1sums.txt was not needed
    assert not any(r[0].endswith("sha1sums.txt") for r in server.requests)


def test_multistream_hashes_from_sha1sums(server, mirror_root):
    info = build_mirror(mirror_root)
    (part,) = index.list_parts(WIKI, DATE, mirror=server.base, multistream=True)
    assert [f.name for f in part.files] == info["multistream"]
    assert part.files[0].sha1 == info["sha1"][info["multistream"][0]]
    assert any(r[0].endswith(f"{WIKI}-{DATE}-sha1sums.txt") for r in server.requests)


def test_latest_skips_unfinished_and_missing(server):
    # 20240201 has no dumpstatus.json (404), 20240120 is in progress: latest is 20240101
    assert index.resolve_date(WIKI, "latest", server.base) == DATE
    tried = [r[0] for r in server.requests if r[0].endswith("dumpstatus.json")]
    assert tried == [f"/{WIKI}/{d}/dumpstatus.json" for d in ("20240201", "20240120", "20240101")]
    assert index.resolve_date(WIKI, "20240120", server.base) == "20240120"  # an explicit date is taken as given


def test_unknown_wiki_and_wrong_date(server):
    with pytest.raises(DownloadError, match=r"unknown wiki 'xxwiki': .*/xxwiki/ answered 404"):
        index.list_parts("xxwiki", "20240101", mirror=server.base)
    with pytest.raises(DownloadError, match=r"unknown wiki 'xxwiki'"):
        index.list_parts("xxwiki", "latest", mirror=server.base)
    with pytest.raises(DownloadError, match=r"no enwiki dump dated 20991231: .* answered 404; dates there: 20240201"):
        index.list_parts(WIKI, "20991231", mirror=server.base)
    with pytest.raises(DownloadError, match="in-progress', not done"):
        index.list_parts(WIKI, "20240120", mirror=server.base)
    with pytest.raises(DownloadError, match=r"no part 3, 7 in this dump; it has parts 1-2"):
        index.select_parts(index.list_parts(WIKI, DATE, mirror=server.base), [1, 3, 7])


def test_plan_counts_partial_and_done(tmp_path, server):
    parts = index.list_parts(WIKI, DATE, mirror=server.base)
    a, b, c = [f for p in parts for f in p.files]
    (tmp_path / a.name).write_bytes(b"x" * a.size)  # complete under its final name
    (tmp_path / (b.name + ".part")).write_bytes(b"x" * 1000)  # resumable
    pl = est.plan(parts, tmp_path, free_space=lambda p: SimpleNamespace(free=10**12))
    assert (pl.total, pl.done, pl.partial) == (a.size + b.size + c.size, a.size, 1000)
    assert pl.needed == b.size - 1000 + c.size and pl.fits
    assert not est.plan(parts, tmp_path, free_space=lambda p: SimpleNamespace(free=pl.needed - 1)).fits
    (tmp_path / a.name).write_bytes(b"short")
    with pytest.raises(DownloadError, match="exists with 5 bytes but the dump index says"):
        est.plan(parts, tmp_path)
    # the free space of a folder that does not exist yet is its nearest existing parent's
    seen = []
    est.plan(parts[:1], tmp_path / "new" / "deeper", free_space=lambda p: seen.append(p) or SimpleNamespace(free=1))
    assert seen == [str(tmp_path.absolute())]


def test_cli_parts_table(monkeypatch, capsys, server, tmp_path):
    rc = run_cli(monkeypatch, ["parts", "--wiki", WIKI, "--date", "latest", "--mirror", server.base,
                               "--dest", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 0
    assert f"enwiki {DATE} pages-articles from {server.base}: 2 parts, 3 files" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.split()[:2] == ["part", "files"])
    assert "est. tokens" in lines[head]
    assert [line.split()[:2] for line in lines[head + 1: head + 3]] == [["1", "1"], ["2", "2"]]
    assert any(line.split()[:2] == ["total", "3"] for line in lines)
    assert "estimates: XML = 3.591 x compressed" in out
    assert f"free space in {tmp_path}:" in out and "(fits)" in out
    assert "est. time to add: " in out and "MB/s of XML per thread just now" in out


def test_cli_parts_real_dumpstatus(monkeypatch, capsys):
    # the real enwiki index served by a mirror: the totals are the dump's
    with MirrorServer(REAL_MIRROR) as srv:
        rc = run_cli(monkeypatch, ["parts", "--date", "20230301", "--mirror", srv.base, "--json"])
        doc = json.loads(capsys.readouterr().out)
        assert rc == 0 and len(doc["parts"]) == 27
        assert sum(p["size"] for p in doc["parts"]) == 20_680_430_735
        assert sum(len(p["files"]) for p in doc["parts"]) == 64
        assert doc["add_bytes_per_s_per_thread"] > 0 and all(p["estimate"]["add_seconds"] > 0 for p in doc["parts"])
        rc = run_cli(monkeypatch, ["parts", "--date", "20230301", "--mirror", srv.base, "--parts", "11-12"])
        out = capsys.readouterr().out
        assert rc == 0 and "27 parts, 64 files" in out
        assert [line.split()[:2] for line in out.splitlines() if line.split()[:1] in (["11"], ["12"], ["total"])] == [
            ["11", "2"], ["12", "2"], ["total", "4"]]


def test_train_time_estimate_from_a_real_run(monkeypatch, capsys, server, sample_dataset, tmp_path):
    """`parts --run RUN`: one pass over the parts' estimated tokens at the median tokens/s the run logged, leaving out
    each session's first window (compile, warm-up); a resumed session starts a new first window."""
    pytest.importorskip("torch")
    from wikigpt.training.trainer import TrainConfig, train

    run = tmp_path / "run"
    base = dict(dataset=str(sample_dataset), out=str(run), preset="tiny", batch_size=2, block_size=32,
                gradient_accumulation_steps=1,
                eval_interval=4, eval_iters=1, log_interval=1, sample_tokens=0, device="cpu")
    train(TrainConfig(max_iters=4, **base))
    train(TrainConfig(max_iters=8, resume=True, **base))
    steps = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r["kind"] == "step"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4, 5, 6, 7, 8]
    kept = sorted(r["tokens_per_s"] for r in steps if r["step"] not in (1, 5))
    speed = est.run_train_speed(run)
    assert speed.windows == 6 and speed.tokens_per_s == pytest.approx((kept[2] + kept[3]) / 2)
    assert "3.3M parameters, T=32, micro-batch 2, on cpu" in speed.what

    rc = run_cli(monkeypatch, ["parts", "--wiki", WIKI, "--date", DATE, "--mirror", server.base, "--run", str(run),
                               "--json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["train_tokens_per_s"] == pytest.approx(speed.tokens_per_s)
    for p in doc["parts"]:
        assert p["estimate"]["train_seconds"] == pytest.approx(p["estimate"]["tokens"] / speed.tokens_per_s)
    rc = run_cli(monkeypatch, ["parts", "--wiki", WIKI, "--date", DATE, "--mirror", server.base, "--run", str(run)])
    out = capsys.readouterr().out
    assert rc == 0 and "est. time to train one pass over their ~" in out and "median of 6 logged windows" in out
    rc = run_cli(monkeypatch, ["parts", "--wiki", WIKI, "--date", DATE, "--mirror", server.base])
    assert "est. time to train: add --run RUN_FOLDER" in capsys.readouterr().out
    # not a run folder, or a run with no speed yet: one line
    rc = run_cli(monkeypatch, ["parts", "--wiki", WIKI, "--date", DATE, "--mirror", server.base, "--run",
                               str(tmp_path)])
    assert rc == 1 and "no metrics.jsonl" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metrics.jsonl").write_text(json.dumps(steps[0]) + "\n")
    with pytest.raises(ConfigError, match="no training speed logged yet"):
        est.run_train_speed(tmp_path / "empty")


def test_cli_parts_error_is_one_line(monkeypatch, capsys, server):
    rc = run_cli(monkeypatch, ["parts", "--wiki", "xxwiki", "--mirror", server.base])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1 and err.startswith("wikigpt: error: unknown wiki 'xxwiki'")


def test_no_network_is_one_clear_error(monkeypatch, capsys):
    # nothing listens on this port (bound, then closed): the index fetch retries, then says so
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    rc = run_cli(monkeypatch, ["parts", "--date", "20240101", "--mirror", f"http://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert "cannot connect to 127.0.0.1" in err and "gave up after 2 retries" in err
    rc = run_cli(monkeypatch, ["parts", "--date", "20240101", "--mirror", "http://no-such-host.invalid"])
    err = capsys.readouterr().err
    assert rc == 1 and "cannot resolve no-such-host.invalid" in err


def test_module_is_pure_python():
    # dumps/download work before the Rust extension is built, and nothing they handle reaches a shell
    import subprocess
    import sys

    code = "import sys, wikigpt.data.dumps; sys.exit('wikigpt._core' in sys.modules)"
    env = {"PYTHONPATH": str(Path(dumps.__file__).parents[1]), "PATH": "/usr/bin:/bin"}
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0
    for module in (dumps, index, est, download):  # the command module and the three it is split into
        src = Path(module.__file__).read_text()
        assert "subprocess" not in src and "os.system" not in src and "shell=" not in src, module.__name__


def test_public_api():
    import wikigpt

    assert wikigpt.list_parts is index.list_parts
    assert wikigpt.download is dumps.download and callable(wikigpt.download)
    assert wikigpt.Part is dumps.Part and wikigpt.DumpFile is dumps.DumpFile
