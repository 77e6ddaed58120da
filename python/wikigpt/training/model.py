"""The GPT: GPT-2's architecture with nanoGPT's parameter names, init and checkpoint format.

Architecture choices (the same as GPT-2 and karpathy/nanoGPT, so a nanoGPT ckpt.pt loads as is):
- learned absolute position embeddings (`wpe`) added to token embeddings (`wte`);
- pre-LayerNorm blocks: x + attn(ln_1(x)), then x + mlp(ln_2(x)), and a final `ln_f`;
- causal self-attention through torch's scaled_dot_product_attention (flash / memory-efficient kernels where the
  device has them), one fused `c_attn` projection for q, k, v;
- MLP 4x wide with exact (erf) GELU;
- the output head `lm_head` shares its weight with `wte` (tied embeddings);
- optional biases in Linear and LayerNorm (`bias`), optional dropout;
- init N(0, 0.02), residual projections (`c_proj`) N(0, 0.02 / sqrt(2 * n_layer)) as in GPT-2's paper, biases 0;
- vocab_size 50304 by default: GPT-2's 50257 padded to a multiple of 64, which is faster on GPUs; the 47 extra rows
  are never a target and their logits learn to stay low.

This plain-torch path is the reference forever. With `GPTConfig.kernels = True` the fused Triton kernels in
wikigpt.kernels take over the places marked `if self.config.kernels:` (the loss in `GPT._loss`, the LayerNorms in
`Block.forward`); with kernels off nothing here imports them.
"""

from __future__ import annotations

import inspect
import math
import os
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn as nn
from torch.nn import functional as F

from ..errors import CheckpointError, ConfigError
from .checkpoint import clean_state_dict, load_checkpoint


@dataclass
class GPTConfig:
    block_size: int = 1024  # context length in tokens (rows of wpe)
    vocab_size: int = 50304  # GPT-2's 50257 padded up to a multiple of 64 for speed
    n_layer: int = 12  # transformer blocks
    n_head: int = 12  # attention heads per block; n_embd must divide by it
    n_embd: int = 768  # width of the residual stream
    dropout: float = 0.0  # 0 for pretraining; 0.1+ for finetuning small data
    bias: bool = True  # biases in Linear and LayerNorm, as GPT-2; False is a bit better and faster
    kernels: bool = False  # use wikigpt.kernels (fused Triton ops) instead of the plain torch path

    def __post_init__(self) -> None:
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"GPTConfig.{name} must be at least 1, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(f"GPTConfig: n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"GPTConfig: dropout must be in [0, 1), got {self.dropout}")

    def model_args(self) -> dict[str, Any]:
        """The architecture in nanoGPT's `model_args` form (its checkpoint key); `kernels` is a runtime choice, not
        part of the architecture, and nanoGPT's GPTConfig(**model_args) would reject it, so it is left out."""
        return {k: v for k, v in asdict(self).items() if k != "kernels"}


# Named architectures. gpt2-124m / gpt2-350m are GPT-2 small / medium (nanoGPT's "gpt2", "gpt2-medium", with the
# padded vocabulary); "tiny" is for tests and CPU experiments (a few seconds per hundred steps on 2 cores).
PRESETS: dict[str, dict[str, Any]] = {
    "gpt2-124m": dict(n_layer=12, n_head=12, n_embd=768, block_size=1024),
    "gpt2-350m": dict(n_layer=24, n_head=16, n_embd=1024, block_size=1024),
    "tiny": dict(n_layer=2, n_head=2, n_embd=64, block_size=64),
}


