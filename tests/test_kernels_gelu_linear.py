"""wikigpt.kernels.gelu_linear (GELU + linear, GELU recomputed in backward) against F.linear(F.gelu(u)).

Runs the Triton kernels in the interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1), on CUDA when
present.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wikigpt.kernels import gelu_linear

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# bf16: the GEMMs run in bf16 in both paths (with fp32 accumulation) and results are rounded to bf16
GRID = [(torch.float32, 1e-5, 1e-5), (torch.bfloat16, 2e-2, 2e-2)]
# (..., K) -> N: an ordinary shape and an odd one (element count not a multiple of the elementwise tile)
SHAPES = [((2, 16, 128), 32), ((3, 7, 100), 50)]


def close(a, b, atol, rtol, what):
    a, b = a.float().cpu(), b.float().cpu()
    scale = max(b.abs().max().item(), 1e-6)
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=atol * scale, rtol=rtol), f"{what}: max abs err {err:.3g} (scale {scale:.3g})"


@pytest.mark.parametrize("dtype,atol,rtol", GRID)
@pytest.mark.parametrize("shape,n", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_matches_torch(dtype, atol, rtol, shape, n, bias):
    g = torch.Generator().manual_seed(0)
    # u spans the GELU's curved region and both tails
    u = (2.0 * torch.randn(shape, generator=g)).to(DEVICE, dtype).requires_grad_()
    w = (0.1 * torch.randn(n, shape[-1], generator=g)).to(DEVICE, dtype).requires_grad_()
    b = torch.randn(n, generator=g).to(DEVICE, dtype).requires_grad_() if bias else None
    dout = torch.randn(*shape[:-1], n, generator=g).to(DEVICE, dtype)
    out = gelu_linear(u, w, b)
    out.backward(dout)
    got = [out.detach(), u.grad, w.grad, None if b is None else b.grad]
    u.grad = w.grad = None
    if b is not None:
        b.grad = None
    ref = F.linear(F.gelu(u), w, b)
    ref.backward(dout)
    refs = [ref.detach(), u.grad, w.grad, None if b is None else b.grad]
    assert got[0].dtype == dtype
    for name, a, r in zip(["out", "du", "dweight", "dbias"], got, refs):
        if r is not None:
            close(a, r, atol, rtol, name)


def test_keeps_only_the_gelu_input_for_backward():
    # the point of the op: gelu(u) is not among the saved tensors (u and the weight are)
    u = torch.randn(4, 8, 64, device=DEVICE, requires_grad=True)
    w = torch.randn(16, 64, device=DEVICE, requires_grad=True)
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        gelu_linear(u, w, None)
    assert sum(t.numel() for t in saved) == u.numel() + w.numel(), [tuple(t.shape) for t in saved]


def test_dtype_mismatch_without_autocast_is_an_error():
    u = torch.randn(4, 8, device=DEVICE, dtype=torch.bfloat16)
    w = torch.randn(3, 8, device=DEVICE)
    with pytest.raises(ValueError, match="cast them or use autocast"):
        gelu_linear(u, w)
