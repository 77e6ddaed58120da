"""Type stubs for the Rust extension (rust/py.rs). Private: use the documented wrappers in wikigpt.*."""

from typing import Iterator, Optional

SPLIT_RULE: str
EOT: int
__version__: str

class ProgressHandle:
    """Live counters of a running job and its cancel switch."""

    def __init__(self) -> None: ...
    @property
    def compressed_done(self) -> int: ...
    @property
    def compressed_total(self) -> int: ...
    @compressed_total.setter
    def compressed_total(self, n: int) -> None: ...
    @property
    def decoded_bytes(self) -> int: ...
    @property
    def pages(self) -> int: ...
    @property
    def docs(self) -> int: ...
    @property
    def tokens(self) -> int: ...
    def cancel(self) -> None: ...
    @property
    def cancelled(self) -> bool: ...

ArticleTuple = tuple[int, Optional[int], int, str, str, str]

class ArticleStream(Iterator[ArticleTuple]):
    def __init__(
        self,
        path: str,
        threads: int,
        namespaces: list[int],
        keep_redirects: bool,
        min_chars: int,
        keep_headings: bool,
        keep_lists: bool,
        keep_math: bool,
        tokenize: bool,
        progress: ProgressHandle,
    ) -> None: ...
    def __iter__(self) -> "ArticleStream": ...
    def __next__(self) -> ArticleTuple: ...
    @property
    def stats(self) -> Optional[str]: ...
    def close(self) -> None: ...

def cat(paths: list[str], fd: int, threads: int, progress: ProgressHandle) -> int: ...
def extract_files(
    paths: list[str],
    out_dir: str,
    prefixes: list[str],
    jsonl: bool,
    file_size: int,
    threads: int,
    namespaces: list[int],
    keep_redirects: bool,
    min_chars: int,
    keep_headings: bool,
    keep_lists: bool,
    keep_math: bool,
    progress: ProgressHandle,
) -> str: ...
def build_shards(
    paths: list[str],
    out_dir: str,
    val_fraction: float,
    shard_tokens: int,
    threads: int,
    namespaces: list[int],
    keep_redirects: bool,
    min_chars: int,
    keep_headings: bool,
    keep_lists: bool,
    keep_math: bool,
    progress: ProgressHandle,
) -> str: ...
def extract_all(path: str, threads: int = 2, min_chars: int = 0) -> list[ArticleTuple]: ...
def gpt2_ranks() -> list[tuple[bytes, int]]: ...
def encode_batch(texts: list[str], threads: int) -> list[bytes]: ...
def encode_ordinary_reference(text: str) -> list[int]: ...
def is_val(page_id: int, val_fraction: float) -> bool: ...
def read_shard_rust(path: str) -> list[int]: ...
