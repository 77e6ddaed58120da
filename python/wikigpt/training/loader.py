"""Random token windows over a dataset folder's shards (the trainer's data loader).

A window is block_size + 1 consecutive tokens from one shard: x = window[:-1], y = window[1:]. Windows may cross
document boundaries (the EOT token before each document tells the model where one ends), as in nanoGPT.

Sampling is counter-based: batch number i of a stream is drawn from numpy's PCG64 seeded with (seed, stream, i).
So the whole "RNG state" of the loader is its seed plus the batch counter (the trainer's step), which makes a resumed
run draw exactly the windows the uninterrupted run would have drawn, and lets each DDP rank draw its own batches
(rank r of W takes the batch numbers a single process would use for its micro-steps r*k .. r*k+k-1) with nothing to
synchronize. Shards are chosen with probability proportional to their number of window starts (tokens - block_size),
times a per-part weight (`mix`), then a start uniformly inside the shard.

The part list is read from manifest.json when the loader is built, so parts added since the last run are picked up
by the next one; the checkpoint records which parts a model has seen.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence, Union

import numpy as np
import torch

from ..data.manifest import read_manifest
from ..data.shards import read_shard
from ..data.verify import check_shard, check_shard_checksum, repair_hint
from ..errors import DatasetError, ShardError

Mix = Union[str, Mapping[str, float]]

# Stream numbers keep the training, train-estimate and val windows independent of each other.
STREAM_TRAIN = 1
STREAM_EVAL_TRAIN = 2
STREAM_EVAL_VAL = 3


@dataclass
class Shard:
    path: Path
    tokens: int
    part: str
    split: str
    record: dict  # its manifest entry: the checksum to compare on first read
    repair: str   # what to do if it is damaged (remove the part, add it again)


@dataclass
class Part:
    name: str
    dir: Path
    train: list[Shard] = field(default_factory=list)
    val: list[Shard] = field(default_factory=list)

    def tokens(self, split: str) -> int:
        return sum(s.tokens for s in (self.train if split == "train" else self.val))


def list_parts(dataset_dir: str | os.PathLike, manifest: dict[str, Any] | None = None) -> list[Part]:
    """The dataset's parts, in the order they were added, with their shards, each checked before training starts:
    present, a valid header, the manifest's token count (a shard truncated or swapped since it was written is
    caught here; a changed byte is caught by its checksum when the sampler first reads it)."""
    d = Path(dataset_dir)
    manifest = manifest if manifest is not None else read_manifest(d)
    parts = []
    for entry in manifest["parts"]:
        part = Part(name=entry["name"], dir=d / entry["dir"])
        hint = repair_hint(d, entry)
        for split in ("train", "val"):
            for rec in entry["shards"][split]:
                path = part.dir / rec["file"]
                check_shard(path, rec, hint)
                getattr(part, split).append(Shard(path=path, tokens=rec["tokens"], part=part.name, split=split,
                                                  record=rec, repair=hint))
        parts.append(part)
    if not parts:
        raise DatasetError(f"{d}: the dataset has no parts yet (add one with `wikigpt add`)")
    return parts


def part_weights(parts: Sequence[Part], mix: Mix, parts_seen: Iterable[str] = ()) -> dict[str, float]:
    """Weight of each part for training windows (relative; 0 = not sampled).

    "tokens": every part by its train tokens (uniform over all tokens); "sequential": only parts not in
    `parts_seen`, by tokens (train on the new data only); a mapping part name -> weight: each part's share of the
    windows (parts not named get 0), spread over its shards by tokens."""
    if isinstance(mix, str):
        if mix == "tokens":
            return {p.name: float(p.tokens("train")) for p in parts}
        if mix == "sequential":
            seen = set(parts_seen)
            new = {p.name: float(p.tokens("train")) for p in parts if p.name not in seen}
            if not new:
                raise DatasetError("mix 'sequential': every part of the dataset was already seen by the checkpoint")
            return new
        raise DatasetError(f"unknown mix {mix!r}: use 'tokens', 'sequential' or a part name -> weight mapping")
    known = {p.name for p in parts}
    unknown = [k for k in mix if k not in known]
    if unknown:
        raise DatasetError(f"mix names parts that are not in the dataset: {', '.join(unknown)}")
    weights = {k: float(v) for k, v in mix.items()}
    if any(w < 0 or not math.isfinite(w) for w in weights.values()) or sum(weights.values()) <= 0:
        raise DatasetError("mix weights must be finite, non-negative and not all zero")
    return weights


class WindowSampler:
    """Windows of block_size + 1 tokens from a fixed list of shards, with a fixed probability per shard."""

    def __init__(self, shards: Sequence[Shard], shard_weights: Sequence[float], block_size: int, what: str):
        self.block_size = block_size
        usable = [(s, w) for s, w in zip(shards, shard_weights) if s.tokens > block_size and w > 0]
        if not usable:
            longest = max((s.tokens for s in shards), default=0)
            raise DatasetError(
                f"no {what} shard holds more than block_size={block_size} tokens (longest: {longest}); "
                "use a smaller --block-size or add data"
            )
        self.shards = [s for s, _ in usable]
        # number of valid window starts in each shard: 0 .. tokens - block_size - 1
        self.starts = np.array([s.tokens - block_size for s, _ in usable], dtype=np.int64)
        w = np.array([wt for _, wt in usable], dtype=np.float64)
        self.p = w / w.sum()
        self._maps: list[np.ndarray | None] = [None] * len(self.shards)

    def _map(self, i: int) -> np.ndarray:
        m = self._maps[i]
        if m is None:  # open lazily: a dataset may have hundreds of shards and a run may touch few of them
            shard = self.shards[i]
            check_shard_checksum(shard.path, shard.record, shard.repair)  # one sequential read, once per run
            try:
                m = read_shard(shard.path)
            except ShardError as e:
                raise DatasetError(str(e)) from None
            self._maps[i] = m
        return m

    def windows(self, key: Sequence[int], batch_size: int) -> np.ndarray:
        """(batch_size, block_size + 1) int64 windows, a pure function of `key` (a sequence of non-negative ints)."""
        rng = np.random.default_rng(list(key))
        which = rng.choice(len(self.shards), size=batch_size, p=self.p)
        starts = rng.integers(0, self.starts[which])
        T1 = self.block_size + 1
        out = np.empty((batch_size, T1), dtype=np.int64)
        for row, (i, s) in enumerate(zip(which, starts)):
            out[row] = self._map(int(i))[s : s + T1]
        return out


def to_device(w: np.ndarray, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Windows -> (x, y). On CUDA through pinned memory with a non-blocking copy, so the copy overlaps compute."""
    t = torch.from_numpy(w)
    x, y = t[:, :-1], t[:, 1:]
    if device.type == "cuda":
        x = x.contiguous().pin_memory().to(device, non_blocking=True)
        y = y.contiguous().pin_memory().to(device, non_blocking=True)
    else:
        x, y = x.contiguous().to(device), y.contiguous().to(device)
    return x, y


