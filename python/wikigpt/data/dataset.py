"""A dataset folder that grows one dump part at a time: `wikigpt add`, `status`, `export-nanogpt`.

```
data/enwiki/
  manifest.json                     what is in the dataset (the only file `status` reads)
  parts/<part>/train_000000.bin     llm.c-format token shards of that part, never rewritten once added
  parts/<part>/val_000000.bin
  parts/<part>/val_pages.tsv        page_id, title, shard, token offset, token count of every val page
```
Adding a part: shards are written into a staging folder, fsynced, the folder is renamed to `parts/<part>`, and then
the manifest is rewritten atomically. A kill at any moment leaves the manifest as it was; the next run removes the
staging folder or the unreferenced part folder. The train/val split is a fixed hash of the page id (rust/pipeline.rs
`is_val`), so adding parts never moves a page between splits.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Optional, Sequence

from ..errors import DatasetError, DiskSpaceError
from ..util.fmt import human_bytes
from ..util.io import atomic_open, exclusive_lock, fsync_dir, write_errors_named
from ..util.progress import ProgressCallback, run_with_progress
from . import verify as shard_checks
from .extract import check_inputs, part_stem, resolve_processes
from .manifest import FORMAT, VERSION, read_manifest, write_manifest
from .shards import HEADER_BYTES

DEFAULT_VAL_FRACTION = 0.005
DEFAULT_SHARD_TOKENS = 100_000_000
#: Articles shorter than this (clean characters) are dropped from datasets: stubs and near-empty pages.
DEFAULT_MIN_CHARS = 200

#: Token-shard bytes per compressed dump byte, used to estimate disk needs before the first part is added (later
#: adds use the dataset's own measured ratio). `wikigpt add` of the bundled real sample writes 1,227,494 bytes of
#: shards for 1,695,871 compressed bytes (0.72); real 2023 enwiki parts expand ~25% more (XML ~4.5× compressed
#: against the sample's 3.59×, DESIGN.md), so ~0.9. 1.25 keeps a margin above both: refusing a part that would
#: have fitted costs a retry, running out of disk mid-add costs the whole add.
SHARD_BYTES_PER_COMPRESSED_BYTE = 1.25

_PART_RE = re.compile(r"^(?P<stem>.+-pages-articles(?:-multistream)?\d*)\.xml(?:-p\d+p\d+)?(?:\.bz2)?$")


def part_name(path: os.PathLike | str) -> str:
    """The part a dump file belongs to: `enwiki-20251101-pages-articles11.xml-p6899367p7054859.bz2` →
    `enwiki-20251101-pages-articles11` (parts 11–27 come in several files that share it). Other names: their stem."""
    name = Path(path).name
    m = _PART_RE.match(name)
    return m.group("stem") if m else part_stem(name)


def _take_input_sha1(files: Sequence[Path], file_recs: list[dict], stats: list[dict]) -> None:
    """Fill each file record's sha1 from the decoder's (computed over every byte it read); a file hashed before the
    work must hash the same now, or it changed while being added."""
    for f, rec, st in zip(files, file_recs, stats):
        sha1 = st.get("input_sha1")
        if not sha1:
            raise DatasetError(f"{f}: the decoder returned no sha1 for it (extension older than this module?)")
        if rec["sha1"] is not None and rec["sha1"] != sha1:
            raise DatasetError(f"{f}: changed while it was being added (sha1 {rec['sha1'][:12]}… before, "
                               f"{sha1[:12]}… as read); nothing changed")
        rec["sha1"] = sha1
        st.pop("input_sha1", None)


def sha1_file(path: Path, bufsize: int = 8 << 20) -> str:
    h = hashlib.sha1()
    with open(path, "rb") as f:
        while True:
            b = f.read(bufsize)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Dataset:
    """A dataset folder: token shards of dump parts plus `manifest.json`.

    `Dataset(path)` opens an existing dataset or names a new one (created by the first `add`). `val_fraction`,
    `shard_tokens` and `min_chars` are fixed when the dataset is created; passing a different value later is an error.
    """

    def __init__(
        self,
        path: os.PathLike | str,
        val_fraction: Optional[float] = None,
        shard_tokens: Optional[int] = None,
        min_chars: Optional[int] = None,
    ):
        self.path = Path(path)
        self._requested = {"val_fraction": val_fraction, "shard_tokens": shard_tokens, "min_chars": min_chars}
        if val_fraction is not None and not 0 <= val_fraction < 1:
            raise DatasetError(f"val fraction must be in [0, 1), got {val_fraction}")
        if shard_tokens is not None and shard_tokens < 1:
            raise DatasetError(f"shard size must be at least 1 token, got {shard_tokens}")
        if self.exists:
            m = self.manifest
            fixed = {
                "val_fraction": m["split"]["val_fraction"],
                "shard_tokens": m["shard_tokens"],
                "min_chars": m["filter"]["min_chars"],
            }
            for k, v in self._requested.items():
                if v is not None and v != fixed[k]:
                    raise DatasetError(
                        f"{self.path}: {k} is fixed at {fixed[k]} when the dataset was created (asked for {v}); "
                        "use a new dataset folder to change it"
                    )

    # ------------------------------------------------------------------ reading

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def exists(self) -> bool:
        return self.manifest_path.is_file()

    @property
    def manifest(self) -> dict:
        """The manifest as a dict, checked as a whole (read fresh each time, so parts added by another process show
        up); a damaged or foreign one is a one-line ManifestError naming the file and the first wrong field."""
        return read_manifest(self.path)

    @property
    def parts(self) -> list[dict]:
        return self.manifest["parts"]

    def tokens(self, split: str = "train") -> int:
        """Total tokens of a split over all parts."""
        _check_split(split)
        return sum(p["tokens"][split] for p in self.parts)

    def shards(self, split: str = "train", parts: Optional[Sequence[str]] = None) -> list[tuple[Path, int]]:
        """(path, tokens) of every shard of `split`, in part order; `parts` limits it to those part names."""
        _check_split(split)
        out = []
        known = {p["name"] for p in self.parts}
        for name in parts or ():
            if name not in known:
                raise DatasetError(f"{self.path}: no part named {name!r} (parts: {', '.join(sorted(known))})")
        for p in self.parts:
            if parts is not None and p["name"] not in parts:
                continue
            for s in p["shards"][split]:
                out.append((self.path / p["dir"] / s["file"], s["tokens"]))
        return out

    def val_pages(self, part: str) -> list[tuple[int, str, str, int, int]]:
        """(page_id, title, shard file, token offset, token count) of every val page of one part."""
        p = self._part(part)
        path = self.path / p["dir"] / p["val_pages"]
        rows = []
        try:
            with open(path, encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    fields = line.rstrip("\n").split("\t")
                    if len(fields) != 5 or not all(fields[k].isdigit() for k in (0, 3, 4)):
                        raise DatasetError(f"{path}:{lineno}: damaged list of val pages (expected page id, title, "
                                           f"shard, token offset, token count); "
                                           f"{shard_checks.repair_hint(self.path, p)}")
                    pid, title, shard, off, n = fields
                    rows.append((int(pid), title, shard, int(off), int(n)))
        except FileNotFoundError:
            raise DatasetError(f"{path}: the part's list of val pages is missing; "
                               f"{shard_checks.repair_hint(self.path, p)}") from None
        except UnicodeDecodeError:
            raise DatasetError(f"{path}: damaged list of val pages (not UTF-8); "
                               f"{shard_checks.repair_hint(self.path, p)}") from None
        return rows

    def _part(self, name: str) -> dict:
        for p in self.parts:
            if p["name"] == name:
                return p
        raise DatasetError(f"{self.path}: no part named {name!r}")

    def disk_bytes(self) -> int:
        """Bytes of shards, from the manifest alone (header + 2 bytes per token)."""
        return sum(1024 + 2 * s["tokens"] for p in self.parts for sp in ("train", "val") for s in p["shards"][sp])

    def shard_bytes_per_compressed_byte(self) -> float:
        """The measured ratio of this dataset (falls back to the sample's when empty)."""
        if not self.exists or not self.parts:
            return SHARD_BYTES_PER_COMPRESSED_BYTE
        comp = sum(f["size"] for p in self.parts for f in p["files"])
        return self.disk_bytes() / comp if comp else SHARD_BYTES_PER_COMPRESSED_BYTE

    # ------------------------------------------------------------------ writing

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """One writer at a time (a kill releases the lock with the process). A folder this user cannot write to is
        refused here, before any work: one line, nothing changed."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            if not os.access(self.path, os.W_OK):  # also False on a read-only mount (EROFS)
                raise PermissionError(errno.EACCES, "not writable")
        except OSError as e:
            raise DatasetError(f"{self.path}: cannot write to the dataset folder ({e.strerror}); nothing changed"
                               ) from None
        with exclusive_lock(self.path / ".lock", f"{self.path}: another `wikigpt add` is running on this dataset",
                            DatasetError):
            yield

    def _clean_leftovers(self) -> list[str]:
        """Remove what a killed add left: staging folders, part folders the manifest does not list, temp manifests."""
        removed = []
        for d in self.path.glob(".staging-*"):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d.name)
        for t in self.path.glob(".manifest.json.tmp-*"):
            t.unlink(missing_ok=True)
            removed.append(t.name)
        listed = {p["dir"] for p in self.parts} if self.exists else set()
        parts_dir = self.path / "parts"
        if parts_dir.is_dir():
            for d in parts_dir.iterdir():
                if f"parts/{d.name}" not in listed:
                    shutil.rmtree(d, ignore_errors=True)
                    removed.append(f"parts/{d.name}")
        return removed

    def _new_manifest(self) -> dict:
        from .. import _core
        from .._version import __version__

        return {
            "format": FORMAT,
            "version": VERSION,
            "created": _now(),
            "wikigpt_version": __version__,
            "tokenizer": {
                "name": "gpt2",
                "encoding": "r50k_base",
                "eot": 50256,
                "n_vocab": 50257,
                "eot_position": "before each document",
                "document": "title + '\\n\\n' + clean text",
            },
            "split": {
                "rule": _core.SPLIT_RULE,
                "val_fraction": self._requested["val_fraction"] if self._requested["val_fraction"] is not None
                else DEFAULT_VAL_FRACTION,
            },
            "shard_tokens": self._requested["shard_tokens"] or DEFAULT_SHARD_TOKENS,
            "filter": {
                "namespaces": [0],
                "redirects": "dropped",
                "min_chars": self._requested["min_chars"] if self._requested["min_chars"] is not None
                else DEFAULT_MIN_CHARS,
            },
            "parts": [],
        }

    def plan_add(self, paths: Sequence[os.PathLike | str]) -> dict[str, list[Path]]:
        """Group input files into parts ({part name: files}), in the order given. Checks existence only."""
        files = check_inputs(paths)
        groups: dict[str, list[Path]] = {}
        for f in files:
            groups.setdefault(part_name(f), []).append(f)
        for name, fs in groups.items():
            if len({f.name for f in fs}) != len(fs):
                raise DatasetError(f"the same file is given twice for part {name}")
        return groups

    def add(
        self,
        paths: Sequence[os.PathLike | str],
        processes: Optional[int] = None,
        progress: "bool | ProgressCallback | None" = None,
        free_space: Callable[[str], object] = shutil.disk_usage,
        log: Callable[[str], None] = lambda s: None,
        allow_overlap: bool = False,
    ) -> list[dict]:
        """Tokenize dump files into new shards and append them to the manifest, one part at a time.

        Files are grouped by part (all files of enwiki parts 11–27 form one part). A part whose files are already in
        the dataset (same sha1) is refused, as is a different file under an existing file's name, and (unless
        `allow_overlap`) a part whose page ids overlap a part already in: the same articles from another dump date, or
        a part given both as multistream and not, would be trained on twice. The overlap is checked from the file
        names' `-pAAApBBB` ranges before any work, and from the page ids actually read before the part goes in. Each
        part is added atomically: a failure or Ctrl-C leaves the dataset exactly as before that part. Returns the new
        parts' records.
        """
        from .. import _core

        threads = resolve_processes(processes)  # a bad count is refused before the folder or its lock exists
        groups = self.plan_add(paths)
        added = []
        with self._locked():
            removed = self._clean_leftovers()
            if removed:
                log(f"removed leftovers of an interrupted run: {', '.join(removed)}")
            manifest = self.manifest if self.exists else self._new_manifest()
            # Refuse duplicates before any work. A file's sha1 comes from the decoder, which hashes the bytes as it
            # reads them (no extra pass over a multi-GB part); only a file that could be a duplicate is hashed here
            # first: one named like a file already in, or of the same size as another (a renamed copy).
            known_sha1 = {f["sha1"]: p["name"] for p in manifest["parts"] for f in p["files"]}
            known_name = {f["name"]: f["sha1"] for p in manifest["parts"] for f in p["files"]}
            sizes = [f["size"] for p in manifest["parts"] for f in p["files"]]
            sizes += [f.stat().st_size for fs in groups.values() for f in fs]
            hashed: dict[str, list[dict]] = {}
            claimed = [(p["name"], p["page_ids"]) for p in manifest["parts"] if p.get("page_ids")]
            for name, files in groups.items():
                if any(p["name"] == name for p in manifest["parts"]):
                    raise DatasetError(f"{self.path}: part {name} is already in the dataset; nothing changed")
                named = _name_page_range(files)
                if named and not allow_overlap:
                    _refuse_overlap(name, named, claimed, "from its file names")
                    claimed.append((name, named))
                recs = []
                for f in files:
                    size = f.stat().st_size
                    sha1 = None
                    if f.name in known_name or sizes.count(size) > 1:
                        log(f"hashing {f.name} ...")
                        sha1 = sha1_file(f)
                        self._refuse_known(f, sha1, known_sha1, known_name)
                        known_sha1.setdefault(sha1, name)
                    recs.append({"name": f.name, "size": size, "sha1": sha1})
                hashed[name] = recs
            self._check_disk(sum(f.stat().st_size for fs in groups.values() for f in fs), free_space)

            for name, files in groups.items():
                record = self._add_part(manifest, name, files, hashed[name], threads, progress, _core,
                                        allow_overlap)
                manifest["parts"].append(record)
                # The commit point: after this rename the part is in; before it, the dataset is as it was.
                write_manifest(self.path, manifest)
                added.append(record)
                log(
                    f"added {name}: {record['pages']['kept']} articles, "
                    f"{record['tokens']['train']:,} train + {record['tokens']['val']:,} val tokens"
                )
        return added

    @staticmethod
    def _refuse_known(f: Path, sha1: str, known_sha1: dict[str, str], known_name: dict[str, str]) -> None:
        """A file already in the dataset (same sha1, under any name), or a different one under a name already in."""
        if sha1 in known_sha1:
            raise DatasetError(
                f"{f}: already in the dataset as part {known_sha1[sha1]} (same sha1 {sha1[:12]}…); nothing changed"
            )
        if f.name in known_name:
            raise DatasetError(
                f"{f}: a different file named {f.name} is already in the dataset "
                f"(sha1 {known_name[f.name][:12]}… vs {sha1[:12]}…); nothing changed"
            )

    def _check_disk(self, compressed: int, free_space: Callable[[str], object]) -> None:
        need = int(compressed * self.shard_bytes_per_compressed_byte() * 1.1) + (64 << 20)
        free = free_space(str(self.path)).free
        if need > free:
            raise DiskSpaceError(
                f"{self.path}: adding {human_bytes(compressed)} of dumps needs about {human_bytes(need)} of shards "
                f"(estimate, with a 10% margin) but only {human_bytes(free)} is free"
            )

    def _add_part(self, manifest, name, files, file_recs, threads, progress, core, allow_overlap) -> dict:
        staging = self.path / f".staging-{os.getpid()}-{name}"
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        final_dir = self.path / "parts" / name
        handle = core.ProgressHandle()
        handle.compressed_total = sum(r["size"] for r in file_recs)
        f = manifest["filter"]
        started = time.monotonic()
        try:
            raw = run_with_progress(
                lambda: core.build_shards(
                    [str(p) for p in files], str(staging), manifest["split"]["val_fraction"],
                    manifest["shard_tokens"], threads, f["namespaces"], False,
                    f["min_chars"], True, True, False, handle,
                ),
                handle,
                name,
                progress,
            )
            result = json.loads(raw)
            _take_input_sha1(files, file_recs, result["stats"])
            read = _read_page_range(result["stats"])  # also the record's page_ids below
            if read and not allow_overlap:  # the ids the files really hold (names can be missing or wrong)
                _refuse_overlap(name, read, [(p["name"], p["page_ids"]) for p in manifest["parts"]
                                             if p.get("page_ids")], "as read")
            fsync_dir(staging)
            final_dir.parent.mkdir(exist_ok=True)
            os.rename(staging, final_dir)
            fsync_dir(final_dir.parent)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        stats, out = result["stats"], result["output"]
        dropped: dict[str, int] = {}
        for s in stats:
            for k, v in s["dropped"].items():
                dropped[k] = dropped.get(k, 0) + v
        return {
            "name": name,
            "added": _now(),
            "files": file_recs,
            "page_ids": list(read) if read else None,
            "pages": {"seen": sum(s["pages_seen"] for s in stats), "kept": sum(s["pages_kept"] for s in stats),
                      "dropped": dropped},
            "tokens": {"train": out["train_tokens"], "val": out["val_tokens"]},
            "documents": {"train": out["train_docs"], "val": out["val_docs"]},
            "bytes": {"compressed": sum(s["compressed_bytes"] for s in stats),
                      "xml": sum(s["xml_bytes"] for s in stats), "text": sum(s["text_bytes"] for s in stats)},
            "seconds": round(time.monotonic() - started, 2),
            "dir": f"parts/{name}",
            "shards": {"train": out["train"], "val": out["val"]},
            "val_pages": out["val_pages"],
            "val_pages_sha256": shard_checks.file_sha256(final_dir / out["val_pages"]),
        }

    # ------------------------------------------------------------------ export

    def export_nanogpt(self, out_dir: os.PathLike | str) -> dict[str, int]:
        """Write headerless uint16 `train.bin` / `val.bin` (nanoGPT's prepare.py format), both or neither.

        Every shard's size and header are checked before anything is written, and its checksum as it is copied
        (the copy is that one read): a damaged shard is refused in one line and no output file changes."""
        manifest = self.manifest
        for part in manifest["parts"]:
            shard_checks.check_part_shards(self.path, part)
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        counts = {}
        # nested: neither file is renamed into place unless both were written and every checksum matched
        with atomic_open(out / "train.bin", "wb") as train_file, atomic_open(out / "val.bin", "wb") as val_file:
            for split, f in (("train", train_file), ("val", val_file)):
                with write_errors_named(out / f"{split}.bin"):  # a full disk names the file it was writing
                    counts[split] = sum(self._copy_tokens(part, rec, f)
                                        for part in manifest["parts"] for rec in part["shards"][split])
        return counts

    def _copy_tokens(self, part: dict, rec: dict, out) -> int:
        """Append one shard's tokens (its bytes after the llm.c header, little-endian uint16 like nanoGPT's .bin)
        to `out`, checking the whole file's sha256 on the way."""
        path = self.path / part["dir"] / rec["file"]
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            digest.update(f.read(HEADER_BYTES))
            while chunk := f.read(16 << 20):
                digest.update(chunk)
                out.write(chunk)
        shard_checks.check_checksum(path, rec.get("sha256"), digest.hexdigest(),
                                    shard_checks.repair_hint(self.path, part))
        return rec["tokens"]

    # ------------------------------------------------------------------ checking and repair

    def verify(self, log: Callable[[str], None] = lambda s: None) -> shard_checks.Verification:
        """Re-read every file the manifest lists and compare it with what `add` recorded; name each damaged,
        missing or extra file (the result's `.report`, `.ok`, `.problems`).

        A dataset written before checksums were recorded is checked by size and header, its checksums are computed
        now and, if nothing is wrong and the folder is writable, recorded so later checks compare against them."""
        manifest = self.manifest
        result = shard_checks.verify(self.path, manifest, log)
        recorded = None
        if result.computed and result.ok:
            recorded = self._record_checksums(result.computed)
        result.report = shard_checks.format_verification(self.path, manifest, result, recorded)
        return result

    def _record_checksums(self, computed: dict) -> bool:
        """Write checksums `verify` computed into the manifest; False if the folder is not writable."""
        try:
            with self._locked():
                manifest = self.manifest
                shard_checks.record_computed(manifest, computed)
                write_manifest(self.path, manifest)
        except DatasetError:
            return False
        return True

    def remove(self, name: str) -> dict:
        """Take a part out of the dataset (the way to repair a damaged one: remove it, then `add` its files again).
        The manifest is rewritten first, so a kill leaves either the old dataset or the new one; then its folder
        goes (or, if the kill comes between, the next add removes it as unreferenced)."""
        with self._locked():
            manifest = self.manifest
            part = next((p for p in manifest["parts"] if p["name"] == name), None)
            if part is None:
                known = ", ".join(p["name"] for p in manifest["parts"]) or "none"
                raise DatasetError(f"{self.path}: no part named {name!r} (parts: {known}); nothing changed")
            manifest["parts"].remove(part)
            write_manifest(self.path, manifest)
            shutil.rmtree(self.path / part["dir"], ignore_errors=True)
        return part

    def status(self) -> str:
        """A human-readable summary from the manifest alone."""
        m = self.manifest
        lines = [
            f"dataset {self.path}  (format v{m['version']}, created {m['created']}, "
            f"tokenizer {m['tokenizer']['name']})",
            f"split: val_fraction {m['split']['val_fraction']} by page id; min_chars {m['filter']['min_chars']}; "
            f"shards of {m['shard_tokens']:,} tokens",
            "",
            f"{'part':<48} {'files':>5} {'pages':>9} {'kept':>9} {'dropped':>9} {'train tok':>14} {'val tok':>11}",
        ]
        for p in m["parts"]:
            dropped = sum(p["pages"]["dropped"].values())
            lines.append(
                f"{p['name'][:48]:<48} {len(p['files']):>5} {p['pages']['seen']:>9,} {p['pages']['kept']:>9,} "
                f"{dropped:>9,} {p['tokens']['train']:>14,} {p['tokens']['val']:>11,}"
            )
        tr, va = self.tokens("train"), self.tokens("val")
        lines.append(f"{'total':<48} {sum(len(p['files']) for p in m['parts']):>5} "
                     f"{sum(p['pages']['seen'] for p in m['parts']):>9,} "
                     f"{sum(p['pages']['kept'] for p in m['parts']):>9,} "
                     f"{sum(sum(p['pages']['dropped'].values()) for p in m['parts']):>9,} {tr:>14,} {va:>11,}")
        lines.append(f"disk: {human_bytes(self.disk_bytes())} of shards")
        return "\n".join(lines)


