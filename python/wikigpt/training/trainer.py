"""The trainer: `wikigpt train`, `wikigpt sample`, `wikigpt plot`, and `wikigpt.train(TrainConfig(...))`.

nanoGPT's train.py, reorganized around wikigpt's dataset folders and run folders:
- bf16 autocast on CUDA (fp32 on the CPU), torch.compile on CUDA by default, fused AdamW with nanoGPT's two parameter
  groups, gradient accumulation, gradient clipping;
- learning-rate schedules "cosine" (nanoGPT's) and "wsd" (warmup, stable, decay over the last `decay_frac` of the
  steps), whose stable phase extends when a resumed run asks for more steps or tokens;
- every `eval_interval` steps: train/val loss (per dataset part too), perplexity, a sample, a checkpoint (atomic);
- MFU against the card's dense bf16 peak (table below, or --peak-tflops);
- --vram-gb: the largest micro-batch that fits a card of that size, found by a short probe, and the gradient
  accumulation that keeps the requested tokens per step;
- DDP through torchrun (gloo on the CPU, nccl on CUDA): rank r draws the batches a single process would draw for
  its share of the micro-steps, so W ranks x k micro-steps compute the same step as 1 process x W*k micro-steps.

The run folder holds config.json (resolved config), meta.json (versions, git hash, device, parts), metrics.jsonl
(one JSON object per line: {"kind": "step", ...} every log_interval steps, {"kind": "eval", ...} every eval),
samples.txt, ckpt.pt (latest) and, with --keep-best, best.pt.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from ..errors import CheckpointError, ConfigError
from ..util.fmt import fmt_count, fmt_eta
from ..util.metrics import read_lines
from .cpu_memory import keep_freed_memory

# Dense bf16 tensor-core peaks (TFLOPS, fp32 accumulate), matched against torch.cuda.get_device_name in order.
PEAK_TFLOPS: list[tuple[str, float, str]] = [
    (r"H100.*PCIe", 756.0, "H100 PCIe"),
    (r"H100", 989.0, "H100 SXM"),
    (r"H200", 989.0, "H200"),  # GH200 too
    (r"A100", 312.0, "A100"),
    (r"RTX 4090$", 165.2, "RTX 4090"),
    (r"RTX 4070$", 58.3, "RTX 4070"),
]

RUN_FILES = ("ckpt.pt", "best.pt", "metrics.jsonl", "samples.txt", "config.json", "meta.json")
GiB = 1024**3


@dataclass
class TrainConfig:
    """Everything a training run needs. Field names are nanoGPT's config names; each is a CLI flag in kebab case."""

    dataset: str = ""  # dataset folder (manifest.json + parts/), as written by `wikigpt add`
    out: str = ""  # run folder to create (or continue with resume=True)
    # model
    preset: str = "gpt2-124m"  # architecture: gpt2-124m, gpt2-350m or tiny (ignored with init_from / resume)
    n_layer: Optional[int] = None  # override the preset's number of blocks
    n_head: Optional[int] = None  # override the preset's attention heads
    n_embd: Optional[int] = None  # override the preset's width
    block_size: Optional[int] = None  # context length; None = the preset's (or the checkpoint's; may only shrink it)
    dropout: Optional[float] = None  # None = 0.0 (the preset's / the checkpoint's)
    bias: Optional[bool] = None  # biases in Linear/LayerNorm; None = True as GPT-2
    kernels: str = "auto"  # fused Triton kernels: on, off, auto (= on for CUDA without torch.compile; see train())
    # batch
    batch_size: int = 12  # micro-batch, sequences per forward pass per process
    gradient_accumulation_steps: int = 40  # micro-batches per optimizer step, summed over all DDP processes
    vram_gb: Optional[float] = None  # fit a card with this many GiB: pick the micro-batch, keep tokens per step
    # length
    max_iters: int = 600000  # stop after this many optimizer steps (counted across resumed runs)
    max_tokens: Optional[float] = None  # stop when tokens_seen (across resumed runs) reaches this; overrides max_iters
    # optimizer and schedule
    lr: float = 6e-4  # peak learning rate (on resume/init_from: the new one)
    min_lr: float = 6e-5  # floor of the decay, ~lr/10 (Chinchilla)
    warmup_iters: int = 2000  # linear warmup steps (from the start of this stage)
    lr_decay_iters: Optional[int] = None  # cosine: step where the decay ends; None = max_iters
    schedule: str = "cosine"  # cosine, or wsd (warmup-stable-decay: extends when data grows)
    decay_frac: float = 0.2  # wsd: fraction of this stage's steps spent decaying to min_lr, at the end
    weight_decay: float = 0.1  # AdamW decoupled weight decay on 2-D parameters
    beta1: float = 0.9  # AdamW
    beta2: float = 0.95  # AdamW
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 = off
    # evaluation and logging
    eval_interval: int = 2000  # evaluate, sample and checkpoint every this many steps
    eval_iters: int = 200  # batches per estimate: for the train loss, and for each part's val loss
    log_interval: int = 10  # a step line to metrics.jsonl and the console every this many steps
    sample_prompt: str = "The history of"  # prompt of the sample written at each evaluation
    sample_tokens: int = 100  # tokens per sample; 0 = no samples
    keep_best: bool = False  # also keep best.pt, the checkpoint with the lowest val loss
    # data
    mix: Union[str, dict] = "tokens"  # tokens (all parts by size), sequential (only parts the init model has not
    # seen), or {part name: weight}
    # system
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    dtype: str = "auto"  # auto (bfloat16 on CUDA, float32 on the CPU), bfloat16, float16, float32
    compile: Optional[bool] = None  # torch.compile the model; None = on for CUDA, off for the CPU
    peak_tflops: Optional[float] = None  # the card's peak for MFU, when it is not in the table
    seed: int = 1337  # model init, data windows and dropout
    # tracking (optional extras: pip install "wikigpt[tracking]"), fed every metrics.jsonl record
    wandb: Optional[str] = None  # Weights & Biases project to log to (nanoGPT's wandb_log / wandb_project)
    wandb_run_name: Optional[str] = None  # the W&B run's name; None = the run folder's name
    tensorboard: Optional[str] = None  # folder for TensorBoard event files
    # run folder
    init_from: Optional[str] = None  # start from a run folder, a wikigpt or nanoGPT checkpoint, or an HF GPT-2 folder
    resume: bool = False  # continue the run in `out` from its last checkpoint
    overwrite: bool = False  # start over in an existing run folder (its run files are replaced)


@dataclass
class RunResult:
    run_dir: Path
    iter_num: int
    tokens_seen: int
    train_loss: Optional[float]
    val_loss: Optional[float]
    val_ppl: Optional[float]
    best_val_loss: float
    metrics: dict = field(default_factory=dict)  # the last eval record
    elapsed_s: float = 0.0


# ----------------------------------------------------------------------------------------------------------------
# learning-rate schedules


@dataclass
class Schedule:
    """LR as a function of the step. `start_iter` is where this stage began (0 from scratch, the checkpoint's step
    for --init-from), so warmup and decay are relative to the stage; resumed runs keep the stored start."""

    kind: str
    lr: float
    min_lr: float
    warmup_iters: int
    start_iter: int
    max_iters: int
    lr_decay_iters: Optional[int] = None  # cosine only
    decay_frac: float = 0.2  # wsd only

    def __call__(self, it: int) -> float:
        t = it - self.start_iter
        if t < self.warmup_iters:  # nanoGPT's warmup: never exactly 0
            return self.lr * (t + 1) / (self.warmup_iters + 1)
        if self.kind == "cosine":
            end = (self.lr_decay_iters or self.max_iters) - self.start_iter
            if t >= end:
                return self.min_lr
            ratio = (t - self.warmup_iters) / max(1, end - self.warmup_iters)
            return self.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (self.lr - self.min_lr)
        # wsd: stable at lr, then linear to min_lr over the last decay_frac of the stage. Asking for more steps
        # moves the decay later; a run still in its stable phase continues as if it had been planned longer.
        total = self.max_iters - self.start_iter
        decay = max(1, round(self.decay_frac * total)) if self.decay_frac > 0 else 0
        decay_start = total - decay
        if t < decay_start or decay == 0:
            return self.lr
        ratio = min(1.0, (t - decay_start + 1) / decay)
        return self.lr + ratio * (self.min_lr - self.lr)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------------------------------------------
