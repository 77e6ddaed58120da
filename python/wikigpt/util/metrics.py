"""The one reader of a run's metrics.jsonl (trainer, plot, report and the train-time estimate all use it).

The trainer appends one JSON object a line: `{"kind": "eval", ...}` at each evaluation and `{"kind": "step", ...}`
every log_interval steps. A line cut short by a kill mid-write is skipped, not an error: the run resumes from its
last checkpoint and writes those records again.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import ConfigError


def read_lines(path: str | os.PathLike) -> list[dict]:
    """Every record of a metrics.jsonl file in file order ([] if the file does not exist yet)."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:  # a line cut by a kill mid-write (or an empty one)
            continue
        if isinstance(r, dict):
            records.append(r)
    return records


def read_records(run_dir: str | os.PathLike, kind: str) -> list[dict]:
    """The records of one kind ("eval" or "step") of a run's metrics.jsonl, in step order."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        raise ConfigError(f"{run_dir}: no metrics.jsonl (not a run folder, or the run has not evaluated yet)")
    records = [r for r in read_lines(path) if r.get("kind") == kind]
    records.sort(key=lambda r: r.get("step", 0))
    return records
