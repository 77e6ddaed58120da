"""Hugging Face transformers GPT-2 folders (training/hf.py), checked with transformers itself: an exported tiny model
gives wikigpt's logits in AutoModelForCausalLM and generates; AutoTokenizer encodes the real sample as wikigpt's
encoder and tiktoken do; a nanoGPT ckpt.pt exports the same way; a GPT2LMHeadModel made by transformers loads into
wikigpt's GPT with its logits (both key layouts, both weight formats); what cannot work is one line, and the CLI
writes nothing then."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch

import wikigpt
import wikigpt.data
from wikigpt import cli
from wikigpt.errors import CheckpointError, ConfigError
from wikigpt.training import hf
from wikigpt.training.checkpoint import save_checkpoint
from wikigpt.training.model import GPT, GPTConfig, model_from_checkpoint

# never download: every folder here is made by the test (set before transformers, which reads them on import)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
transformers = pytest.importorskip("transformers")
pytest.importorskip("safetensors")

TINY = dict(n_layer=2, n_head=2, n_embd=64, block_size=64)
EXPORTED = ["README.md", "config.json", "generation_config.json", "merges.txt", "model.safetensors",
            "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.json"]


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    """The first articles of the bundled real sample (Anarchism, Autism, ...): prose, lists, numbers, non-ASCII."""
    texts = []
    for article in wikigpt.iter_articles(wikigpt.data.SAMPLE):
        texts.append(article.text)
        if len(texts) == 8:
            break
    return texts


@pytest.fixture(scope="module")
def sample_tokens(sample_texts) -> torch.Tensor:
    """(2, 64) token ids of real text: two windows of the first article."""
    ids = wikigpt.encode_batch(sample_texts[:1])[0].astype("int64")
    return torch.from_numpy(ids[: 2 * 64].copy()).view(2, 64)


def jitter(model: torch.nn.Module, seed: int) -> None:
    """Random biases and LayerNorm gains (init leaves them 0 and 1), so a bias or gain mapped to the wrong place, or
    a weight left untransposed, changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def tiny_checkpoint(path: Path, bias: bool = True, seed: int = 0, **extra) -> GPT:
    """A tiny wikigpt model saved as a checkpoint (wikigpt's keys beside nanoGPT's), returned in eval mode."""
    torch.manual_seed(seed)
    m = GPT(GPTConfig(**TINY, bias=bias))
    jitter(m, seed)
    ckpt = {"model": m.state_dict(), "model_args": m.config.model_args(), "iter_num": 12, "best_val_loss": 7.5,
            "wikigpt_version": wikigpt.__version__, "parts_seen": ["enwiki-20160101-pages-articles1"],
            "tokens_seen": 3072, **extra}
    path.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint(path, ckpt)
    return m.eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[Path, GPT]:
    """One tiny model exported once (the tokenizer tests share it)."""
    d = tmp_path_factory.mktemp("hf")
    m = tiny_checkpoint(d / "run" / "ckpt.pt")
    return hf.export_hf(d / "run", d / "out"), m


def hf_logits(folder: Path, x: torch.Tensor) -> torch.Tensor:
    model = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        return model(x).logits


def error_line(capsys) -> str:
    from conftest import one_error_line

    return one_error_line(capsys.readouterr().err)


# ---- export -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bias", [True, False])
def test_export_gives_wikigpts_logits_and_generates(tmp_path, sample_tokens, bias):
    m = tiny_checkpoint(tmp_path / "c.pt", bias=bias)
    out = hf.export_hf(tmp_path / "c.pt", tmp_path / "out")
    assert out == tmp_path / "out" and sorted(p.name for p in out.iterdir()) == EXPORTED
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.pt", "out"]  # no temp folder left beside it

    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model_type"], cfg["architectures"], cfg["activation_function"]) == ("gpt2", ["GPT2LMHeadModel"],
                                                                                     "gelu")
    assert (cfg["n_layer"], cfg["n_head"], cfg["n_embd"], cfg["n_positions"], cfg["vocab_size"]) == (2, 2, 64, 64,
                                                                                                      50257)
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["layer_norm_epsilon"]) == (50256, 50256, 1e-5)

    model = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
    assert isinstance(model, transformers.GPT2LMHeadModel)
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # tied again on load
    if not bias:
        assert model.transformer.h[0].attn.c_attn.bias.abs().max().item() == 0.0
    with torch.no_grad():
        want = m.logits(sample_tokens)[..., :50257]  # the padding ids are not exported
        torch.testing.assert_close(model(sample_tokens).logits, want, atol=1e-4, rtol=0)
        # greedy generation: transformers and wikigpt pick the same tokens
        prompt = sample_tokens[:1, :8]
        got = model.generate(prompt, max_new_tokens=4, do_sample=False, attention_mask=torch.ones_like(prompt),
                             pad_token_id=50256)
    assert got.shape == (1, 12)
    assert got.tolist() == m.generate(prompt, 4, temperature=0, vocab_limit=50257).tolist()

    card = (out / "README.md").read_text()
    assert "tokens seen: 3,072" in card and "enwiki-20160101-pages-articles1" in card and "CC BY-SA" in card
    assert ("trained without biases" in card) == (not bias)


