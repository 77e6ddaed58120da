"""The model against nanoGPT's (tests/nanogpt_reference.py) and the checkpoint loader against nanoGPT's files."""

from __future__ import annotations

import pickle

import pytest
import torch

from nanogpt_reference import RefConfig, RefGPT, write_nanogpt_checkpoint
from wikigpt.errors import CheckpointError, ConfigError
from wikigpt.training.checkpoint import load_checkpoint, save_checkpoint
from wikigpt.training.model import GPT, GPTConfig, preset_config

TINY = dict(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=50304)


def n_params_formula(V, C, L, T, bias=True, non_embedding=True):
    """GPT-2's parameter count by hand: wte (shared with lm_head); per block 12 C^2 in matrices plus, with biases,
    3C + C + 4C + C Linear biases and 4C LayerNorm gains/biases (without: the 2C gains); ln_f; wpe unless left out."""
    per_block = 12 * C * C + (13 * C if bias else 2 * C)
    n = V * C + L * per_block + (2 * C if bias else C)
    return n if non_embedding else n + T * C


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("preset", ["tiny", "gpt2-124m", "gpt2-350m"])
def test_parameter_count(preset, bias):
    with torch.device("meta"):  # shapes only: no memory, no init time
        m = GPT(preset_config(preset, bias=bias))
    c = m.config
    assert m.get_num_params() == n_params_formula(c.vocab_size, c.n_embd, c.n_layer, c.block_size, bias)
    assert m.get_num_params(False) == n_params_formula(c.vocab_size, c.n_embd, c.n_layer, c.block_size, bias, False)
    if preset == "gpt2-124m" and bias:
        assert m.get_num_params() == 123_689_472  # nanoGPT prints "number of parameters: 123.69M"


def test_flops_per_token():
    with torch.device("meta"):
        m = GPT(preset_config("gpt2-124m"))
    # 6 N + 12 L H Q T = 6 * 123689472 + 12 * 12 * 12 * 64 * 1024
    assert m.estimate_flops_per_token() == 6 * 123_689_472 + 12 * 12 * 12 * 64 * 1024


