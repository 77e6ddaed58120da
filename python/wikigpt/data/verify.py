"""Checking a dataset folder's files against its manifest: the cheap checks every reader makes before it starts
(each shard exists, has an llm.c header, and holds the token count the manifest records), the checksum of a shard
the first time a run reads it, and `wikigpt verify` (every file re-read; damaged, missing and extra files named).

A dataset grows over weeks on a consumer disk; a flipped bit in a shard changes no size and no header, only the
checksum `wikigpt add` recorded when it wrote the shard. So `train` and `export-nanogpt` compare it on first read
(one sequential read of a file they are about to read anyway), and refuse a damaged shard with how to repair it.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

from ..errors import DamagedShardError, ShardError
from .shards import read_header

#: Files of a dataset folder that are not data: the writers' lock and what an interrupted add leaves (the next add
#: removes those).
_NOT_DATA = (".lock",)
_LEFTOVER_PREFIXES = (".staging-", ".manifest.json.tmp-")


def repair_hint(dataset: Path, part: dict) -> str:
    """How to repair a damaged part: its shards are a pure function of its dump files, so rebuild them."""
    files = " ".join(f["name"] for f in part["files"]) or "ITS-DUMP-FILES"
    return f"to repair, remove the part and add it again: `wikigpt remove {dataset} {part['name']}`, then " \
           f"`wikigpt add {dataset} {files}`"


def file_sha256(path: Path, bufsize: int = 8 << 20) -> str:
    """sha256 of a whole file, read sequentially (hashlib releases the GIL on large buffers)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(bufsize):
            h.update(chunk)
    return h.hexdigest()


def shard_problem(path: Path, record: dict) -> Optional[tuple[str, str]]:
    """("missing" | "damaged", what is wrong) if a shard fails the cheap check, else None: the shard exists, its
    header is valid and it holds the token count the manifest records."""
    if not path.is_file():
        return "missing", "shard listed in the manifest is missing"
    try:
        n = read_header(path)
    except ShardError as e:
        return "damaged", str(e).split(": ", 1)[1]  # read_header's message without its leading path
    if n != record["tokens"]:
        return "damaged", f"shard holds {n} tokens, the manifest says {record['tokens']}"
    return None


def check_shard(path: Path, record: dict, hint: str) -> None:
    """The cheap check before a reader starts; DamagedShardError (path, what, how to repair) if it fails."""
    problem = shard_problem(path, record)
    if problem:
        raise DamagedShardError(f"{path}: {problem[1]}; {hint}")


def check_checksum(path: Path, recorded: Optional[str], actual: str, hint: str) -> None:
    """Refuse a shard whose sha256 is not the one recorded (nothing to compare in datasets that recorded none)."""
    if recorded and actual != recorded:
        raise DamagedShardError(
            f"{path}: damaged shard: its sha256 is {actual[:12]}…, `wikigpt add` recorded {recorded[:12]}… "
            f"(the file changed on disk since it was written); {hint}"
        )


def check_shard_checksum(path: Path, record: dict, hint: str) -> None:
    """Re-read a shard and compare its checksum with the recorded one."""
    recorded = record.get("sha256")
    if recorded:
        check_checksum(path, recorded, file_sha256(path), hint)


def check_part_shards(dataset: Path, part: dict) -> None:
    """The cheap check of every shard of one part (before a reader starts)."""
    hint = repair_hint(dataset, part)
    for split in ("train", "val"):
        for rec in part["shards"][split]:
            check_shard(dataset / part["dir"] / rec["file"], rec, hint)


# ------------------------------------------------------------------------------------------------- wikigpt verify


@dataclass
class Problem:
    part: Optional[str]  # the part it belongs to (None: not inside a listed part folder)
    path: str            # relative to the dataset folder
    kind: str            # "damaged", "missing", "extra"
    detail: str


@dataclass
class Verification:
    """What `verify` found: every problem, and the checksums it had to compute because none was recorded."""

    files: int = 0
    bytes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    computed: dict[tuple[str, str], str] = field(default_factory=dict)  # (part, file) -> sha256 now recorded
    report: str = ""  # what `wikigpt verify` prints (format_verification)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify(dataset: Path, manifest: dict[str, Any], progress: Callable[[str], None] = lambda s: None) -> Verification:
    """Re-read every file the manifest lists and compare it with what was recorded; list files nobody wrote."""
    result = Verification()
    started = time.monotonic()
    for part in manifest["parts"]:
        progress(f"verifying {part['name']} ...")
        _verify_part(dataset, part, result)
    listed_dirs = {p["dir"] for p in manifest["parts"]}
    _find_unlisted(dataset, listed_dirs, result)
    result.seconds = time.monotonic() - started
    return result


