"""Shared launch settings for wikigpt's Triton kernels.

Two things live here so every op file makes the same choice:

* Where kernels run. On a machine with CUDA they compile for the GPU. On a machine without it they run in Triton's
  interpreter on CPU tensors (slow: a 512x768 launch takes 1-2 s), which is what the CI tests use. Triton fixes the
  mode of its own standard library (tl.max, tl.sum are jit functions) when `triton` is first imported, so the mode is
  per process: if TRITON_INTERPRET is unset, CUDA is absent and triton is not imported yet, importing this module
  sets TRITON_INTERPRET=1 (nothing else can run Triton without CUDA anyway). If triton was already imported in GPU
  mode on a machine without CUDA (torch._dynamo imports it), the kernels refuse with a one-line error that says so.
* Block sizes and warps. Our kernels are row-wise reductions (LayerNorm over C, softmax over V) that keep a row's
  tile in registers and use shared memory only for the cross-warp reduction, so the sm_89 (RTX 4070: 100 KB shared
  memory per SM) vs sm_90 (H100: 228 KB) difference does not bind; what matters is registers per thread. We choose
  one documented configuration per row width instead of autotuning: autotuning under torch.compile adds compile
  time to every run, and in the interpreter it would run each config.
"""

from __future__ import annotations

import contextlib
import os
import sys
from typing import Callable, Iterator, TypeVar

import torch

_unset = os.environ.get("TRITON_INTERPRET", "").strip() == ""
if "triton" not in sys.modules and _unset and not torch.cuda.is_available():
    os.environ["TRITON_INTERPRET"] = "1"
# Triton 3.9 warns on every compile when this is unset (its default flips in 3.10); our tolerances were set with FMA
# fusion on, the current default, so say so explicitly (and keep the warning out of pytest's warnings-as-errors).
os.environ.setdefault("TRITON_DEFAULT_FP_FUSION", "1")

import triton  # noqa: E402  (after the TRITON_INTERPRET decision above)
import triton.language as tl  # noqa: E402

F = TypeVar("F", bound=Callable)


def _triton_interprets() -> bool:
    # The truth is how triton.language's own jit functions were decorated at triton's import.
    return type(tl.standard.max).__name__ == "InterpretedFunction" or type(
        getattr(tl.standard.max, "fn", None)).__name__ == "InterpretedFunction"


#: True when our kernels run in Triton's CPU interpreter (no CUDA, or TRITON_INTERPRET=1).
INTERPRET: bool = _triton_interprets()


@contextlib.contextmanager
def _interpret_env(on: bool) -> Iterator[None]:
    old = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if on else "0"
    try:
        yield
    finally:
        if old is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = old


def jit(fn: F) -> F:
    """`triton.jit`, in the interpreter when INTERPRET is set, whatever the process's environment says."""
    with _interpret_env(INTERPRET):
        return triton.jit(fn)  # type: ignore[return-value]


def check_device(op: str, *tensors: torch.Tensor) -> None:
    """Raise one clear line if the tensors cannot be handled by our kernels in this process."""
    devices = {t.device for t in tensors}
    if len(devices) != 1:
        raise ValueError(f"{op}: all tensors must be on one device, got {sorted(map(str, devices))}")
    (device,) = devices
    if INTERPRET:
        if device.type != "cpu":
            raise ValueError(f"{op}: Triton runs in its CPU interpreter in this process (TRITON_INTERPRET=1 or no "
                             f"CUDA at import), so tensors must be on the CPU, got {device}")
    elif device.type != "cuda":
        raise ValueError(f"{op}: Triton kernels need CUDA tensors, got {device} (to run them on the CPU, slowly, set "
                         f"TRITON_INTERPRET=1 before anything imports triton, e.g. torch._dynamo)")


def row_config(n_cols: int) -> tuple[int, int, int]:
    """(BLOCK, num_warps, ROWS) for a kernel that holds ROWS rows of n_cols elements in registers.

    BLOCK is the next power of two (Triton tiles must be). On the GPU, ROWS = 1 and warps grow with the row so each
    thread keeps <= 8 fp32 values of it live (C = 768: BLOCK 1024, 4 warps), well inside the register file of both
    sm_89 and sm_90. In the interpreter a program costs milliseconds of Python whatever its size, so it takes as many
    rows as fit in a 16K-element tile.
    """
    block = triton.next_power_of_2(n_cols)
    if block > 65536:
        raise ValueError(f"row of {n_cols} elements is too wide for the fused LayerNorm kernel (max 65536)")
    if INTERPRET:
        return block, 1, max(1, 16384 // block)
    return block, min(max(block // 256, 1), 16), 1


def num_row_programs(n_rows: int, device: torch.device) -> int:
    """How many persistent programs a backward kernel that accumulates per-program partial sums should launch.

    A few per SM keeps every SM busy while the partial-sum buffer (programs x C fp32) stays small; in the interpreter
    fewer programs means fewer Python-level launches.
    """
    if INTERPRET or device.type != "cuda":
        return 1
    sms = torch.cuda.get_device_properties(device).multi_processor_count
    return max(1, min(n_rows, 4 * sms))


# Triton's interpreter converts fp32 -> bf16 by truncating the mantissa, where the GPU rounds to nearest even; a
# kernel tested in the interpreter would then disagree with torch by one bf16 step, with a bias. In the interpreter
# our kernels round by integer arithmetic instead (the same RTNE the hardware does); on the GPU they use the
# hardware conversion.
_INTERP = tl.constexpr(INTERPRET)


@jit
def to_out(x, dtype: tl.constexpr):
    """fp32 tensor -> dtype, rounding to nearest even (for the bf16 stores of our kernels)."""
    if _INTERP and dtype == tl.bfloat16:
        bits = x.to(tl.uint32, bitcast=True)
        bits = bits + 0x7FFF + ((bits >> 16) & 1)
        return (bits >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True)
    else:
        return x.to(dtype)
