"""Growth experiments (`wikigpt grow`, `wikigpt report`) on the real bundled sample cut into three dump parts.

The end-to-end run is the issue's CPU test: a tiny model (block 32, micro-batch 2) trains three stages of 30 steps
in a subprocess that is SIGKILLed once stage 2 has a checkpoint; rerunning the command finishes it, trains the
all-at-once comparison (90 steps) and writes the report. The other tests check that run against its own files:
metrics.jsonl, the dataset's manifest and val_pages.tsv, and the XML of the parts.
"""

from __future__ import annotations

import bz2
import hashlib
import json
import math
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from wikigpt import cli
from wikigpt.errors import ConfigError
from wikigpt.experiments.grow import State, _check_unchanged, grow, load_plan, resolve_mix, split_sample

SAMPLE = Path(__file__).resolve().parent.parent / "python" / "wikigpt" / "data" / "sample" / \
    "enwiki-sample-pages-articles1.xml-p10p30302.bz2"
TOKENS_PER_STEP = 2 * 32  # micro-batch x block, no accumulation
STEPS = 30  # per stage (90 staged + 90 all-at-once: the 50k-row output layer makes each step ~0.1-0.3 s here)

PLAN = f"""
[dump]
sample_parts = 3
[dataset]
val_fraction = 0.2
processes = 2
[model]
preset = "tiny"
block_size = 32
[train]
batch_size = 2
gradient_accumulation_steps = 1
schedule = "wsd"
warmup_iters = 5
min_lr = 1e-4
log_interval = 5
device = "cpu"
[eval]
eval_interval = 10
eval_iters = 2
prompts = ["The history of", "In mathematics,"]
sample_tokens = 12
[[stage]]
name = "p1"
parts = [1]
tokens = {STEPS * TOKENS_PER_STEP}
lr = 3e-3
[[stage]]
name = "p2"
parts = [2]
tokens = {STEPS * TOKENS_PER_STEP}
lr = 2e-3
mix = {{ old = 0.3, new = 0.7 }}
[[stage]]
name = "p3"
parts = [3]
tokens = {STEPS * TOKENS_PER_STEP}
lr = 2e-3
mix = "sequential"
"""


def _records(run: Path, kind: str) -> list[dict]:
    out = []
    for line in (run / "metrics.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["kind"] == kind:
            out.append(r)
    return out


def _digest(path: Path) -> tuple[str, int]:
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_mtime_ns


def _xml_article_ids(path: Path) -> set[int]:
    """ids of the ns-0 pages in a dump file, read straight from its XML (the reference for page ids)."""
    xml = bz2.decompress(path.read_bytes())
    ids = set()
    for page in re.findall(rb"<page>.*?</page>", xml, re.S):
        if re.search(rb"<ns>0</ns>", page):
            ids.add(int(re.search(rb"<id>(\d+)</id>", page).group(1)))
    return ids


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> SimpleNamespace:
    d = tmp_path_factory.mktemp("grow")
    plan = d / "plan.toml"
    plan.write_text(PLAN)
    out = d / "out"
    import wikigpt

    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(wikigpt.__file__).resolve().parent.parent) + os.pathsep + env.get("PYTHONPATH", "")
    log = open(d / "killed-run.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "wikigpt", "grow", str(plan), "--out", str(out), "--no-report"],
                            env=env, stdout=log, stderr=subprocess.STDOUT)
    ckpt2 = out / "stages" / "p2" / "ckpt.pt"
    deadline = time.monotonic() + 900
    while not ckpt2.is_file() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    log.close()
    assert ckpt2.is_file(), (d / "killed-run.log").read_text()[-3000:]
    from wikigpt.experiments.grow import checkpoint_tokens

    at_kill = SimpleNamespace(
        state=json.loads((out / "state.json").read_text()),
        p2_tokens=checkpoint_tokens(ckpt2),
        p1={n: _digest(out / "stages" / "p1" / n) for n in ("ckpt.pt", "metrics.jsonl", "grow_samples.json")},
    )
    res = grow(plan, out, compare="all-at-once")
    return SimpleNamespace(dir=d, plan=plan, out=out, res=res, at_kill=at_kill,
                           manifest=json.loads((out / "data" / "manifest.json").read_text()))


def _part_names(g) -> list[str]:
    return [p["name"] for p in g.manifest["parts"]]


# ------------------------------------------------------------------------------------------------ end to end


