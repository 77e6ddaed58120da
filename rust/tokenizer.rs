//! GPT-2 BPE (tiktoken's `r50k_base`): a fast encoder that gives exactly tiktoken's tokens.
//!
//! The reference is tiktoken-rs's `CoreBPE` (tiktoken's own Rust core, vendored): `encode_ordinary` splits the text
//! with a fancy-regex pre-tokenizer, then byte-pair-merges each piece. Two things make it slow on Wikipedia text:
//! the backtracking regex VM, and re-merging the same words again and again. The fast path here replaces both:
//!
//! 1. [`split_pieces`]: a hand-written pre-tokenizer that yields the same pieces as tiktoken-rs's r50k pattern
//!    `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
//!    (the possessive rewrite of GPT-2's `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`;
//!    both split every text the same way). The character classes come from regex-syntax, the crate that fancy-regex
//!    hands `\s`, `\p{L}` and `\p{N}` to, so both sides use one set of Unicode tables (`char::is_alphabetic` and
//!    `char::is_whitespace` are *different* sets: Alphabetic includes marks and Nl, White_Space vs. \s agree today but
//!    we do not depend on it). ASCII is classified from a 128-entry table; other code points from a two-level table.
//! 2. `byte_pair_merge`: tiktoken's `_byte_pair_merge` (pieces < 100 bytes) and `_byte_pair_merge_large` (a heap,
//!    for longer pieces), with the same tie-breaking (lowest rank, then leftmost), so the merges are the same.
//! 3. Per-[`Encoder`] caches: a small direct-mapped "hot" table (piece → tokens, 8192 slots, L2-sized) answers the
//!    most frequent pieces; on a miss, one probe of the piece table (every short piece seen so far; bounded: reset
//!    at [`CACHE_MAX_ENTRIES`]), prefetched one piece ahead; else the shared ranks (a piece that is one token, as
//!    tiktoken checks first), else a merge.
//!
//! Identity with the reference is checked by the tests at the bottom (real articles, hand-picked edge cases, every
//! code point in several contexts, and 20k random strings of tricky characters). Speed: see examples/tokbench.rs.
//!
//! Performance notes (2-core shared dev machine, the sample's raw wikitext repeated to 30 MB, `cargo run --release
//! --example tokbench -- --fast-only`, perf): with `Vec<u8>` keys, ~20% of the time was memcmp in hash probes, so short
//! pieces use packed u128 keys (BytesMap): 51 → 70 MB per CPU-second. The remaining time was cache misses on the
//! 50k-entry tables (two loads: ~50% of the encoder on the key compare), hence the hot table: → ~80 MB/cpu-s. Its size
//! (2^11..2^16 slots) made no difference we could measure above the noise of a shared machine; 2^13 stays in L2.
//! tiktoken-rs's reference runs ~9-10 MB/cpu-s on the same text (most of it in fancy-regex).
//! 2026-12-07: ASCII letters skipped 16 at a time (`ascii_letters_end`) and each piece's key from one 16-byte load
//! (no branch on its length): `tokbench --mb 300 --threads 1 --fast-only`, 3 interleaved rounds, 122-142 -> 147-152
//! MB/cpu-s. Doubling the hot table (2^14, 2^15 slots) halved its misses but measured no faster; 2^16 was slower.
//! 2026-12-07, later: 16% of pieces miss the hot table on that input, and each miss probed the ranks map and then
//! the cache map, two likely cache misses (~60% of the miss path in perf annotate). Now one table holds every short
//! piece seen (one token or merged), our own so the next piece's slot is prefetched while this one is encoded:
//! `tokbench --mb 300 --threads 1 --fast-only` 135-150 -> 168-175 MB/cpu-s (3 interleaved rounds); `wikigpt add -p 2`
//! on the 250 MB bench corpus, 8 interleaved rounds: median CPU 4.68 -> 4.56 s (-2.7%; the tokenizer is ~1/6 of
//! it), shards identical. The price: a piece's first sighting costs a probe and an insert more, so a fresh encoder
//! on unseen text (tokbench's "cold" line, `--mb 3`) is ~7% slower (80-82 -> 73-77 MB/s); an encoder lives for a
//! whole dump file in `add`. Tried: seeding each table with the 50k one-token pieces (a 3 MB copy per encoder):
//! 148-156 warm, no better cold; prefetching 4 pieces ahead (batches of 32): same as 1 ahead.

use std::collections::BinaryHeap;
use std::sync::{Mutex, OnceLock};

use rustc_hash::FxHashMap;

use crate::error::{Error, Result};

/// `<|endoftext|>`: put before every document (as llm.c does).
pub const EOT: u32 = 50256;
/// Token ids are `0..N_VOCAB` (50256 byte-level BPE tokens + EOT).
pub const N_VOCAB: usize = 50257;
/// The per-Encoder cache is cleared when it holds this many pieces (~100 MB at most; Wikipedia's hot set is far
/// smaller, so a clear is rare and only costs re-merging).
pub const CACHE_MAX_ENTRIES: usize = 1 << 20;
/// Pieces longer than this are merged every time instead of cached: they rarely repeat and would bloat the cache.
const CACHE_MAX_PIECE_BYTES: usize = 128;
/// The per-Encoder direct-mapped "hot" table in front of the hash maps: 2^13 entries × 24 bytes = 192 KB, which
/// stays in a core's L2, whereas a probe into the 50k-entry ranks map or the cache mostly misses it.
const HOT_BITS: u32 = 13;
/// tiktoken switches from the O(n·m) vector merge to the heap merge at this piece length; we switch at the same place.
const LARGE_PIECE_BYTES: usize = 100;

// ---------------------------------------------------------------------------------------------------------------
// Shared ranks
// ---------------------------------------------------------------------------------------------------------------

/// The GPT-2 (r50k_base) vocabulary, built once and shared read-only by every thread.
pub struct Gpt2Core {
    /// token bytes → rank (= token id), the 50256 mergeable tokens (EOT is not mergeable).
    ranks: BytesMap<u32>,
    /// token id → bytes, for all N_VOCAB ids (EOT decodes to the literal `<|endoftext|>`, as tiktoken's decode does).
    decoder: Vec<Vec<u8>>,
    /// tiktoken-rs's r50k_base: the reference encoder.
    reference: &'static tiktoken_rs::CoreBPE,
    classes: CharClasses,
}

/// The GPT-2 (r50k_base) ranks, shared read-only by every thread (built once, on first use).
pub fn shared() -> &'static Gpt2Core {
    static CORE: OnceLock<Gpt2Core> = OnceLock::new();
    CORE.get_or_init(Gpt2Core::build)
}

