"""`wikigpt grow`: growth experiments, a model trained in stages as dump parts are added to its dataset.

    wikigpt grow plan.toml --out runs/growth                          # the stages of the plan, in order
    wikigpt grow plan.toml --out runs/growth --compare all-at-once    # + the same token budget from scratch
    wikigpt report runs/growth                                        # report.md + PNGs (experiments/report.py)

A plan (TOML; examples/growth-plan.toml documents every field) names where the dump parts come from, the model, the
training defaults, the evaluation, and the stages. Each stage adds its parts to the dataset (downloading them first
when the plan names a wiki and date), trains for its token budget starting from the previous stage's checkpoint,
and samples a fixed set of prompts. The output folder:

    runs/growth/
      plan.toml               the plan as last run (copied)
      state.json              which stages are finished, the parts each one added, timings, disk use (atomic)
      data/                   the dataset (manifest.json, parts/<part>/..., val_pages.tsv per part)
      dumps/                  downloaded or cut dump parts (downloads are deleted once added unless keep_dumps)
      stages/<name>/          a normal `wikigpt train` run folder per stage (metrics.jsonl, ckpt.pt, ...) plus
                              grow_samples.json, the stage-end samples
      compare/all-at-once/    with --compare: the same total tokens on the final parts, from scratch
      report.md, *.png        written by `wikigpt report` (and at the end of `wikigpt grow`)

Restarting after a kill or Ctrl-C: a finished stage is never redone; a stage whose run folder has a checkpoint
continues it (`resume`: same step, same data windows, same LR schedule); one killed before its first checkpoint
starts over from the previous stage. Stages may be appended to the plan between runs; changing a finished stage is
refused. Token budgets are per stage: stage k trains until the model has seen the sum of stages 1..k's tokens
(counted across stages, so rounding to whole steps never accumulates).
"""

from __future__ import annotations

import argparse
import bz2
import dataclasses
import difflib
import json
import math
import os
import re
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional, Union

from ..errors import ConfigError, WikiGPTError
from ..util.io import exclusive_lock

STATE_VERSION = 1
COMPARE_MODES = ("all-at-once",)
DEFAULT_PROMPTS = ["The history of", "In mathematics,", "The city is"]
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

# TrainConfig fields grow sets itself: where the data and the run live, where a stage starts, how long it trains
_GROW_OWNED = ("dataset", "out", "init_from", "resume", "overwrite", "max_tokens", "max_iters", "sample_prompt")
# the architecture is fixed for the whole experiment: only in [model]
_MODEL_FIELDS = ("preset", "n_layer", "n_head", "n_embd", "block_size", "dropout", "bias")
_DUMP_KEYS = ("wiki", "date", "dumps_dir", "mirror", "multistream", "keep_dumps", "sample_parts")
_DATASET_KEYS = ("val_fraction", "shard_tokens", "min_chars", "processes")
_EVAL_KEYS = ("prompts", "sample_tokens", "temperature", "top_k", "eval_interval", "eval_iters")
_STAGE_KEYS = ("name", "parts", "files", "tokens")
# TrainConfig fields that change how fast a run goes, not what it computes
_RUNTIME_FIELDS = ("device", "compile", "kernels", "vram_gb", "peak_tflops", "log_interval")


def _log(msg: str) -> None:
    print(f"wikigpt grow: {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------------------------------------
# the plan


@dataclass
class Stage:
    name: str
    tokens: float  # tokens to train in this stage
    parts: list[int] = field(default_factory=list)  # dump part numbers (downloaded, or cut from the sample)
    files: list[Path] = field(default_factory=list)  # local dump files (absolute)
    train: dict[str, Any] = field(default_factory=dict)  # this stage's TrainConfig overrides, as written
    mix: Union[str, dict] = "tokens"  # as written in the plan: tokens, sequential, or {key: weight}


@dataclass
class Plan:
    path: Path
    text: str
    dump: dict[str, Any]
    dataset: dict[str, Any]
    model: dict[str, Any]
    train: dict[str, Any]  # defaults for every stage ([train], plus eval_interval/eval_iters from [eval])
    eval: dict[str, Any]  # prompts, sample_tokens, temperature, top_k
    stages: list[Stage]
    compare: dict[str, Any]  # TrainConfig overrides of the all-at-once run

    def stage(self, name: str) -> Stage:
        return next(s for s in self.stages if s.name == name)

    def stage_config(self, i: int) -> dict[str, Any]:
        """TrainConfig fields of stage i (0-based) other than the ones grow sets per run (paths, start, length)."""
        st = self.stages[i]
        cfg = {**self.model, **self.train, **st.train}
        cfg["sample_tokens"] = self.eval["sample_tokens"]
        cfg["sample_prompt"] = self.eval["prompts"][0] if self.eval["prompts"] else "The history of"
        return cfg

    def compare_config(self) -> dict[str, Any]:
        """The all-at-once run: [train], then the first stage's settings (a model from scratch, as stage 1 was),
        then [compare]; windows drawn from all parts by tokens unless [compare] says otherwise."""
        cfg = {**self.model, **self.train, **self.stages[0].train, "mix": "tokens", **self.compare}
        cfg["sample_tokens"] = self.eval["sample_tokens"]
        cfg["sample_prompt"] = self.eval["prompts"][0] if self.eval["prompts"] else "The history of"
        return cfg

    def total_tokens(self) -> float:
        return float(sum(s.tokens for s in self.stages))

    def normalized(self) -> dict[str, Any]:
        """What decides each stage's result, as plain JSON (kept in state.json to refuse edits of finished stages).
        Where and how fast it runs (device, compile, kernels, the card's memory, the mirror) may change between
        runs of an experiment; what it computes may not."""
        def result_fields(cfg: dict) -> dict:
            return _jsonable({k: v for k, v in cfg.items() if k not in _RUNTIME_FIELDS})

        return {
            "dump": {k: v for k, v in self.dump.items() if k not in ("mirror", "keep_dumps", "dumps_dir")},
            "dataset": {k: v for k, v in self.dataset.items() if k != "processes"},
            "model": self.model,
            "eval": self.eval,
            "stages": [
                {"name": s.name, "tokens": s.tokens, "parts": s.parts, "files": [str(f) for f in s.files],
                 "mix": s.mix, "train": result_fields(self.stage_config(i))}
                for i, s in enumerate(self.stages)
            ],
            "compare": result_fields(self.compare_config()),
        }


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, sort_keys=True, default=str))