_NAME_RANGE_RE = re.compile(r"-p(\d+)p(\d+)(?:\.[A-Za-z0-9]+)*$")


def _name_page_range(files: Sequence[Path]) -> Optional[tuple[int, int]]:
    """The page ids a part's file names promise (`...xml-p10p30302.bz2`), if every file of the part names a range."""
    ranges = [_NAME_RANGE_RE.search(f.name) for f in files]
    if not ranges or not all(ranges):
        return None
    return min(int(m.group(1)) for m in ranges), max(int(m.group(2)) for m in ranges)  # type: ignore[union-attr]


def _read_page_range(stats: list[dict]) -> Optional[tuple[int, int]]:
    """The lowest and highest page id build_shards read in a part's files."""
    lows = [s["page_id_min"] for s in stats if s["page_id_min"] is not None]
    highs = [s["page_id_max"] for s in stats if s["page_id_max"] is not None]
    return (min(lows), max(highs)) if lows else None


def _refuse_overlap(name: str, ids: tuple[int, int], parts: list[tuple[str, Sequence[int]]], how: str) -> None:
    """Raise if the page ids [lo, hi] of part `name` overlap those of a part already in (or planned before it)."""
    lo, hi = ids
    for other, (a, b) in parts:
        if lo <= b and a <= hi:
            raise DatasetError(
                f"{name}: its page ids {lo}–{hi} ({how}) overlap those of part {other} ({a}–{b}): the same "
                "articles would be trained on twice (the same part of another dump date, or as multistream too?); "
                "nothing changed. Use a new dataset folder, or --allow-overlap to add it anyway"
            )


