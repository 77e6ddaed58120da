"""manifest.json, the record of what a dataset folder holds, and the checks that make a damaged one an error.

Every read goes through `read_manifest`, which checks the whole document against the format below before anyone
uses it: a manifest edited by hand, cut short, written by a newer wikigpt, or shared by someone else and pointing
out of the folder (`"dir": "../../elsewhere"`) is refused in one line that names the file and the first wrong
field, instead of a KeyError or AttributeError somewhere later. Every write goes through `write_manifest`, which
checks first, so a bug can never leave an unreadable manifest behind.

```
{"format": "wikigpt-dataset", "version": 1, "created": str, "wikigpt_version": str,
 "tokenizer": {"name": str, "encoding": "r50k_base", "eot": int, "n_vocab": int, ...},
 "split": {"rule": str, "val_fraction": 0 <= x < 1}, "shard_tokens": int >= 1,
 "filter": {"namespaces": [int], "redirects": str, "min_chars": int >= 0},
 "parts": [{"name": NAME, "added": str, "files": [{"name": NAME, "size": int, "sha1": hex40}],
            "page_ids": null | [lo, hi], "pages": {"seen": int, "kept": int, "dropped": {str: int}},
            "tokens": {"train": int, "val": int}, "documents": {"train": int, "val": int},
            "bytes": {"compressed": int, "xml": int, "text": int}, "seconds": number,
            "dir": "parts/NAME", "shards": {"train": [SHARD], "val": [SHARD]},
            "val_pages": NAME, "val_pages_sha256": hex64 (optional)}]}
SHARD = {"file": NAME, "tokens": int >= 0, "sha256": hex64 (optional: datasets of older versions may lack it)}
```
NAME is one path component: no `/` or `\\`, not `.` or `..`, no NUL, not empty, not hidden. Counts are integers
>= 0 (JSON `true` is not a count), a part's shard tokens add up to its token counts, and part names are unique.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from typing import Any

from ..errors import DatasetError, ManifestError
from ..util.io import atomic_write_json

FORMAT = "wikigpt-dataset"
VERSION = 1
ENCODING = "r50k_base"
SPLITS = ("train", "val")

SHA1_DIGITS, SHA256_DIGITS = 40, 64


class _Wrong(Exception):
    """Raised inside the checks with the field path (`parts[1].tokens.train`) and what is wrong with it."""

    def __init__(self, at: str, what: str):
        # keys come from the file (a dropped reason, a bytes counter): a newline in one must not break the one line
        super().__init__(_CONTROL.sub(lambda c: repr(c.group())[1:-1], f"{at}: {what}"))


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# ---------------------------------------------------------------------------------------------- reading and writing


def read_manifest(dataset_dir: str | os.PathLike) -> dict[str, Any]:
    """The dataset's manifest, checked as a whole; ManifestError (one line: file, first wrong field) otherwise."""
    d = Path(dataset_dir)
    path = d / "manifest.json"
    if not path.is_file():
        if not d.is_dir():
            raise DatasetError(f"{d}: no such dataset folder")
        raise DatasetError(f"{d}: not a wikigpt dataset (no manifest.json); create it with `wikigpt add`")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:  # ValueError: json.JSONDecodeError, and NaN-like misuse
        raise ManifestError(f"{path}: unreadable manifest: {e}") from None
    return check_manifest(manifest, path)


def write_manifest(dataset_dir: str | os.PathLike, manifest: dict[str, Any]) -> None:
    """Check, then write manifest.json atomically (temp file, fsync, rename): the commit point of every change."""
    path = Path(dataset_dir) / "manifest.json"
    check_manifest(manifest, path)
    atomic_write_json(path, manifest)


def check_manifest(manifest: Any, path: str | os.PathLike) -> dict[str, Any]:
    """Return `manifest` if it has the dataset format; raise ManifestError naming `path` and the first wrong field."""
    try:
        _check_top(manifest)
    except _Wrong as e:
        raise ManifestError(f"{path}: invalid manifest: {e}") from None
    return manifest


# ---------------------------------------------------------------------------------------------- the format


