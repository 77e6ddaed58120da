"""Hugging Face transformers GPT-2 folders, both ways: `wikigpt export-hf` writes one from a wikigpt or nanoGPT
checkpoint, and `load_hf_gpt2` reads one (e.g. a downloaded `gpt2`) as a checkpoint dict for --init-from.

The two models are the same network with different names and layouts (nanoGPT's `from_pretrained` does the same
conversion):
- transformers' GPT-2 keeps c_attn / c_proj / c_fc in `Conv1D` modules, whose weight is (in, out): the transpose of
  nn.Linear's (out, in);
- HF's GPT-2 always has biases: a model trained with bias=False is written with zero biases (the same function);
- `lm_head` is tied to `wte` on both sides, so only `transformer.wte.weight` is written;
- our MLP uses the exact (erf) GELU, which is HF's "gelu"; GPT-2's own "gelu_new" is the tanh approximation (they
  differ by at most 5e-4 per activation). Exports say "gelu", so transformers computes the same logits; imports accept
  either, as nanoGPT does when it loads OpenAI's tanh-GELU weights into its erf-GELU model;
- the exported vocabulary is GPT-2's 50257 ids: the padding rows (50304 by default) are never a target and no
  tokenizer can decode them, so they are cut off. The logits of the real ids are unchanged.

The tokenizer files are made offline from the ranks the extension ships (`wikigpt.data.tokens.gpt2_ranks`): vocab.json
maps each token's bytes through GPT-2's byte-to-unicode table; merges.txt is recovered from the ranks (a token of rank
r is the merge of the two pieces that byte-pair encoding with the merges below r leaves of it); tokenizer.json is what
transformers' fast tokenizer saves after loading those two.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..data.tokens import EOT, N_VOCAB
from ..errors import CheckpointError, ConfigError, MissingExtraError
from ..util.fmt import fmt_count, human_bytes
from ..util.io import fsync_dir

if TYPE_CHECKING:
    import torch  # imported where used: `wikigpt --help` loads this module to list its command

EOT_TEXT = "<|endoftext|>"
LN_EPS = 1e-5  # model.py's LayerNorm
# Conv1D weights in HF's layout: (in, out), the transpose of nn.Linear's
_CONV1D = ("attn.c_attn.weight", "attn.c_proj.weight", "mlp.c_fc.weight", "mlp.c_proj.weight")
# HF activations our MLP computes: "gelu" exactly; the tanh forms (GPT-2's own) within 5e-4 per activation
_GELUS = ("gelu", "gelu_new", "gelu_pytorch_tanh")
# Weight files transformers reads, in its order of preference
_WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                 "pytorch_model.bin.index.json")
_INSTALL = 'pip install "wikigpt[hf]"'


def _require(*modules: str, what: str) -> None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtraError(f"{what} needs {' and '.join(missing)}: {_INSTALL}")


# ---- the network ----------------------------------------------------------------------------------------------------


def hf_shapes(n_layer: int, n_embd: int, n_positions: int, vocab_size: int) -> dict[str, tuple[int, ...]]:
    """Every tensor of transformers' GPT2LMHeadModel (lm_head left out: tied to wte) with its shape, HF's layout."""
    C = n_embd
    shapes: dict[str, tuple[int, ...]] = {
        "transformer.wte.weight": (vocab_size, C),
        "transformer.wpe.weight": (n_positions, C),
    }
    for i in range(n_layer):
        h = f"transformer.h.{i}."
        shapes.update({
            h + "ln_1.weight": (C,), h + "ln_1.bias": (C,),
            h + "attn.c_attn.weight": (C, 3 * C), h + "attn.c_attn.bias": (3 * C,),
            h + "attn.c_proj.weight": (C, C), h + "attn.c_proj.bias": (C,),
            h + "ln_2.weight": (C,), h + "ln_2.bias": (C,),
            h + "mlp.c_fc.weight": (C, 4 * C), h + "mlp.c_fc.bias": (4 * C,),
            h + "mlp.c_proj.weight": (4 * C, C), h + "mlp.c_proj.bias": (C,),
        })
    shapes.update({"transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)})
    return shapes


def to_hf_state_dict(state_dict: dict[str, torch.Tensor], n_layer: int, n_embd: int,
                     block_size: int) -> dict[str, torch.Tensor]:
    """A wikigpt GPT's state_dict (cleaned: no `_orig_mod.`) -> transformers' GPT2LMHeadModel tensors, fp32,
    contiguous and sharing no memory (safetensors refuses shared tensors)."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, shape in hf_shapes(n_layer, n_embd, block_size, N_VOCAB).items():
        v = state_dict.get(key)
        if v is None:  # a bias=False model: HF's GPT-2 always adds its biases, zeros compute the same
            if not key.endswith(".bias"):
                raise CheckpointError(f"checkpoint lacks {key}")
            v = torch.zeros(shape)
        v = v.detach().to("cpu", torch.float32)
        if key == "transformer.wte.weight":
            v = v[:N_VOCAB]  # the padding rows: never a target, no token to decode
        if key.endswith(_CONV1D):
            v = v.t()
        out[key] = v.contiguous().clone()
    return out


