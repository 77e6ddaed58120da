"""Experiment tracking (training/tracking.py): the trainer's metrics.jsonl records, in the shapes trainer.py writes
them, go to TensorBoard (read back from the event files with TensorBoard's own reader) and to W&B offline (read back
from the run's .wandb log); a resumed run continues the same W&B run and purges TensorBoard's events past the
checkpoint; a missing package is one line; a sink that fails mid-run is dropped with one warning and the others go
on."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from wikigpt.errors import MissingExtraError
from wikigpt.training import tracking
from wikigpt.training.tracking import TensorBoardSink, Tracker, open_trackers, record_scalars

PART = "enwiki-20230301-pages-articles1"


def step_record(step: int, loss: float, lr: float) -> dict:
    """A step record as _Run.log_step writes it."""
    return {"kind": "step", "step": step, "tokens_seen": step * 4096, "loss": loss, "lr": lr,
            "tokens_per_s": 51234.5, "mfu": 0.123}


def eval_record(step: int, train: float, val: float) -> dict:
    """An eval record as _Run.evaluate writes it (one dataset part; the first evaluation has no speed yet)."""
    return {"kind": "eval", "step": step, "tokens_seen": step * 4096, "train_loss": train, "val_loss": val,
            "val_ppl": 2.718281828 ** val, f"val/{PART}": val + 0.01, "lr": 6e-4,
            "tokens_per_s": None if step == 0 else 50000.0, "mfu": None if step == 0 else 0.1, "elapsed_s": 12.5}


RECORDS = [eval_record(0, 10.9, 10.95), step_record(10, 9.5, 3e-4), step_record(20, 8.25, 6e-4),
           eval_record(20, 8.0, 8.125)]


def test_record_scalars_names_like_nanogpt():
    step, s = record_scalars(step_record(10, 9.5, 3e-4))
    assert step == 10
    assert s == {"iter": 10.0, "tokens_seen": 40960.0, "train/loss": 9.5, "lr": 3e-4, "tokens_per_s": 51234.5,
                 "mfu": pytest.approx(12.3)}
    step, s = record_scalars(eval_record(0, 10.9, 10.95))
    assert step == 0
    # no speed at the first evaluation: None is skipped, as is "kind"
    assert set(s) == {"iter", "tokens_seen", "eval/train_loss", "val/loss", "val/ppl", f"val/{PART}", "lr",
                      "elapsed_s"}
    assert (s["val/loss"], s["eval/train_loss"], s[f"val/{PART}"]) == (10.95, 10.9, pytest.approx(10.96))
    assert record_scalars(eval_record(20, 8.0, 8.125))[1]["eval/mfu"] == pytest.approx(10.0)
    assert record_scalars({"kind": "step", "loss": 1.0}) == (None, {})  # no step: nowhere to put it


def test_no_tracker_asked_is_a_no_op(tmp_path):
    with open_trackers(config={}, run_dir=tmp_path) as t:
        assert t.sinks == []
        for r in RECORDS:
            t.log(r)
    assert list(tmp_path.iterdir()) == []


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(log_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def f32(pairs):
    """(step, value) pairs as an event file holds them: values stored as float32."""
    return [(step, pytest.approx(value, rel=1e-6)) for step, value in pairs]


def test_tensorboard_event_files_hold_the_records(tmp_path):
    tb = tmp_path / "tb"
    with open_trackers(tensorboard_dir=tb, config={}, run_dir=tmp_path / "run") as t:
        for r in RECORDS:
            t.log(r)
    got = _scalars(tb)
    assert got["train/loss"] == f32([(10, 9.5), (20, 8.25)])
    assert got["lr"] == f32([(0, 6e-4), (10, 3e-4), (20, 6e-4), (20, 6e-4)])
    assert got["val/loss"] == f32([(0, 10.95), (20, 8.125)])
    assert got[f"val/{PART}"] == f32([(0, 10.96), (20, 8.135)])
    assert got["eval/train_loss"] == f32([(0, 10.9), (20, 8.0)])
    assert got["mfu"] == f32([(10, 12.3), (20, 12.3)])
    assert got["eval/tokens_per_s"] == f32([(20, 50000.0)])
    assert got["tokens_seen"] == f32([(0, 0.0), (10, 40960.0), (20, 81920.0), (20, 81920.0)])
    assert got["iter"][-1] == (20, 20.0)


def test_tensorboard_resume_drops_the_killed_runs_steps_past_the_checkpoint(tmp_path):
    tb = tmp_path / "tb"
    with Tracker([TensorBoardSink(tb, resume=False)]) as t:
        for step, loss in ((10, 5.0), (20, 4.0), (30, 3.0)):
            t.log(step_record(step, loss, 1e-3))
    # killed after step 30, checkpoint at step 10: the resumed run logs 20 and 30 again
    with Tracker([TensorBoardSink(tb, resume=True)]) as t:
        for step, loss in ((20, 4.5), (30, 3.5)):
            t.log(step_record(step, loss, 1e-3))
    assert _scalars(tb)["train/loss"] == f32([(10, 5.0), (20, 4.5), (30, 3.5)])


# ---- W&B, offline


@pytest.fixture
def wandb_offline(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_CONSOLE": "off",
                       "WANDB_DIR": str(tmp_path), "WANDB_CACHE_DIR": str(tmp_path / "cache"),
                       "WANDB_CONFIG_DIR": str(tmp_path / "config"), "WANDB_DATA_DIR": str(tmp_path / "data")}.items():
        monkeypatch.setenv(var, value)
    return tmp_path


def _wandb_log(path: Path):
    """The records of a .wandb file: W&B's LevelDB-log framing (a 7-byte ":W&B" header, 32 KiB blocks, each record
    a 7-byte crc/length/type header, split across blocks as FIRST/MIDDLE/LAST) around protobuf Records."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # a block's tail too short for a header is padding
            pos += block - pos % block
            continue
        _crc, n, kind = struct.unpack_from("<IHB", data, pos)
        chunk, pos = data[pos + 7: pos + 7 + n], pos + 7 + n
        if kind in (1, 4):  # FULL, LAST
            record = pb.Record()
            record.ParseFromString(pending + chunk if kind == 4 else chunk)
            pending = b""
            yield record
        elif kind == 2:  # FIRST
            pending = chunk
        elif kind == 3:  # MIDDLE
            pending += chunk