# helpers


def _log(msg: str, rank: int = 0) -> None:
    if rank == 0:
        print(f"wikigpt train: {msg}", file=sys.stderr, flush=True)


def _git_hash() -> Optional[str]:
    """The commit of the wikigpt checkout this runs from (with -dirty if it has changes), or None if not a git
    checkout (an installed wheel)."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=here, capture_output=True, text=True,
            timeout=10, env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"},  # never lock the index of a live checkout
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def peak_tflops_for(device_name: str) -> tuple[Optional[float], str]:
    for pat, tf, label in PEAK_TFLOPS:
        if re.search(pat, device_name):
            return tf, label
    return None, device_name


def _resolve_device(cfg: TrainConfig, local_rank: int):
    import torch

    d = cfg.device
    if d == "auto":
        d = "cuda" if torch.cuda.is_available() else "cpu"
    if d.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {cfg.device}: CUDA is not available here (use --device cpu)")
        if d == "cuda":
            d = f"cuda:{local_rank}"
        torch.cuda.set_device(d)
    elif d != "cpu":
        raise ConfigError(f"--device {cfg.device}: use auto, cpu, cuda or cuda:N")
    return torch.device(d)


def _resolve_dtype(cfg: TrainConfig, device):
    import torch

    d = cfg.dtype
    if d == "auto":
        if device.type == "cuda":
            d = "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        else:
            d = "float32"
    table = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}
    if d not in table:
        raise ConfigError(f"--dtype {cfg.dtype}: use auto, bfloat16, float16 or float32")
    if device.type == "cpu" and d != "float32":
        raise ConfigError(f"--dtype {d} on the CPU: the CPU trainer runs float32 (use --dtype float32 or auto)")
    return table[d]


def resolve_kernels(setting: str, device_type: str, compiled: bool) -> tuple[bool, Optional[str]]:
    """--kernels on/off/auto -> (use the Triton kernels?, a line for the log when auto decided against them).

    auto = the kernels on CUDA, except under torch.compile: the compiled kernels-on 124M model has not yet produced a
    measured step on a GPU (benches/RESULTS.md: no row within 140 s on an H200, cause not found), while the compiled
    plain model is measured (346k tokens/s, 29.9% MFU at micro-batch 8 inside 12 GiB on an H200). So the default is
    the path known to work; `--kernels on` still asks for both. On the CPU the kernels would run in Triton's
    interpreter (for tests only), so auto is off there.
    """
    if setting != "auto":
        return setting == "on", None
    if device_type != "cuda":
        return False, None
    if compiled:
        return False, ("kernels auto: off under torch.compile (kernels on + compile is not yet measured on a GPU; "
                       "--kernels on to use them anyway, or --no-compile to run them eagerly)")
    return True, None


def _check_config(cfg: TrainConfig) -> None:
    if not cfg.dataset:
        raise ConfigError("no dataset folder given")
    if not cfg.out:
        raise ConfigError("no run folder given (--out)")
    positive = ["batch_size", "gradient_accumulation_steps", "eval_interval", "eval_iters", "log_interval"]
    for name in positive:
        if int(getattr(cfg, name)) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(cfg, name)}")
    for name in ("max_iters", "warmup_iters", "sample_tokens"):
        if int(getattr(cfg, name)) < 0:
            raise ConfigError(f"--{name.replace('_', '-')} must not be negative, got {getattr(cfg, name)}")
    if cfg.schedule not in ("cosine", "wsd"):
        raise ConfigError(f"--schedule {cfg.schedule}: use cosine or wsd")
    if not 0.0 <= cfg.decay_frac <= 1.0:
        raise ConfigError(f"--decay-frac must be in [0, 1], got {cfg.decay_frac}")
    if cfg.lr <= 0 or cfg.min_lr < 0 or cfg.min_lr > cfg.lr:
        raise ConfigError(f"need 0 <= --min-lr ({cfg.min_lr}) <= --lr ({cfg.lr}) and --lr > 0")
    if cfg.kernels not in ("on", "off", "auto"):
        raise ConfigError(f"--kernels {cfg.kernels}: use on, off or auto")
    if cfg.resume and cfg.overwrite:
        raise ConfigError("--resume and --overwrite contradict each other")
    if cfg.resume and cfg.init_from:
        raise ConfigError("--resume continues the run folder's own checkpoint; drop --init-from")
    if cfg.max_tokens is not None and cfg.max_tokens <= 0:
        raise ConfigError(f"--max-tokens must be positive, got {cfg.max_tokens}")
    if cfg.vram_gb is not None and cfg.vram_gb <= 0:
        raise ConfigError(f"--vram-gb must be positive, got {cfg.vram_gb}")
    if cfg.wandb or cfg.tensorboard:  # a missing optional extra is one line before anything is written
        from .tracking import check_installed

        check_installed(wandb=bool(cfg.wandb), tensorboard=bool(cfg.tensorboard))


def _check_run_dir(cfg: TrainConfig) -> Path:
    """Refuse to touch an existing run unless asked (writes nothing)."""
    out = Path(cfg.out)
    exists = out.exists() and (not out.is_dir() or any(out.iterdir()))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    if cfg.resume:
        if not (out / "ckpt.pt").is_file():
            raise ConfigError(f"{out}: nothing to resume: no ckpt.pt in this folder")
    elif exists and not cfg.overwrite:
        raise ConfigError(f"{out}: run folder exists; pass --resume to continue it or --overwrite to start over")
    return out


def _prepare_run_dir(cfg: TrainConfig, rank: int) -> Path:
    """Create the run folder; with --overwrite remove only wikigpt's own run files. Called once the starting
    checkpoint has loaded, so a command that fails on a bad --init-from leaves an existing run as it was."""
    out = _check_run_dir(cfg)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        if cfg.overwrite:
            for name in RUN_FILES:
                (out / name).unlink(missing_ok=True)
    return out


def _truncate_metrics(path: Path, iter_num: int) -> None:
    """On resume, drop the records the killed run wrote after its last checkpoint: the resumed run writes them
    again, so the curve continues without duplicates."""
    from ..util.io import atomic_write_bytes

    keep = [r for r in read_lines(path) if int(r.get("step", 0)) <= iter_num]
    atomic_write_bytes(path, "".join(json.dumps(r) + "\n" for r in keep).encode())


def _tokenizer():
    """GPT-2's tiktoken Encoding, built offline by wikigpt.tokenizer (imported here: only samples need it)."""
    from ..data.tokens import tokenizer

    return tokenizer()


def _sample_text(model, prompt: str, tokens: int, device, *, temperature: float = 0.8, top_k: int | None = 200,
                 seed: int = 0, num_samples: int = 1, dtype=None) -> list[str]:
    """Generate from `prompt` (after an EOT, as documents start in the shards) and decode; stops at the next EOT."""
    import torch

    from .loader import autocast

    enc = _tokenizer()
    eot = enc.eot_token
    ids = [eot] + enc.encode_ordinary(prompt)
    raw = getattr(model, "module", model)
    raw = getattr(raw, "_orig_mod", raw)
    x = torch.tensor([ids] * num_samples, dtype=torch.long, device=device)
    g = torch.Generator(device=device)
    g.manual_seed(seed)
    was_training = raw.training
    raw.eval()
    try:
        with autocast(torch.device(device), dtype):
            y = raw.generate(x, tokens, temperature=temperature, top_k=top_k, generator=g, vocab_limit=enc.n_vocab)
    finally:
        raw.train(was_training)
    texts = []
    for row in y.tolist():
        new = row[len(ids):]
        if eot in new:
            new = new[: new.index(eot)]
        texts.append(prompt + enc.decode(new))
    return texts


