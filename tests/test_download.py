"""Downloads against a real HTTP server on 127.0.0.1 (tests/mirror_server.py) serving real dump files cut from the
bundled sample: resume after a dropped connection, servers that ignore Range, corruption, 404s, 5xx retries,
truncation, concurrency, disk-space refusal, Ctrl-C."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from mirror_server import DATE, WIKI, MirrorServer, build_mirror
from wikigpt import cli
from wikigpt.data import download, dumps
from wikigpt.data.download import FileTask, fetch_file, user_agent
from wikigpt.errors import ChecksumError, DiskSpaceError, DownloadError
from wikigpt.util.progress import TransferProgress


@pytest.fixture(scope="session")
def info(mirror_root) -> dict:
    return build_mirror(mirror_root)


@pytest.fixture(autouse=True)
def _fast_index_retries(monkeypatch):
    monkeypatch.setattr(download, "INDEX_BACKOFF", 0.01)


def source(mirror_root: Path, name: str) -> bytes:
    return (mirror_root / WIKI / DATE / name).read_bytes()


def get(server, dest, parts="1-2", **kw):
    kw.setdefault("progress", False)
    kw.setdefault("free_space", lambda path: SimpleNamespace(free=10**12))
    kw.setdefault("backoff", 0.01)
    return dumps.download(parts, wiki=WIKI, date=DATE, dest=dest, mirror=server.base, **kw)


def names_in(folder: Path) -> list:
    return sorted(p.name for p in folder.iterdir())


def test_download_verifies_and_skips_next_time(server, mirror_root, info, tmp_path):
    paths = get(server, tmp_path)
    expected = info["parts"]["1"] + info["parts"]["2"]
    assert [p.name for p in paths] == expected  # part order, then page-id order
    for p in paths:
        assert p.read_bytes() == source(mirror_root, p.name)
    assert names_in(tmp_path) == sorted(expected)  # no .part left behind
    agents = {r[2] for r in server.requests}
    assert agents == {user_agent()} and user_agent().startswith("wikigpt/0.1.0 (")
    # a second run finds every file verified and fetches nothing but the index
    server.requests.clear()
    again = get(server, tmp_path)
    assert again == paths
    assert not [r for r in server.requests if r[0].endswith(".bz2")]


def test_dropped_connection_resumes_with_range(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    server.drop_after, server.drop_times = 100_000, 1
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == source(mirror_root, name)
    ranges = [r[1] for r in server.file_requests(name)]
    assert ranges == [None, "bytes=100000-"]


def test_range_ignored_starts_over_and_verifies(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    server.honour_range = False
    server.drop_after, server.drop_times = 100_000, 1
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == source(mirror_root, name)
    # it asked to resume, got 200 with the whole file, and started the .part over
    assert [r[1] for r in server.file_requests(name)] == [None, "bytes=100000-"]


def test_resume_from_previous_run_rehashes_prefix(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    data = source(mirror_root, name)
    (tmp_path / (name + ".part")).write_bytes(data[:123_456])
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == data
    assert [r[1] for r in server.file_requests(name)] == ["bytes=123456-"]


def test_bad_prefix_from_previous_run_is_downloaded_again(server, mirror_root, info, tmp_path):
    # a .part whose bytes are not the file's (another tool, another dump): the hash fails, one fresh download fixes it
    name = info["parts"]["1"][0]
    data = source(mirror_root, name)
    (tmp_path / (name + ".part")).write_bytes(b"\0" * 5000)
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == data
    assert [r[1] for r in server.file_requests(name)] == ["bytes=5000-", None]


def test_corrupted_file_is_caught_and_kept_only_as_part(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    server.corrupt = {name}
    with pytest.raises(ChecksumError) as e:
        get(server, tmp_path, parts="1")
    msg = str(e.value)
    assert f"{name}: sha1 " in msg and info["sha1"][name] in msg and "\n" not in msg
    assert names_in(tmp_path) == [name + ".part"]
    part = (tmp_path / (name + ".part")).read_bytes()
    assert len(part) == info["sizes"][name] and hashlib.sha1(part).hexdigest() != info["sha1"][name]
    # the server is fixed: the next run re-hashes the .part, finds it bad, and downloads it once more from zero
    server.corrupt = set()
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == source(mirror_root, name)
    assert names_in(tmp_path) == [name]


def test_404_is_reported(server, info, tmp_path):
    name = info["parts"]["2"][1]
    server.fail_paths = {f"/{WIKI}/{DATE}/{name}": [404]}
    with pytest.raises(DownloadError, match=rf"{name}: HTTP 404 .*not on this mirror"):
        get(server, tmp_path, parts="2")
    assert name not in names_in(tmp_path) and name + ".part" not in names_in(tmp_path)


def test_5xx_is_retried(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    server.fail_paths = {f"/{WIKI}/{DATE}/{name}": [503, 500]}
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == source(mirror_root, name)
    assert len(server.file_requests(name)) == 3


def test_truncation_without_progress_gives_up(server, info, tmp_path):
    # every answer is cut at the same byte and Range is ignored: no attempt gets further than the last
    name = info["parts"]["1"][0]
    server.honour_range = False
    server.drop_after, server.drop_times = 50_000, 100
    with pytest.raises(DownloadError) as e:
        get(server, tmp_path, parts="1", retries=2)
    msg = str(e.value)
    assert "connection closed at byte 50000" in msg and "gave up after 2 retries without progress" in msg
    assert len(server.file_requests(name)) == 3  # the first try and 2 retries
    assert names_in(tmp_path) == [name + ".part"]


def test_size_disagreeing_with_content_length_is_refused(server, info, tmp_path):
    name = info["parts"]["1"][0]
    size, sha1 = info["sizes"][name], info["sha1"][name]
    url = f"{server.base}/{WIKI}/{DATE}/{name}"
    for wrong in (size - 1, size + 1):
        refused = rf"the server sends {size} bytes, the dump index says {wrong}; refusing"
        with pytest.raises(DownloadError, match=refused):
            fetch_file(FileTask(url, tmp_path / name, wrong, sha1), backoff=0.01)
        assert not (tmp_path / name).exists()
    # the same check on a resume, through Content-Range
    (tmp_path / (name + ".part")).write_bytes(b"x" * 10)
    with pytest.raises(DownloadError, match=rf"the server has {size} bytes, the dump index says {size + 5}"):
        fetch_file(FileTask(url, tmp_path / name, size + 5, sha1), backoff=0.01)


def test_two_files_at_a_time(server, info, tmp_path):
    server.chunk_delay = 0.004  # ~16 kB per 4 ms: each file takes a fraction of a second, so transfers overlap
    paths = get(server, tmp_path)
    assert len(paths) == 3
    assert server.max_active == 2


def test_disk_space_refusal(server, info, tmp_path):
    sizes = [info["sizes"][n] for n in info["parts"]["1"] + info["parts"]["2"]]
    free = sum(sizes) - 1
    dest = tmp_path / "dumps"
    with pytest.raises(DiskSpaceError) as e:
        get(server, dest, free_space=lambda path: SimpleNamespace(free=free))
    assert "not enough space in" in str(e.value) and "parts 1-2 need" in str(e.value)
    assert not dest.exists() and not [r for r in server.requests if r[0].endswith(".bz2")]
    # bytes already in a .part count: with them the same free space is enough
    dest.mkdir()
    first = info["parts"]["1"][0]
    (dest / (first + ".part")).write_bytes(source(server.root, first)[:10])
    assert len(get(server, dest, free_space=lambda path: SimpleNamespace(free=free))) == 3


def test_unwritable_part_is_one_clear_error(server, info, tmp_path):
    # something the download cannot write in place of the .part (here a folder: fails the same way as root or not)
    name = info["parts"]["1"][0]
    (tmp_path / (name + ".part")).mkdir()
    with pytest.raises(DownloadError, match=rf"cannot write .*{name}\.part: Is a directory"):
        get(server, tmp_path, parts="1")
    assert not (tmp_path / name).exists()


def test_file_without_hash_is_refused(server, info, tmp_path):
    server.fail_paths = {f"/{WIKI}/{DATE}/{WIKI}-{DATE}-sha1sums.txt": [404]}
    with pytest.raises(DownloadError, match="refusing to download what cannot be verified"):
        get(server, tmp_path, parts="1", multistream=True)
    assert names_in(tmp_path) == []
    # with sha1sums.txt there, the multistream file downloads and verifies
    (path,) = get(server, tmp_path, parts="1", multistream=True)
    assert path.name == info["multistream"][0]


def test_hostile_index_writes_nothing(tmp_path):
    # a mirror whose dumpstatus.json names a file outside the folder: refused before any file request
    import json

    day = tmp_path / "www" / WIKI / DATE
    day.mkdir(parents=True)
    name = f"../../{WIKI}-{DATE}-pages-articles1.xml-p1p2.bz2"
    (day / "dumpstatus.json").write_text(json.dumps({"jobs": {"articlesdump": {"status": "done", "files": {
        name: {"size": 3, "url": f"/{WIKI}/{DATE}/{name}", "sha1": "a" * 40}}}}}))
    dest = tmp_path / "dest"
    with MirrorServer(tmp_path / "www") as srv:
        with pytest.raises(DownloadError, match="refusing .*unexpected file name"):
            dumps.download([1], WIKI, DATE, dest, mirror=srv.base, progress=False)
        assert [r[0] for r in srv.requests] == [f"/{WIKI}/{DATE}/dumpstatus.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["www"]


def test_cli_download(monkeypatch, capsys, server, mirror_root, info, tmp_path):
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["wikigpt.data.dumps"])
    rc = cli.main(["download", "--wiki", WIKI, "--date", "latest", "--parts", "2", "--dest", str(tmp_path),
                   "--mirror", server.base])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.splitlines() == [str(tmp_path / n) for n in info["parts"]["2"]]
    # not a terminal: the plan, then one line per verified file
    assert f"{WIKI} {DATE} part 2: 2 files" in err and "free space in" in err
    assert sum("verified (sha1" in line for line in err.splitlines()) == 2
    server.fail_paths = {f"/{WIKI}/{DATE}/{info['parts']['1'][0]}": [404]}
    rc = cli.main(["download", "--date", DATE, "--parts", "1", "--dest", str(tmp_path), "--mirror", server.base, "-q"])
    out, err = capsys.readouterr()
    assert rc == 1 and out == "" and err.count("\n") == 1 and "HTTP 404" in err


def test_ctrl_c_leaves_resumable_part(server, mirror_root, info, tmp_path):
    name = info["parts"]["1"][0]
    server.chunk_delay = 0.05  # 16 kB per 50 ms: the 265 kB file would take ~0.8 s, long enough to interrupt midway
    code = (
        "import sys; from wikigpt import cli; cli._COMMAND_MODULES = ['wikigpt.data.dumps']; "
        "sys.exit(cli.main(sys.argv[1:]))"
    )
    package_root = str(Path(dumps.__file__).parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([package_root, os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, "-c", code, "download", "--date", DATE, "--parts", "1", "--dest", str(tmp_path),
         "--mirror", server.base], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    part = tmp_path / (name + ".part")
    deadline = time.monotonic() + 20
    while not (part.exists() and part.stat().st_size > 0) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, err
    assert b"wikigpt: interrupted" in err
    assert names_in(tmp_path) == [name + ".part"]
    kept = part.stat().st_size
    assert 0 < kept < info["sizes"][name]
    server.chunk_delay = 0
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == source(mirror_root, name)
    assert server.file_requests(name)[-1][1] == f"bytes={kept}-"


# ------------------------------------------------------------------------------------------------------- progress


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


def test_progress_redraws_at_most_4_per_second():
    now = [100.0]
    out = FakeTTY()
    name = Path("enwiki-20240101-pages-articles1.xml-p1p2.bz2")
    task = FileTask("http://x/a", name, 20_000_000, "0" * 40, "articles1")
    prog = TransferProgress(total=20_000_000, stream=out, clock=lambda: now[0])
    prog.start(task)
    for _ in range(100):  # 100 updates within the same instant: one redraw
        prog.advance(task, 10_000)
    assert prog.draws == 1
    for _ in range(100):  # 10 s of updates every 0.1 s: a redraw every 0.25 s at most
        now[0] += 0.1
        prog.advance(task, 100_000)
    assert 30 <= prog.draws <= 41
    line, total = prog.lines(now[0])
    assert line.startswith("articles1") and "55.0%" in line and "11.0 MB/20.0 MB" in line
    # the speed is over the last ~5 s (the first second's burst is forgotten): 1 MB/s, 9 MB to go
    assert "1.0 MB/s" in line and "ETA 00:09" in line
    assert total.startswith("total") and "55.0%" in total
    assert "\x1b[2F\x1b[J" in out.getvalue()  # the block is redrawn in place


def test_progress_quiet_when_not_a_tty(server, tmp_path):
    out = io.StringIO()
    prog = TransferProgress(total=5, stream=out)
    task = FileTask("http://x/a", tmp_path / "a.bz2", 5, "0" * 40)
    prog.start(task)
    prog.advance(task, 5)
    prog.finished(task)
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].startswith("a.bz2: 5 B verified") and "\x1b" not in out.getvalue()


def test_add_download_fetches_verifies_adds_and_deletes(capsys, server, mirror_root, info, tmp_path):
    """`wikigpt add DATASET --download --parts ...`: fetch, verify, add in one step; dumps deleted unless kept."""
    from wikigpt import Dataset

    ds = tmp_path / "ds"
    rc = cli.main(["add", str(ds), "--download", "--wiki", WIKI, "--date", DATE, "--parts", "2",
                   "--mirror", server.base, "--dumps-dir", str(tmp_path / "dumps"), "-q"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    (part,) = Dataset(ds).parts
    assert sorted(f["name"] for f in part["files"]) == sorted(info["parts"]["2"])  # both files of part 2, one part
    assert part["tokens"]["train"] > 0
    assert names_in(tmp_path / "dumps") == []  # deleted after adding (no --keep-dumps)
    rc = cli.main(["add", str(ds), "--download", "--wiki", WIKI, "--date", DATE, "--parts", "1",
                   "--mirror", server.base, "--dumps-dir", str(tmp_path / "dumps"), "--keep-dumps", "-q"])
    capsys.readouterr()
    assert rc == 0
    assert len(Dataset(ds).parts) == 2
    assert names_in(tmp_path / "dumps") == sorted(info["parts"]["1"])
