"""wikigpt.kernels.layer_norm / add_layer_norm against F.layer_norm (and x + residual), outputs and every gradient.

Runs the Triton kernels in the interpreter on the CPU (tests/conftest.py sets TRITON_INTERPRET=1), on CUDA when
present.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from wikigpt.kernels import add_layer_norm, layer_norm

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"

# (dtype of x and residual, atol, rtol). bf16 outputs and input gradients are rounded to bf16 (8 bits of mantissa:
# ~4e-3 relative), by the kernel and by the reference alike, so they may differ by a rounding step.
GRID = [
    (torch.float32, 1e-5, 1e-5),
    (torch.bfloat16, 1.6e-2, 1.6e-2),
]
# an ordinary shape, and an odd one: rows not a multiple of anything, C not a power of two (masked tail of the tile)
SHAPES = [(2, 16, 256), (3, 7, 100)]


def close(a, b, atol, rtol, what):
    a, b = a.float().cpu(), b.float().cpu()
    scale = max(b.abs().max().item(), 1e-6)
    err = (a - b).abs().max().item()
    assert torch.allclose(a, b, atol=atol * scale, rtol=rtol), f"{what}: max abs err {err:.3g} (scale {scale:.3g})"


def leaves(shape, dtype, bias, seed=0, residual=True):
    g = torch.Generator().manual_seed(seed)
    c = shape[-1]
    # a mean offset and a non-unit scale, so mean and variance both matter
    x = (3.0 + 2.0 * torch.randn(shape, generator=g)).to(DEVICE, dtype).requires_grad_()
    r = torch.randn(shape, generator=g).to(DEVICE, dtype).requires_grad_() if residual else None
    w = (1.0 + 0.5 * torch.randn(c, generator=g)).to(DEVICE).requires_grad_()
    b = (0.5 * torch.randn(c, generator=g)).to(DEVICE).requires_grad_() if bias else None
    return x, r, w, b


def grads(*ts):
    out = [None if t is None else t.grad for t in ts]
    for t in ts:
        if t is not None:
            t.grad = None
    return out


@pytest.mark.parametrize("dtype,atol,rtol", GRID)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_layer_norm_matches_torch(dtype, atol, rtol, shape, bias):
    x, _, w, b = leaves(shape, dtype, bias, residual=False)
    dy = torch.randn(shape, generator=torch.Generator().manual_seed(9)).to(DEVICE, dtype)
    y = layer_norm(x, w, b)
    (y.float() * dy.float()).sum().backward()
    got = [y.detach()] + grads(x, w, b)
    # reference: torch's LayerNorm on the fp32 values of the same inputs, output rounded to x's dtype
    y_ref = F.layer_norm(x.float(), (shape[-1],), w, b, 1e-5).to(dtype)
    (y_ref.float() * dy.float()).sum().backward()
    ref = [y_ref.detach()] + grads(x, w, b)
    assert got[0].dtype == dtype and got[1].dtype == dtype
    for name, a, r in zip(["y", "dx", "dweight", "dbias"], got, ref):
        if r is not None:
            close(a, r, atol, rtol, name)


@pytest.mark.parametrize("dtype,atol,rtol", GRID)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("bias", [True, False])
def test_add_layer_norm_matches_torch(dtype, atol, rtol, shape, bias):
    x, r, w, b = leaves(shape, dtype, bias)
    gen = torch.Generator().manual_seed(9)
    dy = torch.randn(shape, generator=gen).to(DEVICE, dtype)
    dh = torch.randn(shape, generator=gen).to(DEVICE, dtype)  # gradient reaching h from the next residual add
    y, h = add_layer_norm(x, r, w, b)
    ((y.float() * dy.float()).sum() + (h.float() * dh.float()).sum()).backward()
    got = [y.detach(), h.detach()] + grads(x, r, w, b)
    h_ref = x + r
    y_ref = F.layer_norm(h_ref.float(), (shape[-1],), w, b, 1e-5).to(dtype)
    ((y_ref.float() * dy.float()).sum() + (h_ref.float() * dh.float()).sum()).backward()
    ref = [y_ref.detach(), h_ref.detach()] + grads(x, r, w, b)
    assert torch.equal(got[1], ref[1]), "h must be exactly x + residual"
    for name, a, rr in zip(["y", "h", "dx", "dresidual", "dweight", "dbias"], got, ref):
        if rr is not None:
            close(a, rr, atol, rtol, name)


def test_model_path_fp32_stream_bf16_branch_bf16_output():
    # how the GPT uses it under autocast: fp32 residual stream, bf16 branch output, bf16 LN output for the next
    # bf16 linear, and an h whose gradient is unused (None) for the last block
    x, _, w, b = leaves((4, 9, 64), torch.float32, True, residual=False)
    r = torch.randn(4, 9, 64, generator=torch.Generator().manual_seed(3)).to(DEVICE, torch.bfloat16).requires_grad_()
    y, h = add_layer_norm(x, r, w, b, out_dtype=torch.bfloat16)
    assert y.dtype == torch.bfloat16 and h.dtype == torch.float32
    dy = torch.randn(4, 9, 64, generator=torch.Generator().manual_seed(4)).to(DEVICE, torch.bfloat16)
    (y.float() * dy.float()).sum().backward()
    got = [y.detach()] + grads(x, r, w, b)
    h_ref = x + r
    y_ref = F.layer_norm(h_ref, (64,), w, b, 1e-5).to(torch.bfloat16)
    (y_ref.float() * dy.float()).sum().backward()
    ref = [y_ref.detach()] + grads(x, r, w, b)
    assert got[1].dtype == torch.float32 and got[2].dtype == torch.bfloat16
    for name, a, rr in zip(["y", "dx", "dresidual", "dweight", "dbias"], got, ref):
        close(a, rr, 1.6e-2, 1.6e-2, name)


def test_bad_shapes_raise_one_clear_error():
    x, r, w, b = leaves((2, 3, 16), torch.float32, True)
    with pytest.raises(ValueError, match="weight/bias must have shape"):
        layer_norm(x, w[:8], b)
    with pytest.raises(ValueError, match="does not match"):
        add_layer_norm(x, r[:1], w, b)
