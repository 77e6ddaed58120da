"""The GPT with kernels on against the same GPT with kernels off (the plain torch reference): one step's loss and
every parameter's gradient, and a short training run on real text whose losses must agree step by step.

On the CPU the kernels run in Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1), so the model is tiny
and the vocabulary small: bytes of the bundled real Wikipedia sample (CC BY-SA;
python/wikigpt/data/sample/ATTRIBUTION.md) as tokens, vocab 300 (256 bytes + 44 never-seen ids, as GPT-2's padded
vocabulary has). On CUDA the same tests run under bf16 autocast.
"""

from __future__ import annotations

import bz2
import copy
from pathlib import Path

import pytest
import torch

from wikigpt.training.model import GPT, GPTConfig

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
SAMPLE = Path(__file__).resolve().parent.parent / "python" / "wikigpt" / "data" / "sample" / (
    "enwiki-sample-pages-articles1.xml-p10p30302.bz2")


def tiny(kernels: bool, seed: int = 0) -> GPT:
    torch.manual_seed(seed)
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=64, block_size=32, vocab_size=300, bias=True, kernels=kernels)
    return GPT(cfg).to(DEVICE)


def pair() -> tuple[GPT, GPT]:
    off = tiny(False)
    on = copy.deepcopy(off)
    on.config.kernels = True
    for block in on.transformer.h:  # blocks hold the config object too (deepcopy shares it within `on`)
        assert block.config is on.config
    return off, on


def text_batches(n_steps: int, batch: int, block: int, seed: int = 0):
    data = torch.frombuffer(bytearray(bz2.decompress(SAMPLE.read_bytes())[:400_000]), dtype=torch.uint8).long()
    g = torch.Generator().manual_seed(seed)
    for _ in range(n_steps):
        ix = torch.randint(0, len(data) - block - 1, (batch,), generator=g)
        x = torch.stack([data[i : i + block] for i in ix])
        y = torch.stack([data[i + 1 : i + 1 + block] for i in ix])
        yield x.to(DEVICE), y.to(DEVICE)


def autocast():
    if DEVICE == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return torch.autocast("cpu", enabled=False)


def test_one_step_loss_and_every_gradient_match_the_reference():
    off, on = pair()
    x, y = next(text_batches(1, 4, 32))
    y[0, :5] = -1  # ignored targets, as the trainer's padding would be
    grads = []
    for model in (off, on):
        with autocast():
            logits, loss = model(x, y)
        loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
        if model is on:
            assert logits is None  # the point: no (B, T, vocab) logits
        else:
            ref_loss = loss
    tol = 1e-5 if DEVICE == "cpu" else 3e-2  # fp32 on the CPU; bf16 autocast on CUDA
    assert abs(loss.item() - ref_loss.item()) <= tol * abs(ref_loss.item()), (loss.item(), ref_loss.item())
    for name, g_ref in grads[0].items():
        g = grads[1][name]
        scale = g_ref.abs().max().item()
        err = (g - g_ref).abs().max().item()
        assert err <= tol * max(scale, 1e-8) * 10, f"{name}: grad max err {err:.3g} vs scale {scale:.3g}"


