//! One error type for the whole core. Every variant says *what* and *where* (file, byte offset, page id), so the
//! Python side (rust/py.rs maps each variant once to a `wikigpt.*Error` class) can print a single clear line.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug)]
pub enum Error {
    /// An OS error on a named file (missing file, unwritable folder, full disk, ...).
    Io { path: PathBuf, source: std::io::Error },
    /// A .bz2 file that is truncated, has a CRC mismatch, or is not bzip2 at all. `offset` is the byte offset in the
    /// compressed file where the problem was found (for a block: the byte that holds the block's first bit).
    CorruptDump { path: PathBuf, offset: u64, msg: String },
    /// Malformed or unsupported XML. `offset` is the byte offset in the *decoded* XML; `page_id` the page being read
    /// when known.
    Xml { path: PathBuf, offset: u64, page_id: Option<u64>, msg: String },
    /// A token shard whose header or size is wrong.
    Shard { path: PathBuf, msg: String },
    /// Anything the caller asked for that cannot be done (bad option values, ...).
    Invalid(String),
    /// The user pressed Ctrl-C (or the caller set the cancel flag); work stopped cleanly.
    Interrupted,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl AsRef<Path>, source: std::io::Error) -> Self {
        Error::Io { path: path.as_ref().to_path_buf(), source }
    }
    pub fn corrupt(path: impl AsRef<Path>, offset: u64, msg: impl Into<String>) -> Self {
        Error::CorruptDump { path: path.as_ref().to_path_buf(), offset, msg: msg.into() }
    }
    pub fn xml(path: impl AsRef<Path>, offset: u64, page_id: Option<u64>, msg: impl Into<String>) -> Self {
        Error::Xml { path: path.as_ref().to_path_buf(), offset, page_id, msg: msg.into() }
    }
    pub fn shard(path: impl AsRef<Path>, msg: impl Into<String>) -> Self {
        Error::Shard { path: path.as_ref().to_path_buf(), msg: msg.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { path, source } => write!(f, "{}: {}", path.display(), source),
            Error::CorruptDump { path, offset, msg } => {
                write!(f, "{}: corrupt bzip2 data at byte {}: {}", path.display(), offset, msg)
            }
            Error::Xml { path, offset, page_id, msg } => {
                write!(f, "{}: bad XML at decoded byte {}", path.display(), offset)?;
                if let Some(id) = page_id {
                    write!(f, " (page id {})", id)?;
                }
                write!(f, ": {}", msg)
            }
            Error::Shard { path, msg } => write!(f, "{}: bad token shard: {}", path.display(), msg),
            Error::Invalid(msg) => write!(f, "{}", msg),
            Error::Interrupted => write!(f, "interrupted"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}
