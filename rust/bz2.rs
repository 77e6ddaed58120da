//! Parallel bzip2 decoding at block level, with plain-XML passthrough.
//!
//! Wikipedia's `pages-articlesN` parts are one bzip2 stream each (DESIGN.md "bz2"), so stream-level parallelism is
//! useless; we split at *blocks*, which are bit-aligned inside the stream:
//!
//! ```text
//! reader (1 thread)          workers (N threads)              orderer (the calling thread)
//! read 1 MiB pieces  ──►     decode the block a segment ──►   take results in file order, confirm each
//! scan every bit for         starts with, at its bit          candidate (merge on a false one), check the
//! block / EOS magics,        offset (bz2_decode.rs; libbz2    stream structure and combined CRCs, call
//! cut segments               as fallback and reference)       `sink`, return buffers as credits
//! ```
//!
//! - A *candidate* is any bit offset where the 48-bit block magic `0x314159265359` or end-of-stream magic
//!   `0x177245385090` occurs. A *segment* runs from one candidate to the next (or to the end of the file). The magic
//!   can occur by chance inside compressed data, so a candidate is only a guess. lbzip2's rule holds: a wrong guess
//!   may waste work but never changes the output. The orderer only ever decodes from a position it has *proved* is a
//!   block start (the first one after a stream header, or the end of a block that decoded with a matching CRC). When
//!   a segment fails to decode there, the next candidate was false (or the data is corrupt): it merges the segment
//!   with the next one and decodes again on the calling thread, up to the largest size a real block can have. A
//!   speculative result for a segment that starts at a false candidate is simply never looked at.
//! - A block decoded alone succeeds only if its end-of-block symbol ends exactly at the next candidate and its stored
//!   CRC matches its output (the native decoder checks both directly; the libbz2 fallback wraps the block with an
//!   end-of-stream footer right after it, whose CRC must match too). So success proves the block is real and ends
//!   exactly at the next candidate. The combined stream CRC
//!   (`rotl1(c) ^ block_crc`) is checked against each stream's footer as well.
//! - Streams are byte-aligned: after an end-of-stream footer (80 bits, padded to a byte) either the file ends or the
//!   next stream's `BZh1`..`BZh9` header follows, and its first candidate must sit right after it. That covers
//!   multistream dumps and concatenated files with the same scanner.
//! - Memory is bounded by credits: the reader needs a credit (an output buffer, recycled) per segment it dispatches,
//!   and there are `4 × threads` of them, so at most `4 × threads` segments are between the reader and the orderer,
//!   plus the one the reader is cutting and the one the sink is consuming. The file is read in 1 MiB pieces and
//!   never held whole. One segment is capped at the largest compressed block (~2.3 MB at level 9); one decoded block
//!   at the largest output the first RLE stage allows (~46 MB at level 9).
//!
//! Performance notes (2-core dev machine, `examples/bz2cat.rs`; benches/extract.py has the side-by-side table):
//! - Until 2026-11-28 the workers wrapped each block as a one-block stream for libbz2; 95.5% of CPU time was then
//!   inside libbz2 (72% inverse BWT + output, 24% Huffman/MTF): 37 CPU-s per GB of XML, lbzip2 27.5, `bzip2 -dc`
//!   ~39. The C libbz2 backend measured no faster than the default pure-Rust one.
//! - The native decoder (bz2_decode.rs, its notes say why it is faster) costs 16.6 CPU-s per GB of XML on the
//!   1 GB bench corpus (one thread, under load from a parallel build), against 28.7 for `lbzip2 -n 2` in the same
//!   run. The scanner looks at each byte once through a 256-entry table keyed by the byte before the one just read
//!   (any magic at any of the 8 bit shifts fully covers it), so it rejects ~94% of positions without a 48-bit
//!   compare; it and the segment copies are ~4% of the total.
//! - Memory: peak RSS of `bz2cat` is 15 MB (1 thread), 25 MB (2), whatever the file size: bounded by the credits
//!   and each worker's ~6 bytes of tables per byte of block.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, Sender};

use sha1::{Digest, Sha1};

use crate::bz2_decode;
use crate::error::{Error, Result};

/// What kind of input a file is, detected from its first bytes (not its name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    Bzip2,
    PlainXml,
}

/// Counters another thread may poll while decoding runs (progress bars).
#[derive(Default, Debug)]
pub struct DecodeProgress {
    /// Bytes of the input file fully accounted for (decoded and handed to the sink, or passed through).
    pub compressed_bytes_done: AtomicU64,
    /// Decoded bytes handed to the sink so far.
    pub decoded_bytes: AtomicU64,
}

const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const EOS_MAGIC: u64 = 0x1772_4538_5090;
const MASK48: u64 = (1 << 48) - 1;
/// Bits of an end-of-stream footer: 48-bit magic + 32-bit combined CRC (then zero padding to a byte).
const FOOTER_BITS: u64 = 80;
/// Bits of a block header that we read ourselves: 48-bit magic + 32-bit block CRC.
const BLOCK_HEADER_BITS: u64 = 80;
/// File read size. Small enough that the reader's buffer stays a fraction of the in-flight blocks.
const READ_PIECE: usize = 1 << 20;
/// Plain XML is handed to the sink in pieces of this size.
const XML_PIECE: usize = 1 << 20;
/// How often the orderer wakes up to look at the cancel flag while it waits for a worker.
const CANCEL_POLL: Duration = Duration::from_millis(20);

