"""The window loader (wikigpt.training.loader): windows are real slices of the shards, drawn by size, reproducibly,
per part.

Most tests use small synthetic datasets whose token values say where they came from (shard k holds k*10000 + i at
position i), so a window's origin can be checked exactly; the per-part evaluation runs on the real sample.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from wikigpt.data.shards import write_shard
from wikigpt.errors import DatasetError
from wikigpt.training.loader import TokenData, WindowSampler, evaluate, list_parts, part_weights, read_manifest


def make_dataset(root: Path, parts: dict[str, dict[str, list[int]]]) -> Path:
    """Write a dataset folder in the manifest format: parts = {name: {"train": [sizes], "val": [sizes]}}.
    Shard number k (counted over the whole dataset) holds k*10000 + i at position i (mod 65536)."""
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    k = 0
    for name, splits in parts.items():
        pdir = root / "parts" / name
        pdir.mkdir(parents=True, exist_ok=True)
        shards = {"train": [], "val": []}
        for split in ("train", "val"):
            for j, n in enumerate(splits.get(split, [])):
                k += 1
                toks = (k * 10000 + np.arange(n)) % 65536
                f = f"{split}_{j:06d}.bin"
                write_shard(pdir / f, toks.astype(np.uint16))
                shards[split].append({"file": f, "tokens": n,
                                      "sha256": hashlib.sha256((pdir / f).read_bytes()).hexdigest()})
        (pdir / "val_pages.tsv").write_text("")
        tokens = {s: sum(x["tokens"] for x in shards[s]) for s in shards}
        entries.append({
            "name": name, "added": "2026-11-28T06:00:00Z", "files": [], "page_ids": [0, 0],
            "pages": {"seen": 0, "kept": 0, "dropped": {}}, "tokens": tokens,
            "dir": f"parts/{name}", "shards": shards, "val_pages": "val_pages.tsv",
        })
    manifest = {"format": "wikigpt-dataset", "version": 1, "created": "2026-11-28T06:00:00Z",
                "tokenizer": {"name": "gpt2", "encoding": "r50k_base", "eot": 50256, "n_vocab": 50257},
                "split": {"rule": "test", "val_fraction": 0.005}, "shard_tokens": 100000,
                "filter": {"namespaces": [0], "min_chars": 0}, "parts": entries}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def origin(window: np.ndarray) -> tuple[int, int]:
    """(shard number, start) of a synthetic window; asserts it is one consecutive run of one shard."""
    w = window.astype(np.int64)
    assert np.all((np.diff(w) % 65536) == 1), "window is not consecutive tokens of one shard"
    return int(w[0]) // 10000, int(w[0]) % 10000


def test_windows_are_slices_of_one_shard_and_respect_ends(tmp_path):
    ds = make_dataset(tmp_path / "d", {"a": {"train": [300, 500], "val": [100]}})
    data = TokenData(ds, block_size=16, seed=1)
    for i in range(50):
        x, y = data.train_batch(i, 8)
        assert x.shape == y.shape == (8, 16) and x.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])  # y is x shifted by one
        for row in torch.cat([x, y[:, -1:]], dim=1).numpy():
            shard, start = origin(row)
            size = {1: 300, 2: 500}[shard]
            assert 0 <= start <= size - 17  # the window (17 tokens) ends inside the shard


def test_shards_drawn_by_size(tmp_path):
    ds = make_dataset(tmp_path / "d", {"a": {"train": [1000]}, "b": {"train": [9000]}})
    data = TokenData(ds, block_size=8, seed=3)
    shards = np.array([origin(r)[0] for i in range(100) for r in data.train.windows((3, 1, i), 40)])
    frac_b = float(np.mean(shards == 2))
    assert abs(frac_b - 0.9) < 0.02, frac_b  # 4000 windows: the standard error is 0.005


def test_same_key_same_windows_and_streams_independent(tmp_path):
    ds = make_dataset(tmp_path / "d", {"a": {"train": [5000], "val": [400]}})
    a = TokenData(ds, block_size=32, seed=7)
    b = TokenData(ds, block_size=32, seed=7)
    assert torch.equal(a.train_batch(5, 4)[0], b.train_batch(5, 4)[0])
    assert not torch.equal(a.train_batch(5, 4)[0], a.train_batch(6, 4)[0])
    assert not torch.equal(a.train_batch(5, 4)[0], TokenData(ds, block_size=32, seed=8).train_batch(5, 4)[0])
    assert not torch.equal(a.train_batch(0, 4)[0], a.eval_train_batch(0, 4)[0])
    assert torch.equal(a.val_batch("a", 2, 4)[0], b.val_batch("a", 2, 4)[0])
    assert origin(a.val_batch("a", 0, 1)[0][0].numpy())[0] == 2  # the val shard


def test_mix_sequential_and_weights(tmp_path):
    ds = make_dataset(tmp_path / "d", {"p1": {"train": [2000]}, "p2": {"train": [2000]}, "p3": {"train": [6000]}})
    parts = list_parts(ds)
    assert part_weights(parts, "tokens") == {"p1": 2000.0, "p2": 2000.0, "p3": 6000.0}
    assert part_weights(parts, "sequential", ["p1", "p2"]) == {"p3": 6000.0}
    data = TokenData(ds, block_size=8, seed=0, mix="sequential", parts_seen=["p1"])
    assert data.new_parts == ["p2", "p3"] and data.trained_parts == ["p2", "p3"]
    seen = {origin(r)[0] for i in range(30) for r in data.train.windows((0, 1, i), 16)}
    assert seen == {2, 3}
    data = TokenData(ds, block_size=8, seed=0, mix={"p1": 1.0, "p3": 1.0})
    shards = np.array([origin(r)[0] for i in range(100) for r in data.train.windows((0, 1, i), 40)])
    assert set(shards) == {1, 3} and abs(float(np.mean(shards == 1)) - 0.5) < 0.03
    with pytest.raises(DatasetError, match="already seen"):
        part_weights(parts, "sequential", ["p1", "p2", "p3"])
    with pytest.raises(DatasetError, match="not in the dataset: nope"):
        part_weights(parts, {"nope": 1.0})
    with pytest.raises(DatasetError, match="unknown mix"):
        part_weights(parts, "random")


def test_new_parts_are_picked_up(tmp_path):
    ds = make_dataset(tmp_path / "d", {"p1": {"train": [2000]}})
    first = TokenData(ds, block_size=8)
    assert first.part_names == ["p1"]
    make_dataset(tmp_path / "d", {"p1": {"train": [2000]}, "p2": {"train": [3000]}})  # `wikigpt add` of a part
    later = TokenData(ds, block_size=8, parts_seen=first.trained_parts)
    assert later.part_names == ["p1", "p2"] and later.new_parts == ["p2"]
    st = later.state(12)
    assert st["parts"] == ["p1", "p2"] and st["iter_num"] == 12 and st["seed"] == 1337


def test_bad_datasets(tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        TokenData(tmp_path, block_size=8)
    with pytest.raises(DatasetError, match="no such dataset folder"):
        read_manifest(tmp_path / "absent")
    ds = make_dataset(tmp_path / "d", {"a": {"train": [100]}})
    with pytest.raises(DatasetError, match="no train shard holds more than block_size=200"):
        TokenData(ds, block_size=200)
    # a shard that no longer matches the manifest (truncated, replaced)
    write_shard(ds / "parts" / "a" / "train_000000.bin", np.zeros(50, dtype=np.uint16))
    with pytest.raises(DatasetError, match="holds 50 tokens, the manifest says 100"):
        TokenData(ds, block_size=8)
    (ds / "parts" / "a" / "train_000000.bin").unlink()
    with pytest.raises(DatasetError, match="missing"):
        TokenData(ds, block_size=8)
    (ds / "manifest.json").write_text("{not json")
    with pytest.raises(DatasetError, match="unreadable manifest"):
        TokenData(ds, block_size=8)


def test_sampler_needs_a_long_enough_shard(tmp_path):
    ds = make_dataset(tmp_path / "d", {"a": {"train": [10, 20]}})
    shards = list_parts(ds)[0].train
    with pytest.raises(DatasetError, match="longest: 20"):
        WindowSampler(shards, [1, 1], 32, "train")


def test_evaluate_per_part_on_real_sample(sample_dataset_parts):
    from wikigpt.training.model import GPT, preset_config

    torch.manual_seed(0)
    model = GPT(preset_config("tiny"))
    res = evaluate(model, sample_dataset_parts, iters=2, batch_size=4)
    parts = [p.name for p in list_parts(sample_dataset_parts)]
    assert len(parts) == 3
    per = {k[4:]: v for k, v in res.items() if k.startswith("val/")}
    # parts whose val split is shorter than one window (a small part can have no val page at all) are left out
    with_val = [p.name for p in list_parts(sample_dataset_parts) if p.tokens("val") > 64]
    assert len(with_val) >= 2 and set(per) == set(with_val)
    # an untrained model is near-uniform over the 50304 ids: loss ~ ln(50304) = 10.83
    assert all(10.0 < v < 11.5 for v in per.values())
    toks = {p.name: p.tokens("val") for p in list_parts(sample_dataset_parts)}
    expect = sum(per[k] * toks[k] for k in per) / sum(toks[k] for k in per)
    assert res["val"] == pytest.approx(expect, rel=1e-12)
    assert evaluate(model, sample_dataset_parts, iters=2, batch_size=4) == res  # fixed windows
    first = with_val[0]
    only = evaluate(model, sample_dataset_parts, parts=[first], iters=2, batch_size=4)
    assert only[f"val/{first}"] == res[f"val/{first}"] and only["val"] == res[f"val/{first}"]
