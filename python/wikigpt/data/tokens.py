"""GPT-2 tokens: a fast Rust encoder (identical to tiktoken's r50k_base) and an offline `tiktoken.Encoding`.

Nothing here downloads anything: the ranks ship inside the extension (the tiktoken-rs crate embeds r50k_base), and
`tokenizer()` builds the `tiktoken.Encoding` from them, so decoding samples works with no network.
"""

from __future__ import annotations

import functools
import os
from typing import Optional, Sequence

import numpy as np

EOT = 50256
N_VOCAB = 50257

# tiktoken's r50k_base/gpt2 split pattern (tiktoken_ext/openai_public.py): equivalent to the original GPT-2 pattern
# `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, written to run faster.
GPT2_PAT_STR = r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""


@functools.lru_cache(maxsize=1)
def gpt2_ranks() -> dict:
    """{token bytes: rank} for GPT-2, from the extension (50,256 mergeable tokens)."""
    from .. import _core

    return dict(_core.gpt2_ranks())


@functools.lru_cache(maxsize=1)
def tokenizer():
    """A `tiktoken.Encoding` for GPT-2 (r50k_base) built offline. Needs the `tiktoken` package."""
    try:
        import tiktoken
    except ImportError:
        raise ImportError("wikigpt.tokenizer() needs tiktoken: pip install tiktoken") from None
    return tiktoken.Encoding(
        name="gpt2",
        pat_str=GPT2_PAT_STR,
        mergeable_ranks=gpt2_ranks(),
        special_tokens={"<|endoftext|>": EOT},
        explicit_n_vocab=N_VOCAB,
    )


def encode_batch(texts: Sequence[str], threads: Optional[int] = None) -> list:
    """Encode texts with the fast Rust encoder on `threads` threads (GIL released).

    Returns one uint16 array per text, equal to tiktoken's `encode_ordinary` (a literal "<|endoftext|>" inside a
    text is ordinary text). No EOT is added here; datasets put EOT before each document.
    """
    from .. import _core

    if isinstance(texts, str):
        raise TypeError("encode_batch takes a list of strings, not one string")
    raw = _core.encode_batch(list(texts), threads or os.cpu_count() or 2)
    return [np.frombuffer(b, dtype="<u2") for b in raw]


def decode(tokens) -> str:
    """Token ids → text (invalid UTF-8 from a cut-off token is replaced, as tiktoken does)."""
    return tokenizer().decode([int(t) for t in tokens if int(t) < N_VOCAB])