def test_export_of_a_nanogpt_checkpoint(tmp_path, sample_tokens):
    """nanoGPT's ckpt.pt as its train.py saves it: `_orig_mod.` keys of a compiled model and, without flash
    attention, the `attn.bias` causal-mask buffers."""
    from nanogpt_reference import RefConfig, RefGPT, write_nanogpt_checkpoint

    torch.manual_seed(4)
    ref = RefGPT(RefConfig(**TINY, vocab_size=50304), flash=False)
    jitter(ref, 4)
    (tmp_path / "out").mkdir()
    written = write_nanogpt_checkpoint(tmp_path / "out" / "ckpt.pt", ref, iter_num=5, compiled=True)
    assert any(k.startswith("_orig_mod.") and k.endswith(".attn.bias") for k in written["model"])
    folder = hf.export_hf(tmp_path / "out", tmp_path / "hf")
    ref.eval()
    with torch.no_grad():
        want = ref(sample_tokens, sample_tokens)[0][..., :50257]  # with targets: logits at every position
    torch.testing.assert_close(hf_logits(folder, sample_tokens), want, atol=1e-4, rtol=0)
    card = (folder / "README.md").read_text()
    assert "trained with nanoGPT, dataset 'openwebtext'" in card and "optimizer steps: 5" in card
    assert "- wikipedia" not in card  # its checkpoint does not say what the text was


def test_exported_folder_loads_back_with_the_same_logits(exported, sample_tokens):
    out, m = exported
    assert hf.is_hf_folder(out)
    ckpt = hf.load_hf_gpt2(out)
    assert ckpt["model_args"] == dict(n_layer=2, n_head=2, n_embd=64, block_size=64, bias=True, vocab_size=50257,
                                      dropout=0.0)
    back = model_from_checkpoint(ckpt, str(out)).eval()
    with torch.no_grad():
        torch.testing.assert_close(back.logits(sample_tokens), m.logits(sample_tokens)[..., :50257], atol=1e-5,
                                   rtol=0)


# ---- tokenizer --------------------------------------------------------------------------------------------------

TRICKY = ["Hello world", "  two spaces,\n\nand a blank line\n", "It's 1,300 mi (2,100 km) in 2016.", "naïve café",
          "日本語のテキスト", "emoji 😀 and a tab\tthen    four spaces", "'s 're 've 'll 'd 'm 't", "x" * 300, " \n \n"]


def test_tokenizer_merges_recovered_from_the_ranks(exported):
    out, _ = exported
    vocab = json.loads((out / "vocab.json").read_text(encoding="utf-8"))
    merges = (out / "merges.txt").read_text(encoding="utf-8").splitlines()
    assert len(vocab) == 50257 and vocab["<|endoftext|>"] == 50256 and sorted(vocab.values()) == list(range(50257))
    assert merges[0] == "#version: 0.2" and len(merges) == 1 + 50000
    assert merges[1] == "Ġ t" and vocab["Ġt"] == 256  # GPT-2's first merge: " t"
    # every merge makes the token of the next id, from two tokens of lower ids
    for i, line in enumerate(merges[1:]):
        a, b = line.split(" ")
        assert vocab[a + b] == 256 + i and vocab[a] < 256 + i and vocab[b] < 256 + i