def _verify_part(dataset: Path, part: dict, result: Verification) -> None:
    pdir = dataset / part["dir"]
    name = part["name"]
    expected = {rec["file"]: rec for split in ("train", "val") for rec in part["shards"][split]}
    for file, rec in expected.items():
        path = pdir / file
        rel = f"{part['dir']}/{file}"
        problem = shard_problem(path, rec)
        if problem:
            result.problems.append(Problem(name, rel, *problem))
            continue
        actual = file_sha256(path)
        result.files += 1
        result.bytes += path.stat().st_size
        if not rec.get("sha256"):
            result.computed[(name, file)] = actual
        elif actual != rec["sha256"]:
            result.problems.append(Problem(name, rel, "damaged",
                                           f"sha256 {actual[:12]}…, recorded {rec['sha256'][:12]}…"))
    _verify_val_pages(pdir, part, result)
    if pdir.is_dir():
        for extra in sorted(set(os.listdir(pdir)) - set(expected) - {part["val_pages"]}):
            result.problems.append(Problem(name, f"{part['dir']}/{extra}", "extra",
                                           "not written by `wikigpt add` (not in the manifest)"))


def _verify_val_pages(pdir: Path, part: dict, result: Verification) -> None:
    """val_pages.tsv: page id, title, shard, token offset, token count of every val page (what per-page val losses
    and `Dataset.val_pages` read)."""
    path = pdir / part["val_pages"]
    rel = f"{part['dir']}/{part['val_pages']}"
    if not path.is_file():
        result.problems.append(Problem(part["name"], rel, "missing", "the part's list of val pages"))
        return
    actual = file_sha256(path)
    result.files += 1
    result.bytes += path.stat().st_size
    recorded = part.get("val_pages_sha256")
    if not recorded:
        result.computed[(part["name"], part["val_pages"])] = actual
    elif actual != recorded:
        result.problems.append(Problem(part["name"], rel, "damaged",
                                       f"sha256 {actual[:12]}…, recorded {recorded[:12]}…"))


def _find_unlisted(dataset: Path, listed_dirs: set[str], result: Verification) -> None:
    """Part folders the manifest does not list (an add killed before its commit) and leftovers of interrupted adds:
    noted, not problems, since the next `wikigpt add` removes them."""
    for entry in sorted(dataset.iterdir()) if dataset.is_dir() else ():
        if entry.name.startswith(_LEFTOVER_PREFIXES):
            result.leftovers.append(entry.name)
    parts_dir = dataset / "parts"
    if parts_dir.is_dir():
        for d in sorted(parts_dir.iterdir()):
            if f"parts/{d.name}" not in listed_dirs:
                result.leftovers.append(f"parts/{d.name}")


def record_computed(manifest: dict[str, Any], computed: dict[tuple[str, str], str]) -> None:
    """Write checksums computed by `verify` into the manifest (for datasets written before they were recorded)."""
    for part in manifest["parts"]:
        for split in ("train", "val"):
            for rec in part["shards"][split]:
                if (part["name"], rec["file"]) in computed:
                    rec["sha256"] = computed[(part["name"], rec["file"])]
        if (part["name"], part["val_pages"]) in computed:
            part["val_pages_sha256"] = computed[(part["name"], part["val_pages"])]


def format_verification(dataset: Path, manifest: dict[str, Any], v: Verification, recorded: Optional[bool]) -> str:
    """The report `wikigpt verify` prints: one line per problem, then what to do about each damaged part."""
    from ..util.fmt import human_bytes

    lines = [f"{dataset}: {len(manifest['parts'])} part(s), {v.files} file(s), {human_bytes(v.bytes)} re-read "
             f"in {v.seconds:.1f} s"]
    for p in v.problems:
        lines.append(f"  {p.kind.upper():<8} {p.path}: {p.detail}")
    for name in v.leftovers:
        lines.append(f"  LEFTOVER {name}: from an interrupted `wikigpt add` (the next add removes it)")
    if v.computed:
        where = ("recorded in manifest.json; later checks compare against them" if recorded
                 else "not recorded: the dataset folder is not writable" if recorded is False
                 else "not recorded (damaged files found first)")
        lines.append(f"  {len(v.computed)} file(s) had no recorded checksum (written by an older wikigpt): computed "
                     f"now, {where}")
    if v.ok:
        lines.append("ok: every file matches the manifest")
    return "\n".join(lines)


def summary(dataset: Path, manifest: dict[str, Any], v: Verification) -> str:
    """The one error line after a failed verify: how many problems, and what to do about each damaged part."""
    by_part = {p["name"]: p for p in manifest["parts"]}
    damaged = list(dict.fromkeys(p.part for p in v.problems if p.part and p.kind != "extra"))
    what = [f"part {name} is damaged; {repair_hint(dataset, by_part[name])}" for name in damaged]
    if any(p.kind == "extra" for p in v.problems):
        what.append("files not written by `wikigpt add` are in the part folders: move them out")
    return f"{dataset}: {len(v.problems)} problem(s) found (listed above): " + "; ".join(what)
