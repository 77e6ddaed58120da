"""Experiment tracking as optional sinks: every record the trainer writes to metrics.jsonl also goes to
`Tracker.log(record)`, which fans it out to Weights & Biases (--wandb) and TensorBoard (--tensorboard).

metrics.jsonl stays the run's own record (plot, report and the train-time estimate read it); the trackers are
views of the same numbers, so they are optional extras (`pip install "wikigpt[tracking]"`) and never stop a run:
- a missing package is one line when the run starts (MissingExtraError), before any step;
- a sink that fails later (network, full disk) is dropped with one warning on stderr, and training goes on with
  the others and metrics.jsonl.

Each record becomes scalars at step = its "step" (the optimizer step, as nanoGPT's wandb_log uses iter_num), named
as nanoGPT's wandb_log names them where they overlap ("iter", "train/loss", "val/loss", "lr", "mfu" in percent):
- step records (every log_interval): iter, train/loss (the step's loss), lr, tokens_per_s, mfu, tokens_seen;
- eval records (every eval_interval): iter, val/loss, val/ppl, val/<part> (each dataset part's val loss),
  eval/train_loss (the train-mix estimate: nanoGPT's "train/loss" is this one), eval/tokens_per_s and eval/mfu
  (averages since the previous evaluation), lr, tokens_seen, elapsed_s.
Other numeric fields keep their own names; non-numeric ones (kind, None) are skipped.

Resuming: a resumed run (--resume) continues the same W&B run, whose id is kept in the run folder
(`wandb_id.txt`), and TensorBoard drops the killed run's events past the checkpoint (purge_step), as the trainer
cuts metrics.jsonl back to the checkpoint's step.
"""

from __future__ import annotations

import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any, Callable, Optional, Protocol

from ..errors import ConfigError, MissingExtraError

WANDB_ID_FILE = "wandb_id.txt"
_INSTALL = 'pip install "wikigpt[tracking]"'

# (record kind, field) → scalar name; a field not listed keeps its own name
_NAMES = {
    ("step", "loss"): "train/loss",
    ("eval", "train_loss"): "eval/train_loss",
    ("eval", "val_loss"): "val/loss",
    ("eval", "val_ppl"): "val/ppl",
    # an eval record's speed is the average since the last evaluation, not one window's: not the same curve
    ("eval", "tokens_per_s"): "eval/tokens_per_s",
    ("eval", "mfu"): "eval/mfu",
}
_PERCENT = ("mfu", "eval/mfu")  # stored as a fraction in metrics.jsonl; nanoGPT's wandb "mfu" is in percent


def record_scalars(record: dict) -> tuple[Optional[int], dict[str, float]]:
    """(step, {name: value}) of one metrics.jsonl record; step is None for a record without one (not logged)."""
    step = record.get("step")
    if isinstance(step, bool) or not isinstance(step, int):
        return None, {}
    kind = record.get("kind")
    out: dict[str, float] = {"iter": float(step)}
    for key, value in record.items():
        if key in ("kind", "step") or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        name = _NAMES.get((kind, key), key)
        out[name] = 100.0 * value if name in _PERCENT else float(value)
    return step, out


class Sink(Protocol):
    """One tracker backend: scalars at a step, then close."""

    name: str

    def log(self, step: int, scalars: dict[str, float]) -> None: ...

    def close(self) -> None: ...


class Tracker:
    """Fans each record out to its sinks; with none it does nothing (what `open_trackers()` gives by default).

    A sink that raises is dropped with one line on stderr: a tracker is a view of metrics.jsonl, and losing it must
    not cost a training run."""

    def __init__(self, sinks: "list[Sink] | tuple[Sink, ...]" = ()):
        self.sinks: list[Sink] = list(sinks)

    def log(self, record: dict) -> None:
        if not self.sinks:
            return
        step, scalars = record_scalars(record)
        if step is None:
            return
        for sink in list(self.sinks):
            try:
                sink.log(step, scalars)
            except Exception as e:  # whatever the backend raises, training goes on
                self._drop(sink, f"logging failed at step {step}: {type(e).__name__}: {e}")

    def close(self) -> None:
        sinks, self.sinks = self.sinks, []
        for sink in sinks:
            try:
                sink.close()
            except Exception as e:  # the run has finished; its metrics.jsonl is complete
                _warn(f"{sink.name}: closing failed: {type(e).__name__}: {e}")

    def _drop(self, sink: Sink, why: str) -> None:
        self.sinks.remove(sink)
        _warn(f"{sink.name}: {why}; training goes on without it (metrics.jsonl has every record)")
        try:
            sink.close()
        except Exception:  # already broken; the warning above said so
            pass

    def __enter__(self) -> "Tracker":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _warn(msg: str) -> None:
    # stderr, not warnings.warn: a warning filter set to "error" would turn it into the crash this avoids
    print(f"wikigpt: warning: {msg}", file=sys.stderr, flush=True)


# ---- Weights & Biases