def test_names_tied_embeddings_and_init():
    torch.manual_seed(0)
    m = GPT(GPTConfig(n_layer=4, n_head=4, n_embd=256, block_size=64, vocab_size=4096))
    ref = RefGPT(RefConfig(n_layer=4, n_head=4, n_embd=256, block_size=64, vocab_size=4096))
    assert list(m.state_dict()) == list(ref.state_dict())  # the same names in the same order
    assert m.transformer.wte.weight is m.lm_head.weight
    assert m.transformer.h[0].attn.c_proj.weight.std().item() == pytest.approx(0.02 / (2 * 4) ** 0.5, rel=0.05)
    assert m.transformer.h[0].mlp.c_fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert m.transformer.h[0].mlp.c_fc.bias.abs().max().item() == 0.0


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("flash", [True, False])
def test_same_logits_as_nanogpt(bias, flash):
    torch.manual_seed(1)
    ref = RefGPT(RefConfig(**TINY, bias=bias), flash=flash).eval()
    sd = {k: v for k, v in ref.state_dict().items() if not k.endswith(".attn.bias")}
    m = GPT(GPTConfig(**TINY, bias=bias))
    m.load_state_dict(sd)
    m.eval()
    x = torch.randint(0, 50257, (3, 40))
    y = torch.randint(0, 50257, (3, 40))
    y[0, :5] = -1  # ignored targets
    with torch.no_grad():
        rl, rloss = ref(x, y)
        ml, mloss = m(x, y)
        torch.testing.assert_close(ml, rl, atol=2e-5, rtol=1e-5)
        torch.testing.assert_close(mloss, rloss, atol=2e-6, rtol=1e-6)
        rlast, _ = ref(x)
        mlast, none = m(x)
        assert none is None and mlast.shape == (3, 1, 50304)
        torch.testing.assert_close(mlast, rlast, atol=2e-5, rtol=1e-5)
    # gradients too: the loss is the same function of the same weights
    _, rloss = ref(x, y)
    _, mloss = m(x, y)
    rloss.backward()
    mloss.backward()
    rg = dict(ref.named_parameters())
    for n, p in m.named_parameters():
        torch.testing.assert_close(p.grad, rg[n].grad, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("compiled, flash", [(True, True), (False, False)])
def test_nanogpt_checkpoint_loads_with_same_logits(tmp_path, compiled, flash):
    torch.manual_seed(2)
    ref = RefGPT(RefConfig(**TINY), flash=flash)
    path = tmp_path / "out" / "ckpt.pt"
    path.parent.mkdir()
    written = write_nanogpt_checkpoint(path, ref, iter_num=5, steps=2, compiled=compiled)
    assert any(k.startswith("_orig_mod.") for k in written["model"]) == compiled
    assert any(k.endswith(".attn.bias") for k in written["model"]) == (not flash)
    ref.eval()
    for where in (path, path.parent):  # the file, or its folder
        m = GPT.from_checkpoint(where)
        m.eval()
        x = torch.randint(0, 50257, (2, 64))
        with torch.no_grad():
            torch.testing.assert_close(m.logits(x), ref(x, x)[0], atol=2e-5, rtol=1e-5)
    # nanoGPT's optimizer state loads into wikigpt's optimizer (same groups, same order)
    opt = m.configure_optimizers(0.1, 6e-4, (0.9, 0.95), "cpu")
    opt.load_state_dict(load_checkpoint(path)["optimizer"])
    assert len(opt.state) == len(list(m.parameters()))


def test_from_checkpoint_crop_and_overrides(tmp_path):
    torch.manual_seed(3)
    ref = RefGPT(RefConfig(**TINY))
    write_nanogpt_checkpoint(tmp_path / "ckpt.pt", ref)
    m = GPT.from_checkpoint(tmp_path / "ckpt.pt", block_size=32, dropout=0.1)
    assert m.config.block_size == 32 and m.config.dropout == 0.1
    assert m.transformer.wpe.weight.shape == (32, 64)
    torch.testing.assert_close(m.transformer.wpe.weight, ref.transformer.wpe.weight[:32])
    with pytest.raises(ConfigError, match="cannot grow block_size"):
        GPT.from_checkpoint(tmp_path / "ckpt.pt", block_size=128)


def test_bad_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no ckpt.pt in this folder"):
        load_checkpoint(tmp_path)
    p = tmp_path / "junk.pt"
    p.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint \(not a PyTorch checkpoint at all: it "
                                              r"starts with b'this'\)"):
        load_checkpoint(p)
    # a truncated real checkpoint
    torch.manual_seed(4)
    ref = RefGPT(RefConfig(**TINY))
    good = tmp_path / "good.pt"
    write_nanogpt_checkpoint(good, ref)
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=r"not a readable checkpoint \(a PyTorch zip archive that is damaged "
                                              r"or cut short\)"):
        load_checkpoint(cut)
    # a pickle that would run code: refused by weights_only, not executed
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "model_args": {}, "x": pickle.PickleError("boom")}, evil)
    with pytest.raises(CheckpointError, match=r"holds a Python object \(_?pickle.PickleError\) that a weights-only "
                                              "load refuses"):
        load_checkpoint(evil)
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list"):
        load_checkpoint(tmp_path / "list.pt")
    torch.save({"model": {}}, tmp_path / "nomodelargs.pt")
    with pytest.raises(CheckpointError, match="no 'model_args' key"):
        load_checkpoint(tmp_path / "nomodelargs.pt")
    # weights of another architecture than model_args says
    ck = torch.load(good, weights_only=True)
    ck["model_args"]["n_layer"] = 3
    torch.save(ck, tmp_path / "arch.pt")
    with pytest.raises(CheckpointError, match="missing 12 tensors .*transformer.h.2"):
        GPT.from_checkpoint(tmp_path / "arch.pt")
    ck["model_args"]["n_layer"] = 2
    ck["model_args"]["n_embd"] = 128
    torch.save(ck, tmp_path / "width.pt")
    with pytest.raises(CheckpointError, match=r"shapes differ: .*\(50304, 64\) vs \(50304, 128\)"):
        GPT.from_checkpoint(tmp_path / "width.pt")


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.pt"
    save_checkpoint(p, {"model": {"w": torch.ones(2)}, "model_args": {}})
    before = p.read_bytes()

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(p, {"model": {"w": torch.zeros(2)}, "model_args": {}})
    assert p.read_bytes() == before
    assert [f.name for f in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp file left behind


def test_causal_and_generate():
    torch.manual_seed(5)
    m = GPT(GPTConfig(**TINY)).eval()
    x = torch.randint(0, 50257, (1, 20))
    x2 = x.clone()
    x2[0, 15] = (x[0, 15] + 1) % 50257
    with torch.no_grad():
        a, b = m.logits(x), m.logits(x2)
    torch.testing.assert_close(a[:, :15], b[:, :15])  # the future does not leak into the past
    assert not torch.allclose(a[:, 15:], b[:, 15:])
    # the padded ids (50257..50303) are never sampled with vocab_limit; sampling is reproducible with a generator
    with torch.no_grad():
        m.lm_head.weight[50257:] = 1.0  # make the padding rows the most likely
        g = torch.Generator().manual_seed(0)
        out = m.generate(x[:, :3], 50, temperature=1.0, top_k=None, generator=g, vocab_limit=50257)
        g = torch.Generator().manual_seed(0)
        again = m.generate(x[:, :3], 50, temperature=1.0, top_k=None, generator=g, vocab_limit=50257)
    assert out.shape == (1, 53) and int(out.max()) < 50257 and torch.equal(out, again)
    with torch.no_grad():  # longer than block_size: the context is cropped, generation goes on
        long = m.generate(torch.zeros(1, 60, dtype=torch.long), 10, temperature=0)
    assert long.shape == (1, 70)


def test_config_errors():
    with pytest.raises(ConfigError, match="unknown preset 'gpt5'"):
        preset_config("gpt5")
    with pytest.raises(ConfigError, match="not a multiple of n_head"):
        GPTConfig(n_embd=100, n_head=3)
    assert "kernels" not in GPTConfig().model_args()
    assert preset_config("tiny", n_layer=3, block_size=None).n_layer == 3


def test_dropout_only_in_training():
    torch.manual_seed(6)
    m = GPT(GPTConfig(**{**TINY, "dropout": 0.5}))
    x = torch.randint(0, 50257, (2, 16))
    m.eval()
    with torch.no_grad():
        assert torch.equal(m.logits(x), m.logits(x))
    m.train()
    with torch.no_grad():
        assert not torch.equal(m.logits(x), m.logits(x))


def test_optimizer_groups():
    m = GPT(GPTConfig(**TINY))
    opt = m.configure_optimizers(0.1, 1e-3, (0.9, 0.95), "cpu")
    decay, nodecay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and nodecay["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"]) and all(p.dim() < 2 for p in nodecay["params"])
    # wte/lm_head counted once; wpe, 4 matrices per block
    assert len(decay["params"]) == 2 + 4 * 2
    assert len(nodecay["params"]) == 2 * 8 + 2  # per block ln_1, ln_2 (w, b) and 4 Linear biases; ln_f (w, b)


def test_sampling_follows_the_distribution():
    """generate draws each token from softmax(logits / temperature) over the top k, as torch.multinomial would."""
    torch.manual_seed(7)
    m = GPT(GPTConfig(**TINY)).eval()
    ctx = torch.randint(0, 50257, (1, 5))
    with torch.no_grad():
        logits = m(ctx)[0][0, -1] / 0.05
        top, ids = torch.topk(logits, 3)
        expect = torch.softmax(top, dim=-1)
        g = torch.Generator().manual_seed(1)
        out = m.generate(ctx.expand(1500, 5), 1, temperature=0.05, top_k=3, generator=g)[:, -1]
    freq = torch.stack([(out == i).float().mean() for i in ids])
    assert float(freq.sum()) == 1.0
    torch.testing.assert_close(freq, expect, atol=0.045, rtol=0)  # 1500 draws: standard error <= 0.013
