"""A dumps mirror on 127.0.0.1 for the download tests: serves a folder laid out like dumps.wikimedia.org, with switches
that reproduce what real servers and networks do wrong.

    with MirrorServer(root) as srv:          # port 0: the OS picks a free one
        srv.base                              # "http://127.0.0.1:PORT"
        srv.honour_range = False              # always answer 200 with the whole file
        srv.drop_after = 100_000              # close the connection after this many body bytes ...
        srv.drop_times = 1                    # ... on this many file responses (then behave)
        srv.corrupt = {"name.bz2"}            # flip one byte in the middle of these files
        srv.fail_paths = {"/x": [503, 503]}   # answer these statuses (one per request) before serving /x
        srv.chunk_delay = 0.002               # sleep between 16 kB chunks (so transfers overlap)
        srv.max_active                        # most file transfers that were in flight at once
        srv.requests                          # [(path, Range header or None, User-Agent)]

Directories are served from their index.html (as nginx's autoindex would list them); anything missing is a 404.
Everything is bounded in time: sockets time out after a few seconds and the server stops at the end of the `with`.
"""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional


class QuietHandler(BaseHTTPRequestHandler):
    """A LocalServer's handler: HTTP/1.1 keep-alive, a short socket timeout, no log lines in pytest's output."""

    server: "_Server"
    timeout = 5  # a stuck client cannot hold a handler thread for long
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # keep pytest output clean
        pass


class _Handler(QuietHandler):
    def do_GET(self):
        m = self.server.owner
        path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
        rng = self.headers.get("Range")
        with m.lock:
            m.requests.append((path, rng, self.headers.get("User-Agent")))
        with m.lock:
            planned = m.fail_paths.get(path)
            fail = planned.pop(0) if planned else None
        if fail is not None:
            return self._status(fail)
        target = (m.root / path.lstrip("/")).resolve()
        if m.root not in (target, *target.parents):
            return self._status(404)
        if target.is_dir():
            target = target / "index.html"
        if not target.is_file():
            return self._status(404)
        data = target.read_bytes()
        if target.name in m.corrupt:
            mid = len(data) // 2
            data = data[:mid] + bytes([data[mid] ^ 0xFF]) + data[mid + 1:]
        start = 0
        status = 200
        if rng and m.honour_range:
            r = re.fullmatch(r"bytes=(\d+)-", rng.strip())
            if r:
                start = int(r.group(1))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = 206
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes" if m.honour_range else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        is_file = target.suffix == ".bz2"
        drop_at = None
        with m.lock:
            if is_file:
                m.active += 1
                m.max_active = max(m.max_active, m.active)
                if m.drop_after is not None and m.drop_times > 0:
                    m.drop_times -= 1
                    drop_at = m.drop_after
        try:
            sent = 0
            step = 16 * 1024
            while sent < len(body):
                n = step if drop_at is None else min(step, drop_at - sent)
                if n <= 0:
                    break
                # before the chunk, so the transfer ends (and is counted) at its last byte
                if is_file and m.chunk_delay:
                    time.sleep(m.chunk_delay)
                self.wfile.write(body[sent:sent + n])
                sent += n
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            if is_file:
                with m.lock:
                    m.active -= 1
        if drop_at is not None:
            self.close_connection = True  # the client sees fewer bytes than Content-Length said

    def _status(self, code: int):
        body = f"{code}\n".encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: "LocalServer"


