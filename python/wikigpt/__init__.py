"""wikigpt: from Wikipedia dump parts to a trained GPT, fast, one part at a time.

The public API, re-exported here. Names are imported on first use so `import wikigpt` stays quick and does not pull
in torch until a model or the trainer is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    CheckpointError,
    ChecksumError,
    ConfigError,
    CorruptDumpError,
    DamagedShardError,
    DatasetError,
    DiskSpaceError,
    DownloadError,
    DumpXMLError,
    ManifestError,
    MissingExtraError,
    ShardError,
    WikiGPTError,
)

# public name -> module that defines it
_LAZY = {
    # token shard files (numpy: imported on first use, so the CLI can set numpy's thread count first)
    "read_shard": "wikigpt.data.shards",
    "write_shard": "wikigpt.data.shards",
    # extraction (rust/pipeline.rs through wikigpt.data.extract)
    "extract_parallel": "wikigpt.data.extract",
    "iter_articles": "wikigpt.data.extract",
    "cat": "wikigpt.data.extract",
    "Article": "wikigpt.data.extract",
    # tokens and datasets
    "tokenizer": "wikigpt.data.tokens",
    "encode_batch": "wikigpt.data.tokens",
    "Dataset": "wikigpt.data.dataset",
    # dumps index and downloads
    "list_parts": "wikigpt.data.index",
    "download": "wikigpt.data.dumps",
    "Part": "wikigpt.data.index",
    "DumpFile": "wikigpt.data.index",
    # model and training (torch)
    "GPT": "wikigpt.training.model",
    "GPTConfig": "wikigpt.training.model",
    "TrainConfig": "wikigpt.training.trainer",
    "train": "wikigpt.training.trainer",
    # growth experiments (the runner itself is `wikigpt.experiments.grow.grow`: a function named like its module
    # would be shadowed by the submodule once imported)
    "load_plan": "wikigpt.experiments.grow",
    "write_report": "wikigpt.experiments.report",
    # other tools' formats (optional extras)
    "export_hf": "wikigpt.training.hf",
}

__all__ = [
    "__version__",
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "CorruptDumpError",
    "DamagedShardError",
    "DatasetError",
    "DiskSpaceError",
    "DownloadError",
    "DumpXMLError",
    "ManifestError",
    "MissingExtraError",
    "ShardError",
    "WikiGPTError",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'wikigpt' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


if TYPE_CHECKING:  # for type checkers and IDEs
    from .data.dataset import Dataset
    from .data.dumps import download
    from .data.extract import Article, cat, extract_parallel, iter_articles
    from .data.index import DumpFile, Part, list_parts
    from .data.tokens import encode_batch, tokenizer
    from .experiments.grow import load_plan
    from .experiments.report import write_report
    from .training.hf import export_hf
    from .training.model import GPT, GPTConfig
    from .training.trainer import TrainConfig, train