# ----------------------------------------------------------------------------------------------------------------
# fitting the card


def _memory_floor_bytes(n_params: int, block_size: int, vocab_size: int, n_embd: int, n_layer: int) -> int:
    """What any micro-batch needs at least: fp32 weights, gradients and AdamW's two moments (16 bytes a parameter),
    plus one sequence's logits in bf16 and fp32 (the cross-entropy's softmax) and a rough activation count."""
    weights = 16 * n_params
    logits = block_size * vocab_size * (2 + 4 + 4)
    acts = block_size * n_embd * n_layer * 34  # ~34 bytes per token per layer per channel in bf16 (Korthikanti)
    return weights + logits + acts


def vram_budget(vram_gb: float, available_bytes: int) -> tuple[float, Optional[str]]:
    """Peak allocated bytes a micro-batch may reach: 90% (the rest for the allocator's fragmentation and the CUDA
    context) of the smaller of --vram-gb and what this process can have of the card now (its free memory plus what
    this process already holds). A "12 GB" RTX 4070 has 11.99 GiB, and a desktop's display takes some of it: fitting
    to --vram-gb alone would pick a batch that runs out of memory there. Returns (bytes, a log line if the card is
    the bound)."""
    asked = vram_gb * GiB
    if available_bytes < asked:
        return 0.9 * available_bytes, (f"--vram-gb {vram_gb:g}: the card has {available_bytes / GiB:.2f} GiB for this "
                                       "process (the rest is in use or not there): fitting to that")
    return 0.9 * asked, None


def _fit_batch(model, cfg: TrainConfig, device, dtype, block_size: int, seqs_per_rank: int, rank: int) -> int:
    """Largest micro-batch dividing `seqs_per_rank` whose training step fits in --vram-gb, by measuring the peak
    allocated memory of real forward+backward+AdamW steps (eager, lr 0 so the weights do not move)."""
    import torch

    from .loader import autocast

    torch.cuda.synchronize(device)
    free, _total = torch.cuda.mem_get_info(device)
    budget, note = vram_budget(cfg.vram_gb, free + torch.cuda.memory_reserved(device))
    if note:
        _log(note, rank)
    cand = sorted({b for b in range(1, seqs_per_rank + 1) if seqs_per_rank % b == 0})

    def peak(b: int) -> Optional[int]:
        opt = model.configure_optimizers(0.0, 0.0, (0.9, 0.95), device.type)
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        try:
            x = torch.randint(0, 50257, (b, block_size), device=device)
            with autocast(device, dtype):
                _, loss = model(x, x)
            loss.backward()
            opt.step()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device)
        except torch.OutOfMemoryError:
            return None
        finally:
            model.zero_grad(set_to_none=True)
            del opt
            torch.cuda.empty_cache()

    p1 = peak(1)
    if p1 is None or p1 > budget:
        raise ConfigError(
            f"--vram-gb {cfg.vram_gb:g} is smaller than one sequence of {block_size} tokens needs "
            f"({(p1 or 0) / GiB:.1f} GiB measured with margin {budget / GiB:.1f} GiB available): "
            "use a smaller model, --block-size or a larger --vram-gb"
        )
    p2 = peak(2) if 2 <= seqs_per_rank else None
    per_seq = (p2 - p1) if p2 is not None else p1
    guess = 1
    for b in cand:
        if p1 + per_seq * (b - 1) <= budget:
            guess = b
    # the linear guess can be off (allocator rounding, attention kernels switching with size): verify, step down
    for b in [c for c in cand if c <= guess][::-1]:
        pk = peak(b)
        if pk is not None and pk <= budget:
            _log(f"--vram-gb {cfg.vram_gb:g}: micro-batch {b} fits (peak {pk / GiB:.2f} GiB of {budget / GiB:.2f} "
                 f"GiB usable)", rank)
            return b
    return 1


# ----------------------------------------------------------------------------------------------------------------
# the trainer, in phases that run top to bottom: the processes, the starting point, the data, the batch geometry,
# the counters and schedule, the optimizer; then a _Run holds the rest and steps (evaluation and checkpoint at its
# intervals, logging through one _RunLog)


def train(cfg: TrainConfig) -> RunResult:
    """Train (or continue) a GPT on a dataset folder into a run folder. See TrainConfig for the options."""
    from .loader import read_manifest

    _check_config(cfg)
    t_start = time.time()
    procs = _start_processes(cfg)
    # refuse a bad dataset, run folder or starting checkpoint before anything is written
    read_manifest(cfg.dataset)
    _check_run_dir(cfg)
    model, ckpt, source, do_compile = _starting_model(cfg, procs)
    run_dir = _prepare_run_dir(cfg, procs.rank)  # the starting point loaded: now the run folder may be written
    model.to(procs.device)
    data, parts_seen, seed = _open_data(cfg, ckpt, model.config.block_size, procs)
    geometry = _Geometry(micro=cfg.batch_size, accum_local=0, world=procs.world, block_size=model.config.block_size)
    run = None
    try:
        _batch_geometry(cfg, model, procs, geometry)
        counters = _counters(cfg, ckpt, geometry.tokens_per_step)
        optimizer, scaler = _optimizer(cfg, model, ckpt, source, procs)
        ckpt = None  # free the CPU copy of the weights
        run = _Run(cfg, procs, run_dir, model, data, geometry, counters, optimizer, scaler, do_compile=do_compile,
                   parts_seen=parts_seen, seed=seed, t_start=t_start)
        return run.loop()
    finally:
        _release(procs, geometry, run)


# ---- the phases before the first step


@dataclass
class _Procs:
    """Where this process runs: torchrun sets WORLD_SIZE/RANK/LOCAL_RANK for DDP; one process otherwise."""

    world: int
    rank: int
    local_rank: int
    device: Any
    dtype: Any

    @property
    def ddp(self) -> bool:
        return self.world > 1

    @property
    def master(self) -> bool:
        return self.rank == 0


def _start_processes(cfg: TrainConfig) -> _Procs:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = _resolve_device(cfg, local_rank)
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return _Procs(world=world, rank=rank, local_rank=local_rank, device=device, dtype=_resolve_dtype(cfg, device))