class LocalServer:
    """An HTTP server on 127.0.0.1 (a free port) on its own thread, for `with`; its handler class (`handler`) reaches
    the object through `self.server.owner`."""

    handler: type

    def __init__(self) -> None:
        self._srv: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    @property
    def url(self) -> str:
        assert self._srv is not None
        host, port = self._srv.server_address[:2]
        return f"http://{host}:{port}"

    def __enter__(self):
        self._srv = _Server(("127.0.0.1", 0), self.handler)
        self._srv.owner = self
        self._thread = threading.Thread(target=self._srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        assert self._srv is not None and self._thread is not None
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(timeout=5)


class MirrorServer(LocalServer):
    handler = _Handler

    def __init__(self, root: Path):
        super().__init__()
        self.root = Path(root).resolve()
        self.lock = threading.Lock()
        self.honour_range = True
        self.drop_after: Optional[int] = None
        self.drop_times = 0
        self.corrupt: set = set()
        self.chunk_delay = 0.0
        self.fail_paths: dict = {}  # url path -> [HTTP status, ...] answered (one each) before serving it normally
        self.active = 0
        self.max_active = 0
        self.requests: list = []

    @property
    def base(self) -> str:
        return self.url

    def file_requests(self, name: str) -> list:
        return [r for r in self.requests if r[0].endswith("/" + name)]


# ------------------------------------------------------------------------------------------------ the mirror's content

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "python" / "wikigpt" / "data" / "sample" / "enwiki-sample-pages-articles1.xml-p10p30302.bz2"
WIKI = "enwiki"
DATE = "20240101"  # finished; 20240120 is still running and 20240201 has no dumpstatus.json yet
ATTRIBUTION = """\
The .bz2 files under enwiki/ are cut from python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2, a
shortened real English Wikipedia dump (2016). Wikipedia text is (c) its authors, licensed CC BY-SA 3.0/4.0
(https://creativecommons.org/licenses/by-sa/4.0/); the authors of each page are in its history on en.wikipedia.org.
"""


def _split_sample() -> tuple:
    """(header, pages, footer) of the bundled sample's XML; each page is the exact bytes `  <page>...</page>\\n`."""
    import bz2

    xml = bz2.decompress(SAMPLE.read_bytes())
    head_end = xml.index(b"</siteinfo>\n") + len(b"</siteinfo>\n")
    pages = re.findall(rb"  <page>.*?</page>\n", xml[head_end:], flags=re.S)
    footer = xml[head_end + sum(map(len, pages)):]
    assert footer.strip() == b"</mediawiki>" and len(pages) == 206
    return xml[:head_end], pages, footer


def _page_id(page: bytes) -> int:
    return int(re.search(rb"<id>(\d+)</id>", page).group(1))  # the first <id> of a page is the page's


def build_mirror(root: Path) -> dict:
    """Lay out a small real mirror under `root` (once; later calls reuse it) and describe it.

    Part 1 is one file, part 2 two files (like enwiki's parts 11-27), all real pages of the bundled sample cut into
    separate bzip2 streams (a few hundred kB each). The multistream job holds the same pages as 100-page streams plus
    an offset index, and like the real dumpstatus.json it carries no hashes: they are in sha1sums.txt.
    """
    import bz2
    import hashlib
    import json

    info_path = root / "mirror.json"
    if info_path.exists():
        return json.loads(info_path.read_text())
    header, pages, footer = _split_sample()
    day = root / WIKI / DATE
    day.mkdir(parents=True)
    groups = [pages[:70], pages[70:140], pages[140:]]
    files: dict = {}
    parts: dict = {1: [], 2: []}
    for number, group in zip((1, 2, 2), groups):
        name = f"{WIKI}-{DATE}-pages-articles{number}.xml-p{_page_id(group[0])}p{_page_id(group[-1])}.bz2"
        data = bz2.compress(header + b"".join(group) + footer, 9)
        (day / name).write_bytes(data)
        files[name] = data
        parts[number].append(name)
    # multistream: header stream, 100-page streams, footer stream; index lines are offset:page_id:title
    ms_name = f"{WIKI}-{DATE}-pages-articles-multistream1.xml-p{_page_id(pages[0])}p{_page_id(pages[-1])}.bz2"
    idx_name = f"{WIKI}-{DATE}-pages-articles-multistream-index1.txt-p{_page_id(pages[0])}p{_page_id(pages[-1])}.bz2"
    streams, index_lines = [bz2.compress(header, 9)], []
    offset = len(streams[0])
    for i in range(0, len(pages), 100):
        for p in pages[i:i + 100]:
            title = re.search(rb"<title>(.*?)</title>", p).group(1).decode()
            index_lines.append(f"{offset}:{_page_id(p)}:{title}")
        streams.append(bz2.compress(b"".join(pages[i:i + 100]), 9))
        offset += len(streams[-1])
    streams.append(bz2.compress(footer, 9))
    ms_data, idx_data = b"".join(streams), bz2.compress(("\n".join(index_lines) + "\n").encode(), 9)
    (day / ms_name).write_bytes(ms_data)
    (day / idx_name).write_bytes(idx_data)

    def entry(name: str, data: bytes, hashes: bool) -> dict:
        e = {"size": len(data), "url": f"/{WIKI}/{DATE}/{name}"}
        if hashes:
            e.update(md5=hashlib.md5(data).hexdigest(), sha1=hashlib.sha1(data).hexdigest())
        return e

    status = {
        "jobs": {
            "articlesdump": {
                "status": "done",
                "updated": "2024-01-02 00:00:00",
                "files": {n: entry(n, d, True) for n, d in files.items()},
            },
            "articlesmultistreamdump": {
                "status": "done",
                "updated": "2024-01-02 00:00:00",
                "files": {ms_name: entry(ms_name, ms_data, False), idx_name: entry(idx_name, idx_data, False)},
            },
        },
        "version": "0.8",
    }
    (day / "dumpstatus.json").write_text(json.dumps(status))
    all_files = {**files, ms_name: ms_data, idx_name: idx_data}
    (day / f"{WIKI}-{DATE}-sha1sums.txt").write_text(
        "".join(f"{hashlib.sha1(d).hexdigest()}  {n}\n" for n, d in all_files.items())
    )
    running = root / WIKI / "20240120"
    running.mkdir()
    (running / "dumpstatus.json").write_text(
        json.dumps({"jobs": {"articlesdump": {"status": "in-progress", "files": {}}}, "version": "0.8"})
    )
    (root / WIKI / "20240201").mkdir()
    listing = "".join(
        f'<a href="{d}/">{d}/</a>                                          02-Feb-2024 09:30                   -\n'
        for d in ("20240101", "20240120", "20240201", "latest")
    )
    (root / WIKI / "index.html").write_text(
        f'<html>\n<head><title>Index of /{WIKI}/</title></head>\n<body>\n<h1>Index of /{WIKI}/</h1><hr><pre>'
        f'<a href="../">../</a>\n{listing}</pre><hr></body>\n</html>\n'
    )
    (root / "README.md").write_text(ATTRIBUTION)
    info = {
        "wiki": WIKI,
        "date": DATE,
        "parts": {str(k): v for k, v in parts.items()},
        "sizes": {n: len(d) for n, d in all_files.items()},
        "sha1": {n: hashlib.sha1(d).hexdigest() for n, d in all_files.items()},
        "multistream": [ms_name],
    }
    info_path.write_text(json.dumps(info))
    return info