def _check_top(m: Any) -> None:
    _obj(m, "the manifest", ("format", "version", "created", "tokenizer", "split", "shard_tokens", "filter", "parts"))
    if m["format"] != FORMAT:
        raise _Wrong("format", f"{_show(m['format'])}, expected {FORMAT!r} (not a wikigpt dataset manifest)")
    if m["version"] != VERSION or isinstance(m["version"], bool):
        raise _Wrong("version", f"{_show(m['version'])}; this wikigpt reads version {VERSION}")
    _str(m["created"], "created")
    if "wikigpt_version" in m:
        _str(m["wikigpt_version"], "wikigpt_version")
    _check_tokenizer(m["tokenizer"])
    _obj(m["split"], "split", ("rule", "val_fraction"))
    _str(m["split"]["rule"], "split.rule")
    vf = _number(m["split"]["val_fraction"], "split.val_fraction")
    if not 0 <= vf < 1:
        raise _Wrong("split.val_fraction", f"{vf}, expected 0 <= x < 1")
    shard_tokens = _count(m["shard_tokens"], "shard_tokens", minimum=1)
    _obj(m["filter"], "filter", ("namespaces", "min_chars"))
    for i, ns in enumerate(_list(m["filter"]["namespaces"], "filter.namespaces")):
        _int(ns, f"filter.namespaces[{i}]")
    _count(m["filter"]["min_chars"], "filter.min_chars")
    names: set[str] = set()
    dirs: set[str] = set()
    for i, part in enumerate(_list(m["parts"], "parts")):
        _check_part(part, f"parts[{i}]", shard_tokens)
        if part["name"] in names:
            raise _Wrong(f"parts[{i}].name", f"{part['name']!r} appears twice")
        if part["dir"] in dirs:  # two parts sharing a folder: removing one would delete the other's shards
            raise _Wrong(f"parts[{i}].dir", f"{part['dir']!r} is another part's folder too")
        names.add(part["name"])
        dirs.add(part["dir"])


def _check_tokenizer(t: Any) -> None:
    _obj(t, "tokenizer", ("name", "encoding", "eot", "n_vocab"))
    _str(t["name"], "tokenizer.name")
    if t["encoding"] != ENCODING:
        raise _Wrong("tokenizer.encoding", f"{_show(t['encoding'])}; this wikigpt reads {ENCODING} (GPT-2) datasets")
    _count(t["eot"], "tokenizer.eot")
    _count(t["n_vocab"], "tokenizer.n_vocab", minimum=1)


def _check_part(p: Any, at: str, shard_tokens: int) -> None:
    _obj(p, at, ("name", "files", "pages", "tokens", "dir", "shards", "val_pages"))
    name = _name(p["name"], f"{at}.name")
    at = f"{at} ({name})"  # from here on the message also says which part, by name
    for j, f in enumerate(_list(p["files"], f"{at}.files")):
        _obj(f, f"{at}.files[{j}]", ("name", "size", "sha1"))
        _name(f["name"], f"{at}.files[{j}].name")
        _count(f["size"], f"{at}.files[{j}].size")
        _hex(f["sha1"], f"{at}.files[{j}].sha1", SHA1_DIGITS)
    if p.get("page_ids") is not None:
        ids = _list(p["page_ids"], f"{at}.page_ids")
        if len(ids) != 2:
            raise _Wrong(f"{at}.page_ids", f"{len(ids)} values, expected [lowest, highest]")
        lo, hi = (_count(v, f"{at}.page_ids[{k}]") for k, v in enumerate(ids))
        if lo > hi:
            raise _Wrong(f"{at}.page_ids", f"[{lo}, {hi}]: lowest above highest")
    _obj(p["pages"], f"{at}.pages", ("seen", "kept", "dropped"))
    _count(p["pages"]["seen"], f"{at}.pages.seen")
    _count(p["pages"]["kept"], f"{at}.pages.kept")
    _obj(p["pages"]["dropped"], f"{at}.pages.dropped", ())
    for reason, n in p["pages"]["dropped"].items():
        _count(n, f"{at}.pages.dropped.{reason}")
    _obj(p["tokens"], f"{at}.tokens", SPLITS)
    for optional in ("documents", "bytes"):
        if optional in p:
            _obj(p[optional], f"{at}.{optional}", ())
            for k, v in p[optional].items():
                _count(v, f"{at}.{optional}.{k}")
    if "seconds" in p and _number(p["seconds"], f"{at}.seconds") < 0:
        raise _Wrong(f"{at}.seconds", "negative")
    _inside(p["dir"], f"{at}.dir")
    _obj(p["shards"], f"{at}.shards", SPLITS)
    for split in SPLITS:
        total = _count(p["tokens"][split], f"{at}.tokens.{split}")
        listed = sum(_check_shard(s, f"{at}.shards.{split}[{k}]", shard_tokens)
                     for k, s in enumerate(_list(p["shards"][split], f"{at}.shards.{split}")))
        if listed != total:
            raise _Wrong(f"{at}.tokens.{split}", f"{total}, but its shards hold {listed} tokens")
    _name(p["val_pages"], f"{at}.val_pages")
    if "val_pages_sha256" in p:
        _hex(p["val_pages_sha256"], f"{at}.val_pages_sha256", SHA256_DIGITS)


