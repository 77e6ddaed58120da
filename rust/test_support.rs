//! Helpers shared by the unit tests of several modules (compiled only for `cargo test`).

/// The bundled sample dump part (206 real enwiki pages, one bzip2 stream).
pub(crate) fn sample_path() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2")
}

/// CPU time of this thread in seconds (from /proc/thread-self/schedstat: nanoseconds on CPU), so throughput figures
/// hold on a loaded machine; falls back to wall time elsewhere. Used by the ignored benches in dump.rs and wikitext.rs.
pub(crate) fn cpu_seconds(wall: std::time::Instant) -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns / 1e9)
        .unwrap_or_else(|| wall.elapsed().as_secs_f64())
}