/// Largest compressed size (bytes) of one block of a level-`level` stream. A block holds at most `level × 100k`
/// symbols after the first RLE, plus one end-of-block symbol; each Huffman code is at most 20 bits; the selectors
/// (≤ 18002, ≤ 7 bits each), bitmap and code tables add well under 64 kB. Anything longer is not a block.
fn max_block_bytes(level: u8) -> u64 {
    level as u64 * 100_000 * 20 / 8 + 64 * 1024
}

/// Largest decoded size of one block: the first RLE stage turns 5 stored bytes (4 equal + a count ≤ 255) into up to
/// 259, so a block of `level × 100k` bytes expands to at most 51.8×.
fn max_block_output(level: u8) -> usize {
    level as usize * 100_000 / 5 * 259 + 1024
}

/// Detect whether `path` is bzip2 (starts with `BZh1`..`BZh9`) or plain XML (first non-blank byte, after an optional
/// UTF-8 BOM, is `<`). Anything else is `Error::CorruptDump` "not a bzip2 file (starts with ...)".
pub fn detect(path: &Path) -> Result<InputKind> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut head = Vec::with_capacity(4096);
    (&mut f).take(4096).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    kind_of(path, &head)
}

fn kind_of(path: &Path, head: &[u8]) -> Result<InputKind> {
    if head.len() >= 4 && &head[..3] == b"BZh" && (b'1'..=b'9').contains(&head[3]) {
        return Ok(InputKind::Bzip2);
    }
    let body = head.strip_prefix(b"\xEF\xBB\xBF".as_slice()).unwrap_or(head);
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'<') => Ok(InputKind::PlainXml),
        _ if head.is_empty() => Err(Error::corrupt(path, 0, "not a bzip2 file (the file is empty)")),
        // A file holding only whitespace (or whitespace cut off by our 4 kB look-ahead) is not XML either.
        _ => Err(Error::corrupt(
            path,
            0,
            format!("not a bzip2 file (starts with {})", escape_bytes(&head[..head.len().min(16)])),
        )),
    }
}

pub(crate) fn escape_bytes(b: &[u8]) -> String {
    let mut s = String::from("b\"");
    for &c in b {
        s.extend(std::ascii::escape_default(c).map(char::from));
    }
    s.push('"');
    s
}

/// Decode `path` (bzip2: single-stream, multistream, or concatenated streams; or plain XML passthrough) on `threads`
/// worker threads, calling `sink` ON THE CALLING THREAD with decoded bytes strictly in file order (chunks of any
/// size, typically one block each; plain XML in ~1 MiB chunks). Returns total decoded bytes.
///
/// Checks every block CRC and every stream CRC; a truncated file, CRC mismatch, or garbage → `Error::CorruptDump`
/// with the compressed byte offset. Stops promptly with `Error::Interrupted` when `cancel` becomes true (checked per
/// block by workers and every 20 ms by the orderer). If `sink` returns Err, stops all workers and returns that error.
/// Memory stays bounded at about `4 × threads + 2` blocks of compressed + decoded data, whatever the file size.
pub fn decode_parallel(
    path: &Path,
    threads: usize,
    cancel: &AtomicBool,
    progress: &DecodeProgress,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<u64> {
    decode_with_fake_candidates(path, threads, cancel, progress, sink, &[], false).map(|(n, _)| n)
}

/// `decode_parallel`, also returning the sha1 (hex) of the input file's bytes, computed by the reading thread as it
/// reads them (so a caller that records the hash needs no pass over the file before or after the work).
pub fn decode_parallel_sha1(
    path: &Path,
    threads: usize,
    cancel: &AtomicBool,
    progress: &DecodeProgress,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
) -> Result<(u64, String)> {
    let (n, sha1) = decode_with_fake_candidates(path, threads, cancel, progress, sink, &[], true)?;
    Ok((n, sha1.expect("asked for")))
}

/// `decode_parallel`, plus false candidates injected at the given bit offsets (as block magics). Only the tests use
/// a non-empty list: real false candidates are too rare (~1 per 10^14 bits) to construct, and this proves that the
/// merge logic turns any wrong guess into the same output.
fn decode_with_fake_candidates(
    path: &Path,
    threads: usize,
    cancel: &AtomicBool,
    progress: &DecodeProgress,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    fake: &[u64],
    sha1: bool,
) -> Result<(u64, Option<String>)> {
    if threads == 0 {
        return Err(Error::Invalid("bz2 decoding needs at least 1 thread (got 0)".into()));
    }
    let hasher = sha1.then(Sha1::new);
    match detect(path)? {
        InputKind::PlainXml => passthrough(path, cancel, progress, sink, hasher),
        InputKind::Bzip2 => {
            let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
            let file_len = file.metadata().map_err(|e| Error::io(path, e))?.len();
            decode_bzip2(path, &mut file, file_len, threads, cancel, progress, sink, fake, hasher)
        }
    }
}

fn sha1_hex(h: Sha1) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

fn passthrough(
    path: &Path,
    cancel: &AtomicBool,
    progress: &DecodeProgress,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    mut hasher: Option<Sha1>,
) -> Result<(u64, Option<String>)> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; XML_PIECE];
    let mut total = 0u64;
    loop {
        if cancel.load(Ordering::Relaxed) {
            return Err(Error::Interrupted);
        }
        let n = match f.read(&mut buf) {
            Ok(0) => return Ok((total, hasher.map(sha1_hex))),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(path, e)),
        };
        if let Some(h) = &mut hasher {
            h.update(&buf[..n]);
        }
        sink(&buf[..n])?;
        total += n as u64;
        progress.compressed_bytes_done.store(total, Ordering::Relaxed);
        progress.decoded_bytes.store(total, Ordering::Relaxed);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Segments and the messages between threads

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// From the start of the file to the first candidate: the first stream header.
    Head,
    /// Starts at a block magic.
    Block,
    /// Starts at an end-of-stream magic (footer, padding, and possibly the next stream's header).
    Eos,
}