def _check_split(split: str) -> None:
    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', not {split!r}")


# ---------------------------------------------------------------------------------------------------------- CLI


def _cmd_add(args) -> int:
    ds = Dataset(args.dataset, val_fraction=args.val_fraction, shard_tokens=args.shard_tokens, min_chars=args.min_chars)
    files = list(args.files)
    downloaded = []
    if args.download:
        from .dumps import download

        if not args.parts:
            raise DatasetError("--download needs --parts (e.g. --parts 1-3)")
        dest = Path(args.dumps_dir or (Path(args.dataset) / "dumps"))
        downloaded = download(args.parts, wiki=args.wiki, date=args.date, dest=dest,
                              mirror=args.mirror, multistream=args.multistream, progress=not args.quiet)
        files += [str(p) for p in downloaded]
    if not files:
        raise DatasetError("no dump files given (name .bz2 files, or use --download --parts ...)")
    log = (lambda s: print(s, file=sys.stderr)) if not args.quiet else (lambda s: None)
    ds.add(files, processes=args.processes, progress=not args.quiet, log=log, allow_overlap=args.allow_overlap)
    if downloaded and not args.keep_dumps:
        for p in downloaded:
            p.unlink(missing_ok=True)
        log(f"deleted {len(downloaded)} downloaded dump file(s) (--keep-dumps keeps them)")
    print(ds.status())
    return 0