def preset_config(name: str, **overrides: Any) -> GPTConfig:
    """GPTConfig of a named preset, with fields replaced by `overrides` (None values are ignored)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    args = dict(PRESETS[name])
    args.update({k: v for k, v in overrides.items() if v is not None})
    return GPTConfig(**args)


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (torch's nn.LayerNorm has no `bias=False` before torch 2.1; nanoGPT's class,
    kept so parameter names match)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)  # q, k, v in one matmul
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        # (B, T, C) -> (B, nh, T, hs): heads become a batch dimension
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0.0, is_causal=True
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = nn.GELU()  # exact erf GELU; GPT-2 used the tanh form, nanoGPT uses this one
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.ln_1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x

    # ---- kernel path (config.kernels): the same computation through wikigpt.kernels --------------------------------
    def forward_fused(
        self, x: torch.Tensor, delta: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The block with fused kernels. The residual add is deferred into the next LayerNorm: the block receives
        the stream x and the previous block's pending MLP output `delta` (None for the first block) and returns
        (stream, its own MLP output), so every add is fused with the LayerNorm that follows it. The MLP keeps only
        the c_fc output for backward (its GELU is recomputed there): that and the fused loss are what let the 124M
        model train at micro-batch 32 in 12 GiB."""
        from ..kernels import add_layer_norm, gelu_linear, layer_norm

        # LN outputs feed bf16 linears under autocast: write them in that dtype directly (F.layer_norm would give
        # fp32 under autocast, then the linear casts it)
        dt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        if delta is None:
            y = layer_norm(x, self.ln_1.weight, self.ln_1.bias, out_dtype=dt)
        else:
            y, x = add_layer_norm(x, delta, self.ln_1.weight, self.ln_1.bias, out_dtype=dt)
        y, x = add_layer_norm(x, self.attn(y), self.ln_2.weight, self.ln_2.bias, out_dtype=dt)
        mlp = self.mlp
        delta = mlp.dropout(gelu_linear(mlp.c_fc(y), mlp.c_proj.weight, mlp.c_proj.bias))
        return x, delta


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.n_embd),
                wpe=nn.Embedding(config.block_size, config.n_embd),
                drop=nn.Dropout(config.dropout),
                h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
                ln_f=LayerNorm(config.n_embd, bias=config.bias),
            )
        )
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        # Tied embeddings: one matrix reads tokens in and scores them out (GPT-2; saves 38M parameters at 124M).
        # state_dict() still lists both names, as nanoGPT's checkpoints do.
        self.transformer.wte.weight = self.lm_head.weight

        self.apply(self._init_weights)
        # GPT-2 scales the residual projections so the residual stream's variance does not grow with depth.
        for pn, p in self.named_parameters():
            if pn.endswith("c_proj.weight"):
                torch.nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                torch.nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            torch.nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def get_num_params(self, non_embedding: bool = True) -> int:
        """Parameter count. The position embeddings are left out by default (nanoGPT's convention, used for MFU);
        the token embeddings stay in because they are the lm_head's weights too."""
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wpe.weight.numel()
        return n

    def hidden(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> final hidden states after ln_f (B, T, n_embd)."""
        b, t = idx.size()
        if t > self.config.block_size:
            raise ValueError(f"sequence of length {t} is longer than the block size {self.config.block_size}")
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device)  # (T,)
        tok_emb = self.transformer.wte(idx)  # (B, T, C)
        pos_emb = self.transformer.wpe(pos)  # (T, C)
        x = self.transformer.drop(tok_emb + pos_emb)
        if self.config.kernels:
            return self._hidden_fused(x)
        for block in self.transformer.h:
            x = block(x)
        return self.transformer.ln_f(x)

    def _hidden_fused(self, x: torch.Tensor) -> torch.Tensor:
        """Kernel path of `hidden` after the embeddings: blocks pass (stream, pending MLP output) along (see
        Block.forward_fused) and the last pending add is fused into ln_f."""
        from ..kernels import add_layer_norm

        delta = None
        for block in self.transformer.h:
            x, delta = block.forward_fused(x, delta)
        ln_f = self.transformer.ln_f
        # under autocast the head's GEMMs run in the autocast dtype: write ln_f's output in it directly
        dt = torch.get_autocast_dtype(x.device.type) if torch.is_autocast_enabled(x.device.type) else x.dtype
        y, _ = add_layer_norm(x, delta, ln_f.weight, ln_f.bias, out_dtype=dt)
        return y

    def _loss(self, x: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor]:
        """lm_head + mean cross-entropy over the targets that are not -1. Returns (logits, loss); a fused path may
        return logits None, since never materializing the (B, T, vocab) logits is the point of fusing."""
        if self.config.kernels:
            from ..kernels import fused_linear_cross_entropy

            loss = fused_linear_cross_entropy(
                x.reshape(-1, x.size(-1)), self.lm_head.weight, targets.reshape(-1), ignore_index=-1
            )
            return None, loss
        logits = self.lm_head(x)  # (B, T, vocab)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss

    def forward(
        self, idx: torch.Tensor, targets: torch.Tensor | None = None
    ) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        """nanoGPT's contract: with targets, (logits (B, T, vocab), loss); without, (logits of the last position
        (B, 1, vocab), None) -- all generation needs, and a T-times smaller matmul."""
        x = self.hidden(idx)
        if targets is not None:
            return self._loss(x, targets)
        return self.lm_head(x[:, [-1], :]), None

    def logits(self, idx: torch.Tensor) -> torch.Tensor:
        """Logits at every position (B, T, vocab), always through the plain lm_head."""
        return self.lm_head(self.hidden(idx))

    def crop_block_size(self, block_size: int) -> None:
        """Shrink the context (e.g. to fine-tune a 1024-token checkpoint at 256): keep the first wpe rows."""
        if block_size > self.config.block_size:
            raise ConfigError(
                f"cannot grow block_size from {self.config.block_size} to {block_size}: position embeddings for "
                "the extra positions were never trained"
            )
        self.config.block_size = block_size
        self.transformer.wpe.weight = nn.Parameter(self.transformer.wpe.weight[:block_size].detach().clone())

    def estimate_flops_per_token(self) -> float:
        """Training FLOPs per token (forward + backward), nanoGPT's estimate from the PaLM paper appendix B:
        6 N for the matmuls with the weights plus 12 L H Q T for attention (scores and weighted values)."""
        cfg = self.config
        n = self.get_num_params()
        L, H, Q, T = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head, cfg.block_size
        return 6 * n + 12 * L * H * Q * T

    def configure_optimizers(
        self,
        weight_decay: float,
        learning_rate: float,
        betas: tuple[float, float],
        device_type: str,
    ) -> torch.optim.AdamW:
        """AdamW with nanoGPT's two groups, in nanoGPT's order so its optimizer state loads: every parameter of 2+
        dimensions (matmul weights, embeddings) decays; biases and LayerNorm gains do not. Fused AdamW on CUDA."""
        param_dict = {pn: p for pn, p in self.named_parameters() if p.requires_grad}
        decay = [p for p in param_dict.values() if p.dim() >= 2]
        nodecay = [p for p in param_dict.values() if p.dim() < 2]
        groups = [
            {"params": decay, "weight_decay": weight_decay},
            {"params": nodecay, "weight_decay": 0.0},
        ]
        fused = device_type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters
        extra = {"fused": True} if fused else {}
        return torch.optim.AdamW(groups, lr=learning_rate, betas=betas, **extra)

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        vocab_limit: int | None = None,
    ) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to idx (B, T). No KV cache: each step reruns the (cropped)
        context, which is fine for samples of a few hundred tokens. `vocab_limit` (e.g. 50257) never samples the
        padding ids above it, which a tokenizer cannot decode."""
        for _ in range(max_new_tokens):
            idx_cond = idx if idx.size(1) <= self.config.block_size else idx[:, -self.config.block_size :]
            logits, _ = self(idx_cond)
            logits = logits[:, -1, :].float()
            if vocab_limit is not None:
                logits[:, vocab_limit:] = -float("inf")
            if temperature <= 0:  # greedy
                idx_next = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
                    logits[logits < v[:, [-1]]] = -float("inf")
                probs = F.softmax(logits, dim=-1)
                # a draw from probs as argmax(probs / Exp(1)) (the exponential race): the same distribution as
                # torch.multinomial, which costs ~30 ms per draw over 50k ids on a CPU core, against ~1 ms here
                race = torch.empty_like(probs).exponential_(1.0, generator=generator)
                idx_next = (probs / race).argmax(dim=-1, keepdim=True)
            idx = torch.cat((idx, idx_next), dim=1)
        return idx

    @classmethod
    def from_checkpoint(
        cls, path: str | os.PathLike, device: str | torch.device = "cpu", **overrides: Any
    ) -> "GPT":
        """Load a model from a run folder (its ckpt.pt), a wikigpt checkpoint, or a nanoGPT ckpt.pt.

        `overrides` may set `dropout`, `kernels` or a smaller `block_size`; the rest of the architecture comes from
        the checkpoint. Raises wikigpt.CheckpointError for a missing, corrupt or mismatched checkpoint."""
        ckpt = load_checkpoint(path, map_location=device)
        model = model_from_checkpoint(ckpt, source=str(path), **overrides)
        return model.to(device)