/// Bits `[start_bit, end_bit)` of the file, as a copy of the bytes `[start_bit / 8, ceil(end_bit / 8))`.
struct Segment {
    kind: Kind,
    start_bit: u64,
    end_bit: u64,
    /// Level digit of the stream header seen last before this segment (only bounds the decoder's block size).
    level: u8,
    data: Vec<u8>,
    /// For `Block`: the workers' speculative decode, `Ok((output, stored block CRC))` or why it failed.
    decoded: Option<std::result::Result<(Vec<u8>, u32), String>>,
    /// Whether the output buffer in `decoded` is one of the reader's credits (set by the orderer when it takes the
    /// segment): it must go back to the reader exactly once.
    credit: bool,
}

impl Segment {
    fn bits(&self) -> u64 {
        self.end_bit - self.start_bit
    }
    /// `n ≤ 57` bits starting `at` bits after the segment's start (MSB-first, as bzip2 writes them).
    fn get_bits(&self, at: u64, n: u32) -> u64 {
        get_bits(&self.data, (self.start_bit % 8) + at, n)
    }
    /// Extend this segment by the one that follows it in the file.
    fn append(&mut self, next: Segment) {
        debug_assert_eq!(self.end_bit, next.start_bit);
        // Both are copies of the same file bytes; they share the byte that holds the boundary bit unless the
        // boundary is byte-aligned.
        let keep = (next.start_bit / 8 - self.start_bit / 8) as usize;
        self.data.truncate(keep);
        self.data.extend_from_slice(&next.data);
        self.end_bit = next.end_bit;
    }
}

/// `n ≤ 57` bits of `data` starting at bit `at`, MSB-first; bits past the end read as 0.
fn get_bits(data: &[u8], at: u64, n: u32) -> u64 {
    debug_assert!(n <= 57);
    let byte = (at / 8) as usize;
    let mut w = [0u8; 8];
    let avail = data.len().saturating_sub(byte).min(8);
    w[..avail].copy_from_slice(&data[byte..byte + avail]);
    let v = u64::from_be_bytes(w);
    (v << (at % 8)) >> (64 - n)
}

enum Item {
    Seg(Segment),
    /// The reader reached the end of the file; there are no more segments.
    Eof,
    /// The reader could not go on (I/O error, no candidate within a block's maximal size).
    Fail(Error),
}

struct Job {
    seq: u64,
    item: Item,
    /// A recycled output buffer (the reader's credit), for the worker to decode into.
    out: Vec<u8>,
}

// ---------------------------------------------------------------------------------------------------------------
// The scanner

/// `PREFILTER[b]` has bit `s` (block magic) or `8 + s` (EOS magic) set when `b` is the byte that a magic ending
/// `s` bits before the end of the current byte puts just before the current byte. Every shift fully covers that
/// byte, so one table lookup rejects ~94% of positions without any 48-bit compare.
const PREFILTER: [u16; 256] = {
    let mut t = [0u16; 256];
    let mut s = 0;
    while s < 8 {
        t[(((BLOCK_MAGIC << s) >> 8) & 0xFF) as usize] |= 1 << s;
        t[(((EOS_MAGIC << s) >> 8) & 0xFF) as usize] |= 1 << (8 + s);
        s += 1;
    }
    t
};

/// For each magic (block, then EOS) and shift `s`, the bytes that a magic ending `s` bits before the end of the
/// current byte puts 3 and 2 bytes before it (in file order). Every shift fully covers those two bytes, so a position
/// whose two bytes match none of these 16 pairs cannot end a magic: `Scanner::scan` rejects 32 positions at a time
/// with that test (SSE2), where the byte-at-a-time loop cost ~9 cycles per compressed byte (6% of `wikigpt cat`).
const PAIRS: [(u8, u8); 16] = {
    let mut t = [(0u8, 0u8); 16];
    let mut s = 0;
    while s < 8 {
        t[s] = ((((BLOCK_MAGIC << s) >> 24) & 0xFF) as u8, (((BLOCK_MAGIC << s) >> 16) & 0xFF) as u8);
        t[8 + s] = ((((EOS_MAGIC << s) >> 24) & 0xFF) as u8, (((EOS_MAGIC << s) >> 16) & 0xFF) as u8);
        s += 1;
    }
    t
};

/// Positions `Scanner::scan` rejects per vector test.
const SKIP: usize = 32;

/// `PAIRS` as SSE2 vectors of 16 equal bytes, made once per `Scanner::scan` call (made inside the test loop, every
/// byte's broadcast cost 4 instructions: as many as the compare itself).
#[cfg(target_arch = "x86_64")]
type PairVectors = [(std::arch::x86_64::__m128i, std::arch::x86_64::__m128i); 16];

#[cfg(target_arch = "x86_64")]
fn pair_vectors() -> PairVectors {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64.
    PAIRS.map(|(x, y)| unsafe { (_mm_set1_epi8(x as i8), _mm_set1_epi8(y as i8)) })
}

