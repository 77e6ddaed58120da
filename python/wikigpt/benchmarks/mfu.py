"""`wikigpt bench mfu`: training throughput, MFU and peak memory of the GPT, kernels off vs on, uncapped vs capped.

Every configuration (micro-batch, kernels, memory cap) trains a fresh model for a few timed steps exactly as the
trainer does a step: bf16 autocast forward + backward on random tokens, gradient clipping at 1.0, fused AdamW. The
kernels-off model is nanoGPT's architecture compiled the same way, so its rows are the nanoGPT baseline measured in
the same run; DESIGN.md's anchors (nanoGPT's own model.py, torch 2.11, H100) are printed beside them.

The cap stands in for a smaller card: torch.cuda.set_per_process_memory_fraction(cap / total) makes the caching
allocator raise OutOfMemoryError past `cap` GiB, as a 12 GB RTX 4070 would. A configuration that runs out of memory
is reported as OOM and the sweep goes on.

Compile time dominates a sweep (~a minute per distinct graph on an H100 host). With --dynamic-batch the batch
dimension is marked dynamic, so each kernels setting compiles once for all batch sizes (a fresh model per
configuration reuses the compiled code); without it every configuration compiles its own static graph, as nanoGPT
does. `--activations` instead reports the bytes each layer keeps for backward, per token (runs on the CPU too).

Each configuration reports its first step's forward, backward and optimizer phases on stderr as they finish (each
includes its compile), and --dump-stacks-s N prints every thread's Python stack every N seconds: a configuration that
never finishes shows where it is stuck.

MFU = 6N + 12 L H Q T flops per token (nanoGPT's estimate) x tokens/s / the card's dense bf16 peak, stated in the
output. Peaks: H100/H200 SXM 989 TF, A100 312 TF, RTX 4090 165 TF, RTX 4070 58.3 TF.
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Optional

GiB = 1024**3


# DESIGN.md, "Measured anchors": nanoGPT's model.py, torch.compile, bf16, fused AdamW, one H100 80GB, torch 2.11
NANOGPT_ANCHORS = {
    8: (411_000, 6.65),
    16: (464_000, 11.51),
    32: (481_000, 21.28),
}


@dataclass
class Row:
    batch: int
    kernels: str
    cap_gib: Optional[float]
    status: str = "ok"  # ok | OOM | error: ... | skipped (time budget)
    tokens_per_s: Optional[float] = None
    mfu: Optional[float] = None
    peak_alloc_gib: Optional[float] = None
    peak_reserved_gib: Optional[float] = None
    step_ms: Optional[float] = None
    first_step_s: Optional[float] = None  # includes compilation
    loss: Optional[float] = None
    extra: dict = field(default_factory=dict)


def _parse_list(s: str, kind=int) -> list:
    return [kind(x) for x in s.split(",") if x.strip()]


def _caps(s: str) -> list[Optional[float]]:
    out: list[Optional[float]] = []
    for x in s.split(","):
        x = x.strip().lower()
        if not x:
            continue
        out.append(None if x in ("none", "off", "0", "uncapped") else float(x))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="wikigpt bench mfu",
        description="Tokens/s, MFU and peak memory of the GPT (default the 124M model, T=1024), kernels off vs on, "
        "uncapped and capped, side by side.",
    )
    p.add_argument("--preset", default="gpt2-124m", help="model preset (training.model.PRESETS), default gpt2-124m")
    p.add_argument("--block-size", type=int, default=None, help="sequence length T (default: the preset's, 1024)")
    p.add_argument("--batches", default="8,16,32,48", help="micro-batch sizes, comma-separated (default 8,16,32,48)")
    p.add_argument("--kernels", default="off,on", help="kernel settings to run, comma-separated (default off,on)")
    p.add_argument("--caps", default="none,12", help="memory caps in GiB, 'none' = uncapped (default none,12)")
    p.add_argument("--cap-gib", type=float, default=None,
                   help="shorthand for --caps none,CAP (kept for nanoGPT-style scripts)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per configuration (default 10)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first; the first compiles (default 3)")
    p.add_argument("--peak-tflops", type=float, default=None,
                   help="the card's dense bf16 peak for MFU (default: from the device name; see the module doc)")
    p.add_argument("--no-compile", action="store_true", help="run eagerly instead of under torch.compile")
    p.add_argument("--dynamic-batch", action="store_true",
                   help="compile once per kernels setting with a dynamic batch dimension (much less compile time)")
    p.add_argument("--budget-s", type=float, default=None,
                   help="stop starting new configurations after this many seconds (the rest print as skipped)")
    p.add_argument("--out", default=None, help="write results here: PATH.json and PATH.csv (PATH without suffix)")
    p.add_argument("--device", default="cuda", help="device (default cuda; --activations also works on cpu)")
    p.add_argument("--activations", action="store_true",
                   help="instead of timing: bytes saved for backward per token per layer, kernels off vs on")
    p.add_argument("--seed", type=int, default=1337, help="random seed for weights and tokens")
    p.add_argument("--dump-stacks-s", type=float, default=None,
                   help="every this many seconds, print every thread's Python stack to stderr (faulthandler): "
                   "shows where a configuration that never finishes is stuck")
    p.add_argument("--agree-steps", type=int, default=0,
                   help="after the sweep, train kernels off and on from the same init on the same batches for this "
                   "many steps and compare their losses (default 0: skip)")
    p.add_argument("--agree-batch", type=int, default=8, help="micro-batch of the agreement run (default 8)")
    p.add_argument("--agree-data", default=None,
                   help="dataset folder (its train_*.bin shards) for the agreement run; default random tokens")
    p.add_argument("--agree-lr", type=float, default=6e-4, help="peak learning rate of the agreement run")
    return p


def _cleanup() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


# --dynamic-batch: one model and its compiled wrapper per kernels setting, weights reset to the same initial values
# for every configuration (so the compiled code is reused); otherwise a fresh model and compile each time.
_CACHE: dict[bool, tuple[Any, Any, dict]] = {}


def _model(args, kernels: bool, device) -> tuple[Any, Any]:
    import torch

    from ..training.model import GPT, preset_config

    # the other setting's model waits on the CPU: its weights must not count against this configuration's cap
    for k, (other, _, _) in _CACHE.items():
        if k != kernels:
            other.to("cpu")
    if args.dynamic_batch and kernels in _CACHE:
        model, compiled, init = _CACHE[kernels]
        model.to(device)  # moves the same Parameter objects, so the compiled code still applies
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(init[name])
        return model, compiled
    torch.manual_seed(args.seed)
    cfg = preset_config(args.preset, block_size=args.block_size, kernels=kernels)
    model = GPT(cfg).to(device)
    compiled = model if args.no_compile else torch.compile(model, dynamic=None if args.dynamic_batch else False)
    if args.dynamic_batch:
        init = {n: p.detach().to("cpu", copy=True) for n, p in model.named_parameters()}
        _CACHE[kernels] = (model, compiled, init)
    return model, compiled


def run_config(args, batch: int, kernels: bool, cap: Optional[float], peak_tf: Optional[float]) -> Row:
    import torch

    row = Row(batch=batch, kernels="on" if kernels else "off", cap_gib=cap)
    tag = f"B={batch} kernels={row.kernels} cap={'none' if cap is None else f'{cap:g}GiB'}"
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:  # memory-fraction calls need an index, not plain "cuda"
        device = torch.device("cuda", torch.cuda.current_device())
    cuda = device.type == "cuda"  # the CPU path exists to exercise this code without a GPU (tiny presets)
    _cleanup()
    if cuda:
        total = torch.cuda.get_device_properties(device).total_memory
        torch.cuda.set_per_process_memory_fraction(1.0 if cap is None else min(1.0, cap * GiB / total), device)
        torch.cuda.reset_peak_memory_stats(device)
    model = opt = compiled = None
    try:
        model, compiled = _model(args, kernels, device)
        T = model.config.block_size
        opt = model.configure_optimizers(0.1, 6e-4, (0.9, 0.95), device.type)
        gen = torch.Generator(device=device).manual_seed(args.seed)

        def sync() -> None:
            if cuda:
                torch.cuda.synchronize(device)

        def step(phases: bool = False) -> torch.Tensor:
            # phases: sync and report after forward, backward and the optimizer (the first step only: it compiles,
            # and a configuration that never finishes must still say which part it is stuck in)
            t = time.perf_counter()

            def mark(what: str) -> None:
                nonlocal t
                if phases:
                    sync()
                    _progress(f"{tag}: first step {what} done in {time.perf_counter() - t:.1f}s")
                    t = time.perf_counter()

            x = torch.randint(0, 50257, (batch, T), device=device, generator=gen) % model.config.vocab_size
            y = torch.randint(0, 50257, (batch, T), device=device, generator=gen) % model.config.vocab_size
            if args.dynamic_batch and not args.no_compile:
                torch._dynamo.maybe_mark_dynamic(x, 0)
                torch._dynamo.maybe_mark_dynamic(y, 0)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                _, loss = compiled(x, y)
            mark("forward (with its compile)")
            loss.backward()
            mark("backward (with its compile)")
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            mark("clip + optimizer")
            return loss

        _progress(f"{tag}: model ready, first step")
        t0 = time.perf_counter()
        loss = step(phases=True)
        sync()
        row.first_step_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        for _ in range(max(0, args.warmup - 1)):
            loss = step()
        sync()
        if args.warmup > 1:
            _progress(f"{tag}: {args.warmup - 1} more warmup steps in {time.perf_counter() - t0:.1f}s")
        t0 = time.perf_counter()
        for _ in range(args.steps):
            loss = step()
        sync()
        ms = (time.perf_counter() - t0) * 1000.0 / max(1, args.steps)
        row.step_ms = ms
        row.tokens_per_s = batch * T / (ms / 1000.0)
        row.loss = float(loss.item())
        if peak_tf:
            row.mfu = model.estimate_flops_per_token() * row.tokens_per_s / (peak_tf * 1e12)
        if cuda:
            row.peak_alloc_gib = torch.cuda.max_memory_allocated(device) / GiB
            row.peak_reserved_gib = torch.cuda.max_memory_reserved(device) / GiB
    except torch.cuda.OutOfMemoryError:
        row.status = "OOM"
        row.peak_alloc_gib = torch.cuda.max_memory_allocated(device) / GiB
    except Exception as e:  # one broken configuration must not end the sweep
        msg = str(e).strip().splitlines()[0] if str(e).strip() else ""
        row.status = f"error: {type(e).__name__}: {msg[:200]}"
    finally:
        if model is not None:  # an OOM can leave gradients on a cached model's parameters
            model.zero_grad(set_to_none=True)
        model = opt = compiled = None  # drop our references before emptying the cache
        _cleanup()
        if cuda:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
    return row


def _progress(msg: str) -> None:
    """One line on stderr as a configuration goes (the table on stdout stays clean): a configuration that hangs
    still shows how far it got."""
    print(f"  .. {msg}", file=sys.stderr, flush=True)


def _fmt(v, spec: str, none: str = "-") -> str:
    return none if v is None else format(v, spec)


def table(rows: list[Row], peak_tf: Optional[float], device_name: str) -> str:
    """Markdown table, with the on/off ratio for each (batch, cap) where both ran."""
    by = {(r.batch, r.kernels, r.cap_gib): r for r in rows}
    lines = [
        f"device: {device_name}; MFU against {peak_tf if peak_tf else '?'} TF dense bf16",
        "",
        "| micro-batch | kernels | cap | tokens/s | MFU | peak alloc GiB | step ms | on/off | status |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = ""
        if r.kernels == "on":
            off = by.get((r.batch, "off", r.cap_gib))
            if off and off.tokens_per_s and r.tokens_per_s:
                ratio = f"{r.tokens_per_s / off.tokens_per_s:.3f}x"
        cap = "none" if r.cap_gib is None else f"{r.cap_gib:g} GiB"
        lines.append(
            f"| {r.batch} | {r.kernels} | {cap} | {_fmt(r.tokens_per_s and r.tokens_per_s / 1000, '.1f')}k | "
            f"{_fmt(r.mfu and 100 * r.mfu, '.1f')}% | {_fmt(r.peak_alloc_gib, '.2f')} | {_fmt(r.step_ms, '.1f')} | "
            f"{ratio} | {r.status} |"
        )
    lines.append("")
    lines.append("nanoGPT reference (DESIGN.md anchors, its own model.py, H100, torch 2.11): "
                 + "; ".join(f"B={b}: {t / 1000:.0f}k tok/s, {a:.2f} GiB" for b, (t, a) in NANOGPT_ANCHORS.items())
                 + "; capped at 12 GiB it is held to B=8 (411k, 35.6% of 989 TF). The kernels=off rows above are the "
                 "same architecture compiled the same way, measured in this run.")
    best = {}
    for r in rows:
        if r.status == "ok" and r.cap_gib is not None and r.tokens_per_s:
            k = (r.kernels, r.cap_gib)
            if k not in best or r.tokens_per_s > best[k].tokens_per_s:
                best[k] = r
    for (k, cap), r in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        lines.append(f"best within {cap:g} GiB, kernels {k}: {r.tokens_per_s / 1000:.1f}k tokens/s at B={r.batch} "
                     f"({_fmt(r.mfu and 100 * r.mfu, '.1f')}% MFU), {r.tokens_per_s / 411_000:.2f}x nanoGPT's 411k")
    return "\n".join(lines)


def context(args) -> dict[str, Any]:
    import torch

    ctx: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "argv": sys.argv,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "host": platform.node(),
        "PYTORCH_CUDA_ALLOC_CONF": os.environ.get("PYTORCH_CUDA_ALLOC_CONF"),
    }
    try:
        import triton

        ctx["triton"] = triton.__version__
    except ImportError:
        ctx["triton"] = None
    if torch.cuda.is_available():
        ctx["device"] = torch.cuda.get_device_name()
        ctx["capability"] = ".".join(map(str, torch.cuda.get_device_capability()))
        ctx["total_gib"] = torch.cuda.get_device_properties(0).total_memory / GiB
        ctx["cuda"] = torch.version.cuda
    return ctx


def write_out(path: str, ctx: dict, rows: list[Row], extra: Optional[dict] = None) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    base = path[:-5] if path.endswith(".json") else path
    with open(base + ".json", "w") as f:
        json.dump({"context": ctx, "rows": [asdict(r) for r in rows], **(extra or {})}, f, indent=1)
    with open(base + ".csv", "w", newline="") as f:
        w = csv.writer(f)
        cols = [k for k in asdict(rows[0]) if k != "extra"] if rows else []
        w.writerow(cols)
        for r in rows:
            d = asdict(r)
            w.writerow([d[c] for c in cols])


# ---- --activations: bytes kept for backward ---------------------------------------------------------------------


def saved_bytes_per_token(preset: str, kernels: bool, device: str, batch: int, block: int, compile_: bool,
                          n_layer: Optional[int] = None) -> float:
    """Bytes of activations the model keeps for backward per token (weights, their casts and transposes excluded),
    measured with saved-tensor hooks over one bf16-autocast forward (compiled graphs save through the same hooks)."""
    import torch

    from ..training.model import GPT, preset_config

    torch.manual_seed(0)
    cfg = preset_config(preset, block_size=block, kernels=kernels, n_layer=n_layer)
    model = GPT(cfg).to(device)
    fn = torch.compile(model, dynamic=False) if compile_ else model
    x = torch.randint(0, 50257, (batch, block), device=device)
    y = torch.randint(0, 50257, (batch, block), device=device)
    weights = {tuple(p.shape) for p in model.parameters()} | {tuple(p.shape)[::-1] for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(t):
        if tuple(t.shape) not in weights:
            st = t.untyped_storage()
            storages[st.data_ptr()] = st.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
            fn(x, y)
    return sum(storages.values()) / (batch * block)


def activations_main(args) -> int:
    import torch

    from ..training.model import preset_config

    batch = _parse_list(args.batches)[0]
    block = args.block_size or 64
    n_layer = preset_config(args.preset).n_layer
    n_embd = preset_config(args.preset).n_embd
    mode = f"B={batch} T={block} {args.device} {'eager' if args.no_compile else 'compiled'}, bf16 autocast"
    out: dict[str, dict[str, float]] = {}
    for k in _parse_list(args.kernels, str):
        # the model at full depth and at one layer: the difference is the blocks, the rest is embeddings + loss
        full = saved_bytes_per_token(args.preset, k == "on", args.device, batch, block, not args.no_compile)
        one = saved_bytes_per_token(args.preset, k == "on", args.device, batch, block, not args.no_compile, 1)
        per_layer = (full - one) / max(1, n_layer - 1)
        out[k] = {"total": full, "per_layer": per_layer, "head_and_embeddings": one - per_layer}
        print(f"kernels {k}: {full / 1024:.1f} KiB/token kept for backward: {per_layer / 1024:.2f} KiB per layer "
              f"({per_layer / n_embd:.2f} bytes per channel), {(one - per_layer) / 1024:.1f} KiB embeddings + loss "
              f"({mode})", flush=True)
    if "on" in out and "off" in out:
        d = out["off"]["total"] - out["on"]["total"]
        print(f"kernels on keep {d / 1024:.1f} KiB/token less: {d * 32 * 1024 / GiB:.2f} GiB at B=32, T=1024")
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)) or ".", exist_ok=True)
        with open(args.out if args.out.endswith(".json") else args.out + ".json", "w") as f:
            json.dump({"torch": torch.__version__, "mode": mode, "bytes_per_token": out}, f, indent=1)
    return 0


def main(argv: Optional[list[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    if not torch.cuda.is_available():
        # import the kernels before torch.compile imports triton, so they pick Triton's CPU interpreter
        from .. import kernels  # noqa: F401

    if args.activations:
        return activations_main(args)
    from ..errors import ConfigError

    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("wikigpt bench mfu times training on a CUDA GPU; none is available here (--device cpu "
                          "runs the same code on a tiny preset, for checking; --activations measures memory)")
    if args.cap_gib is not None:
        args.caps = f"none,{args.cap_gib:g}"
    if not args.device.startswith("cuda") and any(c is not None for c in _caps(args.caps)):
        raise ConfigError("--caps: memory caps need CUDA; use --caps none on the CPU")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else platform.processor() or "cpu"
    from ..training.trainer import peak_tflops_for  # one table of peaks, so `train` and `bench mfu` agree

    peak_tf = args.peak_tflops or peak_tflops_for(name)[0]
    if peak_tf is None:
        print(f"note: no known bf16 peak for {name!r}; pass --peak-tflops to get MFU", file=sys.stderr)
    ctx = context(args)
    ctx.update(peak_tflops=peak_tf, steps=args.steps, warmup=args.warmup, compile=not args.no_compile,
               dynamic_batch=args.dynamic_batch, preset=args.preset)
    torch.backends.cuda.matmul.allow_tf32 = True  # as nanoGPT (only fp32 matmuls outside autocast are affected)
    torch.backends.cudnn.allow_tf32 = True
    print(f"# wikigpt bench mfu: {name}, torch {ctx['torch']}, triton {ctx['triton']}, peak {peak_tf} TF, "
          f"steps {args.steps} (+{args.warmup} warmup), compile {not args.no_compile}, dynamic batch "
          f"{args.dynamic_batch}", flush=True)
    if args.dump_stacks_s:
        import faulthandler

        faulthandler.dump_traceback_later(args.dump_stacks_s, repeat=True, file=sys.stderr)
    t_start = time.perf_counter()
    rows: list[Row] = []
    plan = [(b, k, c) for c in _caps(args.caps) for b in _parse_list(args.batches) for k in
            _parse_list(args.kernels, str)]
    oom_at: dict[tuple, int] = {}  # (kernels, cap) -> smallest batch that ran out of memory
    for batch, k, cap in plan:
        if k not in ("on", "off"):
            raise SystemExit(f"--kernels: use on and/or off, got {k!r}")
        row = Row(batch=batch, kernels=k, cap_gib=cap)
        if args.budget_s is not None and time.perf_counter() - t_start > args.budget_s:
            row.status = "skipped (time budget)"
        elif (k, cap) in oom_at and batch > oom_at[(k, cap)]:
            # a larger batch under the same cap cannot fit where a smaller one did not: skip its compile
            row.status = f"skipped: B={oom_at[(k, cap)]} already OOM"
        else:
            row = run_config(args, batch, k == "on", cap, peak_tf)
            if row.status == "OOM":
                oom_at[(k, cap)] = min(batch, oom_at.get((k, cap), batch))
        rows.append(row)
        cap_s = "none" if cap is None else f"{cap:g}GiB"
        print(f"B={batch:<3} kernels={k:<3} cap={cap_s:<7} {row.status:<6} "
              f"tok/s={_fmt(row.tokens_per_s, ',.0f')} MFU={_fmt(row.mfu and 100 * row.mfu, '.1f')}% "
              f"peak={_fmt(row.peak_alloc_gib, '.2f')}GiB first_step={_fmt(row.first_step_s, '.1f')}s "
              f"[{time.perf_counter() - t_start:.0f}s]", flush=True)
        if args.out:
            write_out(args.out, ctx, rows)
    print()
    print(table(rows, peak_tf, name), flush=True)
    agree = None
    if args.agree_steps > 0:
        try:
            agree = agreement(args)
        except Exception as e:  # report, keep the sweep's results
            agree = {"status": f"error: {type(e).__name__}: {str(e).strip()[:300]}"}
            print(f"agreement run failed: {agree['status']}", flush=True)
    if args.out:
        write_out(args.out, ctx, rows, {"agreement": agree} if agree else None)
    if args.dump_stacks_s:
        import faulthandler

        faulthandler.cancel_dump_traceback_later()
    return 0


def _agreement_tokens(path: Optional[str]):
    import glob

    import numpy as np
    import torch

    if not path:
        return None
    from ..data.shards import read_shard

    if os.path.isfile(os.path.join(path, "manifest.json")):  # a dataset folder: its train shards, in part order
        from ..data.dataset import Dataset

        files = [str(p) for p, _ in Dataset(path).shards("train")]
    else:  # a folder of shards, or one shard
        files = sorted(glob.glob(os.path.join(path, "train_*.bin"))) if os.path.isdir(path) else [path]
    if not files:
        from ..errors import DatasetError

        raise DatasetError(f"{path}: no train_*.bin shards for the agreement run")
    return torch.from_numpy(np.concatenate([np.asarray(read_shard(f), dtype=np.int64) for f in files]))


def agreement(args) -> dict:
    """Train kernels off and on from the same weights on the same batches; compare the per-step losses."""
    import torch

    device = torch.device(args.device)
    data = _agreement_tokens(args.agree_data)
    losses: dict[str, list[float]] = {}
    for kernels in (False, True):
        _cleanup()
        model, compiled = _model(args, kernels, device)
        T = model.config.block_size
        opt = model.configure_optimizers(0.1, args.agree_lr, (0.9, 0.95), device.type)
        gen = torch.Generator().manual_seed(args.seed + 1)  # CPU generator: the same batches for both runs
        out = []
        t0 = time.perf_counter()
        for it in range(args.agree_steps):
            if data is None:
                x = torch.randint(0, model.config.vocab_size, (args.agree_batch, T + 1), generator=gen)
            else:
                ix = torch.randint(0, len(data) - T - 1, (args.agree_batch,), generator=gen)
                x = torch.stack([data[i : i + T + 1] for i in ix.tolist()])
            x = x.to(device, non_blocking=True)
            inp, tgt = x[:, :-1].contiguous(), x[:, 1:].contiguous()
            if args.dynamic_batch and not args.no_compile:
                torch._dynamo.maybe_mark_dynamic(inp, 0)
                torch._dynamo.maybe_mark_dynamic(tgt, 0)
            for g in opt.param_groups:  # linear warmup over 20 steps, then constant
                g["lr"] = args.agree_lr * min(1.0, (it + 1) / 20)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                _, loss = compiled(inp, tgt)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            out.append(loss.detach())
        losses["on" if kernels else "off"] = [float(v) for v in torch.stack(out).cpu()]
        print(f"agreement: kernels {'on' if kernels else 'off'}: {args.agree_steps} steps in "
              f"{time.perf_counter() - t0:.1f}s, loss {losses['on' if kernels else 'off'][0]:.4f} -> "
              f"{losses['on' if kernels else 'off'][-1]:.4f}", flush=True)
        del opt
    off, on = losses["off"], losses["on"]
    diffs = [abs(a - b) for a, b in zip(off, on)]
    tail = max(1, min(50, len(off) // 4))
    mean_off, mean_on = sum(off[-tail:]) / tail, sum(on[-tail:]) / tail
    # batch-to-batch fluctuation of the reference over the same window: the scale "bf16 noise" is judged against
    spread = (sum((v - mean_off) ** 2 for v in off[-tail:]) / tail) ** 0.5
    res = {
        "status": "ok", "steps": args.agree_steps, "batch": args.agree_batch,
        "data": args.agree_data or "random tokens", "max_abs_diff": max(diffs),
        "mean_abs_diff_last": sum(diffs[-tail:]) / tail, "tail": tail, "mean_off_last": mean_off,
        "mean_on_last": mean_on, "std_off_last": spread, "losses_off": off, "losses_on": on,
    }
    print(f"agreement over {args.agree_steps} steps (B={args.agree_batch}, {res['data']}): max |on-off| per step "
          f"{res['max_abs_diff']:.4f}; last {tail} steps: mean |on-off| {res['mean_abs_diff_last']:.4f}, mean loss "
          f"off {mean_off:.4f} vs on {mean_on:.4f} (diff {mean_on - mean_off:+.4f}; batch-to-batch std {spread:.4f})",
          flush=True)
    return res


if __name__ == "__main__":
    sys.exit(main())