@pytest.mark.slow
def test_killed_mid_stage_resumes_where_it_stopped(grown):
    g = grown
    # the kill landed inside stage 2: stage 1 finished, stage 2 checkpointed but short of its budget
    assert g.at_kill.state["stages"]["p1"]["status"] == "finished"
    assert g.at_kill.state["stages"]["p2"]["status"] == "running"
    assert 1 * STEPS * TOKENS_PER_STEP < g.at_kill.p2_tokens < 2 * STEPS * TOKENS_PER_STEP
    # stage 1 was not redone: its checkpoint, metrics and samples are the same files
    for name, digest in g.at_kill.p1.items():
        assert _digest(g.out / "stages" / "p1" / name) == digest, name
    state = json.loads((g.out / "state.json").read_text())
    assert [state["stages"][s]["train_runs"] for s in ("p1", "p2", "p3")] == [["started"], ["resumed"], ["started"]]
    # stage 2 continued from its checkpoint's step, not from the start of the stage
    meta = json.loads((g.out / "stages" / "p2" / "meta.json").read_text())
    kill_step = g.at_kill.p2_tokens // TOKENS_PER_STEP
    assert [h["start_iter"] for h in meta["history"]] + [meta["start_iter"]] == [STEPS, kill_step]
    assert meta["history"][0]["init_from"] == str(g.out / "stages" / "p1")
    # and its curve has every logged step once, across the kill
    steps = [r["step"] for r in _records(g.out / "stages" / "p2", "step")]
    assert steps == list(range(STEPS + 5, 2 * STEPS + 1, 5))
    evals = [r["step"] for r in _records(g.out / "stages" / "p2", "eval")]
    assert evals == list(range(STEPS, 2 * STEPS + 1, 10))


@pytest.mark.slow
def test_stages_chain_budgets_and_mixes(grown):
    g = grown
    parts = _part_names(g)
    assert len(parts) == 3
    for k, name in enumerate(("p1", "p2", "p3"), start=1):
        last = _records(g.out / "stages" / name, "eval")[-1]
        assert (last["step"], last["tokens_seen"]) == (k * STEPS, k * STEPS * TOKENS_PER_STEP)
    assert json.loads((g.out / "stages" / "p3" / "meta.json").read_text())["init_from"] == str(g.out / "stages" / "p2")
    cmp = g.out / "compare" / "all-at-once"
    meta = json.loads((cmp / "meta.json").read_text())
    assert meta["init_from"] is None and meta["start_iter"] == 0
    last = _records(cmp, "eval")[-1]
    assert (last["step"], last["tokens_seen"]) == (3 * STEPS, 3 * STEPS * TOKENS_PER_STEP)
    # the mix of each stage is in its run's config: tokens; old/new weights; sequential = only the new part
    mixes = [json.loads((g.out / "stages" / s / "config.json").read_text())["train"]["mix"] for s in ("p1", "p2", "p3")]
    assert mixes[0] == "tokens"
    assert mixes[1] == pytest.approx({parts[0]: 0.3, parts[1]: 0.7})
    assert mixes[2] == pytest.approx({parts[2]: 1.0})
    assert json.loads((cmp / "config.json").read_text())["train"]["mix"] == "tokens"
    state = json.loads((g.out / "state.json").read_text())
    assert [state["stages"][s]["parts"] for s in ("p1", "p2", "p3")] == [[p] for p in parts]


@pytest.mark.slow
def test_every_eval_has_each_parts_val_loss(grown):
    g = grown
    parts = _part_names(g)
    val_tokens = {p["name"]: p["tokens"]["val"] for p in g.manifest["parts"]}
    runs = {"p1": parts[:1], "p2": parts[:2], "p3": parts, "compare/all-at-once": parts}
    for run, expect in runs.items():
        folder = g.out / ("stages" if "/" not in run else "") / run
        for r in _records(folder, "eval"):
            have = sorted(k[4:] for k in r if k.startswith("val/"))
            assert have == sorted(expect), (run, r["step"])
            # "val" is the val-token-weighted mean of the parts', and the perplexity is e^val
            w = sum(val_tokens[p] for p in expect)
            assert r["val_loss"] == pytest.approx(sum(r[f"val/{p}"] * val_tokens[p] for p in expect) / w, rel=1e-9)
            assert r["val_ppl"] == pytest.approx(math.exp(r["val_loss"]), rel=1e-9)