/// Bit k set when `buf[p + k], buf[p + k + 1]` is one of `PAIRS`, for k in 0..32; needs `p + 33 <= buf.len()`.
#[cfg(target_arch = "x86_64")]
#[inline]
fn pair_hits(buf: &[u8], p: usize, pairs: &PairVectors) -> u32 {
    use std::arch::x86_64::*;
    assert!(p + SKIP < buf.len());
    // SAFETY: SSE2 is part of x86_64; the four loads read buf[p..p + 33], in bounds by the assert.
    unsafe {
        let at = buf.as_ptr().add(p);
        let (a0, b0) = (_mm_loadu_si128(at as *const __m128i), _mm_loadu_si128(at.add(1) as *const __m128i));
        let (a1, b1) = (_mm_loadu_si128(at.add(16) as *const __m128i), _mm_loadu_si128(at.add(17) as *const __m128i));
        let (mut m0, mut m1) = (_mm_setzero_si128(), _mm_setzero_si128());
        for &(x, y) in pairs {
            m0 = _mm_or_si128(m0, _mm_and_si128(_mm_cmpeq_epi8(a0, x), _mm_cmpeq_epi8(b0, y)));
            m1 = _mm_or_si128(m1, _mm_and_si128(_mm_cmpeq_epi8(a1, x), _mm_cmpeq_epi8(b1, y)));
        }
        (_mm_movemask_epi8(m0) as u32 & 0xFFFF) | ((_mm_movemask_epi8(m1) as u32) << 16)
    }
}

/// Finds every bit offset where a block or end-of-stream magic occurs, across reads of any size.
struct Scanner {
    /// The last 8 bytes seen, the most recent in the low byte.
    window: u64,
    /// Absolute index of the next byte to scan.
    pos: u64,
}

impl Scanner {
    fn new() -> Self {
        Scanner { window: 0, pos: 0 }
    }