def _toml_load(text: str, path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - exercised on older Pythons only
        import tomli as tomllib
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None


class _Checker:
    """Type checks with errors that name the plan file and the field, e.g. `plan.toml: stage "p2".lr: ...`."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {msg}")

    def table(self, doc: dict, key: str) -> dict:
        v = doc.get(key, {})
        if not isinstance(v, dict):
            raise self.fail(f"[{key}]", f"expected a table, got {type(v).__name__}")
        return v

    def keys(self, table: dict, allowed: Union[tuple, list, set], where: str) -> None:
        for k in table:
            if k not in allowed:
                close = difflib.get_close_matches(k, list(allowed), n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise self.fail(f"{where}.{k}", f"unknown field{hint}")

    def int_(self, v: Any, where: str, minimum: Optional[int] = None) -> int:
        if isinstance(v, float) and v.is_integer():  # 2e8 is a float in TOML
            v = int(v)
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.fail(where, f"expected an integer, got {v!r}")
        if minimum is not None and v < minimum:
            raise self.fail(where, f"must be at least {minimum}, got {v}")
        return v

    def float_(self, v: Any, where: str, positive: bool = False) -> float:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(where, f"expected a number, got {v!r}")
        if positive and v <= 0:
            raise self.fail(where, f"must be positive, got {v!r}")
        return float(v)

    def bool_(self, v: Any, where: str) -> bool:
        if not isinstance(v, bool):
            raise self.fail(where, f"expected true or false, got {v!r}")
        return v

    def str_(self, v: Any, where: str) -> str:
        if not isinstance(v, str):
            raise self.fail(where, f"expected a string, got {v!r}")
        return v


def _train_fields() -> dict[str, dataclasses.Field]:
    from ..training.trainer import TrainConfig

    return {f.name: f for f in dataclasses.fields(TrainConfig)}


def _check_train_value(c: _Checker, name: str, v: Any, where: str) -> Any:
    """One TrainConfig field from TOML, by its annotation (the dataclass is the single list of options)."""
    ann = str(_train_fields()[name].type)
    w = f"{where}.{name}"
    if name == "mix":
        return _check_mix(c, v, w)
    if "bool" in ann:
        return c.bool_(v, w)
    if "int" in ann:
        return c.int_(v, w)
    if "float" in ann:
        return c.float_(v, w)
    return c.str_(v, w)


def _check_mix(c: _Checker, v: Any, where: str) -> Union[str, dict]:
    if isinstance(v, str):
        if v not in ("tokens", "sequential"):
            raise c.fail(where, f"{v!r}: use \"tokens\", \"sequential\" or a table of weights like "
                                "{old = 0.2, new = 0.8}")
        return v
    if isinstance(v, dict):
        if not v:
            raise c.fail(where, "an empty table: name at least one of old, new, a stage or a part")
        return {str(k): c.float_(w, f"{where}.{k}") for k, w in v.items()}
    raise c.fail(where, f"expected \"tokens\", \"sequential\" or a table of weights, got {v!r}")


def _check_train_table(c: _Checker, table: dict, where: str) -> dict[str, Any]:
    fields = _train_fields()
    allowed = [k for k in fields if k not in _GROW_OWNED and k not in _MODEL_FIELDS]
    out = {}
    for k, v in table.items():
        if k in _MODEL_FIELDS:
            raise c.fail(f"{where}.{k}", "the architecture is fixed for the whole experiment: set it in [model]")
        if k in _GROW_OWNED:
            why = {"max_tokens": "use tokens = ... per stage", "max_iters": "use tokens = ... per stage",
                   "sample_prompt": "use prompts = [...] in [eval]"}.get(k, "grow sets it for each stage")
            raise c.fail(f"{where}.{k}", f"not settable in a plan ({why})")
        c.keys({k: v}, allowed, where)
        out[k] = _check_train_value(c, k, v, where)
    return out


def load_plan(path: Union[str, os.PathLike]) -> Plan:
    """Read and validate a plan; every error is a ConfigError naming the file and the field."""
    path = Path(path)
    text = _read_plan_text(path)
    doc = _toml_load(text, path)
    c = _Checker(path)
    c.keys(doc, ("dump", "dataset", "model", "train", "eval", "stage", "compare"), "plan")
    dump = _check_dump(c, c.table(doc, "dump"))
    dataset = _check_dataset(c, c.table(doc, "dataset"))
    model = _check_model(c, c.table(doc, "model"))
    eval_t = c.table(doc, "eval")
    ev = _check_eval(c, eval_t)
    train = _check_train_section(c, c.table(doc, "train"), eval_t)
    stages = _check_stages(c, doc.get("stage"), dump, train, base=path.resolve().parent)
    compare = _check_compare(c, c.table(doc, "compare"), stages)
    plan = Plan(path=path.resolve(), text=text, dump=dump, dataset=dataset, model=model, train=train, eval=ev,
                stages=stages, compare=compare)
    train.pop("mix", None)  # each stage carries its own (resolved at run time)
    _check_as_train_configs(c, plan)
    return plan


def _read_plan_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such plan file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the plan: {e}") from None


def _check_dump(c: _Checker, dump_t: dict) -> dict[str, Any]:
    """[dump]: where the parts come from: wiki + date (downloaded from a mirror), or cuts of the bundled sample."""
    c.keys(dump_t, _DUMP_KEYS, "[dump]")
    dump: dict[str, Any] = {}
    for k in ("wiki", "date", "dumps_dir", "mirror"):
        if k in dump_t:
            dump[k] = c.str_(dump_t[k], f"[dump].{k}")
    for k in ("multistream", "keep_dumps"):
        if k in dump_t:
            dump[k] = c.bool_(dump_t[k], f"[dump].{k}")
    if "sample_parts" in dump_t:
        dump["sample_parts"] = c.int_(dump_t["sample_parts"], "[dump].sample_parts", minimum=1)
        if "wiki" in dump or "date" in dump:
            raise c.fail("[dump].sample_parts",
                         "parts come either from the bundled sample or from wiki + date, not both")
    if ("wiki" in dump) != ("date" in dump):
        raise c.fail("[dump]", "name both wiki and date (date may be \"latest\")")
    if "wiki" in dump:
        from ..data.index import check_date, check_wiki

        try:
            check_wiki(dump["wiki"])
            check_date(dump["date"])
        except WikiGPTError as e:
            raise c.fail("[dump]", str(e)) from None
    return dump


def _check_dataset(c: _Checker, ds_t: dict) -> dict[str, Any]:
    """[dataset]: how `add` builds the shards."""
    c.keys(ds_t, _DATASET_KEYS, "[dataset]")
    dataset: dict[str, Any] = {}
    if "val_fraction" in ds_t:
        dataset["val_fraction"] = c.float_(ds_t["val_fraction"], "[dataset].val_fraction")
        if not 0 < dataset["val_fraction"] < 1:
            raise c.fail("[dataset].val_fraction", "must be in (0, 1): per-part evaluation needs val pages")
    for k, lo in (("shard_tokens", 1), ("min_chars", 0), ("processes", 1)):
        if k in ds_t:
            dataset[k] = c.int_(ds_t[k], f"[dataset].{k}", minimum=lo)
    return dataset


def _check_model(c: _Checker, model_t: dict) -> dict[str, Any]:
    """[model]: the architecture, fixed for the whole experiment."""
    c.keys(model_t, _MODEL_FIELDS, "[model]")
    model = {k: _check_train_value(c, k, v, "[model]") for k, v in model_t.items()}
    if "preset" in model:
        from ..training.model import PRESETS

        if model["preset"] not in PRESETS:
            raise c.fail("[model].preset", f"{model['preset']!r}: choose one of {', '.join(PRESETS)}")
    return model


def _check_eval(c: _Checker, eval_t: dict) -> dict[str, Any]:
    """[eval]: the samples written at the end of every stage (its eval_interval / eval_iters go to the trainer)."""
    c.keys(eval_t, _EVAL_KEYS, "[eval]")
    prompts = eval_t.get("prompts", DEFAULT_PROMPTS)
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise c.fail("[eval].prompts", "expected a list of strings")
    ev = {
        "prompts": list(prompts),
        "sample_tokens": c.int_(eval_t.get("sample_tokens", 60), "[eval].sample_tokens", minimum=0),
        "temperature": c.float_(eval_t.get("temperature", 0.8), "[eval].temperature"),
        "top_k": c.int_(eval_t.get("top_k", 200), "[eval].top_k", minimum=0),
    }
    if ev["temperature"] < 0:
        raise c.fail("[eval].temperature", "must not be negative")
    return ev


def _check_train_section(c: _Checker, train_t: dict, eval_t: dict) -> dict[str, Any]:
    """[train]: the trainer's defaults for every stage. eval_interval / eval_iters may sit in [eval] (they are
    evaluation settings) or in [train], not both."""
    train = _check_train_table(c, train_t, "[train]")
    for k in ("eval_interval", "eval_iters"):
        if k in eval_t:
            if k in train_t:
                raise c.fail(f"[eval].{k}", "also set in [train]: keep one")
            train[k] = _check_train_value(c, k, eval_t[k], "[eval]")
    return train


def _check_stages(c: _Checker, stages_t: Any, dump: dict, train: dict, base: Path) -> list[Stage]:
    """[[stage]]: in order, each with a unique name, a token budget, the parts or files it adds (each added by one
    stage only) and its own trainer settings."""
    if not isinstance(stages_t, list) or not stages_t:
        raise c.fail("[[stage]]", "the plan has no stages (add [[stage]] tables with name, parts or files, tokens)")
    stages: list[Stage] = []
    seen_parts: dict[int, str] = {}
    seen_files: dict[Path, str] = {}
    for i, st in enumerate(stages_t, start=1):
        name = _check_stage_name(c, st, i, stages)
        where = f"stage {name!r}"
        if "tokens" not in st:
            raise c.fail(where, "no token budget (tokens = 2e8: tokens to train in this stage)")
        tokens = c.float_(st["tokens"], f"{where}.tokens", positive=True)
        parts = _check_stage_parts(c, st, where, name, dump, seen_parts)
        files = _check_stage_files(c, st, where, name, base, seen_files)
        if not stages and not parts and not files:
            raise c.fail(where, "the first stage must add data: give parts = [...] or files = [...]")
        train_over = _check_train_table(c, {k: v for k, v in st.items() if k not in _STAGE_KEYS}, where)
        mix = train_over.pop("mix", train.get("mix", "tokens"))
        _check_mix_keys(c, mix, where, name, [s.name for s in stages], bool(stages), bool(parts or files))
        stages.append(Stage(name=name, tokens=tokens, parts=parts, files=files, train=train_over, mix=mix))
    return stages


def _check_stage_name(c: _Checker, st: Any, i: int, earlier: list[Stage]) -> str:
    if not isinstance(st, dict):
        raise c.fail(f"[[stage]] #{i}", "expected a table")
    if "name" not in st:
        raise c.fail(f"[[stage]] #{i}", "no name (e.g. name = \"p1\")")
    name = c.str_(st["name"], f"[[stage]] #{i}.name")
    if not _NAME_RE.match(name):
        raise c.fail(f"stage {name!r}.name", "use letters, digits, '.', '_' or '-' (it names a folder)")
    if any(s.name == name for s in earlier):
        raise c.fail(f"stage {name!r}.name", "two stages have this name")
    return name


def _check_stage_parts(c: _Checker, st: dict, where: str, name: str, dump: dict,
                       seen_parts: dict[int, str]) -> list[int]:
    """The dump part numbers a stage adds: they need a [dump] to come from, and each is added once."""
    if "parts" not in st:
        return []
    if not isinstance(st["parts"], list):
        raise c.fail(f"{where}.parts", "expected a list of part numbers, e.g. [2, 3]")
    parts = [c.int_(p, f"{where}.parts", minimum=1) for p in st["parts"]]
    if "wiki" not in dump and "sample_parts" not in dump:
        raise c.fail(f"{where}.parts", "part numbers need [dump] wiki and date (or sample_parts); "
                                       "use files = [...] for local dump files")
    if "sample_parts" in dump and any(p > dump["sample_parts"] for p in parts):
        raise c.fail(f"{where}.parts", f"the sample is cut into {dump['sample_parts']} parts, numbered "
                                       f"1..{dump['sample_parts']}")
    for p in parts:
        if p in seen_parts:
            raise c.fail(f"{where}.parts", f"part {p} is already added by stage {seen_parts[p]!r}")
        seen_parts[p] = name
    return parts


def _check_stage_files(c: _Checker, st: dict, where: str, name: str, base: Path,
                       seen_files: dict[Path, str]) -> list[Path]:
    """The local dump files a stage adds (relative to the plan file): each exists and is added once."""
    if "files" not in st:
        return []
    if not isinstance(st["files"], list) or not all(isinstance(f, str) for f in st["files"]):
        raise c.fail(f"{where}.files", "expected a list of paths (relative to the plan file)")
    files: list[Path] = []
    for f in st["files"]:
        p = (base / f).resolve()
        if not p.is_file():
            raise c.fail(f"{where}.files", f"{p}: no such file")
        if p in seen_files:
            raise c.fail(f"{where}.files", f"{f} is already added by stage {seen_files[p]!r}")
        seen_files[p] = name
        files.append(p)
    return files


def _check_compare(c: _Checker, compare_t: dict, stages: list[Stage]) -> dict[str, Any]:
    """[compare]: the all-at-once run's trainer settings (it trains from scratch on every stage's parts)."""
    compare = _check_train_table(c, compare_t, "[compare]")
    if isinstance(compare.get("mix"), dict):
        _check_mix_keys(c, compare["mix"], "[compare]", None, [s.name for s in stages], False, True)
    if compare.get("mix") == "sequential":
        raise c.fail("[compare].mix", "the all-at-once run starts from scratch: sequential would be all parts; "
                                      "use \"tokens\" or weights")
    return compare


def _check_as_train_configs(c: _Checker, plan: Plan) -> None:
    """The values TrainConfig itself checks (ranges, schedule names, lr order), for every stage and the comparison,
    reported with the plan's field names."""
    from ..training.trainer import TrainConfig, _check_config

    for i, st in enumerate(plan.stages):
        cfg = {k: v for k, v in plan.stage_config(i).items() if k != "mix"}
        try:
            _check_config(TrainConfig(dataset="-", out="-", **cfg))
        except ConfigError as e:
            raise c.fail(f"stage {st.name!r}", _plan_names(str(e))) from None
    try:
        _check_config(TrainConfig(dataset="-", out="-", **{k: v for k, v in plan.compare_config().items()
                                                              if k != "mix"}))
    except ConfigError as e:
        raise c.fail("[compare]", _plan_names(str(e))) from None


