//! wikigpt's Rust core: Wikipedia dump parts → clean article text → GPT-2 token shards.
//!
//! One module per stage of the flow in DESIGN.md; `py.rs` holds every PyO3 binding (behind the `python` feature so
//! `cargo test` needs no Python).
//!
//! - `bz2`: parallel bzip2 decoding (single-stream files at block level, multistream by stream, plain XML passthrough)
//! - `bz2_decode`: the bzip2 block decoder each of `bz2`'s threads runs (libbz2 stays as its fallback and reference)
//! - `bytescan`: searching for a small set of ASCII bytes 16 at a time (used by `dump` and `wikitext`)
//! - `dump`: MediaWiki XML: siteinfo/namespaces, cutting the byte stream into page-aligned chunks, parsing pages
//! - `wikitext`: wikitext → clean prose
//! - `tokenizer`: GPT-2 BPE (r50k_base), a fast path proven identical to tiktoken-rs
//! - `shards`: llm.c-format token shards (write/read/check)
//! - `pipeline`: wires the stages together on N threads with bounded channels, progress counters and cancellation

mod bytescan;
pub mod bz2;
pub mod bz2_decode;
pub mod dump;
pub mod error;
pub mod pipeline;
pub mod shards;
pub mod tokenizer;
pub mod wikitext;

#[cfg(feature = "python")]
mod py;

#[cfg(test)]
mod test_support;

pub use error::{Error, Result};