impl Gpt2Core {
    fn build() -> Self {
        let reference = tiktoken_rs::r50k_base_singleton();
        // tiktoken-rs keeps its rank table private; decoding each id one at a time reads it back exactly.
        let mut decoder = Vec::with_capacity(N_VOCAB);
        let mut ranks = BytesMap::default();
        for id in 0..N_VOCAB as u32 {
            let bytes = reference.decode_bytes(&[id]).expect("r50k_base defines every id below 50257");
            if id != EOT {
                let prev = ranks.insert(&bytes, id);
                assert!(prev.is_none(), "r50k_base: duplicate token bytes for id {id}");
            }
            decoder.push(bytes);
        }
        Gpt2Core { ranks, decoder, reference, classes: CharClasses::build() }
    }

    /// All (token bytes, rank) pairs, sorted by rank: the `mergeable_ranks` of a `tiktoken.Encoding` (EOT excluded;
    /// it is a special token, 50256).
    pub fn ranks(&self) -> Vec<(Vec<u8>, u32)> {
        (0..EOT).map(|r| (self.decoder[r as usize].clone(), r)).collect()
    }

    /// tiktoken-rs's `encode_ordinary`: the exact reference.
    pub fn encode_ordinary_reference(&self, text: &str) -> Vec<u32> {
        self.reference.encode_ordinary(text)
    }