@pytest.mark.slow
def test_training_with_kernels_on_tracks_kernels_off():
    # 20 AdamW steps on real text: the per-step losses of the two paths must agree (fp32 on the CPU: 1e-3, far below
    # the ~2 nats the loss falls over the run; bf16 on CUDA: 2e-2, bf16 noise) and training must actually learn.
    steps = 20
    losses = {}
    for kernels in (False, True):
        model = tiny(kernels)
        opt = model.configure_optimizers(0.1, 3e-3, (0.9, 0.95), DEVICE)
        out = []
        for x, y in text_batches(steps, 4, 32, seed=1):
            with autocast():
                _, loss = model(x, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            out.append(loss.item())
        losses[kernels] = out
    tol = 1e-3 if DEVICE == "cpu" else 2e-2
    diffs = [abs(a - b) for a, b in zip(losses[False], losses[True])]
    assert max(diffs) < tol, f"max per-step loss difference {max(diffs):.3g}: {losses}"
    late = sum(losses[True][-5:]) / 5  # single batches are noisy: the mean of the last five
    assert late < losses[True][0] - 1.0, losses[True]


@pytest.mark.slow
def test_compiled_model_with_kernels_matches_eager():
    # the ops are torch.library custom ops: torch.compile must take the whole model in one graph (fullgraph) and
    # give the eager kernel path's loss and gradients
    _, on = pair()
    ref = copy.deepcopy(on)
    compiled = torch.compile(on, fullgraph=True)
    x, y = next(text_batches(1, 2, 32, seed=2))
    with autocast():
        _, loss = compiled(x, y)
    loss.backward()
    with autocast():
        _, ref_loss = ref(x, y)
    ref_loss.backward()
    tol = 1e-5 if DEVICE == "cpu" else 2e-2
    assert abs(loss.item() - ref_loss.item()) <= tol * abs(ref_loss.item())
    for (name, p), p_ref in zip(on.named_parameters(), ref.parameters()):
        err = (p.grad - p_ref.grad).abs().max().item()
        assert err <= tol * 10 * max(p_ref.grad.abs().max().item(), 1e-8), f"{name}: {err:.3g}"
    # a training step after the first must reuse the compiled graph: no recompilation from Python-side state in the
    # kernel path (guards on the ops' arguments, module attributes, globals such as the grad_W accumulation mode the
    # first call sets) -- a recompile per step is the first suspect when a compiled kernels-on run never finishes
    x2, y2 = next(text_batches(1, 2, 32, seed=3))
    with torch._dynamo.config.patch(error_on_recompile=True), autocast():
        _, loss2 = compiled(x2, y2)
    loss2.backward()
    assert torch.isfinite(loss2)


_AOT = r'''
import importlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
LN, FL, GL = (importlib.import_module("wikigpt.kernels." + m)
              for m in ("layer_norm", "fused_linear_cross_entropy", "gelu_linear"))
assert not importlib.import_module("wikigpt.kernels._settings").INTERPRET
cases = [
    (LN._ln_fwd_kernel, {"X": "*fp32", "R": "*bf16", "W": "*fp32", "B": "*fp32", "Y": "*bf16", "H": "*fp32",
      "MEAN": "*fp32", "RSTD": "*fp32", "stride_x": "i64", "stride_r": "i64", "stride_y": "i64", "stride_h": "i64",
      "n_rows": "i32", "n_cols": "i32", "eps": "fp32", "HAS_RES": "constexpr", "HAS_BIAS": "constexpr",
      "ROWS": "constexpr", "BLOCK": "constexpr"}, {"HAS_RES": True, "HAS_BIAS": True, "ROWS": 1, "BLOCK": 1024}),
    (LN._ln_bwd_kernel, {"DY": "*bf16", "DH_IN": "*fp32", "H": "*fp32", "W": "*fp32", "MEAN": "*fp32",
      "RSTD": "*fp32", "DX": "*fp32", "DR": "*bf16", "DW_PART": "*fp32", "DB_PART": "*fp32", "stride_dy": "i64",
      "stride_dh_in": "i64", "stride_h": "i64", "stride_dx": "i64", "stride_dr": "i64", "n_rows": "i32",
      "n_cols": "i32", "rows_per_program": "i32", "HAS_DH_IN": "constexpr", "HAS_DR": "constexpr",
      "HAS_BIAS": "constexpr", "ROWS": "constexpr", "BLOCK": "constexpr"},
     {"HAS_DH_IN": True, "HAS_DR": True, "HAS_BIAS": True, "ROWS": 1, "BLOCK": 1024}),
    (FL._ce_grad_kernel, {"L": "*bf16", "stride_l": "i64", "T": "*i64", "LOSS": "*fp32", "NVALID": "*i64",
      "n_rows": "i32", "n_cols": "i32", "ignore_index": "i32", "ROWS": "constexpr", "BLOCK": "constexpr"},
     {"ROWS": FL._ROWS, "BLOCK": FL._BLOCK_V}),
    (GL._gelu_fwd_kernel, {"U": "*bf16", "G": "*bf16", "n": "i64", "BLOCK": "constexpr"}, {"BLOCK": GL._BLOCK}),
    (GL._gelu_bwd_kernel, {"U": "*bf16", "DG": "*bf16", "DU": "*bf16", "n": "i64", "BLOCK": "constexpr"},
     {"BLOCK": GL._BLOCK}),
]
shared = {}
for cap in (89, 90):
    for fn, sig, consts in cases:
        k = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=consts), target=GPUTarget("cuda", cap, 32))
        shared[f"{fn.__name__}@sm_{cap}"] = k.metadata.shared
print(json.dumps(shared))
'''


@pytest.mark.skipif(DEVICE == "cuda", reason="the CUDA run launches the real kernels instead")
def test_kernels_compile_for_sm89_and_sm90():
    # Without a GPU the tests above run the interpreter, which accepts code the GPU compiler may not. Compile every
    # kernel, in the configuration the GPU uses, for the RTX 4070 (sm_89) and the H100 (sm_90), ahead of time; shared
    # memory must stay far below sm_89's 100 KB per SM. A subprocess: Triton's mode is fixed per process.
    import json
    import os
    import subprocess
    import sys

    env = dict(os.environ, TRITON_INTERPRET="0", TRITON_DEFAULT_FP_FUSION="1")
    root = Path(__file__).resolve().parent.parent
    env["PYTHONPATH"] = os.pathsep.join([str(root / "python"), env.get("PYTHONPATH", "")])
    proc = subprocess.run([sys.executable, "-c", _AOT], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    shared = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(shared) == 10
    assert max(shared.values()) < 16 * 1024, shared