def _plan_names(msg: str) -> str:
    """TrainConfig's errors name CLI flags (--min-lr); a plan spells them as fields (min_lr)."""
    return re.sub(r"--([a-z][a-z0-9-]*)", lambda m: m.group(1).replace("-", "_"), msg)


def _check_mix_keys(c: _Checker, mix: Any, where: str, name: Optional[str], earlier: list[str], has_old: bool,
                    has_new: bool) -> None:
    if mix == "sequential" and not has_new:
        raise c.fail(f"{where}.mix", "\"sequential\" trains on this stage's new parts, and it adds none")
    if not isinstance(mix, dict):
        return
    for k in mix:
        if k == "old" and not has_old:
            raise c.fail(f"{where}.mix.old", "no earlier stage: there are no old parts yet")
        if k == "new" and not has_new:
            raise c.fail(f"{where}.mix.new", "this stage adds no parts")
        if k in ("old", "new") or k in earlier or k == name:
            continue
        if "-pages-articles" in k:  # a dataset part name: checked against the dataset at run time
            continue
        names = ", ".join(earlier + [name] if name else earlier)
        raise c.fail(f"{where}.mix.{k}", f"unknown key: use old, new, a stage name ({names}) or a dataset part name")


# ----------------------------------------------------------------------------------------------------------------
# state.json


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"{path}: unreadable ({e}); it is written atomically, so this is not from a kill") from None