    /// The bytes of `tokens` (EOT gives `<|endoftext|>`). Panics on an id ≥ N_VOCAB; see [`Self::try_decode_bytes`].
    pub fn decode_bytes(&self, tokens: &[u32]) -> Vec<u8> {
        self.try_decode_bytes(tokens).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Self::decode_bytes`], but an id outside the vocabulary is an `Error::Invalid` naming it.
    pub fn try_decode_bytes(&self, tokens: &[u32]) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(tokens.len() * 4);
        for (i, &t) in tokens.iter().enumerate() {
            let bytes = self.decoder.get(t as usize).ok_or_else(|| {
                Error::Invalid(format!("token {t} at position {i} is not a GPT-2 token id (0..{N_VOCAB})"))
            })?;
            out.extend_from_slice(bytes);
        }
        Ok(out)
    }

    /// The rank of a byte string that is a whole token.
    #[inline]
    fn rank(&self, bytes: &[u8]) -> Option<u32> {
        self.ranks.get(bytes)
    }
}

/// A byte-string → value map tuned for BPE pieces. Almost every piece and token is ≤ 15 bytes: those are packed with
/// their length into one u128 key, so a lookup is two multiplies to hash and an integer compare (a `Vec<u8>` key costs
/// a call to memcmp per probe, which profiled at ~20% of the encoder). Longer ones go to an ordinary map.
struct BytesMap<V> {
    short: FxHashMap<u128, V>,
    long: FxHashMap<Box<[u8]>, V>,
}

impl<V> Default for BytesMap<V> {
    fn default() -> Self {
        BytesMap { short: FxHashMap::default(), long: FxHashMap::default() }
    }
}

impl<V: Copy> BytesMap<V> {
    #[inline(always)]
    fn get(&self, key: &[u8]) -> Option<V> {
        match short_key(key) {
            Some(k) => self.short.get(&k).copied(),
            None => self.long.get(key).copied(),
        }
    }

    fn insert(&mut self, key: &[u8], v: V) -> Option<V> {
        match short_key(key) {
            Some(k) => self.short.insert(k, v),
            None => self.long.insert(key.into(), v),
        }
    }
}

/// `b` (≤ 15 bytes) as a little-endian integer with its length in the top byte: distinct strings, distinct keys.
#[inline(always)]
fn short_key(b: &[u8]) -> Option<u128> {
    let n = b.len();
    if n > 15 {
        return None;
    }
    let len = (n as u128) << 120;
    Some(if n <= 8 {
        load_le(b) as u128 | len
    } else {
        let lo = u64::from_le_bytes(b[..8].try_into().unwrap());
        lo as u128 | (load_le(&b[8..]) as u128) << 64 | len
    })
}

/// `short_key(&s[i..j])`, from one 16-byte load where `s` has 16 bytes from `i` (`short_key`'s loads depend on the
/// piece's length, a branch that mispredicts from word to word in the encoder's loop).
#[inline(always)]
fn short_key_in(s: &[u8], i: usize, j: usize) -> Option<u128> {
    let n = j - i;
    let key = match s.get(i..i + 16) {
        Some(window) if (1..=15).contains(&n) => {
            let bytes = u128::from_le_bytes(window.try_into().expect("16 bytes"));
            Some(bytes & (u128::MAX >> (128 - 8 * n)) | (n as u128) << 120)
        }
        _ => short_key(&s[i..j]),
    };
    debug_assert_eq!(key, short_key(&s[i..j]));
    key
}

/// The ≤ 8 bytes of `b` as a zero-extended little-endian u64, with fixed-size (possibly overlapping) loads instead
/// of a variable-length copy.
#[inline(always)]
fn load_le(b: &[u8]) -> u64 {
    let n = b.len();
    debug_assert!(n <= 8);
    match n {
        0 => 0,
        // n = 1: b0; n = 2: b0 | b1<<8 (b1 twice); n = 3: b0 | b1<<8 | b2<<16.
        1..=3 => b[0] as u64 | (b[n / 2] as u64) << (8 * (n / 2)) | (b[n - 1] as u64) << (8 * (n - 1)),
        // The two 4-byte loads overlap on equal bytes, so OR-ing them is exact.
        _ => {
            let lo = u32::from_le_bytes(b[..4].try_into().unwrap()) as u64;
            let hi = u32::from_le_bytes(b[n - 4..].try_into().unwrap()) as u64;
            lo | hi << (8 * (n - 4))
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Character classes
// ---------------------------------------------------------------------------------------------------------------

/// \p{L}
const LETTER: u8 = 0;
/// \p{N}
const NUMBER: u8 = 1;
/// \s
const SPACE: u8 = 2;
/// [^\s\p{L}\p{N}]
const OTHER: u8 = 3;

/// Every code point's class, from regex-syntax's tables: a 128-entry table for ASCII, and a two-level table (256
/// code points per block, identical blocks shared) for the rest: ~30 KB in all, built in a few ms.
struct CharClasses {
    ascii: [u8; 128],
    block_of: Vec<u16>,
    blocks: Vec<[u8; 256]>,
}

impl CharClasses {
    fn build() -> Self {
        let mut flat = vec![OTHER; 0x11_0000];
        // Marked in this order, and checked: the three classes must be disjoint for one class per code point to
        // describe the regex (they are: \s is Z* plus controls, L and N are other general categories).
        for (pattern, class) in [(r"\p{L}", LETTER), (r"\p{N}", NUMBER), (r"\s", SPACE)] {
            for (lo, hi) in unicode_class_ranges(pattern) {
                for cp in lo..=hi {
                    assert!(flat[cp as usize] == OTHER, "{pattern} overlaps another class at U+{cp:04X}");
                    flat[cp as usize] = class;
                }
            }
        }
        let mut ascii = [OTHER; 128];
        ascii.copy_from_slice(&flat[..128]);
        let mut seen: FxHashMap<[u8; 256], u16> = FxHashMap::default();
        let mut blocks = Vec::new();
        let mut block_of = Vec::with_capacity(0x11_0000 / 256);
        for chunk in flat.chunks_exact(256) {
            let block: [u8; 256] = chunk.try_into().unwrap();
            let id = *seen.entry(block).or_insert_with(|| {
                blocks.push(block);
                (blocks.len() - 1) as u16
            });
            block_of.push(id);
        }
        CharClasses { ascii, block_of, blocks }
    }

    #[inline(always)]
    fn of(&self, cp: u32) -> u8 {
        self.blocks[self.block_of[(cp >> 8) as usize] as usize][(cp & 0xFF) as usize]
    }

    /// The class and UTF-8 length of the character starting at `s[i]` (`s` is valid UTF-8, `i` a char boundary).
    #[inline(always)]
    fn at(&self, s: &[u8], i: usize) -> (u8, usize) {
        let b0 = s[i];
        if b0 < 0x80 {
            return (self.ascii[b0 as usize], 1);
        }
        let (cp, len) = if b0 < 0xE0 {
            (((b0 as u32 & 0x1F) << 6) | (s[i + 1] as u32 & 0x3F), 2)
        } else if b0 < 0xF0 {
            (((b0 as u32 & 0x0F) << 12) | ((s[i + 1] as u32 & 0x3F) << 6) | (s[i + 2] as u32 & 0x3F), 3)
        } else {
            (
                ((b0 as u32 & 0x07) << 18)
                    | ((s[i + 1] as u32 & 0x3F) << 12)
                    | ((s[i + 2] as u32 & 0x3F) << 6)
                    | (s[i + 3] as u32 & 0x3F),
                4,
            )
        };
        (self.of(cp), len)
    }

    /// The end of the run of `class` characters starting at `i`.
    #[inline(always)]
    fn run_end(&self, s: &[u8], mut i: usize, class: u8) -> usize {
        #[cfg(target_arch = "x86_64")]
        if class == LETTER {
            // Words are most pieces: skip their ASCII letters 16 at a time; a non-ASCII letter goes on below.
            i = ascii_letters_end(s, i);
        }
        while i < s.len() {
            let b = s[i];
            if b < 0x80 {
                if self.ascii[b as usize] != class {
                    break;
                }
                i += 1;
            } else {
                let (c, len) = self.at(s, i);
                if c != class {
                    break;
                }
                i += len;
            }
        }
        i
    }
}

/// The first position at or after `i` that is not an ASCII letter (`[A-Za-z]`, the ASCII part of \p{L}), found 16
/// bytes at a time (SSE2, the x86_64 baseline); stops early, at most 15 bytes short, where fewer than 16 bytes are
/// left. In the scalar loop each letter cost a table lookup and each word's end a mispredicted branch.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn ascii_letters_end(s: &[u8], mut i: usize) -> usize {
    use std::arch::x86_64::*;
    // SAFETY: SSE2 is part of x86_64; each load reads s[i..i + 16] with i + 16 <= s.len().
    unsafe {
        while i + 16 <= s.len() {
            let v = _mm_loadu_si128(s.as_ptr().add(i) as *const __m128i);
            // Letters are the bytes that OR 0x20 maps into 'a'..='z': (b | 0x20) - 'a' < 26, compared unsigned by
            // flipping the sign bit of both sides (bytes >= 0x80 land at 63..158, never below 26).
            let t = _mm_sub_epi8(_mm_or_si128(v, _mm_set1_epi8(0x20)), _mm_set1_epi8(b'a' as i8));
            let letter = _mm_cmplt_epi8(_mm_xor_si128(t, _mm_set1_epi8(i8::MIN)), _mm_set1_epi8(26 + i8::MIN));
            let mask = _mm_movemask_epi8(letter) as u32;
            if mask != 0xFFFF {
                return i + (!mask).trailing_zeros() as usize;
            }
            i += 16;
        }
    }
    i
}

/// The code point ranges of a Unicode class, exactly as the regex crates (and so fancy-regex) see it.
fn unicode_class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    use regex_syntax::hir::{Class, HirKind};
    let hir = regex_syntax::parse(pattern).expect("a valid Unicode class");
    match hir.kind() {
        HirKind::Class(Class::Unicode(cls)) => {
            cls.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        other => panic!("{pattern} did not parse to a Unicode class: {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Pre-tokenizer
// ---------------------------------------------------------------------------------------------------------------

/// The end of the piece that starts at `i` (< s.len()): the same match the r50k regex finds at `i`, taking the
/// alternatives in the regex's order (leftmost-first).
#[inline(always)]
fn piece_end(cls: &CharClasses, s: &[u8], i: usize) -> usize {
    let n = s.len();
    let b = s[i];
    // '(?:[sdmt]|ll|ve|re): case-sensitive, ASCII only.
    if b == b'\'' && i + 1 < n {
        match s[i + 1] {
            b's' | b'd' | b'm' | b't' => return i + 2,
            b'l' if i + 2 < n && s[i + 2] == b'l' => return i + 3,
            b'v' | b'r' if i + 2 < n && s[i + 2] == b'e' => return i + 3,
            _ => {}
        }
    }
    // ` ?\p{L}++ | ?\p{N}++ | ?[^\s\p{L}\p{N}]++`, with the optional space present: a space followed by any
    // non-space joins the run of that character's class (every non-space is in exactly one of the three).
    if b == b' ' && i + 1 < n {
        let (c1, len1) = cls.at(s, i + 1);
        if c1 != SPACE {
            return cls.run_end(s, i + 1 + len1, c1);
        }
    }
    let (c0, len0) = cls.at(s, i);
    if c0 != SPACE {
        return cls.run_end(s, i + len0, c0);
    }
    // Whitespace. `\s++$`: a run reaching the end of the text is one piece. `\s+(?!\S)`: a run of k ≥ 2 chars
    // followed by a non-space backtracks to its first k-1 chars (the last one may then join the next word as its
    // leading space). `\s`: a lone whitespace char before a non-space is a piece by itself.
    let j = cls.run_end(s, i + len0, SPACE);
    if j == n || j == i + len0 {
        return j;
    }
    let mut last = j - 1;
    while s[last] & 0xC0 == 0x80 {
        last -= 1;
    }
    last
}

/// The pieces of `text` as the r50k pre-tokenizer regex splits it (for tests and tools; the encoder inlines this).
pub fn split_pieces(text: &str) -> Vec<&str> {
    let cls = &shared().classes;
    let s = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < s.len() {
        let j = piece_end(cls, s, i);
        out.push(&text[i..j]);
        i = j;
    }
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Byte-pair merge
// ---------------------------------------------------------------------------------------------------------------

/// Scratch space reused across pieces (no allocation per merge).
#[derive(Default)]
struct MergeScratch {
    parts: Vec<(usize, u32)>,
    state: Vec<LargeState>,
    heap: BinaryHeap<LargeMerge>,
}

/// BPE-merge `piece` (≥ 2 bytes, not itself a token) and append its tokens to `out`. Same algorithm and tie-breaks as
/// tiktoken's `byte_pair_encode`.
fn byte_pair_merge(core: &Gpt2Core, piece: &[u8], scratch: &mut MergeScratch, out: &mut Vec<u32>) {
    if piece.len() < LARGE_PIECE_BYTES {
        merge_small(core, piece, &mut scratch.parts, out)
    } else {
        merge_large(core, piece, &mut scratch.state, &mut scratch.heap, out)
    }
}

/// tiktoken's `_byte_pair_merge`: `parts[k] = (start, rank of merging part k with part k+1)`; repeatedly merge the
/// lowest-ranked pair (leftmost on ties). O(n·m), fast for the short pieces that are almost all of them.
fn merge_small(core: &Gpt2Core, piece: &[u8], parts: &mut Vec<(usize, u32)>, out: &mut Vec<u32>) {
    parts.clear();
    let mut min_rank = (u32::MAX, usize::MAX);
    for i in 0..piece.len() - 1 {
        let rank = core.rank(&piece[i..i + 2]).unwrap_or(u32::MAX);
        if rank < min_rank.0 {
            min_rank = (rank, i);
        }
        parts.push((i, rank));
    }
    parts.push((piece.len() - 1, u32::MAX));
    parts.push((piece.len(), u32::MAX));

    // The rank of merging part i with part i+1, read before part i+1 is removed (hence i+3).
    let get_rank = |parts: &Vec<(usize, u32)>, i: usize| -> u32 {
        if i + 3 < parts.len() {
            core.rank(&piece[parts[i].0..parts[i + 3].0]).unwrap_or(u32::MAX)
        } else {
            u32::MAX
        }
    };
    while min_rank.0 != u32::MAX {
        let i = min_rank.1;
        if i > 0 {
            parts[i - 1].1 = get_rank(parts, i - 1);
        }
        parts[i].1 = get_rank(parts, i);
        parts.remove(i + 1);
        min_rank = (u32::MAX, usize::MAX);
        for (k, &(_, rank)) in parts[..parts.len() - 1].iter().enumerate() {
            if rank < min_rank.0 {
                min_rank = (rank, k);
            }
        }
    }
    for w in parts.windows(2) {
        out.push(core.rank(&piece[w[0].0..w[1].0]).expect("every BPE part is a token"));
    }
}

#[derive(Eq, PartialEq, Clone, Copy)]
struct LargeMerge {
    start: usize,
    rank: u32,
}

impl Ord for LargeMerge {
    // BinaryHeap is a max-heap: reverse so the lowest rank, then the leftmost start, comes out first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.rank.cmp(&self.rank).then_with(|| other.start.cmp(&self.start))
    }
}

impl PartialOrd for LargeMerge {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

struct LargeState {
    prev: usize,
    end: usize,
    next_end: usize,
    next_rank: u32,
    cur_rank: u32,
}

/// tiktoken's `_byte_pair_merge_large`: a linked list of parts and a heap of candidate merges with lazy
/// invalidation; O(n log n) so a megabyte-long run of letters stays cheap.
fn merge_large(
    core: &Gpt2Core,
    piece: &[u8],
    state: &mut Vec<LargeState>,
    heap: &mut BinaryHeap<LargeMerge>,
    out: &mut Vec<u32>,
) {
    state.clear();
    heap.clear();
    state.push(LargeState { prev: usize::MAX, end: 1, next_end: 2, next_rank: u32::MAX, cur_rank: u32::MAX });
    for i in 0..piece.len() - 1 {
        if let Some(rank) = core.rank(&piece[i..i + 2]) {
            heap.push(LargeMerge { start: i, rank });
            state[i].next_rank = rank;
        }
        state.push(LargeState { prev: i, end: i + 2, next_end: i + 3, next_rank: u32::MAX, cur_rank: u32::MAX });
    }

    let potential_merge =
        |state: &mut Vec<LargeState>, heap: &mut BinaryHeap<LargeMerge>, start: usize, next_end: usize| {
            state[start].next_end = next_end;
            state[start].next_rank = u32::MAX;
            if next_end <= piece.len() {
                if let Some(rank) = core.rank(&piece[start..next_end]) {
                    heap.push(LargeMerge { start, rank });
                    state[start].next_rank = rank;
                }
            }
        };

    while let Some(left) = heap.pop() {
        if left.rank == u32::MAX {
            break;
        }
        if left.rank != state[left.start].next_rank {
            continue; // invalidated by an earlier merge
        }
        let left_start = left.start;
        let right_start = state[left_start].end;
        let right_end = state[left_start].next_end;
        let right_next_end = state[right_start].next_end;

        state[left_start].cur_rank = state[left_start].next_rank;
        state[left_start].end = right_end;
        potential_merge(state, heap, left_start, right_next_end);
        if right_end < state.len() {
            state[right_end].prev = left_start;
        }
        if left_start > 0 {
            let prev_start = state[left_start].prev;
            potential_merge(state, heap, prev_start, right_end);
        }
        state[right_start].next_rank = u32::MAX;
    }

    let mut i = 0;
    while i < state.len() {
        let t = if state[i].cur_rank != u32::MAX {
            state[i].cur_rank
        } else {
            core.rank(&piece[i..state[i].end]).expect("every BPE part is a token")
        };
        out.push(t);
        i = state[i].end;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------------------------------------------

/// One slot of the hot table and of a [`PieceTable`]: a short piece's key and its tokens, either one token
/// (`len == ONE_TOKEN`, the id in `a`) or `len` tokens at `arena[a..]`. A real key has the piece's length (≥ 1) in
/// its top byte, so `key_hi == 0` marks an empty slot.
#[derive(Clone, Copy, Default)]
struct HotEntry {
    key_lo: u64,
    key_hi: u64,
    a: u32,
    len: u32,
}
const ONE_TOKEN: u32 = u32::MAX;

/// A short piece's key (see `short_key`) as the two words a [`HotEntry`] stores, with its hash: made once per piece,
/// then the hot table, the prefetch and the piece table all index by the same hash instead of each computing it.
#[derive(Clone, Copy)]
struct ShortKey {
    lo: u64,
    hi: u64,
    /// The hot table and the piece table take their index from its top bits.
    hash: u64,
}

impl ShortKey {
    #[inline(always)]
    fn new(key: u128) -> Self {
        Self::from_halves(key as u64, (key >> 64) as u64)
    }

    #[inline(always)]
    fn from_halves(lo: u64, hi: u64) -> Self {
        ShortKey { lo, hi, hash: (lo ^ hi.rotate_left(29)).wrapping_mul(0x9E37_79B9_7F4A_7C15) }
    }

    /// Whether `e` holds this key.
    #[inline(always)]
    fn is_in(&self, e: &HotEntry) -> bool {
        e.key_lo == self.lo && e.key_hi == self.hi
    }
}

/// Short pieces (≤ 15 bytes) → tokens, open addressing with linear probing over [`HotEntry`] slots. One table holds
/// every piece seen so far, one token or merged, so a hot-table miss on a seen piece costs one probe, not a probe of
/// the ranks and then one of the merge cache (each a likely cache miss: they were ~60% of the miss path). It is ours
/// rather than a `HashMap` so that the encoder can prefetch a slot one piece ahead.
#[derive(Clone)]
struct PieceTable {
    slots: Box<[HotEntry]>,
    /// 64 - log2(slots.len()): the index is the hash's top bits.
    shift: u32,
    len: usize,
}

impl PieceTable {
    fn with_slots(n: usize) -> Self {
        assert!(n.is_power_of_two() && n >= 2);
        PieceTable { slots: vec![HotEntry::default(); n].into_boxed_slice(), shift: 64 - n.trailing_zeros(), len: 0 }
    }

    /// Empty, keeping its size.
    fn clear(&mut self) {
        self.slots.fill(HotEntry::default());
        self.len = 0;
    }

    #[inline(always)]
    fn home(&self, key: &ShortKey) -> usize {
        (key.hash >> self.shift) as usize
    }

    /// Start loading the slot where `key`'s probe begins (a hint: no effect on results).
    #[inline(always)]
    fn prefetch(&self, key: &ShortKey) {
        #[cfg(target_arch = "x86_64")]
        // SAFETY: `home` is below slots.len(); a prefetch never faults.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.slots.as_ptr().add(self.home(key)) as *const i8);
        }
    }

    #[inline(always)]
    fn get(&self, key: &ShortKey) -> Option<(u32, u32)> {
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        loop {
            let e = &self.slots[i];
            if key.is_in(e) {
                return Some((e.a, e.len));
            }
            if e.key_hi == 0 {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    /// Add a key that is not in the table; doubles the table past 3/4 full (probes stay short).
    fn insert(&mut self, key: &ShortKey, a: u32, len: u32) {
        if (self.len + 1) * 4 > self.slots.len() * 3 {
            let mut bigger = PieceTable::with_slots(self.slots.len() * 2);
            for e in self.slots.iter().filter(|e| e.key_hi != 0) {
                bigger.insert(&ShortKey::from_halves(e.key_lo, e.key_hi), e.a, e.len);
            }
            *self = bigger;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.home(key);
        while self.slots[i].key_hi != 0 {
            debug_assert!(!key.is_in(&self.slots[i]), "key inserted twice");
            i = (i + 1) & mask;
        }
        self.slots[i] = HotEntry { key_lo: key.lo, key_hi: key.hi, a, len };
        self.len += 1;
    }
}

/// The fast encoder: one per worker thread (it owns a cache of piece → tokens). Cheap to create.
pub struct Encoder {
    core: &'static Gpt2Core,
    /// Direct-mapped, indexed by a hash of the short key: the most frequent pieces are answered from here.
    hot: Box<[HotEntry]>,
    /// Short pieces seen so far → their tokens (one token, or merged ones in `arena`).
    pieces: PieceTable,
    /// Longer merged pieces (16..=CACHE_MAX_PIECE_BYTES bytes) → (start, len) in `arena`; rare.
    long_pieces: FxHashMap<Box<[u8]>, (u32, u32)>,
    arena: Vec<u32>,
    /// CACHE_MAX_ENTRIES, except in tests that make it tiny to exercise clearing.
    cache_max: usize,
    scratch: MergeScratch,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Self {
        Encoder {
            core: shared(),
            hot: vec![HotEntry::default(); 1 << HOT_BITS].into_boxed_slice(),
            pieces: PieceTable::with_slots(1 << 12),
            long_pieces: FxHashMap::default(),
            arena: Vec::new(),
            cache_max: CACHE_MAX_ENTRIES,
            scratch: MergeScratch::default(),
        }
    }

    /// Append the tokens of `text` to `out`; equal to `Gpt2Core::encode_ordinary_reference(text)` for every input
    /// (a literal `<|endoftext|>` is ordinary text).
    pub fn encode_ordinary(&mut self, text: &str, out: &mut Vec<u32>) {
        let cls = &self.core.classes;
        let s = text.as_bytes();
        if s.is_empty() {
            return;
        }
        out.reserve(s.len() / 4);
        // One piece ahead: where the next piece will miss the hot table, its piece-table slot is prefetched while
        // this one is encoded (a miss there is a trip to L3 or memory).
        let (mut i, mut j) = (0, piece_end(cls, s, 0));
        let mut key = short_key_in(s, 0, j).map(ShortKey::new);
        loop {
            let (next_j, next_key) = if j < s.len() {
                let k = piece_end(cls, s, j);
                (k, short_key_in(s, j, k).map(ShortKey::new))
            } else {
                (j, None)
            };
            if let Some(k) = &next_key {
                if !k.is_in(&self.hot[Self::hot_slot(k)]) {
                    self.pieces.prefetch(k);
                }
            }
            self.encode_piece(&s[i..j], key, out);
            if j == s.len() {
                return;
            }
            (i, j, key) = (j, next_j, next_key);
        }
    }

    #[inline(always)]
    fn hot_slot(key: &ShortKey) -> usize {
        (key.hash >> (64 - HOT_BITS)) as usize
    }

    /// One piece, `key` its `short_key` (None: 16 bytes or longer).
    #[inline(always)]
    fn encode_piece(&mut self, piece: &[u8], key: Option<ShortKey>, out: &mut Vec<u32>) {
        let Some(key) = key else {
            self.encode_long_piece(piece, out);
            return;
        };
        let slot = Self::hot_slot(&key);
        let e = self.hot[slot];
        if key.is_in(&e) {
            self.emit(e.a, e.len, out);
            return;
        }
        let (a, len) = self.encode_short_piece_slow(piece, &key, out);
        self.hot[slot] = HotEntry { key_lo: key.lo, key_hi: key.hi, a, len };
    }

    /// Push a table value's tokens: one token, or `len` tokens from `arena[a..]`.
    #[inline(always)]
    fn emit(&self, a: u32, len: u32, out: &mut Vec<u32>) {
        if len == ONE_TOKEN {
            out.push(a);
        } else {
            out.extend_from_slice(&self.arena[a as usize..(a + len) as usize]);
        }
    }

    /// A short piece that missed the hot table: the piece table, else the ranks, else a merge (either remembered
    /// in the piece table). Returns its value for the hot table.
    #[inline(never)]
    fn encode_short_piece_slow(&mut self, piece: &[u8], key: &ShortKey, out: &mut Vec<u32>) -> (u32, u32) {
        if let Some((a, len)) = self.pieces.get(key) {
            self.emit(a, len, out);
            return (a, len);
        }
        self.make_room();
        let value = match self.core.rank(piece) {
            Some(t) => {
                out.push(t);
                (t, ONE_TOKEN)
            }
            None => self.merge_into_arena(piece, out),
        };
        self.pieces.insert(key, value.0, value.1);
        value
    }

    /// A piece of ≥ 16 bytes: the ranks, the long-piece cache, else a merge (remembered if ≤ CACHE_MAX_PIECE_BYTES).
    #[inline(never)]
    fn encode_long_piece(&mut self, piece: &[u8], out: &mut Vec<u32>) {
        if let Some(t) = self.core.rank(piece) {
            out.push(t);
            return;
        }
        if let Some(&(start, len)) = self.long_pieces.get(piece) {
            self.emit(start, len, out);
            return;
        }
        if piece.len() > CACHE_MAX_PIECE_BYTES {
            // Rarely repeats, and would bloat the cache: merged every time.
            byte_pair_merge(self.core, piece, &mut self.scratch, out);
            return;
        }
        self.make_room();
        let value = self.merge_into_arena(piece, out);
        self.long_pieces.insert(piece.into(), value);
    }

    /// Before remembering a piece: past `cache_max` pieces (or a full arena), forget everything (the hot table too:
    /// it points into the arena).
    fn make_room(&mut self) {
        if self.cache_len() >= self.cache_max || self.arena.len() > u32::MAX as usize / 2 {
            self.pieces.clear();
            self.long_pieces.clear();
            self.arena.clear();
            self.hot.fill(HotEntry::default());
        }
    }

    /// Merge `piece` (not a token) onto `out` and copy its tokens to the arena; returns (arena start, len).
    fn merge_into_arena(&mut self, piece: &[u8], out: &mut Vec<u32>) -> (u32, u32) {
        let before = out.len();
        byte_pair_merge(self.core, piece, &mut self.scratch, out);
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(&out[before..]);
        (start, (out.len() - before) as u32)
    }

    /// Number of pieces remembered (for tests and tuning).
    pub fn cache_len(&self) -> usize {
        self.pieces.len + self.long_pieces.len()
    }
}

/// Encode many texts on `threads` threads (0 = all cores), order preserved; each thread has its own [`Encoder`] and
/// takes small chunks of texts as it finishes the last, so uneven article sizes still balance.
pub fn encode_batch(texts: &[&str], threads: usize) -> Vec<Vec<u32>> {
    let mut results: Vec<Vec<u32>> = vec![Vec::new(); texts.len()];
    let threads = if threads == 0 { std::thread::available_parallelism().map_or(1, |n| n.get()) } else { threads }
        .min(texts.len());
    if threads <= 1 {
        let mut enc = Encoder::new();
        for (text, out) in texts.iter().zip(results.iter_mut()) {
            enc.encode_ordinary(text, out);
        }
        return results;
    }
    // ~8 chunks per thread for balance, at most 64 texts each so a thread never sits on a long tail.
    let chunk = (texts.len() / (threads * 8)).clamp(1, 64);
    let work = Mutex::new(texts.chunks(chunk).zip(results.chunks_mut(chunk)));
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut enc = Encoder::new();
                loop {
                    // A poisoned lock means another worker panicked; the scope re-raises that panic.
                    let next = match work.lock() {
                        Ok(mut it) => it.next(),
                        Err(_) => return,
                    };
                    let Some((texts, outs)) = next else { return };
                    for (text, out) in texts.iter().zip(outs.iter_mut()) {
                        enc.encode_ordinary(text, out);
                    }
                }
            });
        }
    });
    results
}

// ---------------------------------------------------------------------------------------------------------------
// Tests: everything is compared with tiktoken-rs's encode_ordinary.
// ---------------------------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;

    fn fast(text: &str) -> Vec<u32> {
        let mut enc = Encoder::new();
        let mut out = Vec::new();
        enc.encode_ordinary(text, &mut out);
        out
    }

    /// Compare fast vs reference; on a mismatch, name the first differing piece so the failure is readable.
    fn check(text: &str) {
        let core = shared();
        let want = core.encode_ordinary_reference(text);
        let got = fast(text);
        if got != want {
            let k = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
            let show = |t: &[u32]| -> Vec<String> {
                t.iter().map(|&x| format!("{:?}", String::from_utf8_lossy(&core.decode_bytes(&[x])))).collect()
            };
            panic!(
                "fast != reference for {:?}\n first difference at token {k}\n fast: {:?}\n  ref: {:?}",
                text.chars().take(200).collect::<String>(),
                show(&got[k..(k + 8).min(got.len())]),
                show(&want[k..(k + 8).min(want.len())]),
            );
        }
    }

    /// The articles of the bundled real sample (`<text>` contents; `unescape` also undoes the XML escaping).
    fn sample_texts(unescape: bool) -> Vec<String> {
        use std::io::Read;
        let path = crate::test_support::sample_path();
        let mut xml = String::new();
        bzip2::read::MultiBzDecoder::new(std::fs::File::open(path).unwrap()).read_to_string(&mut xml).unwrap();
        let mut out = Vec::new();
        let mut rest = xml.as_str();
        while let Some(open) = rest.find("<text") {
            let after = &rest[open..];
            let gt = after.find('>').unwrap();
            if after[..gt].ends_with('/') {
                rest = &after[gt..];
                continue;
            }
            let body = &after[gt + 1..];
            let close = body.find("</text>").unwrap();
            let raw = &body[..close];
            out.push(if unescape {
                raw.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&")
            } else {
                raw.to_string()
            });
            rest = &body[close..];
        }
        out
    }

    #[test]
    fn ranks_match_tiktoken() {
        let core = shared();
        let ranks = core.ranks();
        assert_eq!(ranks.len(), N_VOCAB - 1);
        for (k, (bytes, r)) in ranks.iter().enumerate() {
            assert_eq!(*r as usize, k);
            assert_eq!(core.decode_bytes(&[*r]), *bytes);
        }
        // Spot values everyone knows: the 256 byte tokens come first, "!" is 0, " the" is 262.
        assert_eq!(ranks[0].0, b"!");
        assert_eq!(core.rank(b" the"), Some(262));
        assert_eq!(core.decode_bytes(&[EOT]), b"<|endoftext|>");
        assert_eq!(core.decode_bytes(&[15496, 995]), b"Hello world");
        assert!(matches!(core.try_decode_bytes(&[1, 50257]), Err(Error::Invalid(_))));
    }

    #[test]
    fn short_keys_are_exact_and_distinct() {
        // Every prefix length of a few byte patterns, including zero bytes and repeats that fool naive packing.
        let mut seen = std::collections::HashMap::new();
        for pat in
            [&b"abcdefghijklmnopq"[..], &[0u8; 17], &[0xFF; 17], b"aaaaaaaaaaaaaaaaa", b"\0a\0a\0a\0a\0a\0a\0a\0a\0"]
        {
            for n in 0..=17 {
                let b = &pat[..n];
                let k = short_key(b);
                assert_eq!(k.is_some(), n <= 15);
                if let Some(k) = k {
                    let mut want = [0u8; 16];
                    want[..n].copy_from_slice(b);
                    want[15] = n as u8;
                    assert_eq!(k, u128::from_le_bytes(want), "{b:?}");
                    assert!(seen.insert(k, b.to_vec()).is_none_or(|prev| prev == b), "{b:?}");
                }
            }
        }
    }

    #[test]
    fn known_ids() {
        // Ids from Python tiktoken / GPT-2's encoder.json.
        assert_eq!(fast("Hello world"), vec![15496, 995]);
        assert_eq!(fast("<|endoftext|>"), vec![27, 91, 437, 1659, 5239, 91, 29]);
    }

    #[test]
    fn classes_match_regex_syntax_everywhere() {
        let cls = &shared().classes;
        let sets: Vec<(u8, Vec<(u32, u32)>)> = vec![
            (LETTER, unicode_class_ranges(r"\p{L}")),
            (NUMBER, unicode_class_ranges(r"\p{N}")),
            (SPACE, unicode_class_ranges(r"\s")),
        ];
        for cp in 0..0x11_0000u32 {
            let want = sets
                .iter()
                .find(|(_, r)| {
                    r.binary_search_by(|&(lo, hi)| {
                        if hi < cp {
                            std::cmp::Ordering::Less
                        } else if lo > cp {
                            std::cmp::Ordering::Greater
                        } else {
                            std::cmp::Ordering::Equal
                        }
                    })
                    .is_ok()
                })
                .map_or(OTHER, |(c, _)| *c);
            assert_eq!(cls.of(cp), want, "class of U+{cp:04X}");
            if let Some(ch) = char::from_u32(cp) {
                let mut buf = [0u8; 4];
                let s = ch.encode_utf8(&mut buf).as_bytes();
                assert_eq!(cls.at(s, 0), (want, s.len()), "decode of U+{cp:04X}");
            }
        }
        // The std predicates are different sets; this is why we read regex-syntax's tables.
        assert!('\u{0345}'.is_alphabetic() && cls.of(0x345) != LETTER); // a combining mark: Alphabetic, not L
        assert!('Ⅻ'.is_alphabetic() && cls.of('Ⅻ' as u32) == NUMBER); // Nl: Alphabetic, but \p{N}
    }

    #[test]
    fn real_articles_raw_and_unescaped() {
        let raw = sample_texts(false);
        assert!(raw.len() > 100, "sample has {} texts", raw.len());
        for t in raw.iter().chain(sample_texts(true).iter()) {
            check(t);
        }
        // Whole articles also as one text (pieces across article boundaries).
        check(&raw.concat());
    }

    #[test]
    fn edge_cases() {
        let cases: &[&str] = &[
            "",
            " ",
            "  ",
            "\n",
            "a",
            " \n  \t x",
            "x \n  \t ",
            "a  b   c    d\t\te\n\nf \n g",
            "   leading and trailing   ",
            "\t\t\tword",
            "\n\n\n\nword",
            " \t \t",
            "line\r\nline\r\n\r\n",
            "1234567890 12 345,678.90 3.14159 1e10 0x1F ½ ² ³ ¼ Ⅻ ① ٣ ३",
            "don't won't I'm you're we've they'll he'd it's 's 't 'd 'm 'll 've 're",
            "DON'T I'M YOU'RE 'S 'T 'LL 'VE 'RE 'D 'M",
            "'''bold''' ''italic'' ''''' '' ' 'x 'sx 'lll 'ree 'vee",
            "rock 'n' roll, '90s, 'tis, o'clock, ''s",
            "!!! ??? ... --- === +++ *** ### @@@ $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}} ||| \\\\ /// ~~~ ``` <<< >>>",
            " !x !!x ?! .a .1 ,, ;: ",
            "{{Infobox|name=x|image=[[File:a.jpg|thumb|200px]]}} <ref name=\"a\">b</ref> &nbsp; &amp;nbsp;",
            "Straße Größe Übermäßig Fußball naïve café résumé",
            "Москва — столица России. Ёжик в тумане.",
            "中文字符测试。日本語のテキスト、カタカナ。한국어 텍스트",
            "العربية نص عربي مع أرقام ١٢٣ والتشكيل: مُحَمَّد",
            "हिन्दी देवनागरी क्षत्रिय संस्कृतम् ॐ",
            "emoji 👍🏽 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇩🇪 a👍b 1👍2",
            "\u{85}x \u{85} x\u{85}\u{85}y",
            "\u{a0}x \u{a0} x\u{a0}\u{a0}y 10\u{a0}km",
            "\u{2028}x \u{2028} x\u{2029}\u{2029}y",
            "\u{3000}x \u{3000} x\u{3000}\u{3000}y 全角\u{3000}空白",
            "\u{2009}thin \u{200a}hair \u{202f}nnbsp \u{205f}mmsp \u{1680}ogham \u{b}vt \u{c}ff",
            "\u{200b}zwsp \u{200d}zwj \u{feff}bom \u{ad}shy",
            "\u{301}lone \u{301}\u{301} a\u{301} \u{301}a \u{20dd} \u{0345}x",
            "<|endoftext|>",
            "a<|endoftext|>b <|endoftext|> <|endoftext|><|endoftext|>",
            "\u{0}\u{1}\u{1f}\u{7f} controls",
            "\u{10ffff} \u{e000} \u{fffd} \u{1f600}",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        ];
        for c in cases {
            check(c);
        }
        // Long pieces exercise the heap merge (tiktoken switches at 100 bytes).
        for n in [99, 100, 101, 250, 5000] {
            check(&"ab".repeat(n));
            check(&"the".repeat(n));
            check(&format!(" {}", "é".repeat(n)));
            check(&"1".repeat(n));
            check(&"!?".repeat(n));
            check(&" ".repeat(n));
            check(&format!("{}x", " ".repeat(n)));
            check(&format!("{}x", "\n".repeat(n)));
            check(&format!("{}x", " \t".repeat(n)));
        }
    }

    #[test]
    fn every_code_point_in_context() {
        // End to end against fancy-regex, so a table that fancy-regex did not actually use would show. Every code
        // point in a short context that tells the four classes apart ("a{c}" joins only for L, "1{c}{c}" only for N,
        // "{c}{c}\n" only for \s); the first and last code point of each class range, and their neighbours, in many
        // contexts. Texts are batched so the reference runs on big inputs.
        use std::fmt::Write;
        let mut text = String::new();
        for cp in 0..0x11_0000u32 {
            if let Some(c) = char::from_u32(cp) {
                writeln!(text, "a{c}1{c}{c}").unwrap();
            }
            if text.len() > 1 << 16 {
                check(&text);
                text.clear();
            }
        }
        check(&text);
        text.clear();
        for pattern in [r"\p{L}", r"\p{N}", r"\s"] {
            for (lo, hi) in unicode_class_ranges(pattern) {
                for cp in [lo.saturating_sub(1), lo, hi, hi + 1] {
                    let Some(c) = char::from_u32(cp) else { continue };
                    write!(text, "{c} {c}a{c}1{c}{c}'s {c}\n{c}  {c}\t.{c}  ").unwrap();
                }
            }
        }
        check(&text);
    }

    /// xorshift64*: a tiny deterministic generator, so the property test needs no extra crate and reproduces.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn random_tricky_strings() {
        // (fragment, weight): spaces and other whitespace are heavy so runs and backtracking happen often.
        let alphabet: &[(&str, u32)] = &[
            (" ", 30),
            ("  ", 6),
            ("\n", 10),
            ("\t", 5),
            ("\r\n", 3),
            ("\u{a0}", 3),
            ("\u{85}", 2),
            ("\u{2028}", 2),
            ("\u{3000}", 2),
            ("\u{b}", 1),
            ("\u{c}", 1),
            ("\u{2009}", 1),
            ("a", 20),
            ("e", 10),
            ("the", 8),
            ("ing", 4),
            ("Z", 4),
            ("s", 6),
            ("t", 4),
            ("l", 4),
            ("d", 3),
            ("m", 3),
            ("v", 2),
            ("r", 3),
            ("ll", 2),
            ("re", 2),
            ("ve", 2),
            ("S", 2),
            ("LL", 1),
            ("'", 12),
            ("\"", 3),
            ("’", 2),
            ("-", 4),
            (".", 6),
            (",", 5),
            ("!", 2),
            ("?", 2),
            ("(", 2),
            (")", 2),
            ("[[", 2),
            ("]]", 2),
            ("{{", 2),
            ("}}", 2),
            ("|", 2),
            ("=", 2),
            ("<", 1),
            (">", 1),
            ("/", 1),
            ("_", 1),
            ("0", 6),
            ("7", 3),
            ("42", 3),
            ("½", 1),
            ("²", 1),
            ("٣", 1),
            ("Ⅻ", 1),
            ("é", 3),
            ("ß", 2),
            ("Ж", 2),
            ("ё", 1),
            ("中", 2),
            ("日本", 1),
            ("한", 1),
            ("ع", 2),
            ("\u{64e}", 1),
            ("क्ष", 1),
            ("\u{94d}", 1),
            ("\u{301}", 2),
            ("\u{200d}", 2),
            ("👍", 2),
            ("\u{1f3fd}", 1),
            ("🏳️‍🌈", 1),
            ("\u{fe0f}", 1),
            ("\u{0}", 1),
            ("\u{7f}", 1),
            ("<|endoftext|>", 1),
            ("\u{10ffff}", 1),
            ("\u{fffd}", 1),
        ];
        let total: u32 = alphabet.iter().map(|&(_, w)| w).sum();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        let mut enc = Encoder::new();
        // A second encoder whose cache is cleared every 50 pieces: clearing must never change an answer either.
        let mut small = Encoder::new();
        small.cache_max = 50;
        let core = shared();
        let mut text = String::new();
        let mut got = Vec::new();
        for case in 0..20_000 {
            text.clear();
            let len = 1 + rng.below(if case % 100 == 0 { 400 } else { 40 });
            for _ in 0..len {
                let mut r = rng.below(total as usize) as u32;
                for &(frag, w) in alphabet {
                    if r < w {
                        text.push_str(frag);
                        break;
                    }
                    r -= w;
                }
            }
            got.clear();
            // One Encoder across all cases: the cache must never change an answer.
            enc.encode_ordinary(&text, &mut got);
            let want = core.encode_ordinary_reference(&text);
            if got != want {
                check(&text); // panics with a readable diff
                panic!("case {case}: {text:?}");
            }
            got.clear();
            small.encode_ordinary(&text, &mut got);
            assert!(got == want, "case {case} with a small cache: {text:?}");
        }
        assert!(enc.cache_len() > 0);
    }

    #[test]
    fn piece_table_finds_what_it_holds_across_growth() {
        // From 2 slots to 2048: every key inserted so far is found with its value, and absent keys are not; a clear
        // keeps the size and forgets every key.
        let mut t = PieceTable::with_slots(2);
        let key = |n: u32| ShortKey::new(short_key(format!("k{n}").as_bytes()).unwrap());
        for n in 0..1000u32 {
            t.insert(&key(n), n, n + 1);
            assert_eq!(t.len, n as usize + 1);
            for m in [0, n / 2, n] {
                assert_eq!(t.get(&key(m)), Some((m, m + 1)), "key {m} after {n} inserts");
            }
            assert_eq!(t.get(&key(n + 1)), None);
        }
        assert_eq!(t.slots.len(), 2048);
        t.clear();
        assert_eq!((t.len, t.slots.len()), (0, 2048));
        assert_eq!(t.get(&key(5)), None);
    }

    #[test]
    fn pieces_rejoin_to_text() {
        for t in sample_texts(false).iter().take(20) {
            assert_eq!(split_pieces(t).concat(), *t);
        }
        assert_eq!(split_pieces(" \n  \t x"), vec![" \n  \t", " x"]);
        assert_eq!(split_pieces("a\n\tb"), vec!["a", "\n", "\t", "b"]);
        assert_eq!(split_pieces("a  b"), vec!["a", " ", " b"]);
        assert_eq!(split_pieces("it's 'S"), vec!["it", "'s", " '", "S"]);
    }

    #[test]
    fn batch_matches_single_and_keeps_order() {
        let texts = sample_texts(true);
        let refs: Vec<&str> = texts.iter().map(|s| s.as_str()).collect();
        let want: Vec<Vec<u32>> = refs.iter().map(|t| shared().encode_ordinary_reference(t)).collect();
        for threads in [0, 1, 2, 3, 7] {
            assert_eq!(encode_batch(&refs, threads), want, "threads={threads}");
        }
        assert!(encode_batch(&[], 4).is_empty());
        assert_eq!(encode_batch(&["", "a"], 4), vec![vec![], vec![64]]);
    }
}
