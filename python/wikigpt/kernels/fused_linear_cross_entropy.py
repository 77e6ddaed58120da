"""Fused linear + cross-entropy: the GPT's lm_head and loss without ever materializing the (N, V) logits.

nanoGPT computes `logits = x @ W.T` for all N = B*T tokens at once (B*T*50304 values: 3.3 GB in bf16 at B=32, plus
fp32 copies inside the loss), which is what keeps a 12 GB card at micro-batch 8. Here the tokens are processed in
chunks of `chunk_rows` rows. Per chunk:

    logits = x_c @ W.T                 cuBLAS, compute dtype (bf16 on the GPU), fp32 accumulation
    loss_c, dlogits = softmax-CE       Triton, one program per row, fp32 math, dlogits written over the logits
    grad_x[c] = dlogits @ W            cuBLAS
    grad_W   += dlogits.T @ x_c        cuBLAS, accumulated in an fp32 (V, C) buffer across chunks

The gradients are computed in the forward pass (as Liger-Kernel does) so only grad_x (N, C) and grad_W (V, C) are
kept for backward, which just scales them by the incoming gradient. The FLOPs are the same three GEMMs as the
unfused path. The mean is over tokens whose target is not ignore_index, counted once over all chunks; the count
stays on the device (the kernel loads it), so there is no host sync.

The op is registered with torch.library (custom_op + register_fake + register_autograd) so torch.compile treats it
as one opaque call instead of tracing into the Triton launch; a Triton kernel inside a plain autograd.Function is
what crashed Liger's FLCE under torch.compile (DESIGN.md, "Measured anchors").
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._settings import INTERPRET, check_device, jit, to_out

# Logits chunk budget in bytes: chunk_rows * V * elem_size stays under this. 256 MB is ~2048 rows of bf16 at
# V=50304: large enough that the three GEMMs per chunk run near peak, small next to the activations it replaces.
_CHUNK_BYTES = 256 * 1024 * 1024
# Vocabulary tile of the softmax kernel: the row is streamed through registers twice (max/sum, then gradient).
# GPU: one row per program, 4096-wide tiles over 8 warps (16 fp32 per thread; the same on sm_89 and sm_90, no shared
# memory beyond the reductions). Interpreter: 64 rows x 512 per program, since each program costs milliseconds.
_BLOCK_V, _ROWS = (512, 64) if INTERPRET else (4096, 1)


@jit
def _ce_grad_kernel(
    L,  # (n, V) logits in, d(loss)/d(logits) out (same buffer)
    stride_l,
    T,  # (n,) int64 targets
    LOSS,  # (n,) fp32 per-row loss (0 for ignored rows)
    NVALID,  # () int64 count of non-ignored targets over the whole batch
    n_rows,
    n_cols,
    ignore_index,
    ROWS: tl.constexpr,  # rows per program: 1 on the GPU, many in the interpreter (each program costs ms there)
    BLOCK: tl.constexpr,
):
    # int64 offsets: row * stride exceeds 2**31 for a 2048 x 50304 chunk
    rows1 = tl.program_id(0).to(tl.int64) * ROWS + tl.arange(0, ROWS)
    row_ok1 = rows1 < n_rows
    rows = rows1[:, None]
    row_ok = row_ok1[:, None]
    l_ptr = L + rows * stride_l
    t = tl.load(T + rows1, mask=row_ok1, other=ignore_index)
    valid = t != ignore_index
    t_safe = tl.where(valid, t, 0)

    # Pass 1: online max and sum of exp over each row, in fp32. Every tile holds at least one real column, so the
    # running max is finite after the first tile and masked lanes (-inf) contribute exp(-inf) = 0. Rows past the end
    # read 0s (finite) and are never stored.
    cols = tl.arange(0, BLOCK)[None, :]
    m = tl.full([ROWS], float("-inf"), tl.float32)
    s = tl.zeros([ROWS], tl.float32)
    for off in range(0, n_cols, BLOCK):
        c = off + cols
        x = tl.load(l_ptr + c, mask=row_ok & (c < n_cols), other=float("-inf")).to(tl.float32)
        x = tl.where(row_ok, x, 0.0)
        m_new = tl.maximum(m, tl.max(x, axis=1))
        s = s * tl.exp(m - m_new) + tl.sum(tl.exp(x - m_new[:, None]), axis=1)
        m = m_new
    lse = m + tl.log(s)
    x_t = tl.load(L + rows1 * stride_l + t_safe, mask=row_ok1, other=0.0).to(tl.float32)
    loss = tl.where(valid, lse - x_t, 0.0)

    # Pass 2: d(mean loss)/d(logit_j) = (softmax_j - [j == t]) / n_valid, zero for an ignored row.
    # max(.., 1): with no valid token at all every row is ignored and the scale is never used (the loss is 0/0 = NaN,
    # as in torch), but the division must not fault
    scale = tl.where(valid, 1.0 / tl.maximum(tl.load(NVALID), 1).to(tl.float32), 0.0)[:, None]
    for off in range(0, n_cols, BLOCK):
        c = off + cols
        mask = row_ok & (c < n_cols)
        x = tl.load(l_ptr + c, mask=mask, other=0.0).to(tl.float32)
        g = tl.exp(x - lse[:, None]) * scale
        g = tl.where(c == t_safe[:, None], g - scale, g)
        tl.store(l_ptr + c, to_out(g, L.dtype.element_ty), mask=mask)
    tl.store(LOSS + rows1, loss, mask=row_ok1)


# How to accumulate grad_W (fp32) += A.T @ B for 16-bit A, B: probed once per process, fastest first.
_ACCUM_MODE: str | None = None


def _accumulate_grad_w(grad_w: torch.Tensor, dlogits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Return grad_w + dlogits.T @ x with fp32 accumulation and an fp32 result (grad_w is fp32)."""
    global _ACCUM_MODE
    if dlogits.dtype == torch.float32 or dlogits.device.type != "cuda":
        a, b = dlogits.t().float(), x.float()
        return grad_w.addmm_(a, b)
    if _ACCUM_MODE is None:
        # aten::addmm.dtype (cuBLAS with a bf16 A/B and an fp32 C, beta=1) reads grad_w and writes the sum in one
        # GEMM; older torch builds lack it, then an fp32-output mm plus an add, then an fp32 GEMM.
        _ACCUM_MODE = "upcast"
        for mode in ("addmm_dtype", "mm_dtype"):
            try:
                probe = torch.ones(8, 8, device=x.device, dtype=x.dtype)
                acc = torch.ones(8, 8, device=x.device, dtype=torch.float32)
                if mode == "addmm_dtype":
                    r = torch.ops.aten.addmm.dtype(acc, probe, probe, torch.float32)
                else:
                    r = acc + torch.ops.aten.mm.dtype(probe, probe, torch.float32)
                if r.dtype == torch.float32 and bool((r == 9).all()):
                    _ACCUM_MODE = mode
                    break
            except (RuntimeError, NotImplementedError):
                continue
    if _ACCUM_MODE == "addmm_dtype":
        return torch.ops.aten.addmm.dtype(grad_w, dlogits.t(), x, torch.float32)
    if _ACCUM_MODE == "mm_dtype":
        return grad_w.add_(torch.ops.aten.mm.dtype(dlogits.t(), x, torch.float32))
    return grad_w.addmm_(dlogits.t().float(), x.float())