def from_hf_state_dict(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """transformers' GPT-2 tensors (either layout: `transformer.h.0...` or the original `gpt2` repo's bare `h.0...`)
    -> wikigpt's state_dict (nn.Linear layout, fp32, lm_head tied to wte). Shapes are checked by the caller."""
    import torch

    out: dict[str, torch.Tensor] = {}
    for key, v in state_dict.items():
        if key.endswith((".attn.bias", ".attn.masked_bias")):
            continue  # the causal-mask buffers older transformers saved: constants, not weights
        if not (key.startswith("transformer.") or key == "lm_head.weight"):
            key = "transformer." + key
        v = v.to(torch.float32)
        out[key] = v.t().contiguous() if key.endswith(_CONV1D) else v
    head = out.pop("lm_head.weight", None)
    wte = out.get("transformer.wte.weight")
    if head is not None and wte is not None and (head.shape != wte.shape or not torch.equal(head, wte)):
        raise CheckpointError(f"{source}: its lm_head is not tied to wte (tie_word_embeddings false), and "
                              "wikigpt's GPT always ties them")
    if wte is not None:
        out["lm_head.weight"] = wte
    return out


# ---- the tokenizer --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's table (openai/gpt-2 encoder.py): each byte becomes a printable character, so BPE vocabularies can be
    JSON strings. Printable Latin-1 bytes stand for themselves; the other 68 map to U+0100 onwards."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _bpe_pieces(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    """`token` byte-pair encoded with only the merges of rank below `max_rank`, lowest rank first (tiktoken's rule)."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 1:
        best = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and r < max_rank and (best is None or r < best[0]):
                best = (r, i)
        if best is None:
            break
        i = best[1]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]
    return parts


@functools.lru_cache(maxsize=1)
def gpt2_vocab_and_merges() -> tuple[dict[str, int], list[str]]:
    """(vocab.json's {token string: id}, merges.txt's lines) rebuilt from the ranks. A merged token of rank r is the
    pair that BPE with the merges below r leaves of it, and its merge has priority r: the order of GPT-2's own
    merges.txt (ids 256.. are its 50000 merges in order)."""
    from ..data.tokens import gpt2_ranks

    ranks = gpt2_ranks()
    enc = bytes_to_unicode()

    def text(b: bytes) -> str:
        return "".join(enc[x] for x in b)

    vocab = {text(tok): rank for tok, rank in ranks.items()}
    vocab[EOT_TEXT] = EOT
    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) == 1:
            continue
        pieces = _bpe_pieces(ranks, tok, rank)
        if len(pieces) != 2:  # not a BPE vocabulary: cannot happen with GPT-2's ranks
            raise RuntimeError(f"token {tok!r} (rank {rank}) is not the merge of two lower-ranked tokens: {pieces}")
        merges.append(f"{text(pieces[0])} {text(pieces[1])}")
    return vocab, merges


def _tokenizer_config(block_size: int) -> dict[str, Any]:
    return {
        "tokenizer_class": "GPT2Tokenizer",  # AutoTokenizer gives the fast one when tokenizer.json is there
        "bos_token": EOT_TEXT,
        "eos_token": EOT_TEXT,
        "unk_token": EOT_TEXT,
        "add_prefix_space": False,
        "model_max_length": block_size,
        # decode(encode(text)) == text: GPT-2 BPE keeps every space, nothing to clean up
        "clean_up_tokenization_spaces": False,
        "errors": "replace",
    }


