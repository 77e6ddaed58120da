//! Print the cleaned articles of a dump file as JSON lines `{"id", "title", "url", "text"}` (ns 0, redirects skipped):
//! the reference side of `benches/cleaner_vs_wikiextractor.py`, usable before the Python extension exists.
//!
//!     cargo run --release --example clean_sample [-- path/to/dump.xml[.bz2]] > ours.jsonl
//!
//! Defaults to the bundled real sample. Decodes with the bzip2 crate's single-threaded reader: fine for samples.

use std::io::{BufWriter, Read, Write};
use std::path::PathBuf;

use _core::dump::{is_redirect, parse_pages, parse_siteinfo, PageSplitter, SplitItem};
use _core::wikitext::{clean, CleanOptions};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2")
    });
    let file = std::fs::File::open(&path).map_err(|e| format!("{}: {}", path.display(), e))?;
    let mut reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "bz2") {
        Box::new(bzip2::read::MultiBzDecoder::new(std::io::BufReader::new(file)))
    } else {
        Box::new(std::io::BufReader::new(file))
    };
    let out = std::io::stdout();
    let mut out = BufWriter::new(out.lock());
    let mut splitter = PageSplitter::new(2 << 20);
    let mut info = None;
    let opts = CleanOptions::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = false;
    while !done {
        let n = reader.read(&mut buf)?;
        let items = if n == 0 {
            done = true;
            splitter.finish(&path)?
        } else {
            splitter.push(&buf[..n])
        };
        for item in items {
            match item {
                SplitItem::Header { bytes } => info = Some(parse_siteinfo(&bytes, &path)?),
                SplitItem::Pages { offset, bytes } => {
                    let info = info.as_ref().expect("header comes first");
                    for p in parse_pages(&bytes, offset, &path)? {
                        if p.ns != 0 || is_redirect(&p) {
                            continue;
                        }
                        let text = clean(&p.text, &info.namespaces, &opts);
                        let rec = serde_json::json!({
                            "id": p.id.to_string(), "title": p.title, "url": info.page_url(&p.title), "text": text,
                        });
                        writeln!(out, "{}", rec)?;
                    }
                }
            }
        }
    }
    out.flush()?;
    Ok(())
}