# ----------------------------------------------------------------------------------------------------------------
# a GPT from a loaded checkpoint dict (ours or nanoGPT's: see checkpoint.py for the format)

_ARCH_KEYS = ("n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size")


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
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    problems = weight_mismatches(state_dict, expected, "checkpoint vs model")
    if problems:
        raise CheckpointError(f"{source}: weights do not match the architecture in model_args: {', '.join(problems)}")


def weight_mismatches(state_dict: dict[str, torch.Tensor], expected: dict[str, tuple], sides: str,
                      optional: tuple[str, ...] = ()) -> list[str]:
    """What keeps `state_dict` from fitting the `expected` {name: shape}, as phrases for one error line (at most
    three names each); `optional` names may be absent or extra. `sides` names the two in the shape phrase."""
    missing = [k for k in expected if k not in state_dict and k not in optional]
    unexpected = [k for k in state_dict if k not in expected and k not in optional]
    wrong = [f"{k} {tuple(state_dict[k].shape)} vs {v}" for k, v in expected.items()
             if k in state_dict and tuple(state_dict[k].shape) != tuple(v)]
    problems = []
    if missing:
        problems.append(f"missing {len(missing)} tensors (e.g. {', '.join(missing[:3])})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensors (e.g. {', '.join(unexpected[:3])})")
    if wrong:
        problems.append(f"shapes differ: {'; '.join(wrong[:3])} ({sides})")
    return problems


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
