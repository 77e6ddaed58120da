//! Run `pipeline::run_file` on one dump file into text/jsonl files, as `wikigpt extract` does, without Python: the
//! profiling harness for the pipeline (perf sees plain Rust frames) and a byte-for-byte check that a speed change
//! altered no output.
//!
//!     cargo run --release --example extract_file -- DUMP OUT_DIR [-p N] [--format text|jsonl] [--no-headings]
//!         [--no-lists] [--file-size BYTES] [--repeat K]
//!
//! Output files are named like the CLI's (`<input stem>-NNNNN.<ext>`, default file size 100 MB). On stderr: XML
//! bytes, wall and process CPU seconds, and CPU-s per GB of XML. `--repeat K` runs K times (into the same folder) and
//! prints each run, for steadier timings.

use std::path::PathBuf;
use std::time::Instant;

use _core::pipeline::{run_file, ExtractOptions, Progress, TextFiles};

/// Process CPU time (user + system) in seconds, from /proc/self/stat (clock ticks, 100 per second on Linux).
fn process_cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that closes the command name: state is field 3; utime and stime are fields 14 and 15.
    let rest = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / 100.0
}

fn stem(path: &std::path::Path) -> String {
    let mut name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    for suffix in [".bz2", ".xml"] {
        if let Some(s) = name.strip_suffix(suffix) {
            name = s.to_string();
        }
    }
    name
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let mut positional = Vec::new();
    let mut opts = ExtractOptions::default();
    let mut jsonl = false;
    let mut file_size: u64 = 100_000_000;
    let mut repeat = 1;
    while let Some(a) = args.next() {
        let mut value = |flag: &str| args.next().ok_or_else(|| format!("{} needs a value", flag));
        match a.as_str() {
            "-p" | "--processes" => opts.threads = value(&a)?.parse()?,
            "--format" => jsonl = value(&a)? == "jsonl",
            "--no-headings" => opts.clean.keep_headings = false,
            "--no-lists" => opts.clean.keep_lists = false,
            "--file-size" => file_size = value(&a)?.parse()?,
            "--repeat" => repeat = value(&a)?.parse()?,
            _ => positional.push(a),
        }
    }
    let [input, out_dir] = <[String; 2]>::try_from(positional)
        .map_err(|_| "usage: extract_file DUMP OUT_DIR [-p N] [--format text|jsonl] [--no-headings] [--no-lists]")?;
    let input = PathBuf::from(input);
    let out_dir = PathBuf::from(out_dir);
    std::fs::create_dir_all(&out_dir)?;
    for _ in 0..repeat {
        let wall = Instant::now();
        let cpu0 = process_cpu_seconds();
        let mut sink = TextFiles::new(&out_dir, &stem(&input), jsonl, file_size);
        let stats = run_file(&input, &opts, &Progress::default(), &mut sink)?;
        sink.finish()?;
        let cpu = process_cpu_seconds() - cpu0;
        let secs = wall.elapsed().as_secs_f64();
        let gb = stats.xml_bytes as f64 / 1e9;
        eprintln!(
            "{} threads: {} XML bytes, {} articles, wall {:.2} s ({:.1} MB/s), CPU {:.2} s = {:.2} CPU-s/GB",
            opts.threads,
            stats.xml_bytes,
            stats.pages_kept,
            secs,
            stats.xml_bytes as f64 / 1e6 / secs,
            cpu,
            cpu / gb
        );
    }
    Ok(())
}