def default_chunk_rows(n_rows: int, vocab: int, dtype: torch.dtype) -> int:
    """Rows per chunk: the largest power of two whose logits fit in _CHUNK_BYTES, at most n_rows rounded up."""
    elem = torch.finfo(dtype).bits // 8
    rows = max(16, _CHUNK_BYTES // max(1, vocab * elem))
    rows = 1 << (rows.bit_length() - 1)
    return max(1, min(rows, triton.next_power_of_2(max(1, n_rows))))


def _flce_forward_impl(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, chunk_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    n, c = x.shape
    v = weight.shape[0]
    w = weight if weight.dtype == x.dtype else weight.to(x.dtype)
    x = x.contiguous()
    w = w.contiguous()
    targets = targets.contiguous()
    if chunk_rows <= 0:
        chunk_rows = default_chunk_rows(n, v, x.dtype)

    n_valid = (targets != ignore_index).sum()  # stays on the device
    loss_rows = torch.empty(n, device=x.device, dtype=torch.float32)
    grad_x = torch.empty_like(x)
    grad_w = torch.zeros(v, c, device=x.device, dtype=torch.float32)
    block = min(_BLOCK_V, triton.next_power_of_2(v))
    num_warps = 1 if INTERPRET else (8 if block >= 2048 else 4)
    for start in range(0, n, chunk_rows):
        end = min(start + chunk_rows, n)
        x_c = x[start:end]
        logits = torch.mm(x_c, w.t())  # (rows, V), compute dtype, fp32 accumulation inside the GEMM
        _ce_grad_kernel[(triton.cdiv(end - start, _ROWS),)](
            logits, logits.stride(0), targets[start:end], loss_rows[start:end], n_valid, end - start, v, ignore_index,
            ROWS=_ROWS, BLOCK=block, num_warps=num_warps,
        )
        torch.mm(logits, w, out=grad_x[start:end])
        grad_w = _accumulate_grad_w(grad_w, logits, x_c)
        del logits
    loss = loss_rows.sum() / n_valid
    return loss, grad_x, grad_w.to(weight.dtype)


@torch.library.custom_op("wikigpt::fused_linear_cross_entropy", mutates_args=())
def _flce_op(
    x: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, ignore_index: int, chunk_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    # Autocast must not re-cast our GEMMs: the dtypes inside are chosen on purpose (fp32 grad_W accumulation).
    with torch.autocast(x.device.type, enabled=False):
        return _flce_forward_impl(x, weight, targets, ignore_index, chunk_rows)


@_flce_op.register_fake
def _flce_fake(x, weight, targets, ignore_index, chunk_rows):
    return x.new_empty((), dtype=torch.float32), torch.empty_like(x), torch.empty_like(weight)


def _flce_setup_context(ctx, inputs, output):
    _, grad_x, grad_w = output
    ctx.save_for_backward(grad_x, grad_w)
    ctx.mark_non_differentiable(grad_x, grad_w)


def _flce_backward(ctx, grad_loss, _grad_gx, _grad_gw):
    grad_x, grad_w = ctx.saved_tensors
    return grad_x * grad_loss.to(grad_x.dtype), grad_w * grad_loss.to(grad_w.dtype), None, None, None


_flce_op.register_autograd(_flce_backward, setup_context=_flce_setup_context)


def fused_linear_cross_entropy(
    x: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    ignore_index: int = -1,
    *,
    chunk_rows: int | None = None,
) -> torch.Tensor:
    """Mean cross-entropy of `x @ weight.T` against `targets`, without materializing the logits.

    x: (N, C) float (its dtype is the compute dtype: pass bf16 for bf16 GEMMs); weight: (V, C) any float dtype
    (its gradient comes back in its own dtype, accumulated in fp32, so a tied fp32 embedding gets an exact sum);
    targets: (N,) int64, entries in [0, V) or equal to ignore_index. Returns a 0-dim fp32 tensor: the mean over
    non-ignored tokens (NaN if every token is ignored, as torch's cross_entropy). Differentiable in x and weight.
    chunk_rows: tokens per chunk (default: logits chunk <= 256 MB).

    Under torch.autocast the compute dtype follows autocast, as nn.Linear would: x and the weight copy are cast to
    the autocast dtype.
    """
    if x.dim() != 2 or weight.dim() != 2 or targets.dim() != 1:
        raise ValueError(f"fused_linear_cross_entropy: expected x (N, C), weight (V, C), targets (N,), got "
                         f"{tuple(x.shape)}, {tuple(weight.shape)}, {tuple(targets.shape)}")
    if x.shape[1] != weight.shape[1] or x.shape[0] != targets.shape[0]:
        raise ValueError(f"fused_linear_cross_entropy: shapes do not match: x {tuple(x.shape)}, weight "
                         f"{tuple(weight.shape)}, targets {tuple(targets.shape)}")
    if targets.dtype != torch.int64:
        raise ValueError(f"fused_linear_cross_entropy: targets must be int64, got {targets.dtype}")
    check_device("fused_linear_cross_entropy", x, weight, targets)
    if torch.is_autocast_enabled(x.device.type):
        dtype = torch.get_autocast_dtype(x.device.type)
        if x.dtype != dtype:
            x = x.to(dtype)
    loss, _, _ = _flce_op(x, weight, targets, int(ignore_index), int(chunk_rows or 0))
    return loss