def _write_tokenizer(folder: Path, block_size: int) -> None:
    """vocab.json, merges.txt, tokenizer_config.json, special_tokens_map.json, then tokenizer.json as transformers'
    fast tokenizer saves it after loading the first two (a scratch folder, so only tokenizer.json is taken)."""
    from transformers import GPT2TokenizerFast

    vocab, merges = gpt2_vocab_and_merges()
    _write_text(folder / "vocab.json", json.dumps(vocab, ensure_ascii=False))
    _write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(merges) + "\n")
    _write_json(folder / "tokenizer_config.json", _tokenizer_config(block_size))
    special = {"bos_token": EOT_TEXT, "eos_token": EOT_TEXT, "unk_token": EOT_TEXT}
    _write_json(folder / "special_tokens_map.json", special)
    scratch = folder / ".tokenizer"
    tok = GPT2TokenizerFast.from_pretrained(str(folder))
    if len(tok) != N_VOCAB:  # e.g. a transformers version that ignored the files: refuse to write a broken folder
        raise RuntimeError(f"transformers built a GPT-2 tokenizer of {len(tok)} ids from {folder}, expected {N_VOCAB}")
    tok.save_pretrained(str(scratch))
    os.replace(scratch / "tokenizer.json", folder / "tokenizer.json")
    shutil.rmtree(scratch)


# ---- export ---------------------------------------------------------------------------------------------------------


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _write_json(path: Path, obj: Any) -> None:
    _write_text(path, json.dumps(obj, indent=2) + "\n")


def _fsync_files(folder: Path) -> None:
    for p in folder.iterdir():
        fd = os.open(p, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    fsync_dir(folder)


def hf_config(n_layer: int, n_head: int, n_embd: int, block_size: int, dropout: float = 0.0) -> dict[str, Any]:
    """config.json of transformers' GPT2LMHeadModel computing what wikigpt's GPT computes."""
    import transformers

    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": N_VOCAB,
        "n_positions": block_size,
        "n_embd": n_embd,
        "n_layer": n_layer,
        "n_head": n_head,
        "n_inner": None,  # 4 * n_embd
        "activation_function": "gelu",  # exact erf GELU, as model.py's nn.GELU() (GPT-2's "gelu_new" is tanh)
        "layer_norm_epsilon": LN_EPS,
        "resid_pdrop": dropout,
        "embd_pdrop": dropout,
        "attn_pdrop": dropout,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "scale_attn_by_inverse_layer_idx": False,
        "reorder_and_upcast_attn": False,
        "add_cross_attention": False,
        "tie_word_embeddings": True,
        "use_cache": True,
        "bos_token_id": EOT,
        "eos_token_id": EOT,
        "torch_dtype": "float32",  # transformers 4.x's name
        "dtype": "float32",  # 5.x's
        "transformers_version": transformers.__version__,
    }


_WIKIPEDIA_LICENSE = """The training text is Wikipedia's, © its authors and licensed under the Creative Commons
Attribution-ShareAlike license (CC BY-SA 3.0 / 4.0, https://creativecommons.org/licenses/by-sa/4.0/); each page's
authors are in its history on Wikipedia. Text this model generates may reproduce passages of it."""


