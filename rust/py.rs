//! Every PyO3 binding of the core, and the one place where Rust errors become Python exceptions.
//!
//! Heavy calls release the GIL (`py.detach`) so a Python thread can poll progress and the main thread can catch
//! Ctrl-C and set the cancel flag. Structured results cross as JSON strings (serde on this side, `json.loads` on
//! the other): one copy of a few hundred bytes, and no hand-written conversion code to drift out of date.

use std::fs::File;
use std::io::Write;
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use pyo3::exceptions::{PyFileNotFoundError, PyKeyboardInterrupt, PyOSError, PyPermissionError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyType};

use crate::error::Error;
use crate::pipeline::{self, CollectDocs, Doc, DocSink, ExtractOptions, Progress, ShardSink, TextFiles};
use crate::wikitext::CleanOptions;
use crate::{bz2, shards, tokenizer};

/// Map a core error to the matching `wikigpt.errors` class (or a built-in one), keeping the one-line message.
fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    let class = match &e {
        Error::Io { source, .. } => {
            return match source.kind() {
                std::io::ErrorKind::NotFound => PyFileNotFoundError::new_err(msg),
                std::io::ErrorKind::PermissionDenied => PyPermissionError::new_err(msg),
                _ => PyOSError::new_err(msg),
            }
        }
        Error::Interrupted => return PyKeyboardInterrupt::new_err(msg),
        Error::Invalid(_) => return PyValueError::new_err(msg),
        Error::CorruptDump { .. } => "CorruptDumpError",
        Error::Xml { .. } => "DumpXMLError",
        Error::Shard { .. } => "ShardError",
    };
    Python::attach(|py| {
        let cls = py
            .import("wikigpt.errors")
            .and_then(|m| m.getattr(class))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match cls {
            Ok(cls) => PyErr::from_type(cls, msg),
            Err(_) => PyValueError::new_err(msg),
        }
    })
}

/// Live counters of a running job, polled from Python (progress bars) and its cancel switch (Ctrl-C).
#[pyclass(frozen, module = "wikigpt._core")]
struct ProgressHandle {
    inner: Arc<Progress>,
}

#[pymethods]
impl ProgressHandle {
    #[new]
    fn new() -> Self {
        ProgressHandle { inner: Arc::new(Progress::default()) }
    }
    /// Compressed input bytes consumed so far, over all files of the job.
    #[getter]
    fn compressed_done(&self) -> u64 {
        self.inner.compressed_done()
    }
    #[getter]
    fn compressed_total(&self) -> u64 {
        self.inner.compressed_total.load(Ordering::Relaxed)
    }
    #[setter]
    fn set_compressed_total(&self, n: u64) {
        self.inner.compressed_total.store(n, Ordering::Relaxed)
    }
    /// Decoded XML bytes of the current file.
    #[getter]
    fn decoded_bytes(&self) -> u64 {
        self.inner.decode.decoded_bytes.load(Ordering::Relaxed)
    }
    #[getter]
    fn pages(&self) -> u64 {
        self.inner.pages.load(Ordering::Relaxed)
    }
    #[getter]
    fn docs(&self) -> u64 {
        self.inner.docs.load(Ordering::Relaxed)
    }
    #[getter]
    fn tokens(&self) -> u64 {
        self.inner.tokens.load(Ordering::Relaxed)
    }
    /// Ask every thread of the job to stop; the Rust call then raises KeyboardInterrupt.
    fn cancel(&self) {
        self.inner.cancel.store(true, Ordering::Relaxed)
    }
    #[getter]
    fn cancelled(&self) -> bool {
        self.inner.cancel.load(Ordering::Relaxed)
    }
}

/// Called when one input file is finished, so progress spans all files of a job.
fn file_done(progress: &Progress, path: &std::path::Path) {
    if let Ok(m) = std::fs::metadata(path) {
        progress.compressed_before.fetch_add(m.len(), Ordering::Relaxed);
    }
    progress.decode.compressed_bytes_done.store(0, Ordering::Relaxed);
}