@pytest.mark.parametrize("files", ["tokenizer.json", "vocab+merges"])
def test_tokenizer_encodes_like_wikigpt_and_tiktoken(exported, sample_texts, tmp_path, files):
    out, _ = exported
    folder = out
    if files == "vocab+merges":  # transformers builds the fast tokenizer from vocab.json and merges.txt alone
        folder = tmp_path / "tok"
        folder.mkdir()
        for name in ("vocab.json", "merges.txt", "tokenizer_config.json", "special_tokens_map.json"):
            shutil.copy(out / name, folder / name)
    tok = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(tok) == 50257 and tok.eos_token_id == 50256 and tok.bos_token_id == 50256
    assert tok.model_max_length == 64
    tiktoken_gpt2 = wikigpt.tokenizer()
    texts = sample_texts + TRICKY
    ours = wikigpt.encode_batch(texts)
    for text, want in zip(texts, ours):
        ids = tok(text)["input_ids"]
        assert ids == want.tolist() == tiktoken_gpt2.encode_ordinary(text), text[:60]
        assert tok.decode(ids) == text
    # the same class by name, as scripts load it
    assert transformers.GPT2TokenizerFast.from_pretrained(folder)(texts[0])["input_ids"] == ours[0].tolist()
    assert tok("<|endoftext|>")["input_ids"] == [50256]  # transformers' special token (wikigpt encodes text as text)


# ---- import -----------------------------------------------------------------------------------------------------


def hf_tiny(tmp_path: Path, activation: str = "gelu", seed: int = 5):
    """A random tiny GPT2LMHeadModel made by transformers, its biases and gains jittered."""
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=64, n_positions=64, vocab_size=50257,
                                  activation_function=activation)
    model = transformers.GPT2LMHeadModel(cfg)
    jitter(model, seed)
    return model.eval()


@pytest.mark.parametrize("layout, fmt, activation", [
    ("transformer.", "safetensors", "gelu"),  # what save_pretrained writes
    ("bare", "safetensors", "gelu"),  # the original `gpt2` repository's names (h.0..., wte...), mask buffers in
    ("bare", "bin", "gelu"),  # its pytorch_model.bin
    ("transformer.", "safetensors", "gelu_new"),  # GPT-2's tanh GELU, computed as erf GELU (nanoGPT does the same)
])
def test_transformers_gpt2_loads_into_wikigpt(tmp_path, sample_tokens, layout, fmt, activation):
    model = hf_tiny(tmp_path, activation)
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    if layout == "bare" or fmt == "bin":
        sd = {k.removeprefix("transformer."): v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
        for i in range(2):  # the constants older transformers saved with every block
            sd[f"h.{i}.attn.bias"] = torch.tril(torch.ones(64, 64)).view(1, 1, 64, 64)
            sd[f"h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        (folder / "model.safetensors").unlink()
        if fmt == "bin":
            torch.save(sd, folder / "pytorch_model.bin")
        else:
            from safetensors.torch import save_file

            save_file(sd, str(folder / "model.safetensors"), metadata={"format": "pt"})
    assert hf.is_hf_folder(folder)
    ckpt = hf.load_hf_gpt2(folder)
    ours = model_from_checkpoint(ckpt, str(folder)).eval()
    assert ours.config.vocab_size == 50257 and ours.config.bias
    with torch.no_grad():
        want = model(sample_tokens).logits
        # erf against tanh GELU: at most 5e-4 apart per activation, far less at this model's small activations
        torch.testing.assert_close(ours.logits(sample_tokens), want, atol=1e-4 if activation == "gelu" else 1e-3,
                                   rtol=0)


def test_sharded_weights_load(tmp_path, sample_tokens):
    """Big models come as shards named by model.safetensors.index.json."""
    from safetensors.torch import save_file

    model = hf_tiny(tmp_path)
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    (folder / "model.safetensors").unlink()
    sd = {k: v.clone() for k, v in model.state_dict().items() if k != "lm_head.weight"}
    names = sorted(sd)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2 :]}
    for shard, keys in shards.items():
        save_file({k: sd[k] for k in keys}, str(folder / shard), metadata={"format": "pt"})
    weight_map = {k: shard for shard, keys in shards.items() for k in keys}
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    ours = model_from_checkpoint(hf.load_hf_gpt2(folder), str(folder)).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours.logits(sample_tokens), model(sample_tokens).logits, atol=1e-4, rtol=0)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors.index.json names model-00002-of-00002.safetensors, "
                                              "which is missing"):
        hf.load_hf_gpt2(folder)


def test_init_from_an_hf_folder(exported, sample_dataset, tmp_path):
    """`wikigpt train --init-from FOLDER`: the run starts from the folder's weights (its first evaluation is theirs)."""
    from wikigpt.training.loader import evaluate
    from wikigpt.training.trainer import TrainConfig, train

    out, _ = exported
    res = train(TrainConfig(dataset=str(sample_dataset), out=str(tmp_path / "run"), init_from=str(out), batch_size=2,
                            gradient_accumulation_steps=1, max_iters=1, eval_interval=100, eval_iters=1, lr=3e-3,
                            warmup_iters=1, sample_tokens=0, device="cpu", seed=1))
    records = map(json.loads, (res.run_dir / "metrics.jsonl").read_text().splitlines())
    first = next(r for r in records if r["kind"] == "eval")
    m = model_from_checkpoint(hf.load_hf_gpt2(out), str(out))
    assert first["step"] == 0
    assert evaluate(m, sample_dataset, iters=1, batch_size=2, seed=1)["val"] == pytest.approx(first["val_loss"],
                                                                                             rel=1e-6)


