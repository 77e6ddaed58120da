"""LayerNorm, and LayerNorm fused with the residual add that precedes it in a pre-norm transformer block.

    h = x + residual          (returned: it is the next residual stream)
    y = (h - mean) * rstd * weight + bias

Forward: one program per row keeps the row in registers, writes h and y once and saves only mean and rstd (fp32,
8 bytes a row) beside h; the residual add costs no extra pass over memory. h is rounded to its storage dtype before
the statistics are taken, so y is exactly LN of the h the caller gets back (what the unfused reference computes).

Backward: with xhat = (h - mean) * rstd and g = dy * weight,
    dh = rstd * (g - mean(g) - xhat * mean(g * xhat)) + dh_in      (dh_in: gradient reaching h from later layers)
    dweight = sum_rows(dy * xhat),  dbias = sum_rows(dy)
dx and dresidual are both dh (each in its input's dtype). dweight/dbias are summed per persistent program into an
(programs, C) fp32 buffer and reduced by torch: deterministic, and no atomics.

The output y may have a different dtype from x (`out_dtype`): the model feeds a bf16 linear from an fp32 residual
stream, so writing y in bf16 saves the cast pass and halves what the next linear keeps for its backward.
"""

from __future__ import annotations

from typing import Optional

import torch
import triton
import triton.language as tl

from ._settings import check_device, jit, num_row_programs, row_config, to_out


