"""Exceptions a user can catch. The Rust core (rust/py.rs) raises these same classes, so one `except` covers both.

Every message is one line that says what went wrong and where (file, byte offset, page id); the CLI prints it as is,
without a traceback.
"""


class WikiGPTError(Exception):
    """Base class of every error wikigpt raises on purpose."""


class CorruptDumpError(WikiGPTError, ValueError):
    """A .bz2 dump that is truncated, fails a CRC check, or is not bzip2 at all."""


class DumpXMLError(WikiGPTError, ValueError):
    """A dump whose XML is malformed, not UTF-8, or not a MediaWiki export."""


class ShardError(WikiGPTError, ValueError):
    """A token shard with a wrong magic, version or size."""


class DatasetError(WikiGPTError):
    """A dataset folder that is missing, inconsistent, or asked to do something it refuses (e.g. a part twice)."""


class ManifestError(DatasetError):
    """A dataset's manifest.json that is unreadable or not of the dataset format; the message names the file and the
    first wrong field."""


class DamagedShardError(DatasetError):
    """A shard whose size, header or checksum no longer matches what `wikigpt add` recorded; the message names the
    file and how to repair the part (remove it, add it again)."""


class DiskSpaceError(WikiGPTError, OSError):
    """Not enough free space for what was asked; the message says how much is needed and how much is free."""


class DownloadError(WikiGPTError):
    """A download that failed: HTTP error, dropped connection after all retries, unknown wiki or date."""


class ChecksumError(DownloadError):
    """A downloaded file whose sha1 does not match the dump's index (kept only as .part)."""


class CheckpointError(WikiGPTError):
    """A checkpoint that is corrupt, of another architecture, or not a checkpoint at all."""


class ConfigError(WikiGPTError, ValueError):
    """Options that cannot work together (e.g. --vram-gb smaller than the smallest batch)."""


class MissingExtraError(WikiGPTError, ImportError):
    """An optional extra that is not installed (transformers for export-hf, wandb for --wandb, pyarrow for Parquet);
    the message names the pip command that installs it."""
