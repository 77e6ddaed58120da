"""Downloads through an HTTP proxy named by the environment (HTTP_PROXY / HTTPS_PROXY / ALL_PROXY, either case) and
past it for the hosts NO_PROXY names. The proxy is a small forwarding proxy written here, on 127.0.0.1, in front of the
mirror of tests/mirror_server.py; it forwards only to loopback and counts every request it saw."""

from __future__ import annotations

import base64
import http.client
import socket
import threading
import urllib.parse
from types import SimpleNamespace

import pytest

from mirror_server import DATE, WIKI, LocalServer, QuietHandler, build_mirror
from wikigpt import cli
from wikigpt.data import download, dumps
from wikigpt.data.download import proxy_for, user_agent

PROXY_VARS = ["http_proxy", "https_proxy", "all_proxy", "no_proxy"]
# headers that belong to one hop (client-proxy or proxy-server), not to the request being forwarded
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "proxy-authorization", "te", "trailer",
              "transfer-encoding", "upgrade", "server", "date"}


class _ProxyHandler(QuietHandler):
    def do_GET(self):
        proxy = self.server.owner
        target = urllib.parse.urlsplit(self.path)  # a proxy is sent the absolute URL
        with proxy.lock:
            proxy.requests.append((self.path, self.headers.get("Range"), self.headers.get("Proxy-Authorization")))
        if target.scheme != "http" or target.hostname != "127.0.0.1":  # forwards to loopback only
            return self._refuse(403)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        try:
            upstream.request("GET", target.path or "/", headers=headers)
            resp = upstream.getresponse()
            self.send_response(resp.status, resp.reason)
            for k, v in resp.getheaders():
                if k.lower() not in HOP_BY_HOP:
                    self.send_header(k, v)
            self.end_headers()
            self._copy_body(resp)
        except OSError:
            self.close_connection = True
        finally:
            upstream.close()

    def _copy_body(self, resp: http.client.HTTPResponse) -> None:
        """Forward the body as it arrives; a body the server cut short is cut short here too (connection closed)."""
        declared = resp.getheader("Content-Length")
        expected = int(declared) if declared is not None else None
        sent = 0
        while expected is None or sent < expected:
            block = resp.read1(16 * 1024)
            if not block:
                break
            self.wfile.write(block)
            sent += len(block)
        self.wfile.flush()
        if expected is None or sent < expected:
            self.close_connection = True

    def _refuse(self, code: int) -> None:
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()


class ForwardingProxy(LocalServer):
    """`with ForwardingProxy() as p:` p.url is "http://127.0.0.1:PORT";
    p.requests is [(absolute URL, Range, Proxy-Authorization)], one per request seen."""

    handler = _ProxyHandler

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.requests: list = []


@pytest.fixture
def proxy():
    with ForwardingProxy() as p:
        yield p


@pytest.fixture(autouse=True)
def _no_proxy_from_outside(monkeypatch):
    # each test sets exactly the proxy variables it is about
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setattr(download, "INDEX_BACKOFF", 0.01)


@pytest.fixture(scope="session")
def info(mirror_root) -> dict:
    return build_mirror(mirror_root)


def get(server, dest, parts="1-2", **kw):
    return dumps.download(parts, wiki=WIKI, date=DATE, dest=dest, mirror=server.base, progress=False, backoff=0.01,
                          free_space=lambda path: SimpleNamespace(free=10**12), **kw)


def test_download_goes_through_the_proxy(monkeypatch, server, mirror_root, info, proxy, tmp_path):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    paths = get(server, tmp_path)
    assert [p.name for p in paths] == info["parts"]["1"] + info["parts"]["2"]
    for p in paths:
        assert p.read_bytes() == (mirror_root / WIKI / DATE / p.name).read_bytes()
    # every request the mirror saw came through the proxy, which was asked for the mirror's absolute URLs
    assert len(server.requests) == len(proxy.requests) > 3
    assert [r[0] for r in proxy.requests] == [server.base + r[0] for r in server.requests]
    assert {r[2] for r in server.requests} == {user_agent()}  # the User-Agent passes through unchanged
    assert {r[2] for r in proxy.requests} == {None}  # no credentials in the proxy URL: none sent


def test_resume_with_range_through_the_proxy(monkeypatch, server, mirror_root, info, proxy, tmp_path):
    name = info["parts"]["1"][0]
    monkeypatch.setenv("http_proxy", proxy.url)  # the lower-case spelling is read the same way
    server.drop_after, server.drop_times = 100_000, 1
    (path,) = get(server, tmp_path, parts="1")
    assert path.read_bytes() == (mirror_root / WIKI / DATE / name).read_bytes()
    assert [r[1] for r in proxy.requests if r[0].endswith("/" + name)] == [None, "bytes=100000-"]


@pytest.mark.parametrize("var, value", [("NO_PROXY", "127.0.0.1"), ("no_proxy", "example.org, 127.0.0.1"),
                                        ("NO_PROXY", "*")])
def test_no_proxy_bypasses_it(monkeypatch, server, info, proxy, tmp_path, var, value):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv(var, value)
    assert len(get(server, tmp_path)) == 3
    assert proxy.requests == [] and len(server.requests) > 3


def test_proxy_credentials_from_its_url(monkeypatch, server, info, proxy, tmp_path):
    host = proxy.url.split("//", 1)[1]
    monkeypatch.setenv("HTTP_PROXY", f"http://wiki%40user:p%3Ass@{host}")
    get(server, tmp_path, parts="1")
    expected = "Basic " + base64.b64encode(b"wiki@user:p:ss").decode()
    assert proxy.requests and {r[2] for r in proxy.requests} == {expected}


def test_proxy_down_is_one_clear_error(monkeypatch, capsys, server):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{port}")
    monkeypatch.setattr(cli, "_COMMAND_MODULES", ["wikigpt.data.dumps"])
    rc = cli.main(["parts", "--date", DATE, "--mirror", server.base])
    err = capsys.readouterr().err
    assert rc == 1 and err.count("\n") == 1
    assert f"cannot reach the proxy 127.0.0.1:{port}" in err and "gave up after 2 retries" in err
    assert server.requests == []


def test_which_proxy_the_environment_names(monkeypatch):
    assert proxy_for("https://dumps.wikimedia.org/enwiki/") is None
    monkeypatch.setenv("HTTP_PROXY", "http://plain.proxy:3128")
    assert proxy_for("https://dumps.wikimedia.org/enwiki/") is None  # an http proxy is for http URLs only
    assert proxy_for("http://dumps.wikimedia.org/enwiki/") == "http://plain.proxy:3128"
    monkeypatch.setenv("HTTPS_PROXY", "tls.proxy:8080")  # no scheme: an HTTP proxy, as curl reads it
    assert proxy_for("https://dumps.wikimedia.org/enwiki/") == "http://tls.proxy:8080"
    monkeypatch.setenv("https_proxy", "http://lower.proxy:8080")  # both spellings set: lower case wins, as in curl
    assert proxy_for("https://dumps.wikimedia.org/enwiki/") == "http://lower.proxy:8080"
    monkeypatch.setenv("NO_PROXY", "wikimedia.org,localhost")
    assert proxy_for("https://dumps.wikimedia.org/enwiki/") is None  # a domain covers its subdomains
    assert proxy_for("https://mirror.example/enwiki/") == "http://lower.proxy:8080"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "https_proxy", "NO_PROXY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ALL_PROXY", "http://every.proxy:1080")
    assert proxy_for("https://mirror.example/x") == proxy_for("http://mirror.example/x") == "http://every.proxy:1080"
