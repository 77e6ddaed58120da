"""wikigpt.kernels.fused_linear_cross_entropy against torch's lm_head + F.cross_entropy, loss and both gradients.

On the CPU the Triton kernel runs in its interpreter (tests/conftest.py sets TRITON_INTERPRET=1), so shapes are small;
the same tests run on CUDA when there is one, plus a 124M-sized case there.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wikigpt.kernels import fused_linear_cross_entropy

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (dtype of x, atol, rtol) for the loss and the gradients. fp32: the kernel and torch differ only in summation order.
# bf16: the logits are a bf16 GEMM output (as nanoGPT's under autocast) and dlogits are stored in bf16, so the loss is
# good to ~1e-2 absolute and the gradients to bf16 rounding of their own magnitude.
GRID = [
    (torch.float32, 1e-5, 1e-5),
    (torch.bfloat16, 2e-2, 2e-2),
]
# (N tokens, C, V, chunk_rows): an ordinary shape, and an odd one where nothing is a power of two, the chunks do not
# divide N and the vocabulary is not a multiple of the kernel's tile.
SHAPES = [
    (64, 32, 512, 32),
    (37, 24, 1000, 16),
]


def reference(x, weight, targets, ignore_index=-1):
    """nanoGPT's loss: logits = x @ W.T in fp32 from the same (cast) inputs, then F.cross_entropy (mean)."""
    xr = x.detach().float().requires_grad_()
    wr = weight.detach().clone().requires_grad_()
    logits = xr @ wr.to(x.dtype).float().t()
    loss = F.cross_entropy(logits, targets, ignore_index=ignore_index)
    loss.backward()
    return loss.detach(), xr.grad, wr.grad


def make(n, c, v, dtype, seed=0, n_ignored=3, ignore_index=-1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, c, generator=g).to(DEVICE, dtype).requires_grad_()
    # 0.5 scale: logits of a few units, a softmax that is neither uniform nor one-hot
    w = (0.5 * torch.randn(v, c, generator=g)).to(DEVICE).requires_grad_()
    t = torch.randint(0, v, (n,), generator=g)
    t[torch.randperm(n, generator=g)[:n_ignored]] = ignore_index
    return x, w, t.to(DEVICE)


def close(a, b, atol, rtol, what):
    a, b = a.float().cpu(), b.float().cpu()
    # scale the absolute tolerance by the reference's magnitude so tiny gradients are judged fairly
    scale = max(b.abs().max().item(), 1e-6)
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=atol * scale, rtol=rtol), f"{what}: max abs err {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("dtype,atol,rtol", GRID)
@pytest.mark.parametrize("n,c,v,chunk", SHAPES)
def test_loss_and_gradients_match_torch(dtype, atol, rtol, n, c, v, chunk):
    x, w, t = make(n, c, v, dtype)
    loss = fused_linear_cross_entropy(x, w, t, chunk_rows=chunk)
    loss.backward()
    ref_loss, ref_gx, ref_gw = reference(x, w, t)
    assert loss.dtype == torch.float32 and loss.dim() == 0
    assert x.grad.dtype == dtype and w.grad.dtype == torch.float32
    close(loss, ref_loss, atol, rtol, "loss")
    close(x.grad, ref_gx, atol, rtol, "grad x")
    close(w.grad, ref_gw, atol, rtol, "grad weight")


@pytest.mark.parametrize("v", [50257, 50304])
def test_gpt2_vocab_sizes(v):
    # GPT-2's vocabulary and nanoGPT's padded one; few rows since every row streams the whole vocabulary
    x, w, t = make(6, 16, v, torch.float32, n_ignored=1)
    loss = fused_linear_cross_entropy(x, w, t)
    loss.backward()
    ref_loss, ref_gx, ref_gw = reference(x, w, t)
    close(loss, ref_loss, 1e-5, 1e-5, "loss")
    close(x.grad, ref_gx, 1e-5, 1e-5, "grad x")
    close(w.grad, ref_gw, 1e-5, 1e-5, "grad weight")


