"""`wikigpt quickstart`: the whole flow on the bundled real sample, in a few minutes, saying what each step does.

bundled dump part → clean articles (a peek) → a dataset of token shards → a short training run (the tiny preset on
the CPU, GPT-2 124M for a few hundred steps on a GPU) → a text sample and a loss plot.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from .data import SAMPLE


def sample_path() -> Path:
    """The bundled real dump excerpt (206 pages of English Wikipedia, CC BY-SA; see data/sample/ATTRIBUTION.md)."""
    return SAMPLE


def _say(step: int, total: int, text: str) -> None:
    print(f"\n[{step}/{total}] {text}", flush=True)


def quickstart(workdir: str = "wikigpt-quickstart", iters: int | None = None, device: str = "auto",
               overwrite: bool = False) -> dict:
    import torch

    from .data.dataset import Dataset
    from .data.extract import iter_articles
    from .experiments.plot import plot_runs
    from .training.trainer import TrainConfig, sample, train

    work = Path(workdir)
    if work.exists() and overwrite:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() if device == "auto" else device.startswith("cuda")
    src = sample_path()
    total = 5

    _say(1, total, f"Reading the bundled dump part {src.name} ({src.stat().st_size / 1e6:.1f} MB of bzip2): "
                   "decoding, parsing and cleaning on all cores.")
    t0 = time.monotonic()
    arts = list(iter_articles(src))
    print(f"    {len(arts)} articles in {time.monotonic() - t0:.1f} s. The first one, cleaned:")
    print("    " + arts[0].title + ": " + arts[0].text[:300].replace("\n", " ") + " …")

    _say(2, total, "Tokenizing into a dataset (GPT-2 BPE, llm.c-format shards; 5% of page ids held out for val).")
    ds_path = work / "data"
    ds = Dataset(ds_path, val_fraction=0.05)
    if not ds.exists:
        ds.add([src], log=lambda s: print("    " + s))
    else:
        print(f"    {ds_path} already exists; reusing it.")
    print("    " + Dataset(ds_path).status().replace("\n", "\n    "))

    run = work / "run"
    if cuda:
        preset, n_iters, bs, ga, block = "gpt2-124m", iters or 300, 8, 1, 1024
        what = f"GPT-2 124M on the GPU for {n_iters} steps"
    else:
        preset, n_iters, bs, ga, block = "tiny", iters or 200, 8, 1, 64
        what = f"a tiny GPT (2 layers, 64 wide) on the CPU for {n_iters} steps (a GPU trains GPT-2 124M here)"
    _say(3, total, f"Training {what}; loss, val loss and MFU go to {run}/metrics.jsonl.")
    cfg = TrainConfig(
        dataset=str(ds_path), out=str(run), preset=preset, batch_size=bs, gradient_accumulation_steps=ga,
        block_size=block, max_iters=n_iters, warmup_iters=max(1, n_iters // 10), eval_interval=max(1, n_iters // 4),
        eval_iters=20, log_interval=max(1, n_iters // 20), lr=1e-3 if not cuda else 6e-4, min_lr=1e-4,
        device=device, overwrite=True, sample_tokens=0,
    )
    result = train(cfg)
    print(f"    done: train loss {result.train_loss:.3f}, val loss {result.val_loss:.3f} "
          f"(perplexity {result.val_ppl:.1f}) after {result.tokens_seen:,} tokens in {result.elapsed_s:.0f} s")

    _say(4, total, "Sampling from the model after the prompt 'The history of'.")
    text = sample(run, prompt="The history of", tokens=60, device=device)[0]
    print("    " + text.replace("\n", " "))

    _say(5, total, "Plotting the loss curves.")
    png = plot_runs([run], work / "curves.png")
    print(f"    {png}")
    print("\nNext: `wikigpt parts --wiki enwiki --date latest` to see real parts, sizes and estimates.")
    return {"dataset": str(ds_path), "run": str(run), "plot": str(png), "val_loss": result.val_loss}


def _cmd(args) -> int:
    quickstart(args.dir, iters=args.iters, device=args.device, overwrite=args.overwrite)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("quickstart", help="the whole flow on the bundled sample: dataset, training, sample, plot")
    p.add_argument("--dir", default="wikigpt-quickstart", help="working folder (default ./wikigpt-quickstart)")
    p.add_argument("--iters", type=int, default=None, help="training steps (default 200 on CPU, 300 on GPU)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--overwrite", action="store_true", help="start from scratch in --dir")
    p.set_defaults(func=_cmd)