class TokenData:
    """The trainer's view of a dataset folder: training windows by the mix, fixed evaluation windows per part."""

    def __init__(
        self,
        dataset_dir: str | os.PathLike,
        block_size: int,
        *,
        seed: int = 1337,
        mix: Mix = "tokens",
        parts_seen: Iterable[str] = (),
        device: str | torch.device = "cpu",
    ):
        self.dir = Path(dataset_dir)
        self.manifest = read_manifest(self.dir)
        self.parts = list_parts(self.dir, self.manifest)
        self.block_size = block_size
        self.seed = int(seed)
        self.mix = mix
        self.device = torch.device(device)
        self.parts_seen = list(parts_seen)
        seen = set(self.parts_seen)
        self.new_parts = [p.name for p in self.parts if p.name not in seen]
        self.weights = part_weights(self.parts, mix, self.parts_seen)
        shards, sw = [], []
        for p in self.parts:
            total = p.tokens("train")
            w = self.weights.get(p.name, 0.0)
            for s in p.train:
                shards.append(s)
                sw.append(w * s.tokens / total if total else 0.0)
        self.train = WindowSampler(shards, sw, block_size, "train")
        # the parts actually sampled for training (the ones a checkpoint records as seen)
        self.trained_parts = [p.name for p in self.parts if self.weights.get(p.name, 0.0) > 0]
        self._val: dict[str, WindowSampler] = {}

    @property
    def part_names(self) -> list[str]:
        return [p.name for p in self.parts]

    def train_batch(self, index: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Training batch number `index` (the trainer uses step * accumulation + micro-step)."""
        return to_device(self.train.windows((self.seed, STREAM_TRAIN, index), batch_size), self.device)

    def eval_train_batch(self, i: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The i-th fixed batch for estimating the train loss: the same windows at every evaluation."""
        return to_device(self.train.windows((self.seed, STREAM_EVAL_TRAIN, i), batch_size), self.device)

    def val_sampler(self, part: str) -> WindowSampler | None:
        """Windows from one part's val shards (None if it has no val shard longer than a window)."""
        if part not in self._val:
            p = next((q for q in self.parts if q.name == part), None)
            if p is None:
                raise DatasetError(f"{self.dir}: no part named {part!r}")
            try:
                self._val[part] = WindowSampler(p.val, [s.tokens for s in p.val], self.block_size, f"val ({part})")
            except DatasetError:
                self._val[part] = None  # type: ignore[assignment]
        return self._val[part]

    def val_batch(self, part: str, i: int, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The i-th fixed val batch of a part. Keyed by the part's position in the manifest, which never changes
        (parts are only appended), so a part's val windows stay the same across runs and growth stages."""
        sampler = self.val_sampler(part)
        if sampler is None:
            raise DatasetError(f"part {part!r} has no val shard longer than block_size={self.block_size}")
        idx = self.part_names.index(part)
        return to_device(sampler.windows((self.seed, STREAM_EVAL_VAL, idx, i), batch_size), self.device)

    def state(self, iter_num: int) -> dict[str, Any]:
        """What a checkpoint stores to resume the loader: the seed and position (steps drawn) fully determine the
        next windows, given the same parts and mix."""
        return {
            "seed": self.seed,
            "iter_num": int(iter_num),
            "block_size": self.block_size,
            "mix": self.mix if isinstance(self.mix, str) else dict(self.mix),
            "parts": self.part_names,
            "trained_parts": self.trained_parts,
            # where this run started: on --resume, "new parts" (mix "sequential") are new relative to this, not to
            # the run's own last checkpoint (which has already seen them)
            "parts_seen_before": list(self.parts_seen),
        }


@torch.no_grad()
def evaluate(
    model: torch.nn.Module,
    dataset_dir: str | os.PathLike | TokenData,
    parts: Sequence[str] | None = None,
    *,
    iters: int = 20,
    batch_size: int = 8,
    block_size: int | None = None,
    seed: int = 1337,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
) -> dict[str, float]:
    """Val loss of `model` on each part's val shards: {"val": x, "val/<part>": y, ...}.

    Each part gets `iters` fixed batches (the same windows on every call with the same seed, so curves are not
    noisy from resampling); "val" is the mean over parts weighted by their val tokens, i.e. the expected loss of a
    token drawn uniformly from the whole val set. Parts whose val shards are shorter than one window are skipped.
    `dtype`: autocast dtype on CUDA (bfloat16 by default), ignored on the CPU."""
    raw = getattr(model, "module", model)
    raw = getattr(raw, "_orig_mod", raw)
    if device is None:
        device = next(raw.parameters()).device
    device = torch.device(device)
    if isinstance(dataset_dir, TokenData):
        data = dataset_dir
    else:
        data = TokenData(dataset_dir, block_size or raw.config.block_size, seed=seed, device=device)
    names = list(parts) if parts is not None else data.part_names
    was_training = model.training
    model.eval()
    out: dict[str, float] = {}
    total, weight = 0.0, 0
    try:
        for name in names:
            if data.val_sampler(name) is None:
                continue
            losses = []
            for i in range(iters):
                x, y = data.val_batch(name, i, batch_size)
                with autocast(device, dtype):
                    _, loss = model(x, y)
                losses.append(float(loss))
            part_loss = sum(losses) / len(losses)
            out[f"val/{name}"] = part_loss
            ntok = next(p for p in data.parts if p.name == name).tokens("val")
            total += part_loss * ntok
            weight += ntok
    finally:
        model.train(was_training)
    if weight == 0:
        raise DatasetError(f"{data.dir}: no val shard longer than block_size={data.block_size} in the chosen parts")
    out = {"val": total / weight, **out}
    return out


def autocast(device: torch.device, dtype: torch.dtype | None):
    """bf16 (or the given dtype) autocast on CUDA; a no-op context on the CPU, where the trainer runs fp32."""
    if device.type == "cuda" and dtype != torch.float32:
        return torch.autocast(device_type="cuda", dtype=dtype or torch.bfloat16)
    return torch.autocast(device_type="cpu", enabled=False)