def test_other_ignore_index_and_upstream_gradient():
    # ignore_index=-100 (torch's default) and a loss that is scaled before backward: grads must scale with it
    x, w, t = make(20, 8, 300, torch.float32, ignore_index=-100, n_ignored=5)
    (3.0 * fused_linear_cross_entropy(x, w, t, ignore_index=-100, chunk_rows=8)).backward()
    xr = x.detach().clone().requires_grad_()
    wr = w.detach().clone().requires_grad_()
    (3.0 * F.cross_entropy(xr @ wr.t(), t, ignore_index=-100)).backward()
    close(x.grad, xr.grad, 1e-5, 1e-5, "grad x")
    close(w.grad, wr.grad, 1e-5, 1e-5, "grad weight")


def test_chunking_does_not_change_the_result():
    x, w, t = make(33, 16, 200, torch.float32)
    losses = [fused_linear_cross_entropy(x, w, t, chunk_rows=k).item() for k in (3, 16, 64)]
    assert max(losses) - min(losses) < 1e-5, losses


def test_all_ignored_is_nan_like_torch_and_gradients_are_zero():
    x, w, t = make(4, 8, 50, torch.float32, n_ignored=4)
    loss = fused_linear_cross_entropy(x, w, t)
    assert torch.isnan(F.cross_entropy(x.detach() @ w.detach().t(), t, ignore_index=-1))
    assert torch.isnan(loss)
    loss.backward()
    assert x.grad.abs().max().item() == 0 and w.grad.abs().max().item() == 0


def test_tied_weight_gradient_accumulates_with_the_embedding():
    # as in the GPT: the same matrix embeds the inputs and scores the outputs; both paths' gradients must add up
    g = torch.Generator().manual_seed(1)
    v, c, n = 90, 12, 25
    emb = (0.3 * torch.randn(v, c, generator=g)).to(DEVICE).requires_grad_()
    idx = torch.randint(0, v, (n,), generator=g).to(DEVICE)
    t = torch.randint(0, v, (n,), generator=g).to(DEVICE)
    fused_linear_cross_entropy(torch.tanh(F.embedding(idx, emb)), emb, t, chunk_rows=8).backward()
    ref = emb.detach().clone().requires_grad_()
    h = torch.tanh(F.embedding(idx, ref))
    F.cross_entropy(h @ ref.t(), t).backward()
    close(emb.grad, ref.grad, 1e-5, 1e-5, "tied weight grad")


def test_autocast_computes_in_the_autocast_dtype():
    # under autocast the op casts x and W to bf16 like nn.Linear would, and returns the weight's grad in fp32
    x, w, t = make(16, 16, 128, torch.float32)
    with torch.autocast(DEVICE, dtype=torch.bfloat16):
        loss = fused_linear_cross_entropy(x, w, t)
    loss.backward()
    assert x.grad.dtype == torch.float32 and w.grad.dtype == torch.float32
    ref_loss, ref_gx, ref_gw = reference(x.to(torch.bfloat16), w, t)
    close(loss, ref_loss, 2e-2, 2e-2, "loss")
    close(x.grad, ref_gx, 2e-2, 2e-2, "grad x")
    close(w.grad, ref_gw, 2e-2, 2e-2, "grad weight")


def test_bad_shapes_raise_one_clear_error():
    x, w, t = make(8, 16, 64, torch.float32)
    with pytest.raises(ValueError, match="shapes do not match"):
        fused_linear_cross_entropy(x, w[:, :8], t)
    with pytest.raises(ValueError, match="int64"):
        fused_linear_cross_entropy(x, w, t.int())
    with pytest.raises(ValueError, match=r"expected x \(N, C\)"):
        fused_linear_cross_entropy(x[None], w, t)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (a 124M-sized case)")
@pytest.mark.gpu
def test_gpt2_sized_bf16_on_cuda():
    # B*T = 4096 tokens of the 124M model: several default-sized chunks, the fp32 grad_W accumulation GEMM path
    x, w, t = make(4096, 768, 50304, torch.bfloat16, n_ignored=100)
    w.data.mul_(0.1)
    loss = fused_linear_cross_entropy(x, w, t, chunk_rows=1024)
    loss.backward()
    ref_loss, ref_gx, ref_gw = reference(x, w, t)
    close(loss, ref_loss, 2e-2, 2e-2, "loss")
    close(x.grad, ref_gx, 2e-2, 2e-2, "grad x")
    close(w.grad, ref_gw, 2e-2, 2e-2, "grad weight")
