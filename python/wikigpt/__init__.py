"""wikigpt: from Wikipedia dump parts to a trained GPT, fast, one part at a time.

The public API, re-exported here. Names are imported on first use so `import wikigpt` stays quick and does not pull
in torch until a model or the trainer is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    CheckpointError,
    ChecksumError,
    ConfigError,
    CorruptDumpError,
    DatasetError,
    DiskSpaceError,
    DownloadError,
    DumpXMLError,
    ShardError,
    WikiGPTError,
)
from .shards import read_shard, write_shard

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    # extraction (rust/pipeline.rs through wikigpt.extract)
    "extract_parallel": "wikigpt.extract",
    "iter_articles": "wikigpt.extract",
    "cat": "wikigpt.extract",
    "Article": "wikigpt.extract",
    # tokens and datasets
    "tokenizer": "wikigpt.tokens",
    "encode_batch": "wikigpt.tokens",
    "Dataset": "wikigpt.dataset",
    # dumps index and downloads
    "list_parts": "wikigpt.dumps",
    "download": "wikigpt.dumps",
    "Part": "wikigpt.dumps",
    "DumpFile": "wikigpt.dumps",
    # model and training (torch)
    "GPT": "wikigpt.model",
    "GPTConfig": "wikigpt.model",
    "TrainConfig": "wikigpt.trainer",
    "train": "wikigpt.trainer",
    # growth experiments (the runner itself is `wikigpt.grow.grow`: a function named like its module would be
    # shadowed by the submodule once imported)
    "load_plan": "wikigpt.grow",
    "write_report": "wikigpt.report",
}

__all__ = [
    "__version__",
    "CheckpointError",
    "ChecksumError",
    "ConfigError",
    "CorruptDumpError",
    "DatasetError",
    "DiskSpaceError",
    "DownloadError",
    "DumpXMLError",
    "ShardError",
    "WikiGPTError",
    "read_shard",
    "write_shard",
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
    from .dataset import Dataset
    from .dumps import DumpFile, Part, download, list_parts
    from .extract import Article, cat, extract_parallel, iter_articles
    from .model import GPT, GPTConfig
    from .tokens import encode_batch, tokenizer
    from .grow import load_plan
    from .report import write_report
    from .trainer import TrainConfig, train