def test_untied_head_is_refused(tmp_path):
    model = hf_tiny(tmp_path)
    folder = tmp_path / "gpt2"
    model.save_pretrained(folder)
    from safetensors.torch import load_file, save_file

    sd = load_file(str(folder / "model.safetensors"))
    sd["lm_head.weight"] = sd["transformer.wte.weight"] + 1
    save_file(sd, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="lm_head is not tied to wte"):
        hf.load_hf_gpt2(folder)


# ---- refusals ---------------------------------------------------------------------------------------------------


def refused_by_sample(capsys, folder: Path) -> str:
    """`wikigpt sample FOLDER` (which reads through load_hf_gpt2): exit 1, one error line, nothing written."""
    before = sorted(p.name for p in folder.parent.rglob("*"))
    assert cli.main(["sample", str(folder), "--tokens", "1", "--device", "cpu"]) == 1
    assert sorted(p.name for p in folder.parent.rglob("*")) == before
    return error_line(capsys)


def test_refuses_another_model_type(tmp_path, capsys):
    llama = tmp_path / "llama"
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                   num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32)
    transformers.LlamaForCausalLM(cfg).save_pretrained(llama)
    msg = f"{llama}: a 'llama' model, not GPT-2 (model_type 'gpt2'): wikigpt's GPT only reads GPT-2"
    with pytest.raises(CheckpointError) as e:
        hf.load_hf_gpt2(llama)
    assert str(e.value) == msg
    assert refused_by_sample(capsys, llama) == f"wikigpt: error: {msg}"

    bert = tmp_path / "bert"
    bert.mkdir()
    (bert / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    assert hf.is_hf_folder(bert)
    with pytest.raises(CheckpointError, match=r"a 'bert' model, not GPT-2"):
        hf.load_hf_gpt2(bert)
    assert "a 'bert' model, not GPT-2" in refused_by_sample(capsys, bert)


def test_refuses_a_folder_without_weights(exported, tmp_path, capsys):
    out, _ = exported
    folder = tmp_path / "noweights"
    folder.mkdir()
    shutil.copy(out / "config.json", folder / "config.json")
    msg = f"{folder}: no weights: neither model.safetensors nor pytorch_model.bin in the folder"
    with pytest.raises(CheckpointError) as e:
        hf.load_hf_gpt2(folder)
    assert str(e.value) == msg
    assert refused_by_sample(capsys, folder) == f"wikigpt: error: {msg}"


@pytest.mark.parametrize("change, message", [
    ({"n_embd": 128}, "weights do not match config.json: shapes differ: transformer.wte.weight (50257, 64) vs "
                      "(50257, 128)"),
    ({"n_layer": 3}, "weights do not match config.json: missing 12 tensors (e.g. transformer.h.2.ln_1.weight"),
    ({"activation_function": "relu"}, "a GPT-2 variant wikigpt's GPT cannot compute: activation_function 'relu'"),
    ({"vocab_size": 65}, "a vocabulary of 65 ids, fewer than GPT-2's 50257"),
    ({"scale_attn_by_inverse_layer_idx": True}, "attention scores not scaled by 1/sqrt(head size) alone"),
    ({"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon 1e-06 (wikigpt's LayerNorm uses 1e-05)"),
])
def test_refuses_what_wikigpts_gpt_cannot_compute(exported, tmp_path, change, message):
    out, _ = exported
    folder = tmp_path / "changed"
    shutil.copytree(out, folder)
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(change)
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError) as e:
        hf.load_hf_gpt2(folder)
    assert str(e.value).startswith(f"{folder}: ") and message in str(e.value) and "\n" not in str(e.value)


def test_run_folder_is_not_an_hf_folder(tmp_path):
    """A run folder's config.json is the training config: its ckpt.pt is what --init-from and sample read."""
    tiny_checkpoint(tmp_path / "run" / "ckpt.pt")
    (tmp_path / "run" / "config.json").write_text(json.dumps({"dataset": "data/enwiki", "preset": "tiny"}))
    assert not hf.is_hf_folder(tmp_path / "run")
    assert not hf.is_hf_folder(tmp_path / "run" / "ckpt.pt") and not hf.is_hf_folder(tmp_path / "nothing")


def test_existing_outdir_is_refused_without_overwrite(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "run" / "ckpt.pt")
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    msg = f"{out}: folder exists and is not empty; pass --overwrite to replace its model files"
    with pytest.raises(ConfigError) as e:
        hf.export_hf(tmp_path / "run", out)
    assert str(e.value) == msg
    assert cli.main(["export-hf", str(tmp_path / "run"), str(out)]) == 1
    assert error_line(capsys) == f"wikigpt: error: {msg}"
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "run"]  # no temp folder
    # into the run folder itself: refused even with --overwrite (its config.json is the run's)
    assert cli.main(["export-hf", str(tmp_path / "run"), str(tmp_path / "run"), "--overwrite"]) == 1
    assert "is a run folder (it holds ckpt.pt)" in error_line(capsys)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["ckpt.pt"]