class State:
    """out/state.json: the experiment's progress. Written atomically after every step that changes it."""

    def __init__(self, out: Path):
        self.path = out / "state.json"
        d = _read_json(self.path)
        if d is not None and d.get("version") != STATE_VERSION:
            raise ConfigError(f"{self.path}: state version {d.get('version')!r}; this wikigpt reads {STATE_VERSION}")
        self.d: dict[str, Any] = d or {"version": STATE_VERSION, "created": _now(), "stages": {}, "order": [],
                                       "current": None, "compare": {}}

    @property
    def stages(self) -> dict[str, dict]:
        return self.d["stages"]

    def stage(self, name: str) -> dict:
        return self.d["stages"].setdefault(name, {"status": "pending"})

    def finished(self, name: str) -> bool:
        return self.d["stages"].get(name, {}).get("status") == "finished"

    def save(self) -> None:
        from ..util.io import atomic_write_json

        self.d["updated"] = _now()
        atomic_write_json(self.path, self.d)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _check_unchanged(state: State, plan: Plan) -> None:
    """A finished stage (and everything it depended on) must be the same in the plan as when it ran."""
    old = state.d.get("plan")
    if not old:
        return
    new = plan.normalized()
    finished = [s for s in old["stages"] if state.finished(s["name"])]
    if finished:
        for key in ("dump", "dataset", "model", "eval"):
            if _jsonable(old[key]) != _jsonable(new[key]):
                diff = _first_diff(old[key], new[key])
                raise ConfigError(f"{plan.path}: [{key}]{diff} changed since stages ran in {state.path.parent}; "
                                  "finished stages are never redone: use a new --out folder")
    new_by_name = {s["name"]: s for s in new["stages"]}
    order = [s["name"] for s in new["stages"]]
    for i, s in enumerate(old["stages"]):
        if not state.finished(s["name"]):
            continue
        n = new_by_name.get(s["name"])
        if n is None:
            raise ConfigError(f"{plan.path}: stage {s['name']!r} ran already in {state.path.parent} but is no longer "
                              "in the plan; finished stages cannot be removed (use a new --out folder)")
        if order.index(s["name"]) != i:
            raise ConfigError(f"{plan.path}: stage {s['name']!r} moved in the plan; finished stages keep their order")
        if _jsonable(s) != _jsonable(n):
            raise ConfigError(f"{plan.path}: stage {s['name']!r}{_first_diff(s, n)} changed since it ran in "
                              f"{state.path.parent}; a finished stage is never redone (use a new --out folder)")