def _check_shard(s: Any, at: str, shard_tokens: int) -> int:
    _obj(s, at, ("file", "tokens"))
    _name(s["file"], f"{at}.file")
    n = _count(s["tokens"], f"{at}.tokens")
    if n > shard_tokens:
        raise _Wrong(f"{at}.tokens", f"{n}, more than the dataset's shard size {shard_tokens}")
    if "sha256" in s:
        _hex(s["sha256"], f"{at}.sha256", SHA256_DIGITS)
    return n


# ---------------------------------------------------------------------------------------------- one check per type


def _show(v: Any) -> str:
    """A value for a message: short, and its JSON type when that is the problem."""
    if v is None:
        return "null"
    text = json.dumps(v) if not isinstance(v, float) or math.isfinite(v) else str(v)
    text = text if len(text) <= 40 else text[:37] + "..."
    kind = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(type(v), "a number")
    return f"{text} ({kind})"


def _obj(v: Any, at: str, required: tuple[str, ...]) -> None:
    if not isinstance(v, dict):
        raise _Wrong(at, f"{_show(v)}, expected an object")
    for key in required:
        if key not in v:
            raise _Wrong(at, f"missing {key!r}")


def _list(v: Any, at: str) -> list:
    if not isinstance(v, list):
        raise _Wrong(at, f"{_show(v)}, expected a list")
    return v


def _str(v: Any, at: str) -> str:
    if not isinstance(v, str):
        raise _Wrong(at, f"{_show(v)}, expected a string")
    return v


def _int(v: Any, at: str) -> int:
    if not isinstance(v, int) or isinstance(v, bool):  # JSON true is a bool in Python, and bool is an int
        raise _Wrong(at, f"{_show(v)}, expected an integer")
    return v


def _count(v: Any, at: str, minimum: int = 0) -> int:
    n = _int(v, at)
    if n < minimum:
        raise _Wrong(at, f"{n}, expected an integer >= {minimum}")
    return n


def _number(v: Any, at: str) -> float:
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
        raise _Wrong(at, f"{_show(v)}, expected a finite number")
    return float(v)


def _hex(v: Any, at: str, digits: int) -> str:
    if not isinstance(v, str) or not re.fullmatch(f"[0-9a-f]{{{digits}}}", v):
        raise _Wrong(at, f"{_show(v)}, expected {digits} lowercase hex digits")
    return v


def _name(v: Any, at: str) -> str:
    """One path component that stays where it is joined: a file or folder name, never a path."""
    name = _str(v, at)
    if not name or name in (".", "..") or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise _Wrong(at, f"{_show(v)}, expected a plain file name (no folders, not hidden)")
    return name


def _inside(v: Any, at: str) -> str:
    """A part's folder: `parts/NAME`, the only place `wikigpt add` puts one (so it stays inside the dataset folder,
    and cleaning up after a killed add, which removes folders under parts/ that no part lists, cannot hit it)."""
    path = _str(v, at)
    head, _, name = path.partition("/")
    try:
        if head != "parts":
            raise _Wrong(at, "")
        _name(name, at)
    except _Wrong:
        raise _Wrong(at, f"{_show(v)}, expected a folder inside the dataset folder: 'parts/NAME'") from None
    return path
