//! Single-thread cost of the per-page stages, on one dump file held in memory: split into page-aligned chunks,
//! `parse_pages`, `wikitext::clean`. Prints CPU-s per GB of XML for each stage and a sha256 of all clean texts, so a
//! speed change to the cleaner can be checked for identical output in the same run.
//!
//!     cargo run --release --example clean_bench [-- DUMP.xml[.bz2] [REPEATS]]
//!
//! Defaults to the bundled real sample, 5 repeats. Times are this thread's CPU time (from
//! /proc/thread-self/schedstat), so the figures hold on a loaded machine.

use std::io::Read;
use std::path::PathBuf;

use _core::dump::{parse_pages, parse_siteinfo, PageSplitter, SplitItem};
use _core::wikitext::{clean, CleanOptions};
use sha2::{Digest, Sha256};

fn cpu_seconds() -> f64 {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<f64>().ok())
        .map(|ns| ns / 1e9)
        .unwrap_or(0.0)
}

/// A page-aligned chunk of XML: its byte offset in the file and its bytes.
type Chunk = (u64, Vec<u8>);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2")
    });
    let reps: usize = std::env::args().nth(2).map(|s| s.parse()).transpose()?.unwrap_or(5);
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let mut xml = Vec::new();
    if path.extension().is_some_and(|e| e == "bz2") {
        bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file)).read_to_end(&mut xml)?;
    } else {
        std::io::BufReader::new(file).read_to_end(&mut xml)?;
    }
    let gb = xml.len() as f64 * reps as f64 / 1e9;

    // Split in 1 MiB pieces (what the decoder hands over), 1 MiB chunks (the pipeline's target).
    let split = || -> Result<(Vec<u8>, Vec<Chunk>), Box<dyn std::error::Error>> {
        let mut s = PageSplitter::new(1 << 20);
        let mut items = Vec::new();
        for piece in xml.chunks(1 << 20) {
            items.extend(s.push(piece));
        }
        items.extend(s.finish(&path)?);
        let mut header = Vec::new();
        let mut chunks = Vec::new();
        for it in items {
            match it {
                SplitItem::Header { bytes } => header = bytes,
                SplitItem::Pages { offset, bytes } => chunks.push((offset, bytes)),
            }
        }
        Ok((header, chunks))
    };
    // Timed as in the pipeline: each chunk is dropped (its memory reused) soon after it is made.
    let t = cpu_seconds();
    for _ in 0..reps {
        let mut s = PageSplitter::new(1 << 20);
        let mut n = 0;
        for piece in xml.chunks(1 << 20) {
            n += s.push(piece).len();
        }
        n += s.finish(&path)?.len();
        assert!(n > 0);
    }
    let t_split = cpu_seconds() - t;
    let (header, chunks) = split()?;
    let info = parse_siteinfo(&header, &path)?;

    let t = cpu_seconds();
    let mut pages = Vec::new();
    for r in 0..reps {
        let mut all = Vec::new();
        for (off, c) in &chunks {
            all.extend(parse_pages(c, *off, &path)?);
        }
        if r == 0 {
            pages = all;
        }
    }
    let t_parse = cpu_seconds() - t;

    let opts = CleanOptions::default();
    let kept: Vec<_> = pages.iter().filter(|p| p.ns == 0 && !_core::dump::is_redirect(p)).collect();
    let mut hasher = Sha256::new();
    let t = cpu_seconds();
    let mut out_bytes = 0;
    for r in 0..reps {
        for p in &kept {
            let text = clean(&p.text, &info.namespaces, &opts);
            out_bytes += text.len();
            if r == 0 {
                hasher.update(text.as_bytes());
                hasher.update([0u8]);
            }
        }
    }
    let t_clean = cpu_seconds() - t;
    let digest = hasher.finalize();
    let hex: String = digest.iter().take(8).map(|b| format!("{:02x}", b)).collect();
    println!(
        "{}: {:.1} MB of XML x {} reps, {} articles, clean text {:.1}% of XML",
        path.file_name().unwrap().to_string_lossy(),
        xml.len() as f64 / 1e6,
        reps,
        kept.len(),
        100.0 * out_bytes as f64 / (xml.len() * reps) as f64
    );
    println!(
        "CPU-s per GB of XML: split {:.2}  parse_pages {:.2}  clean {:.2}  (sum {:.2})   clean sha256 {}",
        t_split / gb,
        t_parse / gb,
        t_clean / gb,
        (t_split + t_parse + t_clean) / gb,
        hex
    );
    Ok(())
}
