"""The Rust GPT-2 encoder (fast path) against Python tiktoken built offline from the same ranks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import wikigpt
from wikigpt import _core


@pytest.fixture(scope="module")
def enc():
    return wikigpt.tokenizer()


def ours(texts, threads=2):
    return [a.tolist() for a in wikigpt.encode_batch(texts, threads=threads)]


def test_offline_tiktoken_is_gpt2(enc):
    assert enc.n_vocab == 50257
    assert enc.eot_token == 50256
    # Golden ids from GPT-2's published tokenizer.
    assert enc.encode_ordinary("Hello world") == [15496, 995]
    assert ours(["Hello world"]) == [[15496, 995]]


def test_every_article_of_the_sample(enc, sample_bz2):
    arts = [t[5] for t in _core.extract_all(str(sample_bz2), 2)]
    titles = [t[3] for t in _core.extract_all(str(sample_bz2), 2)]
    assert len(arts) >= 100
    texts = arts + titles
    assert ours(texts) == [enc.encode_ordinary(t) for t in texts]


def test_raw_wikitext_of_the_sample(enc, sample_xml):
    # Raw markup is a harder input than clean prose (runs of punctuation, braces, entities).
    import re

    raw = [m.decode() for m in re.findall(rb"<text[^>]*>(.*?)</text>", sample_xml, re.S)][:80]
    assert ours(raw) == [enc.encode_ordinary(t) for t in raw]


NON_ENGLISH = [
    "Größenverhältnisse der Straße — „Anführungszeichen“ und Äpfel.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "日本語のテキストと中文文本，还有한국어 텍스트。",
    "Emoji: 👩‍👩‍👧‍👦 👍🏽 🇩🇪 ❤️ and text.",
    "العربية  हिन्दी  ไทย  עברית",
    "tabs\tand\n\nnewlines   \u00a0nbsp\u2028sep\u3000ideo",
    "I'm sure you'll see they've said it's 'quoted' IT'S LOUD",
    "1234567890 3.14159 1,000,000 12th 1990s",
    "literal <|endoftext|> inside an article is ordinary text",
    "   leading and trailing   ",
    "",
]


def test_non_english_and_edge_cases(enc):
    assert ours(NON_ENGLISH) == [enc.encode_ordinary(t) for t in NON_ENGLISH]


def test_endoftext_literal_is_ordinary(enc):
    ids = ours(["a <|endoftext|> b"])[0]
    assert 50256 not in ids
    assert enc.decode(ids) == "a <|endoftext|> b"


def test_thread_count_does_not_change_output(enc):
    texts = NON_ENGLISH * 20
    assert ours(texts, threads=1) == ours(texts, threads=3)


def test_returns_uint16_arrays():
    (a,) = wikigpt.encode_batch(["Hello world"])
    assert a.dtype == np.uint16


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(), min_size=1, max_size=8))
def test_hypothesis_any_unicode(enc, texts):
    assert ours(texts) == [enc.encode_ordinary(t) for t in texts]


_tricky = st.sampled_from(
    [" ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u0085", "\u2028", "\u3000", "'s", "'S", "'ll", "'", "a", "Z", "é",
     "ß", "中", "7", "42", "٣", "½", ".", "...", "!?", "-", "—", "(", ")", "{{", "}}", "[[", "]]", "\u0301", "👍",
     "\u200d", "<|endoftext|>", "x"]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_tricky, min_size=0, max_size=40).map("".join))
def test_hypothesis_adversarial_pieces(enc, text):
    assert ours([text]) == [enc.encode_ordinary(text)]