def _first_diff(a: Any, b: Any, where: str = "") -> str:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b)):
            if k not in a or k not in b or _jsonable({"v": a[k]}) != _jsonable({"v": b[k]}):
                return _first_diff(a.get(k), b.get(k), f"{where}.{k}")
    return where


@contextmanager
def _locked(out: Path) -> Iterator[None]:
    with exclusive_lock(out / ".grow.lock", f"{out}: another `wikigpt grow` is running on this folder", ConfigError):
        yield


# ----------------------------------------------------------------------------------------------------------------
# dump parts


SAMPLE_PART_PREFIX = "enwiki-sample-pages-articles"


def split_sample(n: int, dest: Union[str, os.PathLike]) -> list[Path]:
    """The bundled real sample cut into `n` dump parts of consecutive pages (each a valid dump: the original
    siteinfo header, its pages, the footer), named like real parts with their page-id ranges. Deterministic: the
    same bytes every time, so a resumed experiment finds the files it added."""
    from ..quickstart import sample_path
    from ..util.io import atomic_write_bytes

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    xml = bz2.decompress(sample_path().read_bytes())
    first = xml.index(b"  <page>")  # with its indent, or the regex below would miss the first page
    header, footer = xml[:first], b"</mediawiki>\n"
    pages = re.findall(rb"  <page>.*?</page>\n", xml[first:], flags=re.S)
    if n > len(pages):
        raise ConfigError(f"sample_parts = {n}: the sample has only {len(pages)} pages")
    # cut at equal shares of the XML bytes, not of the page count: the sample starts with many short redirects,
    # and equal page counts would leave part 1 with a few articles and almost no val pages
    total = sum(len(p) for p in pages)
    bounds, acc = [0], 0
    for j, p in enumerate(pages):
        acc += len(p)
        if len(bounds) < n and acc >= total * len(bounds) / n and len(pages) - (j + 1) >= n - len(bounds):
            bounds.append(j + 1)
    while len(bounds) < n:  # fewer large pages than parts asked: one page per remaining part
        bounds.append(bounds[-1] + 1)
    bounds.append(len(pages))
    out = []
    for i in range(n):
        chunk = pages[bounds[i]:bounds[i + 1]]
        ids = [int(re.search(rb"<id>(\d+)</id>", p).group(1)) for p in chunk]  # the first <id> is the page's
        path = dest / f"{SAMPLE_PART_PREFIX}{i + 1}.xml-p{ids[0]}p{ids[-1]}.bz2"
        if not path.is_file():
            atomic_write_bytes(path, bz2.compress(header + b"".join(chunk) + footer, 9))
        out.append(path)
    return out


def _dumps_dir(plan: Plan, out: Path) -> Path:
    d = plan.dump.get("dumps_dir")
    if d is None:
        return out / "dumps"
    p = Path(d)
    return p if p.is_absolute() else plan.path.parent / p