def _model_card(name: str, source: str, ckpt: dict[str, Any], n_layer: int, n_head: int, n_embd: int,
                block_size: int, bias: bool, vocab_size: int, n_params: int) -> str:
    """README.md: what the model is, what the checkpoint says about its training, how to load it, and the text's
    license. A nanoGPT checkpoint records only a dataset name, so its card claims no Wikipedia."""
    wikigpt = bool(ckpt.get("wikigpt_version"))
    facts = []
    if wikigpt:
        facts.append(f"- trained with wikigpt {ckpt['wikigpt_version']}")
    else:
        dataset = (ckpt.get("config") or {}).get("dataset") if isinstance(ckpt.get("config"), dict) else None
        facts.append("- trained with nanoGPT" + (f", dataset {dataset!r}" if dataset else ""))
    if ckpt.get("parts_seen"):
        facts.append(f"- Wikipedia dump parts trained on: {', '.join(map(str, ckpt['parts_seen']))}")
    if ckpt.get("tokens_seen") is not None:
        facts.append(f"- tokens seen: {int(ckpt['tokens_seen']):,}")
    if ckpt.get("iter_num") is not None:
        facts.append(f"- optimizer steps: {int(ckpt['iter_num']):,}")
    if ckpt.get("best_val_loss") is not None and float(ckpt["best_val_loss"]) != float("inf"):
        facts.append(f"- best validation loss: {float(ckpt['best_val_loss']):.4f}")
    trained = "\n".join(facts)
    notes = ['- The MLP uses the exact (erf) GELU, so config.json says `"activation_function": "gelu"`, not '
             'GPT-2\'s tanh approximation `"gelu_new"`.']
    if not bias:
        notes.append("- It was trained without biases (bias=False); HF's GPT-2 always has them, so they are written "
                     "as zeros.")
    if vocab_size > N_VOCAB:
        notes.append(f"- It was trained with the vocabulary padded to {vocab_size} ids (faster on GPUs); the padding "
                     f"rows, which no token uses, are cut off here, leaving GPT-2's {N_VOCAB} ids.")
    differences = "\n".join(notes)
    tags = "\n".join(f"- {t}" for t in ["gpt2", "wikigpt"] + (["wikipedia"] if wikigpt else []))
    on_what = "on Wikipedia article text with wikigpt" if wikigpt else "with nanoGPT"
    license_note = _WIKIPEDIA_LICENSE if wikigpt else (
        "The checkpoint does not record what text it was trained on beyond the dataset name above: the license of "
        "that text applies. If it is Wikipedia's (e.g. a `wikigpt export-nanogpt` dataset): " + _WIKIPEDIA_LICENSE)
    return f"""---
library_name: transformers
pipeline_tag: text-generation
tags:
{tags}
---

# {name}

A GPT-2-architecture language model ({fmt_count(n_params)} parameters: {n_layer} layers, {n_head} heads, width
{n_embd}, a context of {block_size} tokens) trained {on_what}, exported from `{source}` by `wikigpt export-hf`. It
reads and writes GPT-2's BPE tokens; the tokenizer files are included.

## Training

{trained}

## Use

```python
from transformers import AutoModelForCausalLM, AutoTokenizer

tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")
model = AutoModelForCausalLM.from_pretrained("path/to/this/folder")
ids = tokenizer("Anarchism is", return_tensors="pt").input_ids
print(tokenizer.decode(model.generate(ids, max_new_tokens=40, do_sample=True, top_k=200)[0]))
```

## Differences from OpenAI's GPT-2

{differences}

## License

{license_note}
"""


def _check_outdir(outdir: Path, overwrite: bool) -> None:
    if outdir.exists() and not outdir.is_dir():
        raise ConfigError(f"{outdir}: exists and is not a folder")
    if (outdir / "ckpt.pt").exists():  # a run folder: its config.json is the run's, not a model's
        raise ConfigError(f"{outdir}: is a run folder (it holds ckpt.pt); export into another folder")
    if outdir.is_dir() and any(outdir.iterdir()) and not overwrite:
        raise ConfigError(f"{outdir}: folder exists and is not empty; pass --overwrite to replace its model files")


def _export(source: str | os.PathLike, outdir: str | os.PathLike, overwrite: bool) -> tuple[Path, int]:
    _require("transformers", "safetensors", what="export-hf")
    from safetensors.torch import save_file

    from .checkpoint import load_checkpoint, resolve_checkpoint_path
    from .model import check_gpt2_vocab, config_from_model_args, model_from_checkpoint

    out = Path(outdir)
    _check_outdir(out, overwrite)  # before the (slow) load, and again before anything moves
    src = str(source)
    ckpt_path = resolve_checkpoint_path(source)
    ckpt = load_checkpoint(ckpt_path, map_location="cpu")
    cfg = config_from_model_args(ckpt["model_args"], src)
    check_gpt2_vocab(cfg, src)  # our tokenizer files would not fit another vocabulary
    # model_from_checkpoint checks names and shapes (one CheckpointError line), and its state_dict is the clean one
    sd = model_from_checkpoint(ckpt, src).state_dict()
    tensors = to_hf_state_dict(sd, cfg.n_layer, cfg.n_embd, cfg.block_size)
    del sd
    n_params = sum(t.numel() for t in tensors.values())

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        _write_json(tmp / "config.json", hf_config(cfg.n_layer, cfg.n_head, cfg.n_embd, cfg.block_size, cfg.dropout))
        _write_json(tmp / "generation_config.json", {"bos_token_id": EOT, "eos_token_id": EOT, "pad_token_id": EOT})
        save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        _write_tokenizer(tmp, cfg.block_size)
        name = ckpt_path.parent.name if ckpt_path.name == "ckpt.pt" else ckpt_path.stem
        _write_text(tmp / "README.md", _model_card(out.name, name, ckpt, cfg.n_layer, cfg.n_head, cfg.n_embd,
                                                   cfg.block_size, cfg.bias, cfg.vocab_size, n_params))
        _fsync_files(tmp)
        _check_outdir(out, overwrite)
        if out.is_dir() and any(out.iterdir()):
            # --overwrite: replace our files one by one (each rename is atomic) and keep the others, e.g. the .git
            # of a clone of the model's hub repository
            for p in sorted(tmp.iterdir()):
                os.replace(p, out / p.name)
            fsync_dir(out)
            tmp.rmdir()
        else:
            if out.is_dir():
                out.rmdir()  # empty: rename() onto it works on Linux, not everywhere
            os.replace(tmp, out)
        fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out, n_params