def load_starting_point(source: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint dict a run starts from (checkpoint.py's format), whatever `source` is: a run folder (its
    ckpt.pt), a wikigpt checkpoint, a nanoGPT ckpt.pt, or a Hugging Face transformers GPT-2 folder (config.json and
    model.safetensors, e.g. a downloaded `gpt2`: weights only, as nanoGPT's init_from='gpt2'). Every --init-from,
    --resume and `wikigpt sample` goes through here; a source that is none of these is one CheckpointError line."""
    from .checkpoint import load_checkpoint

    folder = Path(source)
    if folder.is_dir() and not (folder / "ckpt.pt").exists() and (folder / "config.json").is_file():
        from .hf import is_hf_folder, load_hf_gpt2  # a run folder has a config.json too, but not transformers'

        if is_hf_folder(folder):
            return load_hf_gpt2(folder)
    return load_checkpoint(source, map_location="cpu")


def _starting_model(cfg: TrainConfig, procs: _Procs):
    """(model, checkpoint dict or None, its source, compile?): the run's own checkpoint (resume), another one
    (init_from), or a fresh model of the preset."""
    import torch

    from .model import (
        GPT,
        check_gpt2_vocab,
        check_same_architecture,
        config_from_model_args,
        model_from_checkpoint,
        preset_config,
    )

    source = str(Path(cfg.out) / "ckpt.pt") if cfg.resume else cfg.init_from
    do_compile = cfg.compile if cfg.compile is not None else procs.device.type == "cuda"
    kernels, why = resolve_kernels(cfg.kernels, procs.device.type, do_compile)
    if why:
        _log(why, procs.rank)
    arch_flags = {k: getattr(cfg, k) for k in ("n_layer", "n_head", "n_embd", "bias") if getattr(cfg, k) is not None}
    if not source:
        torch.manual_seed(cfg.seed)
        mcfg = preset_config(cfg.preset, block_size=cfg.block_size, dropout=cfg.dropout, kernels=kernels,
                             **arch_flags)
        return GPT(mcfg), None, None, do_compile
    ckpt = load_starting_point(source)
    if arch_flags:  # flags that name an architecture must agree with the checkpoint's
        want = config_from_model_args(ckpt["model_args"], source)
        for k, v in arch_flags.items():
            setattr(want, k, v)
        check_same_architecture(want, ckpt, source)
    check_gpt2_vocab(config_from_model_args(ckpt["model_args"], source), source)
    model = model_from_checkpoint(ckpt, source, block_size=cfg.block_size, dropout=cfg.dropout, kernels=kernels)
    return model, ckpt, source, do_compile


def _open_data(cfg: TrainConfig, ckpt: Optional[dict], block_size: int, procs: _Procs):
    """(TokenData, the parts the starting model has seen, the window sampler's seed), and a line on what is new."""
    from .loader import TokenData

    rank = procs.rank
    parts_seen: list[str] = list(ckpt.get("parts_seen", [])) if ckpt else []
    data_state = ckpt.get("data_state") if ckpt else None
    seed = int(data_state["seed"]) if cfg.resume and data_state else cfg.seed
    if cfg.resume and data_state and "parts_seen_before" in data_state:
        parts_seen = list(data_state["parts_seen_before"])  # continue the run as it started (see TokenData.state)
    data = TokenData(cfg.dataset, block_size, seed=seed, mix=cfg.mix, parts_seen=parts_seen, device=procs.device)
    if ckpt is not None:
        new = data.new_parts
        # on --resume the run continues as it started, so "new" is relative to the run's start, not its checkpoint
        whose = "the run started having seen" if cfg.resume else "the checkpoint has seen"
        _log(f"dataset: {len(data.parts)} part(s); {whose} {len(parts_seen)}; "
             f"new: {', '.join(new) if new else 'none'}", rank)
    else:
        _log(f"dataset: {len(data.parts)} part(s): {', '.join(data.part_names)}", rank)
    if cfg.resume and data_state and data_state.get("parts") and data_state["parts"] != data.part_names:
        _log("the dataset has grown since the checkpoint: windows now come from the new part list too", rank)
    return data, parts_seen, seed


@dataclass
class _Geometry:
    """The batch: micro-batch sequences per forward pass, micro-steps per optimizer step on this process."""

    micro: int
    accum_local: int
    world: int
    block_size: int
    capped: bool = False  # this run limited the process's share of the card (undone when train returns)

    @property
    def accum_total(self) -> int:
        return self.accum_local * self.world

    @property
    def tokens_per_step(self) -> int:
        return self.micro * self.block_size * self.accum_total


def _batch_geometry(cfg: TrainConfig, model, procs: _Procs, geometry: _Geometry) -> None:
    """Fill in `geometry`: the flags' micro-batch and accumulation, or with --vram-gb the largest micro-batch that
    fits the card and the accumulation that keeps the tokens per step."""
    if cfg.gradient_accumulation_steps % procs.world:
        raise ConfigError(f"--gradient-accumulation-steps {cfg.gradient_accumulation_steps} must be a multiple of "
                          f"the number of processes ({procs.world})")
    geometry.accum_local = cfg.gradient_accumulation_steps // procs.world
    if cfg.vram_gb is None:
        return
    mcfg, block_size = model.config, geometry.block_size
    floor = _memory_floor_bytes(sum(p.numel() for p in model.parameters()), block_size, mcfg.vocab_size,
                                mcfg.n_embd, mcfg.n_layer)
    if floor > cfg.vram_gb * GiB * 0.9:
        raise ConfigError(
            f"--vram-gb {cfg.vram_gb:g} is smaller than the smallest batch needs: this model "
            f"({model.get_num_params() / 1e6:.0f}M parameters) at block_size {block_size} needs about "
            f"{floor / GiB:.1f} GiB for one sequence with its weights, gradients and AdamW state"
        )
    if procs.device.type != "cuda":
        _log(f"--vram-gb applies to CUDA cards; on {procs.device.type} the micro-batch stays {geometry.micro}",
             procs.rank)
        return
    import torch

    device = procs.device
    total = torch.cuda.get_device_properties(device).total_memory
    if cfg.vram_gb * GiB < total:  # behave like the smaller card: allocations beyond it fail here too
        torch.cuda.set_per_process_memory_fraction(cfg.vram_gb * GiB / total, device)
        geometry.capped = True
    seqs = cfg.batch_size * geometry.accum_local
    micro = _fit_batch(model, cfg, device, procs.dtype, block_size, seqs, procs.rank)
    if procs.ddp:  # every rank must run the same geometry, or the gradient all-reduces would not pair up
        t = torch.tensor([micro], device=device)
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MIN)
        micro = int(t.item())
    geometry.micro, geometry.accum_local = micro, seqs // micro


@dataclass
class _Counters:
    """What carries across runs (step, tokens, time, best val loss) and where this run ends, with its schedule."""

    iter_num: int
    tokens_seen: int
    elapsed_prev: float
    best_val: float
    max_iters: int
    schedule: Schedule


def _counters(cfg: TrainConfig, ckpt: Optional[dict], tokens_per_step: int) -> _Counters:
    iter_num = int(ckpt.get("iter_num", 0)) if ckpt else 0
    if ckpt is not None and "tokens_seen" in ckpt:
        tokens_seen = int(ckpt["tokens_seen"])
    elif ckpt is not None:  # a nanoGPT checkpoint: its config says how many tokens a step took
        c = ckpt.get("config") or {}
        try:
            tokens_seen = iter_num * int(c["batch_size"]) * int(c["block_size"]) * int(c["gradient_accumulation_steps"])
        except (KeyError, TypeError, ValueError):
            tokens_seen = 0
    else:
        tokens_seen = 0
    elapsed_prev = float(ckpt.get("elapsed_s", 0.0)) if ckpt else 0.0
    best_val = float(ckpt.get("best_val_loss", float("inf"))) if (ckpt and cfg.resume) else float("inf")

    max_iters = cfg.max_iters
    if cfg.max_tokens is not None:
        remaining = float(cfg.max_tokens) - tokens_seen
        if remaining <= 0:
            raise ConfigError(f"--max-tokens {cfg.max_tokens:g}: the checkpoint has already seen {tokens_seen} tokens")
        max_iters = iter_num + math.ceil(remaining / tokens_per_step)
    if max_iters < iter_num:
        raise ConfigError(f"--max-iters {max_iters} is below the checkpoint's step {iter_num}")

    # a resumed run keeps the stage's start, so its warmup and decay continue the same curve
    start_iter = int(ckpt["schedule"].get("start_iter", 0)) if cfg.resume and ckpt.get("schedule") else iter_num
    schedule = Schedule(kind=cfg.schedule, lr=cfg.lr, min_lr=cfg.min_lr, warmup_iters=cfg.warmup_iters,
                        start_iter=start_iter, max_iters=max_iters, lr_decay_iters=cfg.lr_decay_iters,
                        decay_frac=cfg.decay_frac)
    return _Counters(iter_num=iter_num, tokens_seen=tokens_seen, elapsed_prev=elapsed_prev, best_val=best_val,
                     max_iters=max_iters, schedule=schedule)


def _optimizer(cfg: TrainConfig, model, ckpt: Optional[dict], source: Optional[str], procs: _Procs):
    """(AdamW, GradScaler). The optimizer state comes along on resume and init_from, as nanoGPT's resume does; a
    resumed run also restores the RNG, so dropout continues as the killed run would have."""
    import torch

    optimizer = model.configure_optimizers(cfg.weight_decay, cfg.lr, (cfg.beta1, cfg.beta2), procs.device.type)
    if ckpt is not None and ckpt.get("optimizer"):
        try:
            optimizer.load_state_dict(ckpt["optimizer"])
        except (ValueError, KeyError, RuntimeError) as e:
            raise CheckpointError(f"{source}: optimizer state does not fit this model: {str(e).splitlines()[0]}") \
                from None
        for g, wd in zip(optimizer.param_groups, (cfg.weight_decay, 0.0)):  # this run's settings, not the saved
            g["weight_decay"], g["betas"] = wd, (cfg.beta1, cfg.beta2)
    scaler = torch.amp.GradScaler("cuda", enabled=(procs.dtype == torch.float16))
    if ckpt is not None and cfg.resume and ckpt.get("rng") is not None:
        torch.set_rng_state(ckpt["rng"]["torch"])
        if procs.device.type == "cuda" and ckpt["rng"].get("cuda") is not None:
            torch.cuda.set_rng_state(ckpt["rng"]["cuda"], procs.device)
    else:
        torch.manual_seed(cfg.seed + procs.rank)
    return optimizer, scaler


def _compile_and_wrap(model, do_compile: bool, procs: _Procs):
    """(the model that steps, the model that evaluates): compiled if asked, and DDP-wrapped for stepping only
    (evaluation needs no gradient sync)."""
    import torch

    if do_compile:
        _log("compiling the model (torch.compile; first steps are slow)", procs.rank)
        model = torch.compile(model)
    eval_model = model
    if procs.ddp:
        from torch.nn.parallel import DistributedDataParallel as DDP

        model = DDP(model, device_ids=[procs.device.index] if procs.device.type == "cuda" else None)
    return model, eval_model


def _mfu_peak(cfg: TrainConfig, procs: _Procs) -> tuple[Optional[float], str, str]:
    """(peak TFLOPS per device or None, where it came from, the device's name), said once in the log."""
    import torch

    if procs.device.type == "cuda":
        dev_name = torch.cuda.get_device_name(procs.device)
        if cfg.peak_tflops:
            peak, peak_src = cfg.peak_tflops, "--peak-tflops"
        else:
            peak, label = peak_tflops_for(dev_name)
            peak_src = f"table ({label}, dense bf16)" if peak else "unknown card"
    else:
        dev_name = "cpu"
        peak, peak_src = (cfg.peak_tflops, "--peak-tflops") if cfg.peak_tflops else (None, "CPU: no peak")
    if peak:
        _log(f"MFU against {peak:g} TFLOPS per device from {peak_src}", procs.rank)
    else:
        _log(f"MFU n/a ({peak_src}; pass --peak-tflops to get it)", procs.rank)
    return peak, peak_src, dev_name


def _release(procs: _Procs, geometry: _Geometry, run: Optional["_Run"]) -> None:
    """Whatever train set up outside Python's own cleanup, on every way out: the run log, the card's cap, DDP."""
    if run is not None:
        run.log.close()
    if geometry.capped:
        import torch

        torch.cuda.set_per_process_memory_fraction(1.0, procs.device)
    if procs.ddp:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


# ---- logging: every record of a run passes through one place


class _RunLog:
    """metrics.jsonl (one JSON object per line, written by rank 0) and the trackers asked for (--wandb,
    --tensorboard), fed the same records at the same points."""

    def __init__(self, path: Path, enabled: bool, tracker=None):
        self.f = open(path, "a", encoding="utf-8") if enabled else None
        self.tracker = tracker

    def write(self, record: dict) -> None:
        if self.f:
            self.f.write(json.dumps(record) + "\n")
            self.f.flush()
        if self.tracker is not None:
            self.tracker.log(record)

    def close(self) -> None:
        if self.f:
            self.f.close()
            self.f = None
        if self.tracker is not None:
            self.tracker.close()
            self.tracker = None


# ---- the run: the step loop, evaluation and checkpoint, logging


class _Run:
    """A run from its first step to its last: the phases' results, and the counters the loop moves."""

    def __init__(self, cfg: TrainConfig, procs: _Procs, run_dir: Path, model, data, geometry: _Geometry,
                 counters: _Counters, optimizer, scaler, *, do_compile: bool, parts_seen: list[str], seed: int,
                 t_start: float):
        self.cfg, self.procs, self.run_dir, self.data, self.geometry = cfg, procs, run_dir, data, geometry
        self.optimizer, self.scaler, self.sched = optimizer, scaler, counters.schedule
        self.raw_model = model
        self.model, self.eval_model = _compile_and_wrap(model, do_compile, procs)
        self.peak, peak_src, dev_name = _mfu_peak(cfg, procs)
        self.flops_per_token = model.estimate_flops_per_token()
        self.iter_num, self.tokens_seen, self.max_iters = counters.iter_num, counters.tokens_seen, counters.max_iters
        self.best_val, self.elapsed_prev, self.t_start = counters.best_val, counters.elapsed_prev, t_start
        self.first_iter = self.iter_num
        # parts the model will have seen (recorded in checkpoints)
        self.seen_after = parts_seen + [p for p in data.trained_parts if p not in parts_seen]
        self.saved_step: Optional[int] = self.iter_num if cfg.resume else None  # run_dir's ckpt.pt (for a Ctrl-C)
        self.samples_on = cfg.sample_tokens > 0
        self.last: dict = {}  # the last eval record
        self.window_tokens, self.window_time = 0, 0.0  # training since the last evaluation, for its tokens/s
        self.logged_windows, self.eta_s_per_step = 0, 0.0  # for the console's ETA (evaluations not counted)
        resolved = _write_run_files(self, do_compile=do_compile, seed=seed, parts_seen=parts_seen,
                                    peak_src=peak_src, dev_name=dev_name)
        self.log = _RunLog(run_dir / "metrics.jsonl", procs.master,
                           _open_tracker(cfg, run_dir, resolved) if procs.master else None)
        self._announce()

    def _announce(self) -> None:
        g, rank = self.geometry, self.procs.rank
        _log(f"{self.raw_model.get_num_params() / 1e6:.2f}M parameters, {self.procs.device} "
             f"{str(self.procs.dtype).replace('torch.', '')}, micro-batch {g.micro} x {g.block_size} x "
             f"{g.accum_total} accumulation = {g.tokens_per_step} tokens/step; steps {self.iter_num} -> "
             f"{self.max_iters}", rank)
        # how much of the data this run will see: more than one pass over a small dataset is where val loss turns up
        run_tokens = (self.max_iters - self.iter_num) * g.tokens_per_step
        data = self.data
        train_tokens = sum(p.tokens("train") for p in data.parts if data.weights.get(p.name, 0.0) > 0)
        if train_tokens:
            _log(f"this run: {fmt_count(run_tokens)} tokens = {run_tokens / train_tokens:.3g} passes over the "
                 f"{fmt_count(train_tokens)} train tokens of the parts it draws from", rank)

    def mfu(self, tokens_per_s: Optional[float]) -> Optional[float]:
        if not (self.peak and tokens_per_s):
            return None
        return self.flops_per_token * tokens_per_s / (self.peak * 1e12 * self.procs.world)

    def elapsed(self) -> float:
        return self.elapsed_prev + (time.time() - self.t_start)

    def loop(self) -> RunResult:
        import torch

        cfg = self.cfg
        self.model.train()
        with contextlib.ExitStack() as loop_context:
            # CPU: keep the step's large freed tensors in malloc's heap for the next step instead of unmapping and
            # zero-filling them again (2.1x the tiny preset's speed; see cpu_memory.py); restored when the loop ends
            if self.procs.device.type == "cpu":
                loop_context.enter_context(keep_freed_memory())
            self.t_step = time.time()
            try:
                while True:
                    if self._eval_due():
                        self.evaluate()
                    if self.iter_num >= self.max_iters:
                        break
                    loss_sum, lr = self.step()
                    if self.iter_num % cfg.log_interval == 0:
                        self.log_step(loss_sum, lr)
            except KeyboardInterrupt:
                self._say_interrupted()
                raise
            except torch.OutOfMemoryError:
                g = self.geometry
                raise ConfigError(
                    f"out of GPU memory at step {self.iter_num} with micro-batch {g.micro} x {g.block_size} tokens: "
                    f"use --vram-gb <your card's GiB> to size the batch, or --batch-size {max(1, g.micro // 2)} (the "
                    "gradient accumulation keeps the tokens per step); the last checkpoint is intact"
                ) from None
        last = self.last
        return RunResult(
            run_dir=self.run_dir, iter_num=self.iter_num, tokens_seen=self.tokens_seen,
            train_loss=last.get("train_loss"), val_loss=last.get("val_loss"), val_ppl=last.get("val_ppl"),
            best_val_loss=self.best_val, metrics=last, elapsed_s=self.elapsed(),
        )

    def _eval_due(self) -> bool:
        """Every eval_interval, at the end, and where a stage starts (the --init-from model on this data); not at
        a resumed run's first step, whose evaluation the killed run logged already."""
        it = self.iter_num
        due = it % self.cfg.eval_interval == 0 or it == self.max_iters or it == self.first_iter
        return due and not (self.cfg.resume and it == self.first_iter)

    def step(self):
        """One optimizer step over accum_local micro-batches on this process; returns (the step's loss, lr)."""
        import torch

        from .loader import autocast

        cfg, g, procs = self.cfg, self.geometry, self.procs
        lr = self.sched(self.iter_num)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        base = self.iter_num * g.accum_total + procs.rank * g.accum_local
        x, y = self.data.train_batch(base, g.micro)
        loss_sum = torch.zeros((), device=procs.device)
        for m in range(g.accum_local):
            if procs.ddp:  # only the last micro-step all-reduces the gradients
                self.model.require_backward_grad_sync = m == g.accum_local - 1
            with autocast(procs.device, procs.dtype):
                _, loss = self.model(x, y)
                loss = loss / g.accum_local
            if m + 1 < g.accum_local:  # fetch the next batch while the GPU works on this one
                x, y = self.data.train_batch(base + m + 1, g.micro)
            self.scaler.scale(loss).backward()
            loss_sum += loss.detach()
        if cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.iter_num += 1
        self.tokens_seen += g.tokens_per_step
        return loss_sum, lr

    def log_step(self, loss_sum, lr: float) -> None:
        """A step record (every log_interval steps) and the console line: evaluations can be thousands of steps
        apart, and a long run must show it is moving and when it will end (nanoGPT prints one per interval too)."""
        cfg, it = self.cfg, self.iter_num
        if self.procs.ddp:
            _allreduce_mean(loss_sum)
        lossf = float(loss_sum)  # syncs with the device
        now = time.time()
        dt = now - self.t_step
        step_tokens = self.geometry.tokens_per_step * cfg.log_interval
        self.window_tokens += step_tokens
        self.window_time += dt
        tps = step_tokens / dt if dt > 0 else None
        self.t_step = now
        if not math.isfinite(lossf):
            raise ConfigError(f"loss is {lossf} at step {it}: training diverged; lower --lr "
                              "or resume from an earlier checkpoint")
        mfu = self.mfu(tps)
        self.log.write({"kind": "step", "step": it, "tokens_seen": self.tokens_seen, "loss": lossf, "lr": lr,
                        "tokens_per_s": tps, "mfu": mfu})
        s_per_step = dt / cfg.log_interval
        self.logged_windows += 1
        # the session's first window holds torch.compile and warm-up: the second replaces it, then smooth
        smooth = self.logged_windows > 2
        self.eta_s_per_step = 0.7 * self.eta_s_per_step + 0.3 * s_per_step if smooth else s_per_step
        eta = fmt_eta((self.max_iters - it) * self.eta_s_per_step)
        _log(f"step {it}/{self.max_iters}: loss {lossf:.4f}, lr {lr:.2e}, {1000 * s_per_step:,.0f} ms/step"
             + (f", {tps:,.0f} tok/s" if tps else "") + (f", MFU {100 * mfu:.1f}%" if mfu else "")
             + f", {fmt_count(self.tokens_seen)} tokens, ETA {eta}", self.procs.rank)

    def estimate(self) -> dict:
        """Loss estimates: train over fixed windows of the training mix, val over fixed windows per part. Every
        rank computes the same estimate: no collective needed, and all ranks know the val loss."""
        import torch

        from .loader import autocast, evaluate

        cfg, procs, micro = self.cfg, self.procs, self.geometry.micro
        with torch.no_grad():
            self.eval_model.eval()
            losses = []
            for i in range(cfg.eval_iters):
                x, y = self.data.eval_train_batch(i, micro)
                with autocast(procs.device, procs.dtype):
                    _, loss = self.eval_model(x, y)
                losses.append(float(loss))
            self.eval_model.train()
            out = {"train": sum(losses) / len(losses)}
            out.update(evaluate(self.eval_model, self.data, iters=cfg.eval_iters, batch_size=micro,
                                device=procs.device, dtype=procs.dtype))
        return out

    def evaluate(self) -> None:
        """Estimate the losses, log them, write a sample, and checkpoint (rank 0; not at the stage's first step,
        whose weights are the starting point's)."""
        t_eval = time.time()
        est = self.estimate()
        tps = self.window_tokens / self.window_time if self.window_time > 0 else None
        record = {
            "kind": "eval", "step": self.iter_num, "tokens_seen": self.tokens_seen,
            "train_loss": est["train"], "val_loss": est["val"], "val_ppl": math.exp(min(est["val"], 50)),
            **{k: v for k, v in est.items() if k.startswith("val/")},
            "lr": self.sched(self.iter_num), "tokens_per_s": tps, "mfu": self.mfu(tps), "elapsed_s": self.elapsed(),
        }
        # the stage's first evaluation is of the starting weights: not a candidate for best.pt
        improved = self.iter_num > self.first_iter and est["val"] < self.best_val
        if improved:
            self.best_val = est["val"]
        if self.procs.master:
            self._write_sample(est["val"])
            self.log.write(record)
            _log(f"step {self.iter_num}: train {est['train']:.4f}, val {est['val']:.4f} "
                 f"(ppl {record['val_ppl']:.1f}), lr {record['lr']:.2e}"
                 + (f", {tps:,.0f} tok/s" if tps else "")
                 + (f", MFU {100 * record['mfu']:.1f}%" if record["mfu"] else ""), self.procs.rank)
            if self.iter_num > self.first_iter:
                self.save(est["val"] if improved else None)
        self.last = record
        self.t_step += time.time() - t_eval  # eval time is not training time
        self.window_tokens, self.window_time = 0, 0.0

    def _write_sample(self, val_loss: float) -> None:
        if not self.samples_on:
            return
        cfg = self.cfg
        try:
            text = _sample_text(self.raw_model, cfg.sample_prompt, cfg.sample_tokens, self.procs.device,
                                seed=cfg.seed, dtype=self.procs.dtype)[0]
        except ImportError as e:  # no tokenizer in this build: train on, say why once
            _log(f"samples off: {e}", self.procs.rank)
            self.samples_on = False
            return
        with open(self.run_dir / "samples.txt", "a", encoding="utf-8") as f:
            f.write(f"=== step {self.iter_num}, {self.tokens_seen} tokens, val {val_loss:.4f} ===\n{text}\n\n")

    def save(self, val: Optional[float]) -> None:
        """ckpt.pt (atomic), and best.pt beside it with --keep-best when `val` is the best so far."""
        import torch

        from .._version import __version__
        from .checkpoint import save_checkpoint

        device, it = self.procs.device, self.iter_num
        state = {
            "model": self.raw_model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "model_args": self.raw_model.config.model_args(),
            "iter_num": it,
            "best_val_loss": self.best_val,
            "config": dataclasses.asdict(self.cfg),
            "wikigpt_version": __version__,
            "schedule": self.sched.to_dict(),
            "data_state": self.data.state(it),
            "parts_seen": self.seen_after,
            "tokens_seen": self.tokens_seen,
            "elapsed_s": self.elapsed(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None},
        }
        save_checkpoint(self.run_dir / "ckpt.pt", state)
        self.saved_step = it
        if self.cfg.keep_best and val is not None and val <= self.best_val:
            shutil.copyfile(self.run_dir / "ckpt.pt", self.run_dir / ".best.pt.tmp")
            os.replace(self.run_dir / ".best.pt.tmp", self.run_dir / "best.pt")

    def _say_interrupted(self) -> None:
        """Ctrl-C: nothing is half-written (checkpoints are atomic); say what is kept and how to go on."""
        cfg = self.cfg
        if cfg.resume:
            how = "the same command continues from it"
        else:
            instead = (" in place of --overwrite" if cfg.overwrite
                       else " in place of --init-from" if cfg.init_from else "")
            how = f"to continue from it, rerun with --resume{instead}"
        kept = (f"{self.run_dir / 'ckpt.pt'} holds step {self.saved_step}; {how}" if self.saved_step is not None
                else "no checkpoint was written in this run yet")
        _log(f"interrupted at step {self.iter_num}; {kept}", self.procs.rank)


def _write_run_files(run: _Run, *, do_compile: bool, seed: int, parts_seen: list[str], peak_src: str,
                     dev_name: str) -> dict:
    """config.json (the resolved config) and meta.json (versions, device, parts; a resumed run's history), and on
    resume metrics.jsonl cut back to the checkpoint's step. Rank 0 writes; every rank gets the resolved config."""
    import torch

    from .._version import __version__
    from ..util.io import atomic_write_json

    cfg, g, procs, model = run.cfg, run.geometry, run.procs, run.raw_model
    resolved = {
        "train": dataclasses.asdict(cfg),
        "model": {**model.config.model_args(), "kernels": model.config.kernels},
        "derived": {
            "micro_batch": g.micro, "gradient_accumulation_steps": g.accum_total, "world_size": procs.world,
            "tokens_per_step": g.tokens_per_step, "max_iters": run.max_iters, "device": str(procs.device),
            "dtype": str(procs.dtype).replace("torch.", ""), "compile": do_compile, "seed": seed,
            "parameters": model.get_num_params(), "flops_per_token": run.flops_per_token,
            "peak_tflops": run.peak, "peak_source": peak_src,
        },
    }
    if not procs.master:
        return resolved
    run_dir = run.run_dir
    atomic_write_json(run_dir / "config.json", resolved)
    meta_path = run_dir / "meta.json"
    prev = json.loads(meta_path.read_text()) if (cfg.resume and meta_path.is_file()) else None
    meta = {
        "wikigpt_version": __version__, "git": _git_hash(), "torch": torch.__version__,
        "python": sys.version.split()[0], "device": dev_name, "world_size": procs.world,
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "start_iter": run.iter_num,
        "init_from": cfg.init_from, "dataset": str(Path(cfg.dataset).resolve()), "parts": run.data.part_names,
        "new_parts": run.data.new_parts, "parts_seen_before": parts_seen,
        "history": ((prev.get("history", []) + [{k: v for k, v in prev.items() if k != "history"}])
                    if prev else []),
    }
    atomic_write_json(meta_path, meta)
    if cfg.resume:
        _truncate_metrics(run_dir / "metrics.jsonl", run.iter_num)
    return resolved


def _open_tracker(cfg: TrainConfig, run_dir: Path, resolved: dict):
    """The trackers asked for (--wandb, --tensorboard), or None: they are optional extras."""
    if not (cfg.wandb or cfg.tensorboard):
        return None
    from .tracking import open_trackers

    return open_trackers(wandb_project=cfg.wandb, wandb_run_name=cfg.wandb_run_name,
                         tensorboard_dir=cfg.tensorboard, config=resolved, run_dir=run_dir)


def _allreduce_mean(t) -> None:
    """gloo has no AVG reduction: sum, then divide."""
    import torch.distributed as dist

    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    t /= dist.get_world_size()


# ----------------------------------------------------------------------------------------------------------------
# sampling


def sample(
    path: str | os.PathLike,
    prompt: str = "",
    tokens: int = 200,
    *,
    num_samples: int = 1,
    temperature: float = 0.8,
    top_k: Optional[int] = 200,
    seed: int = 1337,
    device: str = "auto",
) -> list[str]:
    """Texts generated by the model in a run folder or checkpoint (ours or nanoGPT's) after `prompt`."""
    import torch

    from .model import check_gpt2_vocab, model_from_checkpoint

    bad = [f"{name} {value} (must be {rule})" for name, value, ok, rule in (
        ("--tokens", tokens, tokens >= 0, ">= 0"), ("--num-samples", num_samples, num_samples >= 1, ">= 1"),
        ("--temperature", temperature, temperature >= 0, ">= 0"),
        ("--top-k", top_k, top_k is None or top_k >= 1, ">= 1, or 0 for all")) if not ok]
    if bad:
        raise ConfigError(f"sample: {'; '.join(bad)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    model = model_from_checkpoint(load_starting_point(path), source=str(path)).to(device)
    check_gpt2_vocab(model.config, str(path))
    dtype = torch.bfloat16 if str(device).startswith("cuda") else torch.float32
    return _sample_text(model, prompt, tokens, device, temperature=temperature, top_k=top_k, seed=seed,
                        num_samples=num_samples, dtype=dtype)


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


# flags whose CLI spelling differs from the field (the positional dataset, --out)
_HELP = {
    "preset": "model architecture: gpt2-124m, gpt2-350m or tiny (default gpt2-124m; ignored with --init-from)",
    "n_layer": "override the preset's number of transformer blocks",
    "n_head": "override the preset's number of attention heads",
    "n_embd": "override the preset's embedding width",
    "block_size": "context length in tokens (default: the preset's; with --init-from it may only shrink)",
    "dropout": "dropout probability (default 0)",
    "bias": "biases in Linear and LayerNorm layers (default on, as GPT-2)",
    "kernels": "fused Triton kernels: on, off, auto = on for CUDA when not compiling (default auto)",
    "batch_size": "micro-batch: sequences per forward pass per process (default 12)",
    "gradient_accumulation_steps": "micro-batches per optimizer step, over all processes (default 40)",
    "vram_gb": "fit a card of this many GiB: pick the largest micro-batch that fits and keep the tokens per step",
    "max_iters": "stop after this many optimizer steps, counted across resumed runs (default 600000)",
    "max_tokens": "stop when the tokens seen (counted across resumed runs) reach this, e.g. 2e9; overrides "
                  "--max-iters",
    "lr": "peak learning rate (default 6e-4); on --resume/--init-from the new value replaces the checkpoint's",
    "min_lr": "learning rate at the end of the decay (default 6e-5)",
    "warmup_iters": "linear warmup steps from the start of this stage (default 2000)",
    "lr_decay_iters": "cosine: the step where the decay reaches --min-lr (default --max-iters)",
    "schedule": "cosine, or wsd = warmup-stable-decay, which extends when a resumed run asks for more steps "
                "(default cosine)",
    "decay_frac": "wsd: fraction of this stage's steps spent decaying to --min-lr (default 0.2)",
    "weight_decay": "AdamW weight decay on matrices and embeddings (default 0.1)",
    "beta1": "AdamW beta1 (default 0.9)",
    "beta2": "AdamW beta2 (default 0.95)",
    "grad_clip": "clip the gradient norm to this; 0 = off (default 1.0)",
    "eval_interval": "evaluate, write a sample and a checkpoint every this many steps (default 2000)",
    "eval_iters": "batches per loss estimate: train, and each part's val (default 200)",
    "log_interval": "a step line (loss, speed, ETA) to the console and metrics.jsonl every this many steps "
                    "(default 10)",
    "sample_prompt": "prompt of the sample written at each evaluation (default 'The history of')",
    "sample_tokens": "tokens per evaluation sample; 0 = none (default 100)",
    "keep_best": "also keep best.pt, the checkpoint with the lowest val loss",
    "mix": "which parts to draw windows from: tokens (all, by size; default), sequential (only parts the "
           "--init-from model has not seen), or a JSON object {part: weight}",
    "device": "auto (CUDA if available), cpu, cuda or cuda:N (default auto)",
    "dtype": "auto (bfloat16 on CUDA, float32 on the CPU), bfloat16, float16 or float32 (default auto)",
    "compile": "torch.compile the model (default: on with CUDA, off on the CPU)",
    "peak_tflops": "the card's dense bf16 peak in TFLOPS for MFU, when it is not in the built-in table",
    "seed": "seed of the model init, the data windows and dropout (default 1337)",
    "wandb": "log to Weights & Biases, in this project (default project: wikigpt); needs wikigpt[tracking]",
    "wandb_run_name": "the Weights & Biases run's name (default: the run folder's name)",
    "tensorboard": "write TensorBoard event files to this folder; needs wikigpt[tracking]",
    "init_from": "start from a run folder, a wikigpt checkpoint, a nanoGPT ckpt.pt (weights, optimizer, step) or "
                 "a Hugging Face transformers GPT-2 folder such as a downloaded gpt2 (weights)",
    "resume": "continue the run in --out from its last checkpoint (same loss curve)",
    "overwrite": "start over in an existing run folder, replacing its run files",
}


def _parse_mix(s: str) -> Union[str, dict]:
    if s in ("tokens", "sequential"):
        return s
    try:
        d = json.loads(s)
    except json.JSONDecodeError:
        raise argparse.ArgumentTypeError(f"{s!r}: use tokens, sequential or a JSON object") from None
    if not isinstance(d, dict):
        raise argparse.ArgumentTypeError(f"{s!r}: use tokens, sequential or a JSON object")
    return d


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    # every default is SUPPRESS: the namespace then holds only the flags given, so --resume can start from the
    # run's saved config and change just those
    S = argparse.SUPPRESS
    p.add_argument("dataset", help="dataset folder (with manifest.json), as built by `wikigpt add`")
    p.add_argument("--out", "-o", required=True, help="run folder: checkpoints, metrics.jsonl, samples, config")
    for f in dataclasses.fields(TrainConfig):
        name = f.name
        if name in ("dataset", "out"):
            continue
        flag, help_ = _flag(name), _HELP[name]
        if name in ("compile", "bias"):
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=S, help=help_)
        elif name in ("keep_best", "resume", "overwrite"):
            p.add_argument(flag, action="store_true", default=S, help=help_)
        elif name == "wandb":
            p.add_argument(flag, nargs="?", const="wikigpt", metavar="PROJECT", default=S, help=help_)
        elif name == "mix":
            p.add_argument(flag, type=_parse_mix, default=S, help=help_)
        elif name == "preset":
            p.add_argument(flag, choices=["gpt2-124m", "gpt2-350m", "tiny"], default=S, help=help_)
        elif name in ("schedule",):
            p.add_argument(flag, choices=["cosine", "wsd"], default=S, help=help_)
        elif name == "kernels":
            p.add_argument(flag, choices=["on", "off", "auto"], default=S, help=help_)
        else:
            ann = str(f.type)
            t = int if "int" in ann else float if "float" in ann else str
            if name == "max_tokens":
                t = float
            p.add_argument(flag, type=t, default=S, help=help_)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """TrainConfig from parsed flags: defaults, or with --resume the run's saved config, then the flags given."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}
    base: dict[str, Any] = {}
    if given.get("resume"):
        saved = Path(given["out"]) / "config.json"
        if saved.is_file():
            try:
                base = json.loads(saved.read_text())["train"]
            except (OSError, json.JSONDecodeError, KeyError) as e:
                raise ConfigError(f"{saved}: unreadable run config: {e}") from None
            base = {k: v for k, v in base.items() if k in {f.name for f in dataclasses.fields(TrainConfig)}}
            base.pop("resume", None)
            base.pop("overwrite", None)
            base.pop("init_from", None)  # the run's own checkpoint replaces where it started from
    base.update(given)
    return TrainConfig(**base)


def _cmd_train(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    res = train(cfg)
    val = f"{res.val_loss:.4f}" if res.val_loss is not None else "n/a"
    print(f"{res.run_dir}: step {res.iter_num}, {res.tokens_seen} tokens seen, val loss {val}")
    return 0


def _cmd_sample(args: argparse.Namespace) -> int:
    texts = sample(args.run, args.prompt, args.tokens, num_samples=args.num_samples, temperature=args.temperature,
                   top_k=args.top_k if args.top_k > 0 else None, seed=args.seed, device=args.device)
    for i, t in enumerate(texts):
        if i:
            print("\n---------------")
        print(t)
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from ..experiments.plot import plot_runs

    out = plot_runs(args.runs, args.output, labels=args.label)
    print(out)
    return 0


def add_cli(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train a GPT on a dataset folder (or continue one)",
        description="Train a GPT on a dataset folder. Flags follow nanoGPT's config names. Run under "
                    "`torchrun --nproc_per_node N -m wikigpt train ...` for DDP.",
    )
    _add_train_flags(p)
    p.set_defaults(func=_cmd_train)

    s = subparsers.add_parser("sample", help="generate text from a run folder or checkpoint")
    s.add_argument("run", help="run folder, wikigpt checkpoint or nanoGPT ckpt.pt")
    s.add_argument("--prompt", default="", help="text to continue (default: start a new document)")
    s.add_argument("--tokens", type=int, default=200, help="tokens to generate per sample (default 200)")
    s.add_argument("--num-samples", type=int, default=1, help="how many samples (default 1)")
    s.add_argument("--temperature", type=float, default=0.8, help="sampling temperature; 0 = greedy (default 0.8)")
    s.add_argument("--top-k", type=int, default=200, help="sample among the k likeliest tokens; 0 = all (default 200)")
    s.add_argument("--seed", type=int, default=1337, help="sampling seed (default 1337)")
    s.add_argument("--device", default="auto", help="auto, cpu or cuda (default auto)")
    s.set_defaults(func=_cmd_sample)

    q = subparsers.add_parser("plot", help="plot loss, perplexity and MFU of runs against tokens seen")
    q.add_argument("runs", nargs="+", help="run folders (stages of a growth experiment share one tokens axis)")
    q.add_argument("-o", "--output", default="curves.png", help="PNG to write (default curves.png)")
    q.add_argument("--label", action="append", help="legend label per run, in order (default: folder names)")
    q.set_defaults(func=_cmd_plot)