#[allow(clippy::too_many_arguments)]
fn options(
    threads: usize,
    namespaces: Vec<i64>,
    keep_redirects: bool,
    min_chars: usize,
    keep_headings: bool,
    keep_lists: bool,
    keep_math: bool,
    tokenize: bool,
) -> ExtractOptions {
    ExtractOptions {
        threads: threads.max(1),
        namespaces,
        keep_redirects,
        min_chars,
        tokenize,
        hash_input: false,
        clean: CleanOptions { keep_headings, keep_lists, keep_math },
    }
}

/// Decode dump files (bz2 of any layout, or plain XML) to the file descriptor `fd`, in order. Returns bytes written.
#[pyfunction]
#[pyo3(signature = (paths, fd, threads, progress))]
fn cat(py: Python<'_>, paths: Vec<PathBuf>, fd: i32, threads: usize, progress: &ProgressHandle) -> PyResult<u64> {
    let prog = progress.inner.clone();
    py.detach(move || {
        // The fd belongs to Python (sys.stdout): borrow it, never close it.
        let mut out = ManuallyDrop::new(unsafe { File::from_raw_fd(fd) });
        let mut total = 0u64;
        for path in &paths {
            total += bz2::decode_parallel(path, threads.max(1), &prog.cancel, &prog.decode, &mut |data| {
                out.write_all(data).map_err(|e| Error::io("<output>", e))
            })?;
            file_done(&prog, path);
        }
        out.flush().map_err(|e| Error::io("<output>", e))?;
        Ok(total)
    })
    .map_err(to_py)
}

/// Extract clean articles of each file into text or JSON-lines files in `out_dir` (temp names until each file is
/// complete). Returns JSON: a list with, per input, {"stats": ..., "files": [...]}.
#[pyfunction]
#[pyo3(signature = (paths, out_dir, prefixes, jsonl, file_size, threads, namespaces, keep_redirects, min_chars,
                    keep_headings, keep_lists, keep_math, progress))]
#[allow(clippy::too_many_arguments)]
fn extract_files(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    out_dir: PathBuf,
    prefixes: Vec<String>,
    jsonl: bool,
    file_size: u64,
    threads: usize,
    namespaces: Vec<i64>,
    keep_redirects: bool,
    min_chars: usize,
    keep_headings: bool,
    keep_lists: bool,
    keep_math: bool,
    progress: &ProgressHandle,
) -> PyResult<String> {
    let prog = progress.inner.clone();
    let opts = options(threads, namespaces, keep_redirects, min_chars, keep_headings, keep_lists, keep_math, false);
    py.detach(move || {
        let mut results = Vec::new();
        for (path, prefix) in paths.iter().zip(prefixes.iter()) {
            let mut sink = TextFiles::new(&out_dir, prefix, jsonl, file_size);
            let stats = pipeline::run_file(path, &opts, &prog, &mut sink)?;
            let files = sink.finish()?;
            file_done(&prog, path);
            results.push(serde_json::json!({"path": path, "stats": stats, "files": files}));
        }
        Ok(serde_json::Value::Array(results).to_string())
    })
    .map_err(to_py)
}

/// Tokenize the kept articles of `paths` (one dump part, possibly several files) into shards in `out_dir`.
/// Returns JSON {"stats": [per file], "output": ShardOutput}.
#[pyfunction]
#[pyo3(signature = (paths, out_dir, val_fraction, shard_tokens, threads, namespaces, keep_redirects, min_chars,
                    keep_headings, keep_lists, keep_math, progress))]
#[allow(clippy::too_many_arguments)]
fn build_shards(
    py: Python<'_>,
    paths: Vec<PathBuf>,
    out_dir: PathBuf,
    val_fraction: f64,
    shard_tokens: u64,
    threads: usize,
    namespaces: Vec<i64>,
    keep_redirects: bool,
    min_chars: usize,
    keep_headings: bool,
    keep_lists: bool,
    keep_math: bool,
    progress: &ProgressHandle,
) -> PyResult<String> {
    let prog = progress.inner.clone();
    let mut opts = options(threads, namespaces, keep_redirects, min_chars, keep_headings, keep_lists, keep_math, true);
    // Each file's sha1, for the manifest, from the decoder's reading thread (stats[i]["input_sha1"]).
    opts.hash_input = true;
    py.detach(move || {
        let mut sink = ShardSink::new(&out_dir, val_fraction, shard_tokens)?;
        let mut stats = Vec::new();
        for path in &paths {
            stats.push(pipeline::run_file(path, &opts, &prog, &mut sink)?);
            file_done(&prog, path);
        }
        let output = sink.finish()?;
        Ok(serde_json::json!({"stats": stats, "output": output}).to_string())
    })
    .map_err(to_py)
}