    /// Scan `buf` (the bytes following those already scanned); push `(start_bit, kind)` in increasing order.
    fn scan(&mut self, buf: &[u8], out: &mut Vec<(u64, Kind)>) {
        let mut w = self.window;
        let mut i = 0;
        // Scalar steps up to here: the positions a vector test found a pair in (or the first 3, whose pairs start
        // in the previous read).
        let mut scalar_until = 3.min(buf.len());
        #[cfg(target_arch = "x86_64")]
        let pairs = pair_vectors();
        while i < buf.len() {
            #[cfg(target_arch = "x86_64")]
            if i >= scalar_until && i + SKIP <= buf.len() {
                // Positions i..i + SKIP end a magic only if a pair starts at one of i - 3..i - 3 + SKIP.
                if pair_hits(buf, i - 3, &pairs) == 0 {
                    i += SKIP;
                    w = u64::from_be_bytes(buf[i - 8..i].try_into().expect("8 bytes"));
                    continue;
                }
                scalar_until = i + SKIP;
            }
            w = (w << 8) | buf[i] as u64;
            let t = PREFILTER[((w >> 8) & 0xFF) as usize];
            if t != 0 {
                let end_of_byte = (self.pos + i as u64 + 1) * 8;
                // Larger shifts end earlier: walk s downwards so candidates come out in increasing order.
                for s in (0..8u32).rev() {
                    let kind = if t & (1 << s) != 0 && (w >> s) & MASK48 == BLOCK_MAGIC {
                        Kind::Block
                    } else if t & (1 << (8 + s)) != 0 && (w >> s) & MASK48 == EOS_MAGIC {
                        Kind::Eos
                    } else {
                        continue;
                    };
                    // Before 6 bytes are read the window holds zeros that are not in the file.
                    if end_of_byte >= 48 + s as u64 {
                        out.push((end_of_byte - s as u64 - 48, kind));
                    }
                }
            }
            i += 1;
        }
        self.window = w;
        self.pos += buf.len() as u64;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The reader thread

struct Reader<'a> {
    path: &'a Path,
    file_len: u64,
    jobs: Sender<Job>,
    credits: Receiver<Vec<u8>>,
    stop: &'a AtomicBool,
    cancel: &'a AtomicBool,
    seq: u64,
    /// The sha1 of every byte read, when the caller asked for it.
    sha1: Option<Sha1>,
}

impl Reader<'_> {
    /// Sends one item down the pipeline in sequence. Returns false when the pipeline is shutting down.
    fn send(&mut self, item: Item) -> bool {
        let out = match item {
            // Every segment holds a credit until the orderer has consumed it: that is the memory bound.
            Item::Seg(_) => match self.credits.recv() {
                Ok(buf) => buf,
                Err(_) => return false,
            },
            _ => Vec::new(),
        };
        if self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
            return false;
        }
        let job = Job { seq: self.seq, item, out };
        self.seq += 1;
        self.jobs.send(job).is_ok()
    }

    /// Read the whole file; returns the reader's sha1 (complete only if the orderer saw the Eof this sent).
    fn run(mut self, file: &mut File, fake: &[u64]) -> Option<Sha1> {
        if let Err(e) = self.read_all(file, fake) {
            self.send(Item::Fail(e));
        }
        self.sha1.take()
    }

    fn read_all(&mut self, file: &mut File, fake: &[u64]) -> Result<()> {
        let mut scanner = Scanner::new();
        // File bytes from `base` (= the byte holding the current segment's first bit) up to what has been read.
        let mut pending: Vec<u8> = Vec::with_capacity(READ_PIECE * 4);
        let mut base = 0u64;
        let mut cur_start = 0u64;
        let mut cur_kind = Kind::Head;
        let mut level = 9u8;
        let mut found = Vec::new();
        let mut fake = fake.to_vec();
        fake.sort_unstable();
        let mut fake = fake.into_iter().peekable();
        let max_seg = max_block_bytes(9) + 64;
        loop {
            if self.stop.load(Ordering::Relaxed) || self.cancel.load(Ordering::Relaxed) {
                return Ok(());
            }
            let old = pending.len();
            pending.resize(old + READ_PIECE, 0);
            let n = loop {
                match file.read(&mut pending[old..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                    Err(e) => return Err(Error::io(self.path, e)),
                }
            };
            pending.truncate(old + n);
            if let Some(h) = &mut self.sha1 {
                h.update(&pending[old..]);
            }
            let eof = n == 0;
            found.clear();
            scanner.scan(&pending[old..], &mut found);
            if fake.peek().is_some() {
                // Inject test-only false candidates whose 48 bits have now been read.
                let limit = scanner.pos * 8;
                while let Some(&f) = fake.peek() {
                    if f + 48 > limit && !eof {
                        break;
                    }
                    found.push((f, Kind::Block));
                    fake.next();
                }
                found.sort_by_key(|c| c.0);
            }
            if eof && scanner.pos != self.file_len {
                return Err(Error::io(
                    self.path,
                    std::io::Error::other(format!(
                        "the file changed size while being read ({} bytes, then {})",
                        self.file_len, scanner.pos
                    )),
                ));
            }
            let cut = |this: &mut Self, end: u64, pending: &[u8], start: u64, kind: Kind, level: u8| {
                let lo = (start / 8 - base) as usize;
                let hi = (end.div_ceil(8) - base) as usize;
                let seg = Segment {
                    kind,
                    start_bit: start,
                    end_bit: end,
                    level,
                    data: pending[lo..hi].to_vec(),
                    decoded: None,
                    credit: false,
                };
                this.send(Item::Seg(seg))
            };
            for &(bit, kind) in &found {
                if bit <= cur_start && cur_kind != Kind::Head {
                    continue; // an injected candidate equal to a real one
                }
                if !cut(self, bit, &pending, cur_start, cur_kind, level) {
                    return Ok(());
                }
                cur_start = bit;
                cur_kind = kind;
                // A candidate right after a byte-aligned `BZhN` starts a stream of level N.
                if bit % 8 == 0 && bit / 8 >= base + 4 {
                    let h = (bit / 8 - base) as usize;
                    if &pending[h - 4..h - 1] == b"BZh" && (b'1'..=b'9').contains(&pending[h - 1]) {
                        level = pending[h - 1] - b'0';
                    }
                }
            }
            if eof {
                if !cut(self, scanner.pos * 8, &pending, cur_start, cur_kind, level) {
                    return Ok(());
                }
                self.send(Item::Eof);
                return Ok(());
            }
            // Drop the bytes before the current segment.
            let drop = (cur_start / 8 - base) as usize;
            pending.drain(..drop);
            base += drop as u64;
            if pending.len() as u64 > max_seg {
                return Err(Error::corrupt(
                    self.path,
                    cur_start / 8,
                    format!(
                        "no bzip2 block or end-of-stream marker within {max_seg} bytes after this one \
                         (corrupt data or trailing garbage)"
                    ),
                ));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The workers

/// Wrap the block in `seg` as its own byte-aligned stream: `BZh<level>`, the block's bits shifted to byte alignment,
/// then an end-of-stream footer whose combined CRC is the block's own CRC (a one-block stream's CRC equals it).
fn standalone_stream(seg: &Segment, out: &mut Vec<u8>) -> u32 {
    let nbits = seg.bits();
    let crc = seg.get_bits(48, 32) as u32;
    out.clear();
    out.extend_from_slice(b"BZh");
    out.push(b'0' + seg.level);
    let shift = (seg.start_bit % 8) as u32;
    let nbytes = nbits.div_ceil(8) as usize;
    let src = &seg.data;
    if shift == 0 {
        out.extend_from_slice(&src[..nbytes]);
    } else {
        // src has ceil((shift + nbits) / 8) bytes: one more than nbytes at most.
        out.extend((0..nbytes).map(|j| {
            let next = src.get(j + 1).copied().unwrap_or(0);
            (src[j] << shift) | (next >> (8 - shift))
        }));
    }
    // Clear the bits after the block in its last byte, then write the footer at bit 32 + nbits.
    let tail = (nbits % 8) as u32;
    if tail != 0 {
        let last = out.len() - 1;
        out[last] &= 0xFFu8 << (8 - tail);
    }
    let mut bw = BitWriter { bit: 32 + nbits };
    bw.put(out, EOS_MAGIC, 48);
    bw.put(out, crc as u64, 32);
    crc
}

/// Appends bits at an arbitrary bit position of a byte vector whose bits past `bit` are all zero.
struct BitWriter {
    bit: u64,
}

impl BitWriter {
    fn put(&mut self, out: &mut Vec<u8>, value: u64, n: u32) {
        for i in (0..n).rev() {
            let byte = (self.bit / 8) as usize;
            if byte == out.len() {
                out.push(0);
            }
            if (value >> i) & 1 != 0 {
                out[byte] |= 0x80 >> (self.bit % 8);
            }
            self.bit += 1;
        }
    }
}

/// Per-thread buffers for decoding blocks: the native decoder's tables and libbz2's one-block stream.
#[derive(Default)]
struct BlockScratch {
    native: bz2_decode::Scratch,
    stream: Vec<u8>,
}

/// Decode the block that `seg` starts with, assuming it ends exactly at `seg.end_bit`, into `out`.
/// Returns its stored CRC, or a one-line reason why it is not such a block.
///
/// The native decoder (bz2_decode.rs) does the work; libbz2 is the reference it falls back to for randomised blocks
/// and whenever the native decoder says no. A false candidate or corrupt data is thus decoded twice, which costs
/// nothing in practice (a false magic turns up about once in 2^48 bits) and means a valid block is never rejected
/// because of a native-decoder bug (the tests compare the native decoder alone against libbz2).
fn decode_block(seg: &Segment, scratch: &mut BlockScratch, out: &mut Vec<u8>) -> std::result::Result<u32, String> {
    if seg.bits() < BLOCK_HEADER_BITS {
        return Err("block too short".into());
    }
    let cap = max_block_output(seg.level);
    // The orderer calls this outside the workers' panic guard; a panic in the native decoder (none is known: its
    // tests feed it mutated blocks) must cost only the fallback, not the process.
    let native = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        bz2_decode::decode_block(
            &seg.data,
            (seg.start_bit % 8) as u32,
            seg.bits(),
            seg.level,
            cap,
            &mut scratch.native,
            out,
        )
    }))
    .unwrap_or_else(|_| Err("the native block decoder panicked".into()));
    match native {
        Ok(bz2_decode::Outcome::Done(crc)) => Ok(crc),
        Ok(bz2_decode::Outcome::Randomised) => decode_block_libbz2(seg, cap, &mut scratch.stream, out),
        Err(why) => decode_block_libbz2(seg, cap, &mut scratch.stream, out).map_err(|_| why),
    }
}

/// `decode_block` through libbz2: the block (at least a header long, as `decode_block` checked) wrapped as its own
/// one-block stream, its output capped at `cap` bytes.
fn decode_block_libbz2(
    seg: &Segment,
    cap: usize,
    scratch: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> std::result::Result<u32, String> {
    use bzip2::{Decompress, Status};
    let crc = standalone_stream(seg, scratch);
    out.clear();
    // Text blocks decode to a little more than the level's block size; recycled buffers keep their capacity.
    let want = (seg.level as usize * 100_000) * 5 / 4;
    if out.capacity() < want {
        out.reserve(want);
    }
    let mut d = Decompress::new(false);
    loop {
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let consumed = in_before as usize;
        match d.decompress_vec(&scratch[consumed..], out) {
            Ok(Status::StreamEnd) => return Ok(crc),
            Ok(_) => {
                if out.len() == out.capacity() {
                    if out.len() >= cap {
                        return Err(format!("block decodes to more than {cap} bytes"));
                    }
                    out.reserve((out.len()).min(cap - out.len()));
                } else if d.total_in() as usize == scratch.len()
                    || (d.total_in(), d.total_out()) == (in_before, out_before)
                {
                    return Err("the block does not end where the next block starts".into());
                }
            }
            // libbz2 says DATA_ERROR for both malformed data and a CRC mismatch.
            Err(e) => return Err(format!("{e} (malformed data or CRC mismatch)")),
        }
    }
}

fn worker(jobs: Receiver<Job>, results: Sender<Job>, stop: &AtomicBool, cancel: &AtomicBool) {
    let mut scratch = BlockScratch::default();
    for mut job in jobs {
        if stop.load(Ordering::Relaxed) || cancel.load(Ordering::Relaxed) {
            return;
        }
        if let Item::Seg(seg) = &mut job.item {
            if seg.kind == Kind::Block {
                let mut out = std::mem::take(&mut job.out);
                // A panic in the decoder must not leave a hole in the sequence (the orderer would wait for it
                // forever): report it as this block's failure instead.
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    decode_block(seg, &mut scratch, &mut out)
                }))
                .unwrap_or_else(|_| Err("the bzip2 decoder panicked".into()));
                seg.decoded = Some(r.map(|crc| (out, crc)));
            }
        }
        if results.send(job).is_err() {
            return;
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// The orderer (runs on the calling thread)

struct Orderer<'a> {
    path: &'a Path,
    file_len: u64,
    results: Receiver<Job>,
    credits: Sender<Vec<u8>>,
    cancel: &'a AtomicBool,
    progress: &'a DecodeProgress,
    waiting: BTreeMap<u64, Job>,
    next_seq: u64,
    scratch: BlockScratch,
    total: u64,
}

enum Next {
    Seg(Segment),
    Eof,
}

impl Orderer<'_> {
    /// The next item in file order. Its credit goes back to the reader at once, except for a block that decoded:
    /// then its output buffer is the credit, returned by `emit` after the sink has seen it (or by `discard`).
    fn next(&mut self) -> Result<Next> {
        loop {
            if self.cancel.load(Ordering::Relaxed) {
                return Err(Error::Interrupted);
            }
            if let Some(job) = self.waiting.remove(&self.next_seq) {
                self.next_seq += 1;
                let mut job = job;
                if let Item::Seg(seg @ Segment { decoded: Some(Ok(_)), .. }) = &mut job.item {
                    seg.credit = true; // the output buffer is the credit (job.out was moved into it)
                } else {
                    let _ = self.credits.send(job.out);
                }
                return match job.item {
                    Item::Seg(seg) => Ok(Next::Seg(seg)),
                    Item::Eof => Ok(Next::Eof),
                    Item::Fail(e) => Err(e),
                };
            }
            match self.results.recv_timeout(CANCEL_POLL) {
                Ok(job) => {
                    self.waiting.insert(job.seq, job);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // Workers leave early only when cancelled; otherwise the reader ends every run with Eof or
                    // Fail, so a closed channel here means a thread died.
                    if self.cancel.load(Ordering::Relaxed) {
                        return Err(Error::Interrupted);
                    }
                    return Err(Error::Invalid(format!(
                        "{}: bz2 decoding stopped unexpectedly (a decoding thread panicked)",
                        self.path.display()
                    )));
                }
            }
        }
    }

    fn corrupt(&self, bit: u64, msg: impl Into<String>) -> Error {
        Error::corrupt(self.path, bit / 8, msg)
    }

    /// Hand a decoded block to the sink; `recycle` returns its buffer as the reader's credit (false for a block
    /// decoded on this thread, whose credits went back when its pieces were taken).
    fn emit(
        &mut self,
        out: Vec<u8>,
        end_bit: u64,
        recycle: bool,
        sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        sink(&out)?;
        self.total += out.len() as u64;
        self.progress.decoded_bytes.store(self.total, Ordering::Relaxed);
        self.progress.compressed_bytes_done.store(end_bit / 8, Ordering::Relaxed);
        if recycle {
            let _ = self.credits.send(out);
        }
        Ok(())
    }

    /// Drop a segment's speculative result (it started at a false candidate), returning its credit.
    fn discard(&self, seg: &mut Segment) {
        if let Some(Ok((out, _))) = seg.decoded.take() {
            if seg.credit {
                let _ = self.credits.send(out);
            }
        }
        seg.credit = false;
    }

    /// Extend a glue segment (`Head`/`Eos`) with the following ones until it holds at least `bits` bits. False
    /// candidates inside a footer or header would cut it short. Returns false at the end of the file.
    fn fill_glue(&mut self, seg: &mut Segment, bits: u64) -> Result<bool> {
        while seg.bits() < bits {
            match self.next()? {
                Next::Seg(mut n) => {
                    self.discard(&mut n);
                    seg.append(n);
                }
                Next::Eof => return Ok(false),
            }
        }
        Ok(true)
    }

    /// Check the stream header at byte `at_byte` (inside `seg`) and that the stream's first block or footer starts
    /// right after it. Returns the stream's level, or None if the file ends cleanly here (the reader's Eof has then
    /// been consumed).
    fn stream_header(&mut self, seg: &mut Segment, at_byte: u64) -> Result<Option<u8>> {
        let rel = at_byte * 8 - seg.start_bit;
        let first = at_byte * 8 + 32;
        if !self.fill_glue(seg, rel + 32)? {
            // The file ends less than 4 bytes after the footer (the reader's Eof has been taken).
            if seg.end_bit <= at_byte * 8 {
                return Ok(None); // nothing after the footer: the clean end of the file
            }
            let rest: Vec<u8> = (0..(seg.bits() - rel) / 8).map(|i| seg.get_bits(rel + i * 8, 8) as u8).collect();
            if b"BZh".starts_with(&rest) {
                return Err(self.corrupt(at_byte * 8, "truncated: the file ends inside a stream header"));
            }
            return Err(self.corrupt(
                at_byte * 8,
                format!("trailing garbage after the end of the bzip2 stream (starts with {})", escape_bytes(&rest)),
            ));
        }
        let h = seg.get_bits(rel, 32);
        let (magic, digit) = ((h >> 8) as u32, (h & 0xFF) as u8);
        if magic != 0x42_5A_68 || !(b'1'..=b'9').contains(&digit) {
            let rest: Vec<u8> = (0..4).map(|i| seg.get_bits(rel + i * 8, 8) as u8).collect();
            return Err(self.corrupt(
                at_byte * 8,
                format!("trailing garbage after the end of the bzip2 stream (starts with {})", escape_bytes(&rest)),
            ));
        }
        if seg.end_bit > first {
            let msg = if seg.end_bit == self.file_len * 8 {
                "truncated: no block or end-of-stream marker after the stream header"
            } else {
                "no bzip2 block or end-of-stream marker right after the stream header"
            };
            return Err(self.corrupt(first, msg));
        }
        Ok(Some(digit - b'0'))
    }

    /// Decode a block that starts at a proven position, merging it with the following segments while the next
    /// candidate proves false. Calls the sink and returns the block's stored CRC and end bit.
    fn block(&mut self, mut seg: Segment, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<u32> {
        let first_err = match seg.decoded.take() {
            Some(Ok((out, crc))) => {
                self.emit(out, seg.end_bit, seg.credit, sink)?;
                return Ok(crc);
            }
            Some(Err(e)) => e,
            None => unreachable!("workers decode every block segment"),
        };
        let start = seg.start_bit;
        let cap_bits = max_block_bytes(seg.level) * 8;
        let mut saw_eos = false;
        loop {
            if seg.bits() > cap_bits {
                break;
            }
            match self.next()? {
                Next::Eof if !saw_eos => {
                    return Err(self.corrupt(
                        start,
                        format!(
                            "truncated: the file ends (at byte {}) inside this block, with no end-of-stream marker",
                            self.file_len
                        ),
                    ));
                }
                Next::Eof => break,
                Next::Seg(mut n) => {
                    self.discard(&mut n);
                    saw_eos |= n.kind == Kind::Eos;
                    seg.append(n);
                }
            }
            let mut out = Vec::new();
            if let Ok(crc) = decode_block(&seg, &mut self.scratch, &mut out) {
                self.emit(out, seg.end_bit, false, sink)?;
                return Ok(crc);
            }
        }
        Err(self.corrupt(start, format!("bad bzip2 block: {first_err}")))
    }

    fn run(&mut self, sink: &mut dyn FnMut(&[u8]) -> Result<()>) -> Result<u64> {
        let mut seg = match self.next()? {
            Next::Seg(s) => s,
            Next::Eof => return Err(self.corrupt(0, "truncated: empty file")),
        };
        debug_assert_eq!(seg.kind, Kind::Head);
        let Some(mut level) = self.stream_header(&mut seg, 0)? else {
            unreachable!("the header segment starts at byte 0 of a non-empty file")
        };
        let mut stream_start = 0u64;
        let mut combined = 0u32;
        loop {
            let mut seg = match self.next()? {
                Next::Seg(s) => s,
                Next::Eof => {
                    return Err(self.corrupt(
                        stream_start * 8,
                        format!(
                            "truncated: the file ends (at byte {}) with no end-of-stream marker for the stream \
                             starting here",
                            self.file_len
                        ),
                    ))
                }
            };
            if seg.kind == Kind::Block && seg.level != level {
                // The reader guessed the level from the bytes before the block; the header we checked says
                // otherwise (possible only with false candidates around a header). Decode again with the right
                // bound, so that no block is accepted that bzip2 itself would reject.
                self.discard(&mut seg);
                seg.level = level;
                let mut out = Vec::new();
                let r = decode_block(&seg, &mut self.scratch, &mut out);
                seg.decoded = Some(r.map(|crc| (out, crc))); // seg.credit is false: emit will not recycle it
            }
            seg.level = level;
            match seg.kind {
                Kind::Head => unreachable!("only the first segment is a Head"),
                Kind::Block => {
                    let crc = self.block(seg, sink)?;
                    combined = combined.rotate_left(1) ^ crc;
                }
                Kind::Eos => {
                    let at = seg.start_bit;
                    if !self.fill_glue(&mut seg, FOOTER_BITS)? {
                        return Err(self.corrupt(at, "truncated: the file ends inside an end-of-stream footer"));
                    }
                    let stored = seg.get_bits(48, 32) as u32;
                    if stored != combined {
                        return Err(self.corrupt(
                            at,
                            format!("stream CRC mismatch: footer says {stored:08x}, blocks give {combined:08x}"),
                        ));
                    }
                    let next_stream = (at + FOOTER_BITS).div_ceil(8);
                    self.progress.compressed_bytes_done.store(next_stream.min(self.file_len), Ordering::Relaxed);
                    match self.stream_header(&mut seg, next_stream)? {
                        None => {
                            self.progress.compressed_bytes_done.store(self.file_len, Ordering::Relaxed);
                            return Ok(self.total);
                        }
                        Some(l) => {
                            level = l;
                            stream_start = next_stream;
                            combined = 0;
                        }
                    }
                }
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn decode_bzip2(
    path: &Path,
    file: &mut File,
    file_len: u64,
    threads: usize,
    cancel: &AtomicBool,
    progress: &DecodeProgress,
    sink: &mut dyn FnMut(&[u8]) -> Result<()>,
    fake: &[u64],
    sha1: Option<Sha1>,
) -> Result<(u64, Option<String>)> {
    // Blocks are emitted in file order, so one slow block stalls the workers once the credits behind it run out;
    // multistream files also spend a credit on every stream's footer. On the 250 MB multistream bench corpus,
    // `bz2cat FILE 2 | sha256sum` took 1.96 s wall with 2 per thread, 1.60 s with 4 and 1.66 s with 8 (2026-12-07,
    // interleaved rounds); 4 per thread costs ~2 MB more peak RSS per thread (21.5 -> 25.4 MB at 2 threads).
    let in_flight = 4 * threads;
    let (job_tx, job_rx) = bounded::<Job>(threads);
    let (res_tx, res_rx) = bounded::<Job>(in_flight);
    let (credit_tx, credit_rx) = bounded::<Vec<u8>>(in_flight);
    for _ in 0..in_flight {
        credit_tx.send(Vec::new()).expect("fresh channel");
    }
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let reader = Reader { path, file_len, jobs: job_tx, credits: credit_rx, stop: &stop, cancel, seq: 0, sha1 };
        let stop_ref = &stop;
        let reading = scope.spawn(move || reader.run(file, fake));
        for _ in 0..threads {
            let (jobs, results) = (job_rx.clone(), res_tx.clone());
            scope.spawn(move || worker(jobs, results, stop_ref, cancel));
        }
        drop((job_rx, res_tx));
        let mut orderer = Orderer {
            path,
            file_len,
            results: res_rx,
            credits: credit_tx,
            cancel,
            progress,
            waiting: BTreeMap::new(),
            next_seq: 0,
            scratch: BlockScratch::default(),
            total: 0,
        };
        let r = orderer.run(sink);
        // Whatever happened, release the other threads: they see `stop`, or a closed channel, within one block.
        stop.store(true, Ordering::Relaxed);
        drop(orderer);
        let n = r?;
        // Success means the orderer took the reader's Eof, sent after the last byte was read and hashed.
        let hasher = reading.join().map_err(|_| Error::Invalid("bz2 reader thread panicked".into()))?;
        Ok((n, hasher.map(sha1_hex)))
    })
}

#[cfg(test)]
#[path = "bz2_tests.rs"]
mod tests;
