//! `bz2cat FILE [THREADS]`: decode a .bz2 (or pass plain XML through) to stdout with wikigpt's parallel decoder,
//! to time it against `bzip2 -dc` and `lbzip2 -dc -n N` and `cmp` the outputs:
//!
//! ```text
//! cargo build --release --example bz2cat
//! time target/release/examples/bz2cat big.xml.bz2 2 > /dev/null
//! ```
//!
//! Prints the decoded size and MB/s of decoded output to stderr. The comparison in bz2.rs's performance notes was
//! made on a few-hundred-MB single-stream file built from the bundled sample's pages (each page repeated with a
//! unique id, then `bzip2 -9`), timing interleaved rounds of
//!
//! ```text
//! bz2cat big.xml.bz2 2; lbzip2 -dc -n2 big.xml.bz2; bz2cat big.xml.bz2 1; bzip2 -dc big.xml.bz2
//! ```
//!
//! each piped to /dev/null under `/usr/bin/time -f "%e wall %U user"`, and `bz2cat big.xml.bz2 2 | cmp - big.xml`.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use _core::bz2::{decode_parallel, DecodeProgress};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 2 || args.len() > 3 {
        eprintln!("usage: bz2cat FILE [THREADS]   (THREADS defaults to the number of CPUs)");
        std::process::exit(2);
    }
    let threads = match args.get(2) {
        Some(t) => t.parse().unwrap_or_else(|_| {
            eprintln!("bz2cat: THREADS must be a positive integer, got {t:?}");
            std::process::exit(2)
        }),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let cancel = AtomicBool::new(false);
    let progress = DecodeProgress::default();
    let t0 = Instant::now();
    let r = decode_parallel(Path::new(&args[1]), threads, &cancel, &progress, &mut |b| {
        out.write_all(b).map_err(|e| _core::Error::io("<stdout>", e))
    });
    match r.and_then(|n| out.flush().map(|_| n).map_err(|e| _core::Error::io("<stdout>", e))) {
        Ok(n) => {
            let s = t0.elapsed().as_secs_f64();
            eprintln!("bz2cat: {n} bytes in {s:.2} s = {:.1} MB/s with {threads} threads", n as f64 / s / 1e6);
        }
        Err(e) => {
            eprintln!("bz2cat: {e}");
            std::process::exit(1);
        }
    }
}