@pytest.mark.slow
def test_part_val_loss_is_computed_on_that_parts_pages(grown):
    """The windows evaluate() takes for part X lie in part X's val pages (by page id, against the part's XML), and
    re-evaluating the final checkpoint on them gives the numbers in metrics.jsonl."""
    import torch

    from wikigpt.data.dataset import Dataset
    from wikigpt.data.shards import read_shard
    from wikigpt.training.loader import TokenData, evaluate
    from wikigpt.training.model import GPT

    g = grown
    ds = Dataset(g.out / "data")
    parts = _part_names(g)
    xml_ids = {}
    for p in g.manifest["parts"]:
        (f,) = p["files"]
        xml_ids[p["name"]] = _xml_article_ids(g.out / "dumps" / f["name"])
    assert all(xml_ids[a].isdisjoint(xml_ids[b]) for a in parts for b in parts if a != b)

    seen: dict[str, list[np.ndarray]] = {p: [] for p in parts}
    original = TokenData.val_batch

    def spy(self, part, i, batch_size):
        x, y = original(self, part, i, batch_size)
        seen[part].append(torch.cat([x, y[:, -1:]], dim=1).numpy())
        return x, y

    model = GPT.from_checkpoint(g.out / "stages" / "p3")
    data = TokenData(g.out / "data", 32, seed=1337)
    TokenData.val_batch = spy
    try:
        got = evaluate(model, data, iters=2, batch_size=2)
    finally:
        TokenData.val_batch = original
    last = _records(g.out / "stages" / "p3", "eval")[-1]
    for p in parts:
        assert got[f"val/{p}"] == pytest.approx(last[f"val/{p}"], abs=1e-5)

    for p in parts:
        rows = ds.val_pages(p)
        assert rows, p
        assert {r[0] for r in rows} <= xml_ids[p]  # every val page of the part is an article of its own XML
        lo, hi = g.manifest["parts"][parts.index(p)]["page_ids"]
        assert all(lo <= r[0] <= hi for r in rows)
        shards = {Path(path).name: np.asarray(read_shard(path)) for path, _ in ds.shards("val", [p])}
        windows = np.concatenate(seen[p])
        assert len(windows) == 2 * 2
        for w in windows:
            hits = []
            for shard_name, toks in shards.items():
                starts = np.flatnonzero(toks[: len(toks) - len(w) + 1] == w[0])
                hits += [(shard_name, int(s)) for s in starts if np.array_equal(toks[s:s + len(w)], w)]
            assert hits, f"a val window of {p} is not in its val shards"
            shard_name, start = hits[0]
            # the pages the window covers, from val_pages.tsv (shard, token offset, token count)
            pages = {r[0] for r in rows if r[2] == shard_name and r[3] < start + len(w) and start < r[3] + r[4]}
            assert pages and pages <= xml_ids[p]
            for other in parts:
                if other != p:
                    assert pages.isdisjoint(xml_ids[other])