def _finished_wandb_log(path: Path, timeout_s: float = 60.0) -> list:
    """The records of a finished run's .wandb file. run.finish() returns before wandb's service process has written
    the file (wandb 0.31 offline): wait for its closing `exit` record."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            records = list(_wandb_log(path))
        except Exception:  # a record half written: read again
            records = []
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.1)


def _wandb_runs(run_dir: Path) -> list[tuple[str, dict, dict[int, dict]]]:
    """Per offline run in run_dir/wandb: (run id, run record fields, {step: {name: value}})."""
    import json

    out = []
    for f in sorted((run_dir / "wandb").glob("offline-run-*/run-*.wandb")):
        info: dict = {}
        history: dict[int, dict] = {}
        for r in _finished_wandb_log(f):
            kind = r.WhichOneof("record_type")
            if kind == "run":
                info = {"id": r.run.run_id, "project": r.run.project, "name": r.run.display_name,
                        "config": {u.key: json.loads(u.value_json) for u in r.run.config.update}}
            elif kind == "history":
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in r.history.item}
                history[r.history.step.num] = {k: v for k, v in row.items() if not k.startswith("_")}
        out.append((f.stem.removeprefix("run-"), info, history))
    return out


def test_wandb_offline_run_and_resume(wandb_offline):
    run_dir = wandb_offline / "run"
    run_dir.mkdir()
    config = {"train": {"lr": 6e-4, "resume": False}, "model": {"n_layer": 2}}
    with open_trackers(wandb_project="wikigpt-test", config=config, run_dir=run_dir) as t:
        for r in RECORDS:
            t.log(r)
    run_id = (run_dir / "wandb_id.txt").read_text().strip()
    ((got_id, info, history),) = _wandb_runs(run_dir)
    assert got_id == info["id"] == run_id
    assert (info["project"], info["name"]) == ("wikigpt-test", "run")  # the run folder's name by default
    assert info["config"]["train"] == config["train"] and info["config"]["model"] == {"n_layer": 2}
    assert sorted(history) == [0, 10, 20]
    assert history[10]["train/loss"] == 9.5 and history[10]["lr"] == 3e-4
    assert history[20]["train/loss"] == 8.25  # a step record and an eval record at one step share a row
    assert history[20]["val/loss"] == 8.125 and history[20][f"val/{PART}"] == pytest.approx(8.135)
    assert history[0]["val/loss"] == 10.95

    # --resume (config["train"]["resume"]): the same W&B run id, so a sync continues that run
    resumed = {**config, "train": {**config["train"], "resume": True}}
    with open_trackers(wandb_project="wikigpt-test", wandb_run_name="named", config=resumed, run_dir=run_dir) as t:
        t.log(step_record(30, 7.5, 5e-4))
    runs = _wandb_runs(run_dir)
    assert [r[0] for r in runs] == [run_id, run_id]
    later = [r for r in runs if 30 in r[2]]
    assert len(later) == 1 and later[0][1]["name"] == "named" and later[0][2][30]["train/loss"] == 7.5


def test_wandb_id_is_kept_on_resume_only(tmp_path):
    ids = iter(["first", "second"])

    def new_id():
        return next(ids)

    assert tracking._wandb_run_id(tmp_path, resume=True, new_id=new_id) == "first"  # nothing stored yet
    assert tracking._wandb_run_id(tmp_path, resume=True, new_id=new_id) == "first"
    # a fresh start (--overwrite) in the same folder: a new W&B run, whose steps start again at 0
    assert tracking._wandb_run_id(tmp_path, resume=False, new_id=new_id) == "second"
    assert (tmp_path / "wandb_id.txt").read_text() == "second\n"


# ---- failures


@pytest.mark.parametrize("flag, module", [("wandb", "wandb"), ("tensorboard", "tensorboard")])
def test_missing_package_is_one_line(tmp_path, monkeypatch, flag, module):
    monkeypatch.setitem(sys.modules, module, None)  # `import module` raises ImportError
    kwargs = {"wandb_project": "p"} if flag == "wandb" else {"tensorboard_dir": tmp_path / "tb"}
    with pytest.raises(MissingExtraError) as e:
        open_trackers(config={}, run_dir=tmp_path, **kwargs)
    assert str(e.value) == f'--{flag} needs {module}: pip install "wikigpt[tracking]"'
    assert not (tmp_path / "wandb_id.txt").exists()


def test_missing_wandb_closes_the_tensorboard_sink_already_open(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "wandb", None)
    closed = []
    monkeypatch.setattr(TensorBoardSink, "close", lambda self: closed.append(self.log_dir))
    with pytest.raises(MissingExtraError):
        open_trackers(wandb_project="p", tensorboard_dir=tmp_path / "tb", config={}, run_dir=tmp_path)
    assert closed == [tmp_path / "tb"]


class _Raising:
    name = "flaky"

    def __init__(self):
        self.calls = 0
        self.closed = False

    def log(self, step, scalars):
        self.calls += 1
        raise ConnectionError("network is unreachable")

    def close(self):
        self.closed = True
        raise ConnectionError("still unreachable")


def test_a_failing_sink_is_dropped_with_one_warning_and_the_others_go_on(tmp_path, capsys):
    tb = tmp_path / "tb"
    flaky = _Raising()
    with Tracker([flaky, TensorBoardSink(tb, resume=False)]) as t:
        for r in RECORDS:
            t.log(r)
    assert flaky.calls == 1 and flaky.closed
    err = capsys.readouterr().err.splitlines()
    assert err == ["wikigpt: warning: flaky: logging failed at step 0: ConnectionError: network is unreachable; "
                   "training goes on without it (metrics.jsonl has every record)"]
    assert [s for s, _ in _scalars(tb)["val/loss"]] == [0, 20]
    assert [s for s, _ in _scalars(tb)["train/loss"]] == [10, 20]


def test_check_installed_names_the_missing_extra(monkeypatch):
    tracking.check_installed(wandb=True, tensorboard=True)  # both installed with the test extra
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    tracking.check_installed(wandb=True, tensorboard=False)
    needs = r'^--tensorboard needs tensorboard: pip install "wikigpt\[tracking\]"$'
    with pytest.raises(MissingExtraError, match=needs):
        tracking.check_installed(wandb=False, tensorboard=True)


# ---- the trainer: the same records as metrics.jsonl, at the same points


def _metrics(run: Path) -> list[dict]:
    import json

    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def test_a_tiny_run_logs_to_tensorboard_and_wandb_what_metrics_jsonl_holds(sample_dataset, tmp_path, wandb_offline):
    from wikigpt import cli

    run, tb = tmp_path / "run", tmp_path / "tb"
    assert cli.main(["train", str(sample_dataset), "--out", str(run), "--preset", "tiny", "--batch-size", "2",
                     "--gradient-accumulation-steps", "1", "--max-iters", "4", "--eval-interval", "2",
                     "--eval-iters", "1", "--log-interval", "1", "--sample-tokens", "0", "--device", "cpu",
                     "--no-compile", "--peak-tflops", "1", "--tensorboard", str(tb), "--wandb", "wikigpt-test",
                     "--wandb-run-name", "tiny"]) == 0
    records = _metrics(run)
    steps = [r for r in records if r["kind"] == "step"]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["step"] for r in steps] == [1, 2, 3, 4] and [r["step"] for r in evals] == [0, 2, 4]
    got = _scalars(tb)
    assert got["train/loss"] == f32([(r["step"], r["loss"]) for r in steps])
    assert got["val/loss"] == f32([(r["step"], r["val_loss"]) for r in evals])
    part_keys = sorted(k for k in evals[0] if k.startswith("val/"))
    assert part_keys and all(got[k] == f32([(r["step"], r[k]) for r in evals]) for k in part_keys)
    assert got["mfu"] == f32([(r["step"], 100 * r["mfu"]) for r in steps])
    assert got["tokens_per_s"] == f32([(r["step"], r["tokens_per_s"]) for r in steps])
    ((_, info, history),) = _wandb_runs(run)
    assert info["name"] == "tiny" and info["project"] == "wikigpt-test"
    assert info["config"]["train"]["tensorboard"] == str(tb)
    assert {s: h["train/loss"] for s, h in history.items() if "train/loss" in h} == {r["step"]: r["loss"]
                                                                                    for r in steps}
    assert {s: h["val/loss"] for s, h in history.items() if "val/loss" in h} == {r["step"]: r["val_loss"]
                                                                                for r in evals}


def test_train_with_a_missing_tracker_package_is_one_line_and_writes_nothing(sample_dataset, tmp_path, monkeypatch,
                                                                             capsys):
    from wikigpt import cli

    monkeypatch.setitem(sys.modules, "tensorboard", None)
    run = tmp_path / "run"
    assert cli.main(["train", str(sample_dataset), "--out", str(run), "--preset", "tiny", "--max-iters", "2",
                     "--device", "cpu", "--tensorboard", str(tmp_path / "tb")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['wikigpt: error: --tensorboard needs tensorboard: pip install "wikigpt[tracking]"'], err
    assert not run.exists() and not (tmp_path / "tb").exists()
