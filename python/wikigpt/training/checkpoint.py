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
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from ..util.io import atomic_open
from ..errors import CheckpointError
from .model import GPT, GPTConfig

CHECKPOINT_NAME = "ckpt.pt"
_ARCH_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


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


def config_from_model_args(model_args: Any, source: str = "checkpoint") -> GPTConfig:
    """nanoGPT's model_args -> GPTConfig (unknown keys ignored; dropout and bias default as nanoGPT's)."""
    if not isinstance(model_args, dict):
        raise CheckpointError(f"{source}: model_args is a {type(model_args).__name__}, expected a dict")
    missing = [k for k in ("n_layer", "n_head", "n_embd", "block_size", "vocab_size") if k not in model_args]
    if missing:
        raise CheckpointError(f"{source}: model_args lacks {', '.join(missing)}")
    try:
        return GPTConfig(
            n_layer=int(model_args["n_layer"]),
            n_head=int(model_args["n_head"]),
            n_embd=int(model_args["n_embd"]),
            block_size=int(model_args["block_size"]),
            vocab_size=int(model_args["vocab_size"]),
            bias=bool(model_args.get("bias", True)),
            dropout=float(model_args.get("dropout", 0.0)),
        )
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: bad model_args: {e}") from None


def check_state_dict(model: GPT, state_dict: dict[str, torch.Tensor], source: str) -> None:
    """Raise one clear CheckpointError if the weights do not fit the model (names or shapes)."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    wrong = [
        f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"shapes differ: {'; '.join(wrong[:3])} (checkpoint vs model)")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the architecture in model_args: {', '.join(problems)}")


def model_from_checkpoint(ckpt: dict[str, Any], source: str = "checkpoint", **overrides: Any) -> GPT:
    """Build a GPT from a loaded checkpoint dict. `overrides`: dropout, kernels, or a block_size no larger than the
    checkpoint's (the position embeddings are cropped)."""
    cfg = config_from_model_args(ckpt["model_args"], source)
    block_size = overrides.pop("block_size", None)
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in ("dropout", "kernels"):
            raise CheckpointError(f"{source}: cannot override {k!r} of a trained model")
        setattr(cfg, k, v)
    model = GPT(cfg)
    sd = clean_state_dict(ckpt["model"])
    check_state_dict(model, sd, source)
    model.load_state_dict(sd)
    if block_size is not None and block_size != cfg.block_size:
        model.crop_block_size(int(block_size))
    return model


def check_gpt2_vocab(cfg: GPTConfig, source: str) -> None:
    """Raise if the model cannot read GPT-2 token ids: every dataset and every sample here is GPT-2 BPE (ids up to
    50256), so a checkpoint trained on another tokenizer (nanoGPT's shakespeare_char has 65 ids) would fail with an
    index error deep in the embedding on the first batch."""
    from ..data.tokens import N_VOCAB

    if cfg.vocab_size < N_VOCAB:
        raise CheckpointError(
            f"{source}: its vocabulary has {cfg.vocab_size} ids, but wikigpt's data and samples are GPT-2 BPE "
            f"({N_VOCAB} ids): this model was trained with another tokenizer (e.g. nanoGPT's shakespeare_char) and "
            "cannot continue on or sample GPT-2 tokens")


def check_same_architecture(cfg: GPTConfig, ckpt: dict[str, Any], source: str) -> None:
    """Raise if a checkpoint's architecture differs from the one asked for (e.g. --resume with another preset)."""
    other = config_from_model_args(ckpt["model_args"], source)
    diffs = [f"{k} {getattr(other, k)} (checkpoint) vs {getattr(cfg, k)}" for k in _ARCH_KEYS
             if getattr(other, k) != getattr(cfg, k)]
    if diffs:
        raise CheckpointError(f"{source}: checkpoint of a different architecture: {', '.join(diffs)}")


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