def _cmd_status(args) -> int:
    ds = Dataset(args.dataset)
    print(ds.status())
    if args.verify:
        print()
        return _cmd_verify(args)
    return 0


def _cmd_verify(args) -> int:
    """The report on stdout; if anything is wrong, one error line (what and how to repair) and exit 1."""
    ds = Dataset(args.dataset)
    result = ds.verify(log=_progress_log(args))
    print(result.report)
    if not result.ok:
        raise DatasetError(shard_checks.summary(ds.path, ds.manifest, result))
    return 0


def _cmd_remove(args) -> int:
    part = Dataset(args.dataset).remove(args.part)
    print(f"removed {part['name']} ({part['tokens']['train']:,} train + {part['tokens']['val']:,} val tokens) from "
          f"{args.dataset}")
    return 0


def _progress_log(args) -> Callable[[str], None]:
    return (lambda s: print(s, file=sys.stderr)) if not getattr(args, "quiet", False) else (lambda s: None)


def _cmd_export(args) -> int:
    counts = Dataset(args.dataset).export_nanogpt(args.out)
    print(f"wrote {args.out}/train.bin ({counts['train']:,} tokens) and {args.out}/val.bin ({counts['val']:,} tokens)")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("add", help="tokenize dump parts into a dataset folder (creates it; later calls append parts)")
    p.add_argument("dataset", help="dataset folder (created on first add)")
    p.add_argument("files", nargs="*", help=".xml.bz2 dump files; files of one part (e.g. articles11) are grouped")
    p.add_argument("--processes", "-p", type=int, default=None, help="threads to use (default: all cores)")
    p.add_argument("--val-fraction", type=float, default=None,
                   help=f"fraction of page ids in the val split, fixed at creation (default {DEFAULT_VAL_FRACTION})")
    p.add_argument("--shard-tokens", type=int, default=None,
                   help=f"tokens per shard file, fixed at creation (default {DEFAULT_SHARD_TOKENS:,})")
    p.add_argument("--min-chars", type=int, default=None,
                   help="drop articles shorter than this many characters, fixed at creation "
                   f"(default {DEFAULT_MIN_CHARS})")
    p.add_argument("--download", action="store_true", help="download --parts first (see `wikigpt download`)")
    p.add_argument("--dumps-dir", default=None, help="where --download puts dump files (default DATASET/dumps)")
    p.add_argument("--keep-dumps", action="store_true", help="keep downloaded .bz2 files after adding them")
    p.add_argument("--allow-overlap", action="store_true",
                   help="add a part even if its page ids overlap a part already in (its articles then count twice)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    try:
        from .dumps import add_download_arguments

        add_download_arguments(p, parts_required=False)
    except ImportError:  # pragma: no cover - dumps module not built yet
        pass
    p.set_defaults(func=_cmd_add)

    p = sub.add_parser("status", help="what a dataset holds (reads only manifest.json; --verify re-reads every file)")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--verify", action="store_true",
                   help="also re-read every shard and compare it with the checksum recorded when it was written")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_status)

    p = sub.add_parser("verify", help="re-read every file of a dataset; name each damaged, missing or extra one")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    p.set_defaults(func=_cmd_verify)

    p = sub.add_parser("remove", help="take a part out of a dataset (to repair a damaged part: remove, then add)")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("part", help="part name, as `wikigpt status` lists it")
    p.set_defaults(func=_cmd_remove)

    p = sub.add_parser("export-nanogpt", help="write headerless train.bin/val.bin for nanoGPT's train.py")
    p.add_argument("dataset", help="dataset folder")
    p.add_argument("out", help="output folder")
    p.set_defaults(func=_cmd_export)
