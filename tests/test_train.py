"""The trainer on the CPU with the tiny preset, on shards made from the real bundled sample: the loss falls, a killed
run resumes on the same curve, growth stages record their parts, bad input gives one clear error, nothing is
overwritten, the CLI's train / sample / plot work end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

import wikigpt
from wikigpt import cli
from wikigpt.errors import CheckpointError, ConfigError, DatasetError
from wikigpt.training.trainer import Schedule, TrainConfig, peak_tflops_for, train


@pytest.fixture
def gpt2():
    """GPT-2's tokenizer, built offline from the extension's ranks (what the trainer decodes samples with)."""
    from wikigpt.data.tokens import tokenizer

    return tokenizer()


def tiny(ds, out, **kw) -> TrainConfig:
    # 2 x 2 x 64 = 256 tokens a step: a step of the tiny model costs ~0.1 s on 2 cores, mostly its 50304-way head
    base = dict(dataset=str(ds), out=str(out), preset="tiny", batch_size=2, gradient_accumulation_steps=2,
                max_iters=20, eval_interval=10, eval_iters=2, log_interval=1, lr=3e-3, min_lr=3e-4, warmup_iters=5,
                sample_tokens=8, device="cpu", seed=1)
    base.update(kw)
    return TrainConfig(**base)


def records(run, kind):
    lines = (Path(run) / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]



def test_full_disk_while_saving_a_checkpoint_is_one_line_and_keeps_the_last_one(sample_dataset, tmp_path):
    """A checkpoint write that fails partway (EFBIG standing in for a full disk) ends the run with one line; the
    checkpoint from before is intact and the run can still be resumed from it."""
    from conftest import one_error_line, run_with_file_size_limit

    run = tmp_path / "run"
    train(tiny(sample_dataset, run, max_iters=2, eval_interval=2, sample_tokens=0))
    ckpt = (run / "ckpt.pt").read_bytes()  # ~40 MB: the tiny model's 50304-row embedding with AdamW moments
    r = run_with_file_size_limit(["train", sample_dataset, "--out", run, "--resume", "--preset", "tiny",
                                  "--max-iters", 4, "--eval-interval", 2, "--eval-iters", 1, "--batch-size", 2,
                                  "--block-size", 64, "--device", "cpu", "--sample-tokens", 0], 1_000_000)
    assert r.returncode == 1
    line = one_error_line(r.stderr)
    assert "ckpt.pt: cannot write: File too large (the previous checkpoint is intact)" in line, line
    assert (run / "ckpt.pt").read_bytes() == ckpt
    assert sorted(p.name for p in run.iterdir()) == ["ckpt.pt", "config.json", "meta.json", "metrics.jsonl"]
    assert train(tiny(sample_dataset, run, max_iters=4, eval_interval=2, sample_tokens=0, resume=True)).iter_num == 4

@pytest.mark.slow
def test_loss_falls(sample_dataset, tmp_path):
    cfg = tiny(sample_dataset, tmp_path / "run", batch_size=4, gradient_accumulation_steps=1, max_iters=200,
               eval_interval=100, eval_iters=4, log_interval=10, lr=6e-3, min_lr=6e-4, warmup_iters=10,
               schedule="wsd")
    res = train(cfg)
    ev = records(res.run_dir, "eval")
    assert [r["step"] for r in ev] == [0, 100, 200]
    assert ev[0]["val_loss"] > 10.5  # uniform over 50304 ids: ln(50304) = 10.83
    # measured: val 10.83 -> 7.99, train 10.82 -> 7.72 (deterministic on the CPU)
    assert res.val_loss < ev[0]["val_loss"] - 2.5, [r["val_loss"] for r in ev]
    assert res.train_loss < ev[0]["train_loss"] - 2.5
    assert res.tokens_seen == 200 * 4 * 64 == ev[-1]["tokens_seen"]
    for key in ("step", "tokens_seen", "train_loss", "val_loss", "val_ppl", "lr", "tokens_per_s", "mfu", "elapsed_s"):
        assert key in ev[-1]
    assert ev[-1]["val_ppl"] == pytest.approx(np.exp(ev[-1]["val_loss"]))
    assert ev[-1]["mfu"] is None  # CPU: no peak
    assert ev[-1]["tokens_per_s"] > 0
    part = json.loads((sample_dataset / "manifest.json").read_text())["parts"][0]["name"]
    assert ev[-1][f"val/{part}"] == ev[-1]["val_loss"]
    # run folder
    conf = json.loads((res.run_dir / "config.json").read_text())
    assert conf["train"]["batch_size"] == 4 and conf["model"]["n_layer"] == 2
    assert conf["derived"]["tokens_per_step"] == 256 and conf["derived"]["dtype"] == "float32"
    meta = json.loads((res.run_dir / "meta.json").read_text())
    assert meta["wikigpt_version"] == wikigpt.__version__ and meta["parts"] == [part]
    assert meta["torch"] == torch.__version__ and "git" in meta
    samples = (res.run_dir / "samples.txt").read_text()
    assert samples.count("=== step") == 3 and "The history of" in samples
    ck = torch.load(res.run_dir / "ckpt.pt", weights_only=True)
    assert {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config", "wikigpt_version",
            "schedule", "data_state", "parts_seen", "tokens_seen", "rng"} <= set(ck)
    assert ck["iter_num"] == 200 and ck["parts_seen"] == [part] and ck["tokens_seen"] == res.tokens_seen
    assert ck["data_state"]["parts"] == [part] and ck["schedule"]["kind"] == "wsd"


def test_killed_run_resumes_on_the_same_curve(sample_dataset, tmp_path, monkeypatch, capsys):
    full = train(tiny(sample_dataset, tmp_path / "full", max_iters=8, eval_interval=4, dropout=0.1))
    # the same run, killed during its 7th step (after the checkpoint at step 4; steps 5 and 6 were logged)
    import wikigpt.training.loader as data

    orig = data.TokenData.train_batch

    def dies(self, index, batch_size):
        if index >= 6 * 2:  # the first batch of the 7th step
            raise KeyboardInterrupt
        return orig(self, index, batch_size)

    monkeypatch.setattr(data.TokenData, "train_batch", dies)
    capsys.readouterr()
    with pytest.raises(KeyboardInterrupt):
        train(tiny(sample_dataset, tmp_path / "killed", max_iters=8, eval_interval=4, dropout=0.1))
    assert max(r["step"] for r in records(tmp_path / "killed", "step")) == 6
    assert (f"interrupted at step 6; {tmp_path / 'killed' / 'ckpt.pt'} holds step 4; to continue from it, rerun "
            "with --resume") in capsys.readouterr().err
    monkeypatch.setattr(data.TokenData, "train_batch", orig)
    with pytest.raises(ConfigError, match="run folder exists; pass --resume"):
        train(tiny(sample_dataset, tmp_path / "killed", max_iters=8, eval_interval=4, dropout=0.1))
    resumed = train(tiny(sample_dataset, tmp_path / "killed", max_iters=8, eval_interval=4, dropout=0.1,
                         resume=True))

    def curve(run):  # everything but the timings
        return [{k: v for k, v in r.items() if k not in ("tokens_per_s", "mfu", "elapsed_s")}
                for r in records(run, "step") + records(run, "eval")]

    assert curve(tmp_path / "killed") == curve(tmp_path / "full")  # exactly: CPU float32 is deterministic
    assert resumed.val_loss == full.val_loss and resumed.tokens_seen == full.tokens_seen
    a = torch.load(tmp_path / "full" / "ckpt.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "killed" / "ckpt.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    meta = json.loads((tmp_path / "killed" / "meta.json").read_text())
    assert meta["start_iter"] == 4 and meta["history"][0]["start_iter"] == 0


def test_growth_init_from_records_parts(sample_dataset_parts, tmp_path, capsys):
    import shutil

    manifest = json.loads((sample_dataset_parts / "manifest.json").read_text())
    names = [p["name"] for p in manifest["parts"]]
    # stage 1 sees the first two parts only (the dataset as it was before the third was added)
    ds1 = tmp_path / "ds1"
    shutil.copytree(sample_dataset_parts, ds1)
    m1 = dict(manifest, parts=manifest["parts"][:2])
    (ds1 / "manifest.json").write_text(json.dumps(m1))
    p1 = train(tiny(ds1, tmp_path / "p1", max_iters=4, eval_interval=2))
    capsys.readouterr()
    ck1 = torch.load(tmp_path / "p1" / "ckpt.pt", weights_only=True)
    assert ck1["parts_seen"] == names[:2]
    # stage 2: the grown dataset, new lr, more tokens; only the new part with mix=sequential
    p2 = train(tiny(sample_dataset_parts, tmp_path / "p2", init_from=str(tmp_path / "p1"), lr=1e-3,
                    max_tokens=p1.tokens_seen + 2 * 256, mix="sequential", schedule="wsd", warmup_iters=0))
    err = capsys.readouterr().err
    assert f"the checkpoint has seen 2; new: {names[2]}" in err
    assert p2.iter_num == 6 and p2.tokens_seen == p1.tokens_seen + 2 * 256
    ck2 = torch.load(tmp_path / "p2" / "ckpt.pt", weights_only=True)
    assert ck2["parts_seen"] == names and ck2["data_state"]["trained_parts"] == [names[2]]
    ev = records(tmp_path / "p2", "eval")
    assert ev[0]["step"] == 4 and ev[0]["tokens_seen"] == p1.tokens_seen  # evaluated where stage 1 ended
    with_val = [p["name"] for p in manifest["parts"] if p["tokens"]["val"] > 64]  # a part may have no val pages
    assert len(with_val) >= 2 and all(f"val/{n}" in ev[-1] for n in with_val)
    assert not any(f"val/{n}" in ev[-1] for n in names if n not in with_val)
    assert ev[0]["lr"] == 1e-3  # wsd at its stable lr, the --lr of this stage
    assert ck2["schedule"]["start_iter"] == 4
    meta = json.loads((tmp_path / "p2" / "meta.json").read_text())
    assert meta["new_parts"] == [names[2]] and meta["parts_seen_before"] == names[:2]
    # resuming the sequential stage keeps training the part that was new when the stage started
    p2b = train(tiny(sample_dataset_parts, tmp_path / "p2", resume=True, mix="sequential", lr=1e-3, schedule="wsd",
                     max_tokens=p2.tokens_seen + 2 * 256))
    assert p2b.iter_num == 8
    ck2b = torch.load(tmp_path / "p2" / "ckpt.pt", weights_only=True)
    assert ck2b["data_state"]["trained_parts"] == [names[2]] and ck2b["parts_seen"] == names
    # the plot puts both stages on one tokens axis
    rc = cli.main(["plot", str(tmp_path / "p1"), str(tmp_path / "p2"), "-o", str(tmp_path / "curves.png")])
    assert rc == 0
    png = (tmp_path / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # the logged steps drawn beside the evaluations: every step record of both stages, on the shared tokens axis
    from wikigpt.util.metrics import read_records

    steps = read_records(tmp_path / "p1", "step") + read_records(tmp_path / "p2", "step")
    assert [r["step"] for r in steps] == [r["step"] for r in records(tmp_path / "p1", "step")
                                          + records(tmp_path / "p2", "step")] and len(steps) >= 6
    assert all(b["tokens_seen"] > a["tokens_seen"] for a, b in zip(steps, steps[1:]))


def test_init_from_nanogpt_checkpoint(sample_dataset, tmp_path):
    from nanogpt_reference import RefConfig, RefGPT, write_nanogpt_checkpoint

    torch.manual_seed(0)
    ref = RefGPT(RefConfig(n_layer=2, n_head=2, n_embd=64, block_size=64))
    (tmp_path / "out").mkdir()
    write_nanogpt_checkpoint(tmp_path / "out" / "ckpt.pt", ref, iter_num=7, steps=1, batch_size=4,
                             gradient_accumulation_steps=2)  # nanoGPT's step: 4 x 64 x 2 tokens
    res = train(tiny(sample_dataset, tmp_path / "x", init_from=str(tmp_path / "out" / "ckpt.pt"), max_iters=9,
                     eval_interval=100))
    ev = records(res.run_dir, "eval")
    assert [r["step"] for r in ev] == [7, 9]
    assert ev[0]["tokens_seen"] == 7 * 4 * 64 * 2  # estimated from nanoGPT's config
    # the first evaluation is nanoGPT's model as it was saved
    from wikigpt.training.loader import evaluate
    from wikigpt.training.model import GPT

    m = GPT.from_checkpoint(tmp_path / "out" / "ckpt.pt")
    assert evaluate(m, sample_dataset, iters=2, batch_size=2, seed=1)["val"] == pytest.approx(ev[0]["val_loss"],
                                                                                              rel=1e-6)


def test_char_level_nanogpt_checkpoint_is_refused_in_one_line(sample_dataset, tmp_path):
    """nanoGPT's shakespeare_char checkpoints (65 ids) cannot read GPT-2 tokens: a clear error, not an IndexError in
    the embedding; and with --overwrite, the run it would have replaced stays as it was."""
    from nanogpt_reference import RefConfig, RefGPT, write_nanogpt_checkpoint
    from wikigpt.training.trainer import sample

    char = tmp_path / "char" / "ckpt.pt"
    char.parent.mkdir()
    write_nanogpt_checkpoint(char, RefGPT(RefConfig(n_layer=2, n_head=2, n_embd=64, block_size=64, vocab_size=65)))
    run = tmp_path / "run"
    train(tiny(sample_dataset, run, max_iters=2, eval_interval=2, sample_tokens=0))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    msg = "its vocabulary has 65 ids, but wikigpt's data and samples are GPT-2 BPE"
    with pytest.raises(CheckpointError, match=msg):
        train(tiny(sample_dataset, run, init_from=str(char), overwrite=True))
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before
    with pytest.raises(CheckpointError, match=msg):
        sample(char, prompt="The", tokens=2)


def test_bad_input_nothing_overwritten(sample_dataset, tmp_path):
    with pytest.raises(DatasetError, match="no manifest.json"):
        train(tiny(tmp_path, tmp_path / "r0"))
    assert not (tmp_path / "r0").exists()
    run = tmp_path / "r1"
    train(tiny(sample_dataset, run, max_iters=2, eval_interval=2))
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match="run folder exists"):
        train(tiny(sample_dataset, run, max_iters=2))
    with pytest.raises(CheckpointError, match="different architecture: n_layer 2 .checkpoint. vs 3"):
        train(tiny(sample_dataset, run, max_iters=4, resume=True, n_layer=3))
    bad = tmp_path / "bad.pt"
    bad.write_bytes((run / "ckpt.pt").read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        train(tiny(sample_dataset, tmp_path / "r2", init_from=str(bad)))
    with pytest.raises(ConfigError, match="--vram-gb 0.01 is smaller than the smallest batch"):
        train(tiny(sample_dataset, tmp_path / "r3", vram_gb=0.01))
    with pytest.raises(ConfigError, match="nothing to resume"):
        train(tiny(sample_dataset, tmp_path / "r4", resume=True))
    with pytest.raises(ConfigError, match="--max-tokens 100: the checkpoint has already seen 512 tokens"):
        train(tiny(sample_dataset, tmp_path / "r5", init_from=str(run), max_tokens=100))
    after = {p.name: p.read_bytes() for p in run.iterdir()}
    assert after == before
    # --overwrite starts over
    res = train(tiny(sample_dataset, run, max_iters=1, eval_interval=1, overwrite=True))
    assert res.iter_num == 1 and [r["step"] for r in records(run, "eval")] == [0, 1]


def test_oom_is_one_line(sample_dataset, tmp_path, monkeypatch):
    from wikigpt.training.model import GPT

    def oom(self, x, targets):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 6.14 GiB")

    monkeypatch.setattr(GPT, "_loss", oom)
    with pytest.raises(ConfigError, match=r"out of GPU memory at step 0 with micro-batch 2 x 64 .*--batch-size 1"):
        train(tiny(sample_dataset, tmp_path / "r", eval_interval=100))


def test_cli_train_resume_sample_plot(sample_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["train", str(sample_dataset), "--out", str(run), "--preset", "tiny", "--batch-size", "2",
            "--gradient-accumulation-steps", "1", "--max-iters", "4", "--eval-interval", "2", "--eval-iters", "1",
            "--sample-tokens", "0", "--device", "cpu", "--no-compile"]
    assert cli.main(args) == 0
    assert cli.main(args) == 1  # exists: one line, no traceback
    assert "run folder exists; pass --resume" in capsys.readouterr().err
    # --resume takes the saved config and changes only what is given
    assert cli.main(["train", str(sample_dataset), "--out", str(run), "--resume", "--max-iters", "6",
                     "--lr", "1e-4"]) == 0
    conf = json.loads((run / "config.json").read_text())["train"]
    assert conf["max_iters"] == 6 and conf["lr"] == 1e-4 and conf["batch_size"] == 2 and conf["preset"] == "tiny"
    assert [r["step"] for r in records(run, "eval")] == [0, 2, 4, 6]
    capsys.readouterr()
    assert cli.main(["sample", str(run), "--prompt", "The history of", "--tokens", "20", "--device", "cpu",
                     "--num-samples", "2"]) == 0
    out = capsys.readouterr().out
    assert out.count("The history of") == 2 and "---------------" in out
    assert cli.main(["plot", str(run), "-o", str(tmp_path / "c.png")]) == 0
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    assert cli.main(["sample", str(tmp_path / "nope")]) == 1
    assert "no such checkpoint file or run folder" in capsys.readouterr().err


def test_sample_decodes_text(sample_dataset, tmp_path, gpt2):
    from wikigpt.training.trainer import sample

    train(tiny(sample_dataset, tmp_path / "r", max_iters=2, eval_interval=2, eval_iters=1, sample_tokens=0))
    texts = sample(tmp_path / "r", "The history of", 30, temperature=0, device="cpu")
    assert texts[0].startswith("The history of") and len(texts[0]) > len("The history of") + 10
    # the text is real decoded text: it round-trips through the tokenizer
    ids = gpt2.encode_ordinary(texts[0])
    assert gpt2.decode(ids) == texts[0]


def test_schedules():
    cos = Schedule("cosine", lr=6e-4, min_lr=6e-5, warmup_iters=10, start_iter=0, max_iters=100)

    def nanogpt_get_lr(it, warmup_iters=10, lr_decay_iters=100, learning_rate=6e-4, min_lr=6e-5):
        if it < warmup_iters:
            return learning_rate * (it + 1) / (warmup_iters + 1)
        if it > lr_decay_iters:
            return min_lr
        decay_ratio = (it - warmup_iters) / (lr_decay_iters - warmup_iters)
        coeff = 0.5 * (1.0 + np.cos(np.pi * decay_ratio))
        return min_lr + coeff * (learning_rate - min_lr)

    for it in range(0, 120):
        assert cos(it) == pytest.approx(nanogpt_get_lr(it), rel=1e-12, abs=1e-15)
    wsd = Schedule("wsd", lr=1e-3, min_lr=1e-4, warmup_iters=10, start_iter=0, max_iters=100, decay_frac=0.2)
    assert wsd(50) == wsd(79) == 1e-3 and wsd(99) == pytest.approx(1e-4) and 1e-4 < wsd(90) < 1e-3
    longer = Schedule("wsd", lr=1e-3, min_lr=1e-4, warmup_iters=10, start_iter=0, max_iters=200, decay_frac=0.2)
    assert all(longer(i) == wsd(i) for i in range(80))  # asking for more steps extends the stable phase
    stage = Schedule("wsd", lr=3e-4, min_lr=3e-5, warmup_iters=5, start_iter=100, max_iters=200)
    assert stage(100) == pytest.approx(3e-4 / 6) and stage(105) == 3e-4  # warmup restarts at the stage start


def test_peak_table():
    assert peak_tflops_for("NVIDIA H100 80GB HBM3") == (989.0, "H100 SXM")
    assert peak_tflops_for("NVIDIA H100 PCIe")[0] == 756.0
    assert peak_tflops_for("NVIDIA H200")[0] == 989.0
    assert peak_tflops_for("NVIDIA A100-SXM4-80GB")[0] == 312.0
    assert peak_tflops_for("NVIDIA GeForce RTX 4090")[0] == 165.2
    assert peak_tflops_for("NVIDIA GeForce RTX 4070")[0] == 58.3
    assert peak_tflops_for("NVIDIA GeForce RTX 4070 Ti")[0] is None  # a different card: ask, don't guess
    assert peak_tflops_for("Tesla T4")[0] is None


def test_cli_every_flag_has_help():
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name in ("train", "sample", "plot"):
        for action in sub.choices[name]._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help"
    flags = {s for a in sub.choices["train"]._actions for s in a.option_strings}
    for f in ("--batch-size", "--block-size", "--gradient-accumulation-steps", "--max-iters", "--eval-interval",
              "--eval-iters", "--lr", "--min-lr", "--warmup-iters", "--weight-decay", "--device", "--dtype",
              "--compile", "--no-compile", "--seed", "--preset", "--init-from", "--max-tokens", "--vram-gb",
              "--schedule", "--kernels", "--resume", "--overwrite", "--peak-tflops", "--mix"):
        assert f in flags, f


# ---------------------------------------------------------------------------------------------------------------
# GPU checks (skipped without CUDA; the lead runs them on the device machine)

gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.gpu
@gpu
def test_gpu_bf16_compile_mfu_and_vram_fit(sample_dataset, tmp_path, capsys):
    """gpt2-124m on the card with bf16 + torch.compile: --vram-gb 12 picks a micro-batch whose real training peak
    stays under 12 GiB, keeps the requested tokens per step, the loss falls, MFU is reported against the table's
    peak; then a micro-batch far too big for 12 GiB is reported as one line."""
    cfg = TrainConfig(dataset=str(sample_dataset), out=str(tmp_path / "g"), preset="gpt2-124m", batch_size=16,
                      gradient_accumulation_steps=4, max_iters=30, eval_interval=30, eval_iters=2, log_interval=5,
                      warmup_iters=5, vram_gb=12, kernels="off", sample_tokens=16)
    torch.cuda.reset_peak_memory_stats()
    res = train(cfg)
    peak = torch.cuda.max_memory_allocated()
    err = capsys.readouterr().err
    derived = json.loads((res.run_dir / "config.json").read_text())["derived"]
    print(err, derived, f"peak {peak / 2**30:.2f} GiB")
    assert derived["micro_batch"] * derived["gradient_accumulation_steps"] == 16 * 4
    assert peak < 12 * 2**30
    ev = records(res.run_dir, "eval")
    assert ev[-1]["val_loss"] < ev[0]["val_loss"] - 1.0
    name = torch.cuda.get_device_name()
    if peak_tflops_for(name)[0]:
        assert ev[-1]["mfu"] is not None and 0 < ev[-1]["mfu"] < 1
        assert "MFU against" in err
    # a card of 8 GiB (the process is capped as a smaller card would be) and a micro-batch far too big for it
    total = torch.cuda.get_device_properties(0).total_memory
    torch.cuda.set_per_process_memory_fraction(8 * 2**30 / total)
    try:
        with pytest.raises(ConfigError, match="out of GPU memory at step 0 with micro-batch 64 x 1024"):
            train(TrainConfig(dataset=str(sample_dataset), out=str(tmp_path / "oom"), preset="gpt2-124m",
                              batch_size=64, gradient_accumulation_steps=1, max_iters=2, eval_interval=100,
                              eval_iters=1, kernels="off", compile=False, sample_tokens=0))
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)


def test_kernels_auto_is_the_measured_path():
    from wikigpt.training.trainer import resolve_kernels

    assert resolve_kernels("auto", "cpu", False) == (False, None)
    assert resolve_kernels("auto", "cuda", False) == (True, None)
    on, why = resolve_kernels("auto", "cuda", True)  # compiled kernels-on: not yet measured on a GPU
    assert not on and "--kernels on" in why
    assert resolve_kernels("on", "cuda", True) == (True, None)
    assert resolve_kernels("off", "cuda", False) == (False, None)
    assert resolve_kernels("on", "cpu", False) == (True, None)


def test_console_shows_each_logged_step_with_an_eta(sample_dataset, tmp_path, capsys):
    train(tiny(sample_dataset, tmp_path / "r", max_iters=6, eval_interval=6, log_interval=2, sample_tokens=0))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("wikigpt train: step ") and "/6: loss" in line]
    assert [line.split()[3] for line in lines] == ["2/6:", "4/6:", "6/6:"], err
    assert all(" ms/step, " in line and " tok/s, " in line and ", ETA " in line for line in lines), lines
    assert lines[-1].endswith("ETA 00:00")


def test_vram_budget_is_the_smaller_of_the_flag_and_the_card():
    from wikigpt.training.trainer import vram_budget

    gib = 1024**3
    assert vram_budget(12, 80 * gib) == (0.9 * 12 * gib, None)  # a big card capped to a 4070's 12 GiB
    budget, note = vram_budget(12, int(11.2 * gib))  # a 4070 (11.99 GiB) with the desktop on it
    assert budget == 0.9 * int(11.2 * gib) and "the card has 11.20 GiB for this process" in note


def test_sample_refuses_out_of_range_settings(sample_dataset, tmp_path):
    from wikigpt.training.trainer import sample

    run = tmp_path / "r"
    train(tiny(sample_dataset, run, max_iters=1, eval_interval=1, sample_tokens=0))
    with pytest.raises(ConfigError, match=r"sample: --tokens -5 \(must be >= 0\); --num-samples 0 \(must be >= 1\)"):
        sample(run, tokens=-5, num_samples=0)
    assert sample(run, prompt="The", tokens=0) == ["The"]