@pytest.mark.slow
def test_report_numbers_match_metrics(grown):
    g = grown
    report = (g.out / "report.md").read_text()
    summary = json.loads((g.out / "report.json").read_text())
    parts = _part_names(g)
    runs = [("p1", g.out / "stages" / "p1"), ("p2", g.out / "stages" / "p2"), ("p3", g.out / "stages" / "p3"),
            ("all-at-once", g.out / "compare" / "all-at-once")]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.strip().strip("|").split("|")]
            for line in report.split("## Val loss at the end of each stage")[1].split("##")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| after")}
    prev_elapsed = 0.0
    stage_summaries = summary["stages"] + [summary["compare"]]
    for (name, run), s in zip(runs, stage_summaries):
        evals, steps = _records(run, "eval"), _records(run, "step")
        last = evals[-1]
        assert s["name"] == name
        assert s["final"]["val_loss"] == last["val_loss"]
        assert s["tokens_per_s"] == statistics.median(r["tokens_per_s"] for r in steps)
        if name == "all-at-once":
            prev_elapsed = 0.0
        assert s["train_s"] == pytest.approx(last["elapsed_s"] - prev_elapsed)
        prev_elapsed = last["elapsed_s"]
        row = rows[name]
        assert row[1] == f"{last['tokens_seen']:,}"
        assert row[2] == f"{last['val_loss']:.4f} ({last['val_ppl']:.1f})"
        for i, p in enumerate(parts):
            v = last.get(f"val/{p}")
            assert row[3 + i] == ("–" if v is None else f"{v:.4f} ({math.exp(v):.1f})")
        assert f"| {name} | finished |" in report
        assert f"| {s['tokens_per_s']:,.0f} |" in report
    staged, whole = _records(runs[2][1], "eval")[-1], _records(runs[3][1], "eval")[-1]
    assert (f"Final overall val loss: staged {staged['val_loss']:.4f} vs all-at-once {whole['val_loss']:.4f}"
            in report)
    p1_end = _records(runs[0][1], "eval")[-1][f"val/{parts[0]}"]
    assert f"from {p1_end:.4f} at the end of stage p1 to {staged[f'val/{parts[0]}']:.4f}" in report
    # the plots exist, are PNGs and are linked; the plan and the samples are in the report
    for png in ("loss.png", "per_part.png"):
        data = (g.out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
        assert f"]({png})" in report
    assert load_plan(g.out / "plan.toml").stages[1].mix == {"old": 0.3, "new": 0.7}
    assert PLAN.strip() in report
    for _name, run in runs:
        smp = json.loads((run / "grow_samples.json").read_text())
        assert [s["prompt"] for s in smp["samples"]] == ["The history of", "In mathematics,"]
        for s in smp["samples"]:
            assert s["text"].startswith(s["prompt"])
            assert s["text"].replace("```", "'''") in report


@pytest.mark.slow
def test_rerun_redoes_nothing_and_edits_of_finished_stages_are_refused(grown, tmp_path):
    g = grown
    runs = [g.out / "stages" / s for s in ("p1", "p2", "p3")] + [g.out / "compare" / "all-at-once"]
    before = {r: _digest(r / "ckpt.pt") for r in runs}
    t0 = time.monotonic()
    grow(g.plan, g.out, compare="all-at-once", report=False)
    assert time.monotonic() - t0 < 30
    assert {r: _digest(r / "ckpt.pt") for r in runs} == before
    edited = tmp_path / "plan.toml"
    edited.write_text(g.plan.read_text().replace("lr = 2e-3\nmix = {", "lr = 1e-3\nmix = {"))
    with pytest.raises(ConfigError, match=r"stage 'p2'\.train\.lr changed"):
        grow(edited, g.out)
    # one more stage: fine for the stages, but the finished comparison was for the old total
    edited.write_text(g.plan.read_text() + f'[[stage]]\nname = "p4"\ntokens = {TOKENS_PER_STEP}\n')
    total = 3 * STEPS * TOKENS_PER_STEP
    with pytest.raises(ConfigError, match=rf"all-at-once: trained for {total:,} tokens, but the plan's stages now "
                                          rf"total {total + TOKENS_PER_STEP:,}: remove that folder"):
        grow(edited, g.out, compare="all-at-once")
    assert {r: _digest(r / "ckpt.pt") for r in runs} == before


# ------------------------------------------------------------------------------------------------ the plan


def _plan(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "plan.toml"
    p.write_text(text)
    return p


BASE = '[dump]\nsample_parts = 3\n[model]\npreset = "tiny"\n'


@pytest.mark.parametrize("text, error", [
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\nlrr = 1e-3\n',
     r"stage 'a'\.lrr: unknown field \(did you mean 'lr'\?\)"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\n', r"stage 'a': no token budget"),
    ('[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n', r"stage 'a'\.parts: part numbers need \[dump\]"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n[[stage]]\nname = "b"\nparts = [1]\ntokens = 1e4\n',
     r"stage 'b'\.parts: part 1 is already added by stage 'a'"),
    (BASE + '[[stage]]\nname = "a"\nparts = [4]\ntokens = 1e4\n', r"stage 'a'\.parts: the sample is cut into 3"),
    (BASE + '[train]\nmax_tokens = 5\n[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n',
     r"\[train\]\.max_tokens: not settable in a plan \(use tokens = \.\.\. per stage\)"),
    (BASE + '[train]\nn_layer = 4\n[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n',
     r"\[train\]\.n_layer: the architecture is fixed"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\nmix = "newest"\n', r"stage 'a'\.mix: 'newest'"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\nmix = {old = 1.0}\n',
     r"stage 'a'\.mix\.old: no earlier stage"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\nlr = 1e-4\nmin_lr = 1e-3\n',
     r"stage 'a': need 0 <= min_lr \(0\.001\) <= lr \(0\.0001\)"),
    (BASE + '[train]\neval_iters = 2\n[eval]\neval_iters = 3\n[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n',
     r"\[eval\]\.eval_iters: also set in \[train\]"),
    (BASE + '[[stage]]\nname = "a"\nfiles = ["nope.bz2"]\ntokens = 1e4\n',
     r"stage 'a'\.files: .*nope\.bz2: no such file"),
    (BASE + '[[stage]]\nname = "a/b"\nparts = [1]\ntokens = 1e4\n', r"stage 'a/b'\.name: use letters"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = "many"\n', r"stage 'a'\.tokens: expected a number"),
    (BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\nbatch_size = 0\n',
     r"stage 'a': batch_size must be at least 1"),
    (BASE, r"\[\[stage\]\]: the plan has no stages"),
    (BASE + '[[stage]]\nname = "a"\ntokens = 1e4\n', r"stage 'a': the first stage must add data"),
    ('[dump]\nwiki = "enwiki"\n[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n',
     r"\[dump\]: name both wiki and date"),
    ("[model\n", r"not valid TOML"),
])
def test_plan_errors_name_the_field(tmp_path, text, error):
    path = _plan(tmp_path, text)
    with pytest.raises(ConfigError, match=error) as e:
        load_plan(path)
    assert str(e.value).startswith(str(path)) and "\n" not in str(e.value)


def test_example_plans_load():
    root = Path(__file__).resolve().parent.parent / "examples"
    plan = load_plan(root / "growth-plan.toml")
    assert [s.name for s in plan.stages] == ["p1", "p1-3", "p1-5"]
    assert plan.stages[2].mix == {"old": 0.3, "new": 0.7}
    gpu = load_plan(root / "growth-gpu.toml")
    assert gpu.model["preset"] == "gpt2-124m" and gpu.dump["sample_parts"] == 3


def test_cli_reports_a_bad_plan_in_one_line(tmp_path, capsys):
    path = _plan(tmp_path, BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = -5\n')
    assert cli.main(["grow", str(path), "--out", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err == f"wikigpt: error: {path}: stage 'a'.tokens: must be positive, got -5"
    assert not (tmp_path / "out").exists()


def test_plan_may_grow_but_finished_stages_may_not_change(tmp_path):
    two = BASE + '[[stage]]\nname = "a"\nparts = [1]\ntokens = 1e4\n[[stage]]\nname = "b"\nparts = [2]\ntokens = 1e4\n'
    state = State(tmp_path)
    state.d["plan"] = load_plan(_plan(tmp_path, two)).normalized()
    state.stage("a")["status"] = "finished"
    # appending a stage, changing a stage not yet finished, or the device: fine
    _check_unchanged(state, load_plan(_plan(tmp_path, two + '[[stage]]\nname = "c"\nparts = [3]\ntokens = 1e4\n')))
    longer_b = two.replace('"b"\nparts = [2]\ntokens = 1e4', '"b"\nparts = [2]\ntokens = 2e4')
    _check_unchanged(state, load_plan(_plan(tmp_path, longer_b)))
    _check_unchanged(state, load_plan(_plan(tmp_path, two + '[train]\ndevice = "cuda"\n')))
    with pytest.raises(ConfigError, match=r"stage 'a'\.tokens changed"):
        _check_unchanged(state, load_plan(_plan(tmp_path, two.replace("tokens = 1e4", "tokens = 2e4", 1))))
    with pytest.raises(ConfigError, match=r"\[model\]\.preset changed"):
        _check_unchanged(state, load_plan(_plan(tmp_path, two.replace('"tiny"', '"gpt2-124m"'))))
    with pytest.raises(ConfigError, match=r"stage 'a' ran already .* no longer in the plan"):
        _check_unchanged(state, load_plan(_plan(tmp_path, BASE + '[[stage]]\nname = "b"\nparts = [2]\ntokens = 1e4\n')))


def test_resolve_mix():
    tok = {"A1": 100, "A2": 300, "B1": 200, "C1": 600}
    stage_parts = {"s1": ["A1", "A2"], "s2": ["B1"], "s3": ["C1"]}
    assert resolve_mix("tokens", ["C1"], ["A1", "A2", "B1"], stage_parts, tok) == "tokens"
    assert resolve_mix("sequential", ["A2", "C1"], [], stage_parts, tok) == pytest.approx({"A2": 1 / 3, "C1": 2 / 3})
    # each group's weight is spread over its parts by train tokens; parts not named get nothing
    got = resolve_mix({"old": 0.2, "new": 0.8}, ["C1"], ["A1", "A2", "B1"], stage_parts, tok)
    assert got == pytest.approx({"A1": 0.2 * 100 / 600, "A2": 0.2 * 300 / 600, "B1": 0.2 * 200 / 600, "C1": 0.8})
    assert resolve_mix({"s1": 1, "B1": 3}, ["C1"], [], stage_parts, tok) == pytest.approx(
        {"A1": 0.25, "A2": 0.75, "B1": 3.0})
    with pytest.raises(ConfigError, match="mix names 'zz'"):
        resolve_mix({"zz": 1}, ["C1"], [], stage_parts, tok)
    with pytest.raises(ConfigError, match="part A1 is in two"):
        resolve_mix({"s1": 1, "A1": 1}, ["C1"], [], stage_parts, tok)
    with pytest.raises(ConfigError, match="every weight is zero"):
        resolve_mix({"new": 0}, ["C1"], [], stage_parts, tok)


def test_split_sample_is_the_sample_in_order(tmp_path):
    original = bz2.decompress(SAMPLE.read_bytes())
    pages = re.findall(rb"  <page>.*?</page>\n", original, re.S)
    files = split_sample(3, tmp_path)
    xmls = [bz2.decompress(f.read_bytes()) for f in files]
    got = [p for x in xmls for p in re.findall(rb"  <page>.*?</page>\n", x, re.S)]
    assert got == pages  # every page once, in order, none lost at the cuts
    for f, x in zip(files, xmls):
        ids = [int(i) for i in re.findall(rb"<page>\s*<title>.*?</title>\s*<ns>-?\d+</ns>\s*<id>(\d+)</id>", x, re.S)]
        assert f.name == f"enwiki-sample-pages-articles{files.index(f) + 1}.xml-p{ids[0]}p{ids[-1]}.bz2"
        assert x.startswith(original[:original.index(b"  <page>")]) and x.endswith(b"</mediawiki>\n")
    sizes = [len(x) for x in xmls]
    assert max(sizes) < 1.5 * min(sizes)  # cut by bytes: comparable parts, each with articles
    assert [f.read_bytes() for f in split_sample(3, tmp_path)] == [f.read_bytes() for f in files]
    assert bz2.decompress(split_sample(1, tmp_path / "one")[0].read_bytes()) == original


def test_download_stage_adds_parts_once_and_deletes_dumps(tmp_path, monkeypatch):
    """wiki + date 'latest': resolved once, each stage's part downloaded from a (local) mirror, added, deleted."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from mirror_server import MirrorServer, build_mirror
    from wikigpt.data import download
    from wikigpt.data.dataset import Dataset
    from wikigpt.experiments.grow import _add_stage_parts

    monkeypatch.setattr(download, "INDEX_BACKOFF", 0.01)
    root = tmp_path / "mirror"
    root.mkdir()
    build_mirror(root)
    with MirrorServer(root) as srv:
        plan = load_plan(_plan(tmp_path, f'[dump]\nwiki = "enwiki"\ndate = "latest"\nmirror = "{srv.base}"\n'
                                          '[dataset]\nval_fraction = 0.1\n[model]\npreset = "tiny"\n'
                                          '[[stage]]\nname = "one"\nparts = [1]\ntokens = 1e4\n'
                                          '[[stage]]\nname = "two"\nparts = [2]\ntokens = 1e4\n'))
        out = tmp_path / "out"
        out.mkdir()
        state = State(out)
        ds = Dataset(out / "data", val_fraction=0.1)
        names = [_add_stage_parts(plan, st, out, state, ds) for st in plan.stages]
        assert names == [["enwiki-20240101-pages-articles1"], ["enwiki-20240101-pages-articles2"]]
        assert state.d["dump_date"] == "20240101"
        assert [len(p["files"]) for p in ds.parts] == [1, 2]  # part 2 is two files on the mirror
        assert list((out / "dumps").glob("*.bz2")) == []  # deleted once in the dataset
        n = len(srv.requests)
        assert _add_stage_parts(plan, plan.stages[1], out, State(out), ds) == names[1]
        assert len(srv.requests) == n  # a stage whose parts are in the dataset downloads nothing