def export_hf(source: str | os.PathLike, outdir: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a transformers GPT-2 folder (config.json, generation_config.json, model.safetensors, the GPT-2 tokenizer
    files, README.md) from `source`: a run folder, a wikigpt checkpoint or a nanoGPT ckpt.pt.

    Everything is written and fsynced in a temp folder beside `outdir`, then renamed into place, so a failed export
    leaves nothing under `outdir`. An existing non-empty `outdir` is refused unless `overwrite`; then the files of
    the export replace theirs, and other files stay. Returns `outdir`. Raises CheckpointError for an unusable
    checkpoint, ConfigError for an outdir it will not write, MissingExtraError without transformers/safetensors."""
    return _export(source, outdir, overwrite)[0]


# ---- import ---------------------------------------------------------------------------------------------------------


def _read_hf_config(folder: Path, source: str) -> dict[str, Any]:
    path = folder / "config.json"
    try:
        cfg = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{source}: no config.json (not a Hugging Face model folder)") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{source}: config.json is not readable JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise CheckpointError(f"{source}: config.json holds a {type(cfg).__name__}, expected an object")
    return cfg


def is_hf_folder(path: str | os.PathLike) -> bool:
    """Whether `path` is a Hugging Face model folder: a config.json that names a `model_type`. A run folder has a
    config.json too (the training config, no model_type) and its ckpt.pt wins: it holds more than the weights."""
    p = Path(path)
    if not p.is_dir() or (p / "ckpt.pt").exists():
        return False
    try:
        cfg = json.loads((p / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    return isinstance(cfg, dict) and "model_type" in cfg


def _read_weights(folder: Path, source: str) -> dict[str, torch.Tensor]:
    """The tensors of the first weight file transformers would read (a single file or an index of shards)."""
    import torch

    found = next((folder / n for n in _WEIGHT_FILES if (folder / n).is_file()), None)
    if found is None:
        raise CheckpointError(f"{source}: no weights: neither model.safetensors nor pytorch_model.bin in the folder")
    files = [found]
    if found.name.endswith(".index.json"):
        try:
            weight_map = json.loads(found.read_text(encoding="utf-8"))["weight_map"]
            files = [folder / n for n in dict.fromkeys(weight_map.values())]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise CheckpointError(f"{source}: {found.name} is not a transformers weight index ({e})") from None
    tensors: dict[str, torch.Tensor] = {}
    for f in files:
        if not f.is_file():
            raise CheckpointError(f"{source}: {found.name} names {f.name}, which is missing")
        if f.suffix == ".safetensors":
            _require("safetensors", what=f"reading {f.name}")
            from safetensors.torch import load_file

            try:
                tensors.update(load_file(str(f), device="cpu"))
            except Exception as e:  # safetensors' own error type, or OSError, for a damaged file
                raise CheckpointError(f"{source}: {f.name} is not a readable safetensors file ({e})") from None
        else:
            try:
                part = torch.load(f, map_location="cpu", weights_only=True)
            except Exception as e:  # as checkpoint.load_checkpoint: a damaged file fails in many ways inside torch
                why = str(e).splitlines()[0] if str(e) else type(e).__name__
                raise CheckpointError(f"{source}: {f.name} is not a readable weights file ({why})") from None
            if not isinstance(part, dict) or not all(isinstance(v, torch.Tensor) for v in part.values()):
                raise CheckpointError(f"{source}: {f.name} does not hold a state_dict of tensors")
            tensors.update(part)
    return tensors


def load_hf_gpt2(folder: str | os.PathLike, *, source: str | None = None) -> dict[str, Any]:
    """Read a transformers GPT-2 folder (config.json + model.safetensors or pytorch_model.bin, e.g. a downloaded
    `gpt2` or an `export-hf` folder) as a checkpoint dict: {"model": state_dict in wikigpt's names and layout,
    "model_args": nanoGPT's model_args}, weights only, as nanoGPT's init_from='gpt2'. Feed it to
    model_from_checkpoint. Anything wikigpt's GPT cannot compute (another model type or activation, other attention
    scaling, a vocabulary that is not GPT-2's, tensors that do not fit the config) is one CheckpointError line."""
    p = Path(folder)
    src = source or str(folder)
    if not p.is_dir():
        raise CheckpointError(f"{src}: not a folder (a Hugging Face model is a folder with config.json)")
    hc = _read_hf_config(p, src)
    model_type = hc.get("model_type")
    if model_type != "gpt2":
        what = f"a {model_type!r} model" if model_type else "a config.json without model_type"
        raise CheckpointError(f"{src}: {what}, not GPT-2 (model_type 'gpt2'): wikigpt's GPT only reads GPT-2")
    # defaults as transformers' GPT2Config, for configs that leave fields out
    try:
        n_layer, n_head, n_embd = int(hc.get("n_layer", 12)), int(hc.get("n_head", 12)), int(hc.get("n_embd", 768))
        n_positions, vocab_size = int(hc.get("n_positions", 1024)), int(hc.get("vocab_size", 50257))
        eps = float(hc.get("layer_norm_epsilon", 1e-5))
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{src}: bad config.json: {e}") from None
    act = hc.get("activation_function", "gelu_new")
    problems = []
    if act not in _GELUS:
        problems.append(f"activation_function {act!r} (wikigpt's MLP is GELU: {', '.join(_GELUS)})")
    if abs(eps - LN_EPS) > 1e-12:
        problems.append(f"layer_norm_epsilon {eps:g} (wikigpt's LayerNorm uses {LN_EPS:g})")
    if hc.get("n_inner") not in (None, 4 * n_embd):
        problems.append(f"n_inner {hc['n_inner']} (wikigpt's MLP is 4 * n_embd = {4 * n_embd} wide)")
    if not hc.get("scale_attn_weights", True) or hc.get("scale_attn_by_inverse_layer_idx", False):
        problems.append("attention scores not scaled by 1/sqrt(head size) alone")
    if hc.get("add_cross_attention", False):
        problems.append("cross-attention layers")
    if vocab_size < N_VOCAB:
        problems.append(f"a vocabulary of {vocab_size} ids, fewer than GPT-2's {N_VOCAB}")
    if n_head < 1 or n_embd % n_head:
        problems.append(f"n_embd {n_embd} not a multiple of n_head {n_head}")
    if problems:
        raise CheckpointError(f"{src}: a GPT-2 variant wikigpt's GPT cannot compute: {'; '.join(problems)}")

    raw = _read_weights(p, src)
    from .checkpoint import clean_state_dict
    from .model import weight_mismatches

    raw = clean_state_dict(raw)  # `_orig_mod.` / `module.` prefixes, mask buffers
    sd = {(k if k.startswith("transformer.") or k == "lm_head.weight" else "transformer." + k): v
          for k, v in raw.items()}
    found = weight_mismatches(sd, hf_shapes(n_layer, n_embd, n_positions, vocab_size), "file vs config.json",
                              optional=("lm_head.weight",))
    if found:
        raise CheckpointError(f"{src}: weights do not match config.json: {', '.join(found)}")
    model_args = dict(n_layer=n_layer, n_head=n_head, n_embd=n_embd, block_size=n_positions, bias=True,
                      vocab_size=vocab_size, dropout=0.0)
    return {"model": from_hf_state_dict(sd, src), "model_args": model_args}


# ---- CLI ------------------------------------------------------------------------------------------------------------


def _cmd_export_hf(args: argparse.Namespace) -> int:
    out, n_params = _export(args.run, args.outdir, args.overwrite)
    size = sum(p.stat().st_size for p in out.iterdir() if p.is_file())
    print(f"wrote {out} (transformers GPT-2: model.safetensors, config.json, tokenizer, README.md): "
          f"{fmt_count(n_params)} params, {human_bytes(size)}")
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser("export-hf", help="write a Hugging Face transformers GPT-2 folder from a checkpoint",
                       description="Write a transformers GPT-2 folder (weights, config, GPT-2 tokenizer, model card) "
                                   "that AutoModelForCausalLM and AutoTokenizer load, from a run folder, a wikigpt "
                                   "checkpoint or a nanoGPT ckpt.pt.")
    p.add_argument("run", metavar="RUN", help="run folder, wikigpt checkpoint or nanoGPT ckpt.pt")
    p.add_argument("outdir", metavar="OUTDIR", help="folder to write (created; refused if not empty, see --overwrite)")
    p.add_argument("--overwrite", action="store_true",
                   help="write into a non-empty OUTDIR, replacing the files of a previous export (others stay)")
    p.set_defaults(func=_cmd_export_hf)
