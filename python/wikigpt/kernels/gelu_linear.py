"""GELU followed by a linear layer (the second half of the GPT's MLP), with the GELU output recomputed in backward.

    out = gelu(u) @ weight.T + bias          u: (..., K) the c_fc output, weight: (N, K)

Why: the c_proj linear needs gelu(u) to form its weight gradient and the GELU needs u for its own gradient, so the
plain path (eager, and torch.compile's partitioner too: measured on the CPU with saved-tensor hooks, 35.1 bytes per
token per embedding channel per block) keeps both 4C-wide tensors for backward. This op keeps only u and recomputes
gelu(u) in backward (one elementwise pass over 4C values), which drops 8 bytes per token per channel per block:
~2.4 GiB at micro-batch 32 for the 124M model, the part of what micro-batch 32 needs in 12 GiB that the fused loss
does not already give.

Exact (erf) GELU, as nn.GELU(): gelu(u) = u * Phi(u), gelu'(u) = Phi(u) + u * phi(u). The GEMMs are torch's (cuBLAS)
in u's dtype; Triton does the two elementwise passes, the backward one fused with the product by d(gelu).
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._settings import INTERPRET, check_device, jit, to_out

# elementwise tile: 2048 over 8 warps on the GPU; as large as possible in the interpreter (ms per program)
_BLOCK = 65536 if INTERPRET else 2048


@jit
def _gelu_fwd_kernel(U, G, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
    g = 0.5 * u * (1.0 + tl.erf(u * 0.7071067811865476))  # 1/sqrt(2)
    tl.store(G + offs, to_out(g, G.dtype.element_ty), mask=mask)


@jit
def _gelu_bwd_kernel(U, DG, DU, n, BLOCK: tl.constexpr):
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    u = tl.load(U + offs, mask=mask, other=0.0).to(tl.float32)
    dg = tl.load(DG + offs, mask=mask, other=0.0).to(tl.float32)
    cdf = 0.5 * (1.0 + tl.erf(u * 0.7071067811865476))
    pdf = tl.exp(-0.5 * u * u) * 0.3989422804014327  # 1/sqrt(2*pi)
    tl.store(DU + offs, to_out(dg * (cdf + u * pdf), DU.dtype.element_ty), mask=mask)


def _gelu(u: torch.Tensor) -> torch.Tensor:
    g = torch.empty_like(u)
    n = u.numel()
    if n:
        _gelu_fwd_kernel[(triton.cdiv(n, _BLOCK),)](u, g, n, BLOCK=_BLOCK, num_warps=8 if not INTERPRET else 1)
    return g


def _gelu_bwd_(u: torch.Tensor, dg: torch.Tensor) -> torch.Tensor:
    """d(gelu)/du * dg, written over dg (a temporary of ours)."""
    n = u.numel()
    if n:
        _gelu_bwd_kernel[(triton.cdiv(n, _BLOCK),)](u, dg, dg, n, BLOCK=_BLOCK, num_warps=8 if not INTERPRET else 1)
    return dg


@torch.library.custom_op("wikigpt::gelu_linear_fwd", mutates_args=())
def _gelu_linear_fwd(u: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> torch.Tensor:
    with torch.autocast(u.device.type, enabled=False):
        u2 = u.reshape(-1, u.shape[-1])
        g = _gelu(u2)
        out = torch.addmm(bias, g, weight.t()) if bias is not None else torch.mm(g, weight.t())
        return out.view(*u.shape[:-1], weight.shape[0])


@_gelu_linear_fwd.register_fake
def _(u, weight, bias):
    return u.new_empty((*u.shape[:-1], weight.shape[0]))


@torch.library.custom_op("wikigpt::gelu_linear_bwd", mutates_args=())
def _gelu_linear_bwd(
    dout: torch.Tensor, u: torch.Tensor, weight: torch.Tensor, has_bias: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with torch.autocast(u.device.type, enabled=False):
        u2 = u.reshape(-1, u.shape[-1])
        d2 = dout.reshape(-1, dout.shape[-1]).to(u.dtype)
        g = _gelu(u2)  # the recomputation this op exists for
        dw = torch.mm(d2.t(), g)
        del g
        db = d2.sum(0, dtype=torch.float32).to(weight.dtype) if has_bias else u.new_empty(0)
        du = _gelu_bwd_(u2, torch.mm(d2, weight))
        return du.view(u.shape), dw.to(weight.dtype), db


@_gelu_linear_bwd.register_fake
def _(dout, u, weight, has_bias):
    return torch.empty_like(u), torch.empty_like(weight), (u.new_empty(weight.shape[0]) if has_bias else u.new_empty(0))


def _setup(ctx, inputs, output):
    u, weight, bias = inputs
    ctx.save_for_backward(u, weight)
    ctx.has_bias = bias is not None


def _backward(ctx, dout):
    u, weight = ctx.saved_tensors
    du, dw, db = _gelu_linear_bwd(dout, u, weight, ctx.has_bias)
    return du, dw, (db if ctx.has_bias else None)


_gelu_linear_fwd.register_autograd(_backward, setup_context=_setup)


def gelu_linear(u: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
    """F.linear(F.gelu(u), weight, bias), keeping only u for backward (gelu(u) is recomputed there).

    u: (..., K); weight: (N, K); bias: (N,) or None. Under torch.autocast the weight and bias are cast to the autocast
    dtype first, as nn.Linear would be; otherwise they must have u's dtype. Differentiable in all three.
    """
    if u.dim() < 1 or weight.dim() != 2 or weight.shape[1] != u.shape[-1] or (
        bias is not None and bias.shape != (weight.shape[0],)
    ):
        raise ValueError(f"gelu_linear: u {tuple(u.shape)}, weight {tuple(weight.shape)}, bias "
                         f"{None if bias is None else tuple(bias.shape)} do not fit (..., K), (N, K), (N,)")
    check_device("gelu_linear", u, weight, *([bias] if bias is not None else []))
    if torch.is_autocast_enabled(u.device.type):
        dt = torch.get_autocast_dtype(u.device.type)
        u, weight = u.to(dt), weight.to(dt)
        bias = bias.to(dt) if bias is not None else None
    if weight.dtype != u.dtype or (bias is not None and bias.dtype != u.dtype):
        raise ValueError(f"gelu_linear: u is {u.dtype} but weight/bias are {weight.dtype}"
                         f"{'' if bias is None else '/' + str(bias.dtype)}; cast them or use autocast")
    return _gelu_linear_fwd(u.contiguous(), weight, bias)
