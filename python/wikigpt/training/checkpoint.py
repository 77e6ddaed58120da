"""Checkpoints in nanoGPT's format, plus what wikigpt needs to resume and grow.

A checkpoint is one `torch.save`d dict. nanoGPT's keys come first, with nanoGPT's meaning, so each side reads the
other's files:
    model          state_dict (compiled models prefix keys with `_orig_mod.`; both forms are read)
    optimizer      AdamW state_dict (two groups: decay, no decay)
    model_args     n_layer, n_head, n_embd, block_size, bias, vocab_size, dropout
    iter_num       optimizer steps taken
    best_val_loss  lowest val loss seen
    config         the training config, plain values
wikigpt adds:
    wikigpt_version, schedule (the LR schedule, so a resumed run continues the same curve), data_state (window
    sampler seed, position and part list), parts_seen (names of the dataset parts the model has trained on),
    tokens_seen (cumulative over every run this one continues), rng (torch RNG states, for dropout).

Every load uses torch.load(weights_only=True): a checkpoint is data, and unpickling arbitrary objects would let a
downloaded file run code. Writes are atomic (temp file, fsync, rename), so a run killed mid-save keeps its previous
checkpoint.

This module is the file format only; building a GPT from a loaded dict (model_args -> GPTConfig, checking the
weights' names and shapes) is in model.py, which imports this one and not the other way round.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..errors import CheckpointError
from ..util.io import atomic_open

CHECKPOINT_NAME = "ckpt.pt"


def resolve_checkpoint_path(path: str | os.PathLike) -> Path:
    """A run folder means its ckpt.pt; a file is itself."""
    p = Path(path)
    if p.is_dir():
        p = p / CHECKPOINT_NAME
        if not p.is_file():
            raise CheckpointError(
                f"{path}: no {CHECKPOINT_NAME} in this folder (not a run folder, or no checkpoint yet)"
            )
    elif not p.exists():
        raise CheckpointError(f"{path}: no such checkpoint file or run folder")
    return p


def _why_unreadable(path: Path, e: Exception) -> str:
    """What a failed weights-only torch.load means, in a few words. torch's own messages run to many lines on how to
    allowlist globals (which would mean running code from the file) or are bare codes ("105")."""
    text = str(e)
    found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if found:
        return (f"it holds a Python object ({found.group(1)}) that a weights-only load refuses: a checkpoint is a "
                "pickle and wikigpt never runs code from one; re-save it with tensors and plain values only")
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError as oe:
        return oe.strerror or str(oe)
    if head[:4] == b"PK\x03\x04":
        return "a PyTorch zip archive that is damaged or cut short"
    if head[:1] == b"\x80":
        return "a pickle that is damaged or cut short"
    return f"not a PyTorch checkpoint at all: it starts with {head!r}"


def load_checkpoint(path: str | os.PathLike, map_location: Any = "cpu") -> dict[str, Any]:
    """Read a checkpoint (run folder or file) safely; raise CheckpointError if it is not a usable one."""
    p = resolve_checkpoint_path(path)
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as e:  # a damaged file fails in many ways inside torch (zip, unpickler stack, EOF...)
        raise CheckpointError(f"{p}: not a readable checkpoint ({_why_unreadable(p, e)})") from None
    if not isinstance(ckpt, dict):
        raise CheckpointError(f"{p}: not a checkpoint: holds a {type(ckpt).__name__}, expected a dict")
    for key in ("model", "model_args"):
        if key not in ckpt:
            raise CheckpointError(f"{p}: not a nanoGPT/wikigpt checkpoint: no {key!r} key")
    if not isinstance(ckpt["model"], dict):
        raise CheckpointError(f"{p}: 'model' is a {type(ckpt['model']).__name__}, expected a state_dict")
    return ckpt


def clean_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Strip the `_orig_mod.` prefix torch.compile adds (nanoGPT saves compiled models as they are) and DDP's
    `module.`, and drop the causal-mask buffers (`attn.bias`, HF's `attn.masked_bias`) that nanoGPT registered
    before torch had flash attention: they are constants, not weights."""
    out = {}
    for k, v in state_dict.items():
        while k.startswith("_orig_mod.") or k.startswith("module."):
            k = k.split(".", 1)[1]
        if k.endswith(".attn.bias") or k.endswith(".attn.masked_bias"):
            continue
        out[k] = v
    return out


def save_checkpoint(path: str | os.PathLike, ckpt: dict[str, Any]) -> None:
    """Write atomically: a temp file in the same folder, fsync, rename over `path`, fsync the folder.

    A failed write (full disk, file-size limit, I/O error) raises one OSError line naming the checkpoint; the file
    already at `path`, if any, is untouched.
    """
    try:
        with atomic_open(path, "wb") as f:
            try:
                torch.save(ckpt, f)
            except RuntimeError as e:
                # torch.save's zip writer reports a failed write as a RuntimeError about stream positions, raised
                # while handling the OS's error: hand on the OS's error, which says what happened
                cause: BaseException | None = e.__context__
                while cause is not None and not isinstance(cause, OSError):
                    cause = cause.__context__
                if cause is None:
                    raise
                raise cause from None
    except OSError as e:
        if e.errno is None:
            raise
        kept = "the previous checkpoint is intact" if Path(path).exists() else "no checkpoint was written"
        err = OSError(f"{e} ({kept})")
        err.errno = e.errno
        raise err from e