def test_bad_source_and_missing_extra_are_one_line(tmp_path, capsys, monkeypatch):
    assert cli.main(["export-hf", str(tmp_path / "nope"), str(tmp_path / "out")]) == 1
    assert error_line(capsys) == f"wikigpt: error: {tmp_path / 'nope'}: no such checkpoint file or run folder"
    assert not (tmp_path / "out").exists()
    # a character-level nanoGPT model: GPT-2's tokenizer files would not fit it
    from nanogpt_reference import RefConfig, RefGPT, write_nanogpt_checkpoint

    (tmp_path / "char").mkdir()
    write_nanogpt_checkpoint(tmp_path / "char" / "ckpt.pt", RefGPT(RefConfig(**TINY, vocab_size=65)))
    assert cli.main(["export-hf", str(tmp_path / "char"), str(tmp_path / "out")]) == 1
    assert "its vocabulary has 65 ids, but wikigpt's data and samples are GPT-2 BPE" in error_line(capsys)
    assert not (tmp_path / "out").exists()
    shutil.rmtree(tmp_path / "char")

    import importlib.util

    real = importlib.util.find_spec

    def find_spec(name, *args):  # as if transformers were not installed
        return None if name == "transformers" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    tiny_checkpoint(tmp_path / "run" / "ckpt.pt")
    assert cli.main(["export-hf", str(tmp_path / "run"), str(tmp_path / "out")]) == 1
    assert error_line(capsys) == 'wikigpt: error: export-hf needs transformers: pip install "wikigpt[hf]"'
    assert not (tmp_path / "out").exists()


# ---- the CLI end to end -----------------------------------------------------------------------------------------


def test_cli_export_hf_of_a_trained_run(sample_dataset, tmp_path, sample_tokens, capsys):
    from wikigpt.training.trainer import TrainConfig, train

    run = tmp_path / "run"
    res = train(TrainConfig(dataset=str(sample_dataset), out=str(run), preset="tiny", batch_size=2,
                            gradient_accumulation_steps=1, max_iters=2, eval_interval=2, eval_iters=1, lr=3e-3,
                            warmup_iters=1, sample_tokens=0, device="cpu", seed=1))
    capsys.readouterr()
    assert not hf.is_hf_folder(run)
    out = tmp_path / "hf"
    assert cli.main(["export-hf", str(run), str(out)]) == 0
    line = capsys.readouterr().out.strip()
    assert "\n" not in line and line.startswith(f"wrote {out} (transformers GPT-2") and "3.3M params" in line, line
    assert sorted(p.name for p in out.iterdir()) == EXPORTED
    card = (out / "README.md").read_text()
    assert f"tokens seen: {res.tokens_seen:,}" in card and f"trained with wikigpt {wikigpt.__version__}" in card
    m = GPT.from_checkpoint(run).eval()
    with torch.no_grad():
        torch.testing.assert_close(hf_logits(out, sample_tokens), m.logits(sample_tokens)[..., :50257], atol=1e-4,
                                   rtol=0)

    # again into the same folder: refused, then --overwrite replaces the export's files and keeps the others
    (out / ".gitattributes").write_text("*.safetensors filter=lfs\n")
    assert cli.main(["export-hf", str(run), str(out)]) == 1
    assert "pass --overwrite" in error_line(capsys)
    (out / "config.json").write_text("{}")
    assert cli.main(["export-hf", str(run), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(EXPORTED + [".gitattributes"])
    assert json.loads((out / "config.json").read_text())["model_type"] == "gpt2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]