class WandbSink:
    """One W&B run (wandb.init with the run folder's stable id, resume="allow"); scalars logged at the trainer's step.

    WANDB_MODE=offline (or `wandb offline`) logs to run_dir/wandb/ without a network; `wandb sync` uploads later."""

    name = "wandb"

    def __init__(self, project: str, run_name: Optional[str], config: dict, run_dir: Path, resume: bool):
        try:
            import wandb
        except ImportError:
            raise MissingExtraError(f"--wandb needs wandb: {_INSTALL}") from None
        run_id = _wandb_run_id(run_dir, resume)
        try:
            self.run = wandb.init(project=project, name=run_name or run_dir.name, id=run_id, resume="allow",
                                  config=config, dir=str(run_dir))
        except Exception as e:  # wandb raises its own classes (CommError, UsageError, ...)
            raise ConfigError(f"--wandb: could not start the W&B run: {type(e).__name__}: {e} (WANDB_MODE=offline "
                              "logs without a network; `wandb sync` uploads later)") from None

    def log(self, step: int, scalars: dict[str, float]) -> None:
        # a resumed W&B run refuses steps below the ones it has (the killed run logged them past the checkpoint):
        # skip them quietly instead of one wandb warning per record
        if step < getattr(self.run, "step", 0):
            return
        self.run.log(scalars, step=step)

    def close(self) -> None:
        self.run.finish()


def _new_wandb_id() -> str:
    """Eight lowercase letters and digits, the shape of W&B's own run ids (made here: where wandb keeps its generator
    has moved between releases)."""
    alphabet = string.ascii_lowercase + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(8))


def _wandb_run_id(run_dir: Path, resume: bool, new_id: Callable[[], str] = _new_wandb_id) -> str:
    """The run folder's W&B id: kept across --resume (the same W&B run goes on), new for a fresh start (including
    --overwrite of a folder that has one, whose steps would otherwise fall below the old run's and be dropped)."""
    from ..util.io import atomic_write_bytes

    path = run_dir / WANDB_ID_FILE
    if resume and path.is_file():
        run_id = path.read_text(encoding="utf-8").strip()
        if run_id:
            return run_id
    run_id = new_id()
    atomic_write_bytes(path, (run_id + "\n").encode())
    return run_id


# ---- TensorBoard


class TensorBoardSink:
    """Event files in `log_dir` through torch's SummaryWriter (torch is there whenever the trainer is).

    On resume the writer starts at the first step it is given with purge_step, so TensorBoard discards what the
    killed run wrote from that step on (the trainer logs those steps again from the checkpoint)."""

    name = "tensorboard"

    def __init__(self, log_dir: Path, resume: bool):
        try:
            import tensorboard  # noqa: F401 - torch's SummaryWriter needs it; check it first for a clear message
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise MissingExtraError(f"--tensorboard needs tensorboard: {_INSTALL}") from None
        self._cls = SummaryWriter
        self.log_dir = log_dir
        try:
            log_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise type(e)(e.errno, f"--tensorboard {log_dir}: cannot create the folder: {e.strerror}") from None
        self.resume = resume
        self.writer: Any = None if resume else self._open(None)  # on resume, opened at the first step

    def _open(self, purge_step: Optional[int]):
        # flush every 30 s (torch's default is 120): a killed run should not lose minutes of curves
        return self._cls(log_dir=str(self.log_dir), purge_step=purge_step, flush_secs=30)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        if self.writer is None:
            self.writer = self._open(step)
        for name, value in scalars.items():
            self.writer.add_scalar(name, value, global_step=step)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


# ---- building them


def open_trackers(
    *,
    wandb_project: Optional[str] = None,
    wandb_run_name: Optional[str] = None,
    tensorboard_dir: "str | os.PathLike | None" = None,
    config: dict,
    run_dir: "str | os.PathLike",
    resume: Optional[bool] = None,
) -> Tracker:
    """The trackers asked for, as one Tracker (a no-op one when none is asked).

    config: the run's resolved config (logged as the W&B run's config); resume: whether this continues the run in
    run_dir (None = config["train"]["resume"], the trainer's resolved config). Raises MissingExtraError when a
    package is missing, before anything is written."""
    if resume is None:
        train = config.get("train") if isinstance(config, dict) else None
        resume = bool(train.get("resume")) if isinstance(train, dict) else False
    run_dir = Path(run_dir)
    sinks: list[Sink] = []
    try:
        # TensorBoard first: its failure (a missing package) then leaves no W&B run behind
        if tensorboard_dir:
            sinks.append(TensorBoardSink(Path(tensorboard_dir), resume))
        if wandb_project:
            sinks.append(WandbSink(wandb_project, wandb_run_name, config, run_dir, resume))
    except BaseException:
        Tracker(sinks).close()
        raise
    return Tracker(sinks)


def check_installed(*, wandb: bool, tensorboard: bool) -> None:
    """Raise MissingExtraError for a tracker asked for whose package is missing: the trainer calls this with its
    other config checks, so the one line comes before any run file is written."""
    import importlib.util

    for asked, module, flag in ((tensorboard, "tensorboard", "--tensorboard"), (wandb, "wandb", "--wandb")):
        if asked and _find_spec(importlib.util, module) is None:
            raise MissingExtraError(f"{flag} needs {module}: {_INSTALL}")


def _find_spec(util: Any, module: str):
    try:
        return util.find_spec(module)
    except (ImportError, ValueError):  # sys.modules[module] is None (blocked), or a module without a spec
        return None