@jit
def _ln_fwd_kernel(
    X, R, W, B, Y, H, MEAN, RSTD,
    stride_x, stride_r, stride_y, stride_h,
    n_rows, n_cols, eps,
    HAS_RES: tl.constexpr, HAS_BIAS: tl.constexpr, ROWS: tl.constexpr, BLOCK: tl.constexpr,
):
    # a [ROWS, BLOCK] tile: ROWS=1 on the GPU; many rows per program in the interpreter, where each program (and
    # each call of a tl function) costs milliseconds of Python
    rows1 = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    rows = rows1[:, None]
    cols = tl.arange(0, BLOCK)[None, :]
    mask = (rows < n_rows) & (cols < n_cols)
    h = tl.load(X + rows * stride_x + cols, mask=mask, other=0.0).to(tl.float32)
    if HAS_RES:
        h += tl.load(R + rows * stride_r + cols, mask=mask, other=0.0).to(tl.float32)
        h_st = to_out(h, H.dtype.element_ty)
        tl.store(H + rows * stride_h + cols, h_st, mask=mask)
        h = h_st.to(tl.float32)  # the statistics of the h we return, not of a more precise one
    mean = tl.sum(h, axis=1) / n_cols
    hc = tl.where(mask, h - mean[:, None], 0.0)
    var = tl.sum(hc * hc, axis=1) / n_cols
    rstd = 1.0 / tl.sqrt(var + eps)
    w = tl.load(W + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    y = hc * rstd[:, None] * w
    if HAS_BIAS:
        y += tl.load(B + cols, mask=cols < n_cols, other=0.0).to(tl.float32)
    tl.store(Y + rows * stride_y + cols, to_out(y, Y.dtype.element_ty), mask=mask)
    tl.store(MEAN + rows1, mean, mask=rows1 < n_rows)
    tl.store(RSTD + rows1, rstd, mask=rows1 < n_rows)


@jit
def _ln_bwd_kernel(
    DY, DH_IN, H, W, MEAN, RSTD, DX, DR, DW_PART, DB_PART,
    stride_dy, stride_dh_in, stride_h, stride_dx, stride_dr,
    n_rows, n_cols, rows_per_program,
    HAS_DH_IN: tl.constexpr, HAS_DR: tl.constexpr, HAS_BIAS: tl.constexpr, ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
):
    # persistent: program pid handles rows [pid * rows_per_program, ...) ROWS at a time and keeps dweight/dbias
    # partial sums in registers; one (programs, C) fp32 store at the end
    pid = tl.program_id(0).to(tl.int64)
    cols = tl.arange(0, BLOCK)[None, :]
    col_mask = cols < n_cols
    w = tl.load(W + cols, mask=col_mask, other=0.0).to(tl.float32)
    dw_acc = tl.zeros([ROWS, BLOCK], tl.float32)
    db_acc = tl.zeros([ROWS, BLOCK], tl.float32)
    row_start = pid * rows_per_program
    row_end = tl.minimum(row_start + rows_per_program, n_rows)
    for r0 in range(row_start, row_end, ROWS):
        rows = r0 + tl.arange(0, ROWS)[:, None]
        row_ok = rows < row_end
        mask = row_ok & col_mask
        h = tl.load(H + rows * stride_h + cols, mask=mask, other=0.0).to(tl.float32)
        dy = tl.load(DY + rows * stride_dy + cols, mask=mask, other=0.0).to(tl.float32)
        mean = tl.load(MEAN + rows, mask=row_ok, other=0.0)
        rstd = tl.load(RSTD + rows, mask=row_ok, other=0.0)
        xhat = tl.where(mask, (h - mean) * rstd, 0.0)
        g = dy * w
        c1 = tl.sum(xhat * g, axis=1)[:, None] / n_cols
        c2 = tl.sum(g, axis=1)[:, None] / n_cols
        dh = (g - c2 - xhat * c1) * rstd
        if HAS_DH_IN:
            dh += tl.load(DH_IN + rows * stride_dh_in + cols, mask=mask, other=0.0).to(tl.float32)
        tl.store(DX + rows * stride_dx + cols, to_out(dh, DX.dtype.element_ty), mask=mask)
        if HAS_DR:
            tl.store(DR + rows * stride_dr + cols, to_out(dh, DR.dtype.element_ty), mask=mask)
        dw_acc += dy * xhat
        if HAS_BIAS:
            db_acc += dy
    cols1 = tl.arange(0, BLOCK)
    tl.store(DW_PART + pid * n_cols + cols1, tl.sum(dw_acc, axis=0), mask=cols1 < n_cols)
    if HAS_BIAS:
        tl.store(DB_PART + pid * n_cols + cols1, tl.sum(db_acc, axis=0), mask=cols1 < n_cols)


def _rows(t: torch.Tensor) -> torch.Tensor:
    """(..., C) -> (rows, C) with a unit last stride, copying only if needed."""
    t2 = t.reshape(-1, t.shape[-1])
    return t2 if t2.stride(-1) == 1 else t2.contiguous()


def _fwd(x, residual, weight, bias, eps, out_dtype):
    c = x.shape[-1]
    x2 = _rows(x)
    n = x2.shape[0]
    r2 = _rows(residual) if residual is not None else x2
    y = torch.empty((n, c), device=x.device, dtype=out_dtype)
    h = torch.empty((n, c), device=x.device, dtype=x.dtype) if residual is not None else x2
    mean = torch.empty(n, device=x.device, dtype=torch.float32)
    rstd = torch.empty(n, device=x.device, dtype=torch.float32)
    block, warps, rows = row_config(c)
    if n > 0:
        _ln_fwd_kernel[(triton.cdiv(n, rows),)](
            x2, r2, weight, bias if bias is not None else weight, y, h, mean, rstd,
            x2.stride(0), r2.stride(0), y.stride(0), h.stride(0),
            n, c, eps,
            HAS_RES=residual is not None, HAS_BIAS=bias is not None, ROWS=rows, BLOCK=block, num_warps=warps,
        )
    return y.view(x.shape), h.view(x.shape), mean, rstd


def _bwd(dy, dh_in, h, weight, has_bias, mean, rstd, x_dtype, r_dtype):
    c = h.shape[-1]
    dy2 = _rows(dy)
    h2 = _rows(h)
    n = h2.shape[0]
    dh2 = _rows(dh_in) if dh_in is not None else dy2
    dx = torch.empty((n, c), device=h.device, dtype=x_dtype)
    dr = torch.empty((n, c), device=h.device, dtype=r_dtype) if r_dtype is not None else dx
    programs = num_row_programs(n, h.device)
    rows_per_program = -(-n // programs) if n else 0
    dw_part = torch.empty((programs, c), device=h.device, dtype=torch.float32)
    db_part = torch.empty((programs, c), device=h.device, dtype=torch.float32) if has_bias else dw_part
    block, warps, rows = row_config(c)
    if n > 0:
        _ln_bwd_kernel[(programs,)](
            dy2, dh2, h2, weight, mean, rstd, dx, dr, dw_part, db_part,
            dy2.stride(0), dh2.stride(0), h2.stride(0), dx.stride(0), dr.stride(0),
            n, c, rows_per_program,
            HAS_DH_IN=dh_in is not None, HAS_DR=r_dtype is not None, HAS_BIAS=has_bias, ROWS=rows, BLOCK=block,
            num_warps=warps,
        )
    else:
        dw_part.zero_()
        db_part.zero_()
    dw = dw_part.sum(0).to(weight.dtype)
    db = db_part.sum(0).to(weight.dtype) if has_bias else None
    shape = h.shape
    return dx.view(shape), (dr.view(shape) if r_dtype is not None else None), dw, db


# ---- torch.library registration: opaque to torch.compile, autograd via register_autograd ----------------------

@torch.library.custom_op("wikigpt::layer_norm_fwd", mutates_args=())
def _layer_norm_fwd(
    x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float, out_dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    y, _, mean, rstd = _fwd(x, None, weight, bias, eps, out_dtype)
    return y, mean, rstd


@_layer_norm_fwd.register_fake
def _(x, weight, bias, eps, out_dtype):
    rows = x.numel() // x.shape[-1]
    return (x.new_empty(x.shape, dtype=out_dtype), x.new_empty(rows, dtype=torch.float32),
            x.new_empty(rows, dtype=torch.float32))


@torch.library.custom_op("wikigpt::add_layer_norm_fwd", mutates_args=())
def _add_layer_norm_fwd(
    x: torch.Tensor, residual: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], eps: float,
    out_dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    return _fwd(x, residual, weight, bias, eps, out_dtype)


@_add_layer_norm_fwd.register_fake
def _(x, residual, weight, bias, eps, out_dtype):
    rows = x.numel() // x.shape[-1]
    return (x.new_empty(x.shape, dtype=out_dtype), torch.empty_like(x), x.new_empty(rows, dtype=torch.float32),
            x.new_empty(rows, dtype=torch.float32))


@torch.library.custom_op("wikigpt::layer_norm_bwd", mutates_args=())
def _layer_norm_bwd(
    dy: torch.Tensor, dh_in: Optional[torch.Tensor], h: torch.Tensor, weight: torch.Tensor, has_bias: bool,
    mean: torch.Tensor, rstd: torch.Tensor, x_dtype: torch.dtype, r_dtype: Optional[torch.dtype],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    dx, dr, dw, db = _bwd(dy, dh_in, h, weight, has_bias, mean, rstd, x_dtype, r_dtype)
    # custom ops cannot return None: empty tensors stand for "no such gradient"
    return dx, (dr if dr is not None else h.new_empty(0)), dw, (db if db is not None else h.new_empty(0))


@_layer_norm_bwd.register_fake
def _(dy, dh_in, h, weight, has_bias, mean, rstd, x_dtype, r_dtype):
    dr = h.new_empty(h.shape, dtype=r_dtype) if r_dtype is not None else h.new_empty(0)
    db = torch.empty_like(weight) if has_bias else h.new_empty(0)
    return h.new_empty(h.shape, dtype=x_dtype), dr, torch.empty_like(weight), db


def _ln_setup(ctx, inputs, output):
    x, weight, bias, _eps, _dt = inputs
    _, mean, rstd = output
    ctx.save_for_backward(x, weight, mean, rstd)
    ctx.has_bias = bias is not None
    ctx.mark_non_differentiable(mean, rstd)


def _ln_backward(ctx, dy, _dmean, _drstd):
    x, weight, mean, rstd = ctx.saved_tensors
    dx, _, dw, db = _layer_norm_bwd(dy, None, x, weight, ctx.has_bias, mean, rstd, x.dtype, None)
    return dx, dw, (db if ctx.has_bias else None), None, None


_layer_norm_fwd.register_autograd(_ln_backward, setup_context=_ln_setup)


def _add_ln_setup(ctx, inputs, output):
    x, residual, weight, bias, _eps, _dt = inputs
    _, h, mean, rstd = output
    ctx.save_for_backward(h, weight, mean, rstd)
    ctx.has_bias = bias is not None
    ctx.x_dtype = x.dtype
    ctx.r_dtype = residual.dtype
    ctx.mark_non_differentiable(mean, rstd)


def _add_ln_backward(ctx, dy, dh, _dmean, _drstd):
    h, weight, mean, rstd = ctx.saved_tensors
    dx, dr, dw, db = _layer_norm_bwd(dy, dh, h, weight, ctx.has_bias, mean, rstd, ctx.x_dtype, ctx.r_dtype)
    return dx, dr, dw, (db if ctx.has_bias else None), None, None


_add_layer_norm_fwd.register_autograd(_add_ln_backward, setup_context=_add_ln_setup)


def _check(op: str, x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor]) -> None:
    if x.dim() < 1 or weight.shape != (x.shape[-1],) or (bias is not None and bias.shape != weight.shape):
        raise ValueError(f"{op}: weight/bias must have shape ({x.shape[-1]},) to normalize x {tuple(x.shape)}, got "
                         f"{tuple(weight.shape)}" + (f" and {tuple(bias.shape)}" if bias is not None else ""))
    check_device(op, x, weight, *([bias] if bias is not None else []))


def layer_norm(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
    *,
    out_dtype: Optional[torch.dtype] = None,
) -> torch.Tensor:
    """LayerNorm over the last dimension (as F.layer_norm(x, (C,), weight, bias, eps)), statistics in fp32.

    out_dtype: dtype of the result (default x.dtype). Differentiable in x, weight and bias.
    """
    _check("layer_norm", x, weight, bias)
    y, _, _ = _layer_norm_fwd(x, weight, bias, float(eps), out_dtype or x.dtype)
    return y


def add_layer_norm(
    x: torch.Tensor,
    residual: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    eps: float = 1e-5,
    *,
    out_dtype: Optional[torch.dtype] = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(y, h) with h = x + residual (in x's dtype) and y = LayerNorm(h) (in out_dtype, default x.dtype).

    One pass over memory instead of two; backward saves h, mean and rstd only. Differentiable in x, residual,
    weight and bias, with gradient flowing into both outputs.
    """
    if residual.shape != x.shape:
        raise ValueError(f"add_layer_norm: residual {tuple(residual.shape)} does not match x {tuple(x.shape)}")
    _check("add_layer_norm", x, weight, bias)
    check_device("add_layer_norm", x, residual)
    y, h, _, _ = _add_layer_norm_fwd(x, residual, weight, bias, float(eps), out_dtype or x.dtype)
    return y, h
