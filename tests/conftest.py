"""Shared fixtures: the bundled real dump sample, the same sample cut into 3 parts, and datasets built from them.

The sample is real English Wikipedia text (CC BY-SA 3.0/4.0, its authors; see
python/wikigpt/data/sample/ATTRIBUTION.md).
"""

from __future__ import annotations

import bz2
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

# Triton kernels run in its interpreter on CPU tensors when there is no GPU. It must be set before triton is
# imported anywhere, hence here.
try:
    import torch

    _cuda = torch.cuda.is_available()
except ImportError:  # pragma: no cover
    _cuda = False
if not _cuda:
    os.environ.setdefault("TRITON_INTERPRET", "1")

# Property tests (hypothesis) draw the same examples on every run, so a red CI run reproduces on any machine and a
# green one is not luck. To explore new examples: `pytest --hypothesis-profile explore` (a random seed each run; a
# failure prints the shrunk example and how to reproduce it).
from hypothesis import settings as _hypothesis_settings

_hypothesis_settings.register_profile("repeatable", derandomize=True, database=None)
_hypothesis_settings.register_profile("explore")
_hypothesis_settings.load_profile("repeatable")

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "python" / "wikigpt" / "data" / "sample" / "enwiki-sample-pages-articles1.xml-p10p30302.bz2"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def sample_bz2() -> Path:
    return SAMPLE


@pytest.fixture(scope="session")
def sample_xml() -> bytes:
    return bz2.decompress(SAMPLE.read_bytes())


def split_pages(xml: bytes, n: int) -> list[bytes]:
    """Cut a dump's XML into `n` valid dumps of consecutive pages (each with the original header and footer)."""
    first = xml.index(b"  <page>")  # the header ends before the first page's indent
    header = xml[:first]
    footer = b"</mediawiki>\n"
    pages = re.findall(rb"  <page>.*?</page>\n", xml[first:], flags=re.S)
    per = -(-len(pages) // n)
    return [header + b"".join(pages[i * per : (i + 1) * per]) + footer for i in range(n)]


def big_dump(path: Path, xml: bytes, copies: int) -> Path:
    """A large valid dump made fast: the header, the sample's pages `copies` times, and the footer, each compressed
    once as its own bzip2 stream and concatenated (a multistream file, as Wikimedia publishes them). Page ids repeat;
    the tests that use it only need a file that takes seconds to process."""
    first = xml.index(b"  <page>")
    last = xml.rindex(b"</page>\n") + len(b"</page>\n")
    body = bz2.compress(xml[first:last], 9)
    with open(path, "wb") as f:
        f.write(bz2.compress(xml[:first], 9))
        for _ in range(copies):
            f.write(body)
        f.write(bz2.compress(xml[last:], 9))
    return path


def wait_until_started(proc: subprocess.Popen, started: Callable[[], bool], timeout_s: float = 60) -> None:
    """Poll `started()` every 10 ms until it is true; fail if `proc` exits first or `timeout_s` passes."""
    deadline = time.monotonic() + timeout_s
    while not started():
        assert proc.poll() is None, "finished before its work was seen to start"
        assert time.monotonic() < deadline, f"its work was not seen to start within {timeout_s:g} s"
        time.sleep(0.01)


def interrupt_cli(args: list, started: Callable[[], bool], after_s: float = 0.3) -> tuple[int, bytes, float]:
    """Run `python -m wikigpt ARGS`, wait until `started()` says the work is under way (e.g. its output folder has
    appeared), let it run `after_s` seconds more, then press Ctrl-C (SIGINT): (exit code, stderr, seconds it took to
    exit after the signal). Waiting on the work rather than a fixed time keeps the test meaningful on a machine of any
    speed (import time varies, decoding gets faster). Fails if the command finished before it could be interrupted."""
    with subprocess.Popen([sys.executable, "-m", "wikigpt", *map(str, args)], stderr=subprocess.PIPE) as p:
        try:
            wait_until_started(p, started)
            time.sleep(after_s)
            assert p.poll() is None, "finished before it could be interrupted: make the input larger"
            t0 = time.monotonic()
            p.send_signal(signal.SIGINT)
            _, err = p.communicate(timeout=30)
            return p.returncode, err, time.monotonic() - t0
        finally:
            if p.poll() is None:
                p.kill()  # the context manager's exit then closes the pipe and reaps the process


def output_started(folder: Path) -> Callable[[], bool]:
    """A `started` condition for `interrupt_cli`: the command has created something in `folder` (its staging files)."""
    return lambda: folder.is_dir() and any(folder.iterdir())


@pytest.fixture(scope="session")
def sample_parts(tmp_path_factory, sample_xml) -> list[Path]:
    """The sample as three dump parts named like real ones (articles1/2/3 with their page-id ranges)."""
    d = tmp_path_factory.mktemp("parts")
    out = []
    for i, xml in enumerate(split_pages(sample_xml, 3), start=1):
        ids = [int(x) for x in re.findall(rb"<page>\s*<title>.*?</title>\s*<ns>-?\d+</ns>\s*<id>(\d+)</id>", xml, re.S)]
        p = d / f"enwiki-20160101-pages-articles{i}.xml-p{ids[0]}p{ids[-1]}.bz2"
        p.write_bytes(bz2.compress(xml, 9))
        out.append(p)
    return out


@pytest.fixture(scope="session")
def sample_dataset(tmp_path_factory) -> Path:
    """A dataset folder built from the bundled sample (one part). val_fraction 0.05 so val has a few articles."""
    from wikigpt import Dataset

    path = tmp_path_factory.mktemp("ds") / "enwiki"
    Dataset(path, val_fraction=0.05, shard_tokens=200_000).add([SAMPLE], processes=2)
    return path


@pytest.fixture(scope="session")
def sample_dataset_parts(tmp_path_factory, sample_parts) -> Path:
    """A dataset with the sample's three parts added one by one."""
    from wikigpt import Dataset

    path = tmp_path_factory.mktemp("ds3") / "enwiki"
    ds = Dataset(path, val_fraction=0.05, shard_tokens=200_000)
    for p in sample_parts:
        ds.add([p], processes=2)
    return path


@pytest.fixture(scope="session")
def mirror_root(tmp_path_factory) -> Path:
    """A small real dumps mirror (tests/mirror_server.py `build_mirror`), built once per session."""
    from mirror_server import build_mirror

    root = tmp_path_factory.getbasetemp() / "mirror"
    root.mkdir(exist_ok=True)
    build_mirror(root)
    return root


@pytest.fixture()
def server(mirror_root):
    """That mirror served over HTTP on 127.0.0.1 for one test."""
    from mirror_server import MirrorServer

    with MirrorServer(mirror_root) as srv:
        yield srv


def run_with_file_size_limit(args: list, limit_bytes: int, **kw):
    """Run `python -m wikigpt ARGS` where no file can grow past `limit_bytes`: every write past it fails with EFBIG
    ("File too large"), as a full disk fails with ENOSPC, through the same write path. (SIGXFSZ is ignored so the
    write returns the error instead of killing the process.) Returns the CompletedProcess, text mode."""
    import resource
    import signal
    import subprocess
    import sys

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return subprocess.run([sys.executable, "-m", "wikigpt", *map(str, args)], preexec_fn=limit, capture_output=True,
                          text=True, **kw)


def one_error_line(stderr: str) -> str:
    """The CLI's error line, after asserting it is the only error output and there is no traceback."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("wikigpt: error:")]
    assert len(errors) == 1, stderr
    return errors[0]
