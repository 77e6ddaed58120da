//! Tokenizer benchmark: tiktoken-rs's encode_ordinary (the reference) vs wikigpt's fast encoder, same input, same
//! thread counts, outputs checked equal.
//!
//!     cargo run --release --example tokbench -- [--mb 50] [--threads 1,2] [--sample PATH.bz2] [--fast-only]
//!
//! `--fast-only` skips the reference (and the equality check): for profiling the fast path with perf.
//!
//! Input: the `<text>` of every page in the bundled real enwiki sample (XML-unescaped, markup kept), repeated until
//! the total reaches `--mb` megabytes (10^6 bytes), as a list of documents. Because the sample repeats, the fast
//! encoder's per-thread cache is warm after the first copy; the "cold" line encodes one copy with a fresh encoder,
//! the worst case for the cache. Reference threads each take a contiguous half of the documents (tiktoken-rs
//! keeps a regex per thread, so this is its best case).

use std::io::Read;
use std::time::Instant;

use _core::tokenizer::{self, Encoder};

fn sample_texts(path: &str) -> Vec<String> {
    let mut xml = String::new();
    bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).unwrap_or_else(|e| panic!("{path}: {e}")))
        .read_to_string(&mut xml)
        .unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut out = Vec::new();
    let mut rest = xml.as_str();
    while let Some(open) = rest.find("<text") {
        let after = &rest[open..];
        let gt = after.find('>').expect("<text ...>");
        if after[..gt].ends_with('/') {
            rest = &after[gt..];
            continue;
        }
        let body = &after[gt + 1..];
        let close = body.find("</text>").expect("</text>");
        let t = body[..close].replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
        if !t.is_empty() {
            out.push(t);
        }
        rest = &body[close..];
    }
    out
}

/// This process's CPU seconds (user + system) from /proc/self/stat: the machine is shared, so wall-clock MB/s
/// alone can mislead; MB per CPU-second shows the work each encoder needs.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the ")" that ends the command name: state is field 3, utime 14, stime 15 (clock ticks, 100/s).
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = rest.split_whitespace().map(|x| x.parse().unwrap_or(0.0)).collect();
    if f.len() > 12 {
        (f[11] + f[12]) / 100.0
    } else {
        f64::NAN
    }
}

fn reference_batch(texts: &[&str], threads: usize) -> Vec<Vec<u32>> {
    let core = tokenizer::shared();
    let per = texts.len().div_ceil(threads);
    std::thread::scope(|s| {
        let handles: Vec<_> = texts
            .chunks(per)
            .map(|chunk| s.spawn(move || chunk.iter().map(|t| core.encode_ordinary_reference(t)).collect::<Vec<_>>()))
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    })
}

fn main() {
    let mut mb = 50.0f64;
    let mut threads = vec![1usize, 2];
    let mut sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2"
    )
    .to_string();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut fast_only = false;
    let mut i = 0;
    while i < args.len() {
        if args[i] == "--fast-only" {
            fast_only = true;
            i += 1;
            continue;
        }
        let v = args.get(i + 1).unwrap_or_else(|| panic!("{} needs a value", args[i]));
        match args[i].as_str() {
            "--mb" => mb = v.parse().expect("--mb: a number"),
            "--threads" => threads = v.split(',').map(|x| x.parse().expect("--threads: e.g. 1,2")).collect(),
            "--sample" => sample = v.clone(),
            other => panic!("unknown argument {other} (use --mb, --threads, --sample)"),
        }
        i += 2;
    }

    let t0 = Instant::now();
    let core = tokenizer::shared();
    let _ = core.encode_ordinary_reference("warm up");
    println!("ranks + reference ready in {:.0} ms", t0.elapsed().as_secs_f64() * 1e3);

    let one_copy = sample_texts(&sample);
    let copy_bytes: usize = one_copy.iter().map(|t| t.len()).sum();
    let target = (mb * 1e6) as usize;
    let mut docs: Vec<&str> = Vec::new();
    let mut total = 0usize;
    while total < target {
        for t in &one_copy {
            docs.push(t);
            total += t.len();
        }
    }
    println!(
        "input: {} documents, {:.1} MB ({} copies of {} articles, {:.2} MB)",
        docs.len(),
        total as f64 / 1e6,
        docs.len() / one_copy.len(),
        one_copy.len(),
        copy_bytes as f64 / 1e6
    );
    println!("cpus available: {}", std::thread::available_parallelism().map_or(1, |n| n.get()));

    if fast_only {
        for &n in &threads {
            let (t, c) = (Instant::now(), cpu_seconds());
            let got = tokenizer::encode_batch(&docs, n);
            let (s, cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
            let tokens: usize = got.iter().map(|v| v.len()).sum();
            let mb = total as f64 / 1e6;
            println!("{n} thread(s): fast {:.1} MB/s ({:.1} MB/cpu-s); {tokens} tokens", mb / s, mb / cpu);
        }
        return;
    }

    // Cold cache: one copy, fresh encoder.
    let one: Vec<&str> = one_copy.iter().map(|s| s.as_str()).collect();
    let (t, c) = (Instant::now(), cpu_seconds());
    let mut enc = Encoder::new();
    let mut cold = Vec::new();
    for d in &one {
        enc.encode_ordinary(d, &mut cold);
    }
    let (cold_s, cold_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    let (t, c) = (Instant::now(), cpu_seconds());
    let cold_ref: Vec<u32> = one.iter().flat_map(|d| core.encode_ordinary_reference(d)).collect();
    let (cold_ref_s, cold_ref_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
    assert!(cold == cold_ref, "fast and reference tokens differ");
    let mb = copy_bytes as f64 / 1e6;
    println!(
        "cold (1 copy, fresh cache, 1 thread): reference {:.1} MB/s ({:.1} MB/cpu-s), fast {:.1} MB/s \
         ({:.1} MB/cpu-s): {:.1}x wall, {:.1}x cpu",
        mb / cold_ref_s,
        mb / cold_ref_cpu,
        mb / cold_s,
        mb / cold_cpu,
        cold_ref_s / cold_s,
        cold_ref_cpu / cold_cpu
    );

    for &n in &threads {
        let (t, c) = (Instant::now(), cpu_seconds());
        let want = reference_batch(&docs, n);
        let (ref_s, ref_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        let (t, c) = (Instant::now(), cpu_seconds());
        let got = tokenizer::encode_batch(&docs, n);
        let (fast_s, fast_cpu) = (t.elapsed().as_secs_f64(), cpu_seconds() - c);
        assert!(got == want, "fast and reference tokens differ");
        let tokens: usize = got.iter().map(|v| v.len()).sum();
        let mb = total as f64 / 1e6;
        println!(
            "{n} thread(s): reference {:.1} MB/s ({:.1} MB/cpu-s), fast {:.1} MB/s ({:.1} MB/cpu-s): {:.1}x wall, \
             {:.1}x cpu; {} tokens, {:.2} bytes/token, identical",
            mb / ref_s,
            mb / ref_cpu,
            mb / fast_s,
            mb / fast_cpu,
            ref_s / fast_s,
            ref_cpu / fast_cpu,
            tokens,
            total as f64 / tokens as f64
        );
    }
}