/// One kept article as a Python tuple: (id, revid, ns, title, url, text).
type ArticleTuple = (u64, Option<u64>, i64, String, String, String);

/// Documents flow from a background pipeline thread to Python in batches through a bounded channel.
enum StreamMsg {
    Docs(Vec<Doc>),
    Done(Result<pipeline::Stats, Error>),
}

struct ChannelSink {
    tx: crossbeam_channel::Sender<StreamMsg>,
    batch: Vec<Doc>,
}

impl DocSink for ChannelSink {
    fn write(&mut self, doc: Doc) -> crate::error::Result<()> {
        self.batch.push(doc);
        if self.batch.len() >= 64 {
            let batch = std::mem::take(&mut self.batch);
            self.tx.send(StreamMsg::Docs(batch)).map_err(|_| Error::Interrupted)?;
        }
        Ok(())
    }
}

/// Iterates over the clean articles of one dump file while the pipeline runs on background threads.
#[pyclass(module = "wikigpt._core")]
struct ArticleStream {
    rx: crossbeam_channel::Receiver<StreamMsg>,
    progress: Arc<Progress>,
    buffer: Mutex<std::vec::IntoIter<Doc>>,
    stats: Mutex<Option<String>>,
    finished: Mutex<bool>,
}

#[pymethods]
impl ArticleStream {
    #[new]
    #[pyo3(signature = (path, threads, namespaces, keep_redirects, min_chars, keep_headings, keep_lists, keep_math,
                        tokenize, progress))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        path: PathBuf,
        threads: usize,
        namespaces: Vec<i64>,
        keep_redirects: bool,
        min_chars: usize,
        keep_headings: bool,
        keep_lists: bool,
        keep_math: bool,
        tokenize: bool,
        progress: &ProgressHandle,
    ) -> Self {
        let opts =
            options(threads, namespaces, keep_redirects, min_chars, keep_headings, keep_lists, keep_math, tokenize);
        let prog = progress.inner.clone();
        let (tx, rx) = crossbeam_channel::bounded(4);
        let thread_prog = prog.clone();
        std::thread::spawn(move || {
            let mut sink = ChannelSink { tx: tx.clone(), batch: Vec::new() };
            let mut r = pipeline::run_file(&path, &opts, &thread_prog, &mut sink);
            if r.is_ok() && !sink.batch.is_empty() {
                let batch = std::mem::take(&mut sink.batch);
                if tx.send(StreamMsg::Docs(batch)).is_err() {
                    r = Err(Error::Interrupted);
                }
            }
            let _ = tx.send(StreamMsg::Done(r));
        });
        ArticleStream {
            rx,
            progress: prog,
            buffer: Mutex::new(Vec::new().into_iter()),
            stats: Mutex::new(None),
            finished: Mutex::new(false),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<ArticleTuple>> {
        loop {
            if let Some(d) = self.buffer.lock().unwrap().next() {
                return Ok(Some((d.id, d.revid, d.ns, d.title, d.url, d.text)));
            }
            if *self.finished.lock().unwrap() {
                return Ok(None);
            }
            let msg = py.detach(|| self.rx.recv());
            match msg {
                Ok(StreamMsg::Docs(docs)) => *self.buffer.lock().unwrap() = docs.into_iter(),
                Ok(StreamMsg::Done(r)) => {
                    *self.finished.lock().unwrap() = true;
                    let stats = r.map_err(to_py)?;
                    *self.stats.lock().unwrap() = serde_json::to_string(&stats).ok();
                }
                Err(_) => {
                    *self.finished.lock().unwrap() = true;
                }
            }
        }
    }

    /// The run's stats as JSON once the stream is exhausted (None before).
    #[getter]
    fn stats(&self) -> Option<String> {
        self.stats.lock().unwrap().clone()
    }

    /// Stop the background pipeline (also done when the stream is garbage-collected).
    fn close(&self) {
        // Only a stream still running is cancelled: the progress handle may be shared with the next file's stream.
        if !*self.finished.lock().unwrap() {
            self.progress.cancel.store(true, Ordering::Relaxed);
        }
        // Drain so the producer is never blocked on a full channel.
        while let Ok(msg) = self.rx.try_recv() {
            drop(msg);
        }
        *self.finished.lock().unwrap() = true;
    }
}

impl Drop for ArticleStream {
    fn drop(&mut self) {
        if !*self.finished.get_mut().unwrap() {
            self.progress.cancel.store(true, Ordering::Relaxed);
        }
    }
}

/// Clean-text documents of a whole file, in memory (tests and small inputs): list of article tuples.
#[pyfunction]
#[pyo3(signature = (path, threads=2, min_chars=0))]
fn extract_all(py: Python<'_>, path: PathBuf, threads: usize, min_chars: usize) -> PyResult<Vec<ArticleTuple>> {
    let opts = ExtractOptions { threads: threads.max(1), min_chars, ..Default::default() };
    let docs = py
        .detach(move || {
            let mut sink = CollectDocs::default();
            pipeline::run_file(&path, &opts, &Progress::default(), &mut sink)?;
            Ok(sink.0)
        })
        .map_err(to_py)?;
    Ok(docs.into_iter().map(|d| (d.id, d.revid, d.ns, d.title, d.url, d.text)).collect())
}

/// GPT-2 (r50k_base) mergeable ranks: [(token bytes, rank)], to build an offline tiktoken.Encoding.
#[pyfunction]
fn gpt2_ranks(py: Python<'_>) -> Vec<(Py<PyBytes>, u32)> {
    tokenizer::shared().ranks().into_iter().map(|(b, r)| (PyBytes::new(py, &b).unbind(), r)).collect()
}

/// Encode texts with the fast GPT-2 encoder on `threads` threads; each result is little-endian uint16 bytes.
#[pyfunction]
#[pyo3(signature = (texts, threads))]
fn encode_batch(py: Python<'_>, texts: Vec<String>, threads: usize) -> Vec<Py<PyBytes>> {
    let encoded = py.detach(move || {
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        tokenizer::encode_batch(&refs, threads.max(1))
    });
    encoded
        .into_iter()
        .map(|ids| {
            let bytes: Vec<u8> = ids.iter().flat_map(|&t| (t as u16).to_le_bytes()).collect();
            PyBytes::new(py, &bytes).unbind()
        })
        .collect()
}

/// tiktoken-rs's encode_ordinary (the exact reference the fast path is tested against).
#[pyfunction]
fn encode_ordinary_reference(py: Python<'_>, text: String) -> Vec<u32> {
    py.detach(move || tokenizer::shared().encode_ordinary_reference(&text))
}

/// Is `page_id` in the validation split for `val_fraction`? (the rule the shards were written with)
#[pyfunction]
fn is_val(page_id: u64, val_fraction: f64) -> bool {
    pipeline::is_val(page_id, val_fraction)
}

/// Read a shard with the Rust reader (for cross-language tests): list of token ids.
#[pyfunction]
fn read_shard_rust(path: PathBuf) -> PyResult<Vec<u16>> {
    shards::read_shard(&path).map_err(to_py)
}

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProgressHandle>()?;
    m.add_class::<ArticleStream>()?;
    m.add_function(wrap_pyfunction!(cat, m)?)?;
    m.add_function(wrap_pyfunction!(extract_files, m)?)?;
    m.add_function(wrap_pyfunction!(build_shards, m)?)?;
    m.add_function(wrap_pyfunction!(extract_all, m)?)?;
    m.add_function(wrap_pyfunction!(gpt2_ranks, m)?)?;
    m.add_function(wrap_pyfunction!(encode_batch, m)?)?;
    m.add_function(wrap_pyfunction!(encode_ordinary_reference, m)?)?;
    m.add_function(wrap_pyfunction!(is_val, m)?)?;
    m.add_function(wrap_pyfunction!(read_shard_rust, m)?)?;
    m.add("SPLIT_RULE", pipeline::SPLIT_RULE)?;
    m.add("EOT", tokenizer::EOT)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