def _stage_files(plan: Plan, st: Stage, out: Path, state: State) -> tuple[list[Path], list[Path]]:
    """(files to add, of which downloaded by this call) for a stage: its local files, plus its part numbers cut
    from the sample or downloaded (resumable, sha1-verified) into the dumps folder."""
    files = list(st.files)
    downloaded: list[Path] = []
    if st.parts and "sample_parts" in plan.dump:
        cut = split_sample(plan.dump["sample_parts"], _dumps_dir(plan, out))
        files += [cut[p - 1] for p in st.parts]
    elif st.parts:
        from ..data.dumps import download, resolve_date

        # "latest" is resolved once, at the first download, so every stage uses the same dump
        date = state.d.get("dump_date")
        if not date:
            date = resolve_date(plan.dump["wiki"], plan.dump["date"], plan.dump.get("mirror"),
                                plan.dump.get("multistream", False))
            state.d["dump_date"] = date
            state.save()
        t0 = time.monotonic()
        downloaded = download(st.parts, wiki=plan.dump["wiki"], date=date, dest=_dumps_dir(plan, out),
                              mirror=plan.dump.get("mirror"), multistream=plan.dump.get("multistream", False),
                              progress=True)
        rec = state.stage(st.name)
        rec["download_s"] = round(rec.get("download_s", 0.0) + time.monotonic() - t0, 2)
        files += downloaded
    return files, downloaded


def _add_stage_parts(plan: Plan, st: Stage, out: Path, state: State, ds) -> list[str]:
    """Add the stage's dump files to the dataset (each part atomically); returns the part names it holds.
    Parts already in the dataset from an interrupted run of this stage are kept, not added again."""
    rec = state.stage(st.name)
    have = {p["name"]: p for p in ds.parts} if ds.exists else {}
    if "parts" in rec and all(n in have for n in rec["parts"]):
        return rec["parts"]
    if not st.parts and not st.files:
        rec["parts"] = []
        state.save()
        return []
    files, downloaded = _stage_files(plan, st, out, state)
    groups = ds.plan_add(files)
    todo = []
    for name, fs in groups.items():
        if name in have:
            # added by a run killed before it recorded so; the same files (names, sizes) or it is not ours
            got = sorted((f["name"], f["size"]) for f in have[name]["files"])
            want = sorted((f.name, f.stat().st_size) for f in fs)
            if got != want:
                raise ConfigError(f"{ds.path}: part {name} is already in the dataset from other files; "
                                  f"stage {st.name!r} cannot add it")
            continue
        todo.extend(fs)
    if todo:
        _log(f"stage {st.name}: adding {len(todo)} file(s) to {ds.path}")
        ds.add(todo, processes=plan.dataset.get("processes"), progress=sys.stderr.isatty(),
               log=lambda s: _log(f"  {s}"))
    names = list(groups)
    rec["parts"] = names
    rec["add_s"] = round(sum(_part_record(ds, n).get("seconds", 0.0) for n in names), 2)
    state.save()
    if downloaded and not plan.dump.get("keep_dumps", False):
        for p in downloaded:
            p.unlink(missing_ok=True)
        _log(f"deleted {len(downloaded)} downloaded dump file(s) now in the dataset ([dump] keep_dumps keeps them)")
    return names


def _part_record(ds, name: str) -> dict:
    return next((p for p in ds.parts if p["name"] == name), {})


def resolve_mix(mix: Union[str, dict], new: list[str], old: list[str], stage_parts: dict[str, list[str]],
                train_tokens: dict[str, int]) -> Union[str, dict]:
    """The plan's mix as TrainConfig takes it. "tokens" stays (all parts by size). "sequential" becomes explicit
    weights on this stage's new parts (by tokens): a resumed stage must keep drawing from the same parts, and the
    checkpoint it resumes from already counts them as seen. A weight table names groups (old, new, stage names,
    part names); each group's weight is spread over its parts by their train tokens."""
    if mix == "tokens":
        return "tokens"
    if mix == "sequential":
        total = sum(train_tokens[p] for p in new)
        return {p: train_tokens[p] / total for p in new}
    groups: dict[str, list[str]] = {}
    for k in mix:
        if k == "new":
            groups[k] = new
        elif k == "old":
            groups[k] = old
        elif k in stage_parts:
            groups[k] = stage_parts[k]
        elif k in train_tokens:
            groups[k] = [k]
        else:
            raise ConfigError(f"mix names {k!r}: neither old, new, a stage that ran, nor a part of the dataset "
                              f"({', '.join(train_tokens)})")
    out: dict[str, float] = {}
    for k, parts in groups.items():
        total = sum(train_tokens[p] for p in parts)
        for p in parts:
            if p in out:
                raise ConfigError(f"mix: part {p} is in two of its groups ({k} and another)")
            out[p] = float(mix[k]) * train_tokens[p] / total if total else 0.0
    if sum(out.values()) <= 0:
        raise ConfigError("mix: every weight is zero")
    return out


# ----------------------------------------------------------------------------------------------------------------
# running


def tree_bytes(path: Path) -> int:
    """Bytes of the files under `path` (apparent sizes; 0 if it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    total = 0
    for root, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(root, f)).st_size
            except OSError:
                pass
    return total


def checkpoint_tokens(ckpt: Path) -> int:
    """tokens_seen of a checkpoint without reading its tensors (memory-mapped)."""
    import torch

    from ..errors import CheckpointError

    try:
        d = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
    except Exception as e:  # damaged files fail in many ways inside torch
        raise CheckpointError(f"{ckpt}: not a readable checkpoint ({str(e).splitlines()[0][:200]})") from None
    return int(d.get("tokens_seen", 0))


def _train_run(fields: dict[str, Any], dataset: Path, run_dir: Path, init_from: Optional[Path], target: float,
               device: Optional[str]) -> str:
    """Train one run folder up to `target` tokens seen: resume it, start it, or do nothing if it is done.
    Returns what was done: "resumed", "started" or "done"."""
    from ..training.trainer import TrainConfig, train

    cfg = TrainConfig(dataset=str(dataset), out=str(run_dir), max_tokens=target, **fields)
    if device:
        cfg.device = device
    ckpt = run_dir / "ckpt.pt"
    if ckpt.is_file():
        seen = checkpoint_tokens(ckpt)
        if seen >= target:  # trained to the end; the kill came after its last checkpoint
            return "done"
        cfg.resume = True
        _log(f"{run_dir}: resuming at {seen:,} of {int(target):,} tokens")
        train(cfg)
        return "resumed"
    # no checkpoint yet: whatever a killed start left there (config, a first eval line) is replaced
    cfg.overwrite = run_dir.exists() and any(run_dir.iterdir())
    cfg.init_from = str(init_from) if init_from else None
    train(cfg)
    return "started"


def _stage_samples(run_dir: Path, ev: dict, device: Optional[str], seed: int) -> list[dict]:
    """The plan's prompts sampled from a run's final checkpoint (same seed each stage, so stages differ only by the
    model). Written to run_dir/grow_samples.json."""
    from ..util.io import atomic_write_json

    path = run_dir / "grow_samples.json"
    if not ev["prompts"] or ev["sample_tokens"] == 0:
        return []
    import torch

    from ..training.model import GPT
    from ..training.trainer import _sample_text

    dev = device if device and device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    model = GPT.from_checkpoint(run_dir, device=dev)
    dtype = torch.bfloat16 if str(dev).startswith("cuda") else torch.float32
    out = []
    record: dict[str, Any] = {"tokens": ev["sample_tokens"], "temperature": ev["temperature"], "top_k": ev["top_k"],
                              "seed": seed}
    try:
        for prompt in ev["prompts"]:
            text = _sample_text(model, prompt, ev["sample_tokens"], dev, temperature=ev["temperature"],
                                top_k=ev["top_k"] or None, seed=seed, dtype=dtype)[0]
            out.append({"prompt": prompt, "text": text})
    except ImportError as e:  # decoding needs tiktoken; the experiment itself does not
        _log(f"samples off: {e}")
        record["error"] = str(e)
    record["samples"] = out
    atomic_write_json(path, record)
    return out


@dataclass
class GrowResult:
    out: Path
    stages: list[Path]  # run folders, in order
    compare: Optional[Path] = None
    report: Optional[Path] = None


def grow(
    plan_path: Union[str, os.PathLike],
    out: Union[str, os.PathLike],
    *,
    compare: Optional[str] = None,
    device: Optional[str] = None,
    report: bool = True,
) -> GrowResult:
    """Run (or continue) the growth experiment of a plan in `out`; see the module docstring."""
    from ..data.dataset import Dataset

    if compare is not None and compare not in COMPARE_MODES:
        raise ConfigError(f"--compare {compare}: use {', '.join(COMPARE_MODES)}")
    plan = load_plan(plan_path)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out}: exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    with _locked(out):
        state = State(out)
        cmp_dir = out / "compare" / "all-at-once"
        _start_experiment(state, plan, out, cmp_dir, compare)
        ds = Dataset(out / "data", **{k: v for k, v in plan.dataset.items() if k != "processes"})
        runs, stage_parts = _run_stages(plan, state, out, ds, device)
        if compare == "all-at-once":
            _run_all_at_once(plan, state, ds, cmp_dir, stage_parts, device)
        rep = None
        if report:
            from .report import write_report

            rep = write_report(out)
            _log(f"report: {rep}")
        return GrowResult(out=out, stages=runs, compare=cmp_dir if compare else None, report=rep)


def _start_experiment(state: State, plan: Plan, out: Path, cmp_dir: Path, compare: Optional[str]) -> None:
    """Refuse a plan that changed under finished work (stages, or a finished comparison it would no longer match);
    then record the plan in state.json and beside it as plan.toml."""
    from ..util.io import atomic_write_bytes

    _check_unchanged(state, plan)
    crec = state.d.setdefault("compare", {})
    if crec and not cmp_dir.is_dir():  # removed by the user: train it again
        crec.clear()
    old_cmp = (state.d.get("plan") or {}).get("compare")
    if compare and crec.get("status") == "finished" and old_cmp is not None \
            and _jsonable(old_cmp) != plan.normalized()["compare"]:
        raise ConfigError(f"{plan.path}: [compare]{_first_diff(old_cmp, plan.normalized()['compare'])} changed "
                          f"since {cmp_dir} was trained: remove that folder to train the comparison again")
    if compare and crec.get("status") == "finished" and crec.get("tokens_target") != plan.total_tokens():
        raise ConfigError(
            f"{cmp_dir}: trained for {crec.get('tokens_target'):,.0f} tokens, but the plan's stages now total "
            f"{plan.total_tokens():,.0f}: remove that folder to train the comparison again"
        )
    state.d["plan"] = plan.normalized()
    state.d["order"] = [s.name for s in plan.stages]
    state.save()
    atomic_write_bytes(out / "plan.toml", plan.text.encode("utf-8"))


def _run_stages(plan: Plan, state: State, out: Path, ds, device: Optional[str]):
    """Every stage not yet finished, in order, each from the previous stage's checkpoint. Returns (the stages' run
    folders, {stage: the dataset parts it added})."""
    runs: list[Path] = []
    prev: Optional[Path] = None
    target = 0.0
    stage_parts: dict[str, list[str]] = {}
    for i, st in enumerate(plan.stages):
        target += st.tokens
        run_dir = out / "stages" / st.name
        runs.append(run_dir)
        if state.finished(st.name):
            stage_parts[st.name] = state.stage(st.name)["parts"]
        else:
            _run_stage(plan, i, state, out, ds, run_dir, prev, target, stage_parts, device)
        prev = run_dir
    return runs, stage_parts


def _run_stage(plan: Plan, i: int, state: State, out: Path, ds, run_dir: Path, prev: Optional[Path], target: float,
               stage_parts: dict[str, list[str]], device: Optional[str]) -> None:
    """One stage: add its parts, resolve its mix, train until `target` tokens seen, sample; state.json says where
    it stands after each step, so a rerun continues from there."""
    st = plan.stages[i]
    rec = state.stage(st.name)
    state.d["current"] = st.name
    rec["status"] = "running"
    rec.setdefault("started", _now())
    state.save()
    _log(f"stage {i + 1}/{len(plan.stages)} {st.name}: {st.tokens:,.0f} tokens (until {target:,.0f} seen)")

    names = _add_stage_parts(plan, st, out, state, ds)
    stage_parts[st.name] = names
    old = [p for s in plan.stages[:i] for p in stage_parts[s.name]]
    tok = {p["name"]: int(p["tokens"]["train"]) for p in ds.parts}
    fields = plan.stage_config(i)
    fields["mix"] = resolve_mix(st.mix, names, old, stage_parts, tok)
    rec["mix"] = fields["mix"]
    rec["tokens_target"] = target
    state.save()

    t0 = time.monotonic()
    how = _train_run(fields, ds.path, run_dir, prev, target, device)
    rec["train_runs"] = rec.get("train_runs", []) + [how]
    t1 = time.monotonic()
    _stage_samples(run_dir, plan.eval, device or fields.get("device"), int(fields.get("seed", 1337)))
    rec["samples_s"] = round(time.monotonic() - t1, 2)
    rec["session_train_s"] = round(t1 - t0, 2)
    rec["disk"] = {"dataset": tree_bytes(ds.path), "run": tree_bytes(run_dir),
                   "dumps": tree_bytes(_dumps_dir(plan, out))}
    rec["status"] = "finished"
    rec["finished"] = _now()
    state.d["current"] = None
    state.save()
    _log(f"stage {st.name} finished")


def _run_all_at_once(plan: Plan, state: State, ds, cmp_dir: Path, stage_parts: dict[str, list[str]],
                     device: Optional[str]) -> None:
    """The comparison: the stages' whole token budget from scratch on every part (once; a dataset that has since
    grown is refused)."""
    crec = state.d["compare"]
    if crec.get("status") == "finished" and crec.get("parts") != [p["name"] for p in ds.parts]:
        raise ConfigError(f"{cmp_dir}: trained on {len(crec.get('parts', []))} parts, the dataset now has "
                          f"{len(ds.parts)}: remove that folder to train the comparison again")
    if crec.get("status") == "finished":
        return
    total = plan.total_tokens()
    _log(f"compare all-at-once: {total:,.0f} tokens on all {len(ds.parts)} parts from scratch")
    crec.update(status="running", mode="all-at-once", tokens_target=total, parts=[p["name"] for p in ds.parts])
    crec.setdefault("started", _now())
    state.d["current"] = "compare/all-at-once"
    state.save()
    fields = plan.compare_config()
    tok = {p["name"]: int(p["tokens"]["train"]) for p in ds.parts}
    fields["mix"] = resolve_mix(fields.get("mix", "tokens"), list(tok), [], stage_parts, tok)
    crec["mix"] = fields["mix"]
    how = _train_run(fields, ds.path, cmp_dir, None, total, device)
    crec["train_runs"] = crec.get("train_runs", []) + [how]
    t1 = time.monotonic()
    _stage_samples(cmp_dir, plan.eval, device or fields.get("device"), int(fields.get("seed", 1337)))
    crec["samples_s"] = round(time.monotonic() - t1, 2)
    crec["disk"] = {"run": tree_bytes(cmp_dir)}
    crec.update(status="finished", finished=_now())
    state.d["current"] = None
    state.save()


# ----------------------------------------------------------------------------------------------------------------
# CLI


def _cmd_grow(args: argparse.Namespace) -> int:
    res = grow(args.plan, args.out, compare=args.compare, device=args.device, report=not args.no_report)
    if res.report:
        print(res.report)
    return 0


def add_cli(sub) -> None:
    p = sub.add_parser(
        "grow", help="growth experiment: train in stages as dump parts are added (from a TOML plan)",
        description="Run the stages of a growth plan in order: add each stage's dump parts to the dataset, train "
                    "for its token budget from the previous stage's checkpoint, evaluate on every part's val pages, "
                    "sample the plan's prompts. Rerun the same command to continue after an interruption. See "
                    "examples/growth-plan.toml.",
    )
    p.add_argument("plan", help="plan file (TOML): [dump], [dataset], [model], [train], [eval], [[stage]], [compare]")
    p.add_argument("--out", "-o", required=True, help="experiment folder (created; rerun to continue it)")
    p.add_argument("--compare", choices=COMPARE_MODES, default=None,
                   help="also train all-at-once: a model from scratch on the final parts for the same total tokens")
    p.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N for every run (default: the plan's, "
                                                  "else auto)")
    p.add_argument("--no-report", action="store_true", help="do not write report.md at the end")
    p.set_defaults(func=_cmd_grow)

    from .report import add_cli as add_report_cli

    add_report_cli(sub)
