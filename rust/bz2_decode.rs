//! A native bzip2 *block* decoder: one block, starting at any bit offset, to its output bytes, CRC checked.
//!
//! `bz2.rs` cuts a single-stream file into blocks and decodes them on N threads; this is what each thread runs.
//! It replaces wrapping every block as a one-block stream for libbz2 (which also cost a bit-shifting copy), because
//! libbz2's block decode was the whole cost of `wikigpt cat` (95% of CPU time, 37 CPU-s per GB of XML, against
//! lbzip2's 27.5). libbz2 stays as the reference: `bz2.rs` falls back to it for randomised blocks (written only by
//! bzip2 0.9.0, 1998) and whenever this decoder rejects a block, so a bug here can cost speed, never a valid file.
//!
//! The format (Seward's bzip2 1.0.x `decompress.c` is the reference; every error it raises is raised here too):
//!
//! ```text
//! 48 block magic · 32 block CRC · 1 randomised · 24 origPtr · 16+16·k symbol map · 3 nGroups · 15 nSelectors
//! · selectors (unary, MTF-coded) · per group: delta-coded code lengths · Huffman-coded MTF/RLE2 symbols up to EOB
//! ```
//!
//! Where the time goes and why this is faster than libbz2 (see bz2.rs's performance notes for figures):
//! - **Huffman**: a 10-bit lookup table per group resolves almost every symbol in one load (libbz2 walks the code
//!   one bit at a time from the shortest length). The table is built by running libbz2's own limit/base/perm decode
//!   on every 10-bit pattern, so even odd (incomplete, over-subscribed) codes decode exactly as libbz2 would; codes
//!   longer than 10 bits take libbz2's bit-by-bit path.
//! - **MTF**: the first 16 places (text rarely reaches further) are one SSE register moved by a byte shuffle where
//!   the CPU has SSSE3 (`MtfShuffle`, 2026-12-07: `bz2cat FILE 1` 2.33-2.34 -> 2.21-2.26 s, 4 interleaved rounds),
//!   else shifted inside one u128 (`Mtf`); a `copy_within` per symbol was a memmove call each time.
//! - **Inverse BWT**: the output is a walk along a permutation, one dependent random load per byte into a 3.6 MB
//!   array; with one chain (libbz2, lbzip2) that latency is the cost. We mark ~220 rows per block as piece starts
//!   and walk many pieces at once (`walk`, `CHAINS` says how many and why), linking them in output order
//!   afterwards, so that many cache misses are in flight; the array sits on 2 MiB pages (`Table`) so the loads do not
//!   also miss the TLB. Each step prefetches its chain's next row (~4% of `bz2cat`, 2026-12-07).
//! - **RLE1 + CRC**: a separate sequential pass over the walk's output, with a slicing-by-8 CRC.
//!
//! Profile after all that (`perf record`, `examples/bz2cat` on the 250 MB bench corpus, one thread, 2026-11-28):
//! Huffman + MTF 37%, walk 24%, counting pass (`unbwt`) 16%, RLE1 7%, CRC 4%, bz2.rs's reader 4%, memset/memmove 6%.
//! Under `extract`, whose cleaning threads share the caches, the walk's share grows to ~31%.
//! Calls to memset and memmove for short variable-length moves (RUNA/RUNB fills, RLE1 counts, MTF places past 16)
//! were ~6% of `bz2cat` still on 2026-12-07; they are now fixed-size 16-byte moves (`push_run`, `take_from_rest`):
//! `bz2cat FILE 1` on the 250 MB corpus, 4 interleaved rounds, 2.45-2.47 s -> 2.33-2.37 s wall.

/// bzip2's longest Huffman code (decompress.c rejects anything longer).
const MAX_CODE_LEN: usize = 20;
/// libbz2's tables are sized for 23 lengths (`BZ_MAX_CODE_LEN`); we mirror them so odd codes behave identically.
const TABLE_LEN: usize = 23;
const MAX_ALPHA: usize = 258;
const MAX_GROUPS: usize = 6;
/// libbz2 1.0.8 reads up to 32767 selectors but keeps only this many (the CVE-2019-12900 fix).
const MAX_SELECTORS: usize = 18002;
const GROUP_SIZE: u32 = 50;
/// Bits resolved by one table lookup. 10 covers nearly all symbols of text blocks while the 6 tables (2 KiB each)
/// stay in L1.
const FAST_BITS: u32 = 10;

/// Buffers reused from block to block by one thread: the block itself, its 4-byte-per-row permutation (rounded up to
/// whole 2 MiB pages) and the walk's pieces, ~6 bytes per byte of block resident (~6 MB at level 9).
#[derive(Default)]
pub struct Scratch {
    /// The block after MTF/RLE2 decoding (the BWT's last column), then the walk's output (RLE1 still applied).
    ll: Vec<u8>,
    /// `tt[j] = T[j] << 8 | ll[j]`: the inverse BWT's permutation (libbz2's `tt` vector).
    tt: Table,
    walk: WalkScratch,
}

/// A `u32` array for the inverse BWT, on 2 MiB pages where the kernel allows it.
///
/// The walk makes one dependent random load per output byte into two 3.6 MB arrays. With 4 KiB pages those span
/// ~1800 pages, more than the TLB holds, so most loads pay a page walk on top of the cache miss; Linux's default
/// transparent-huge-page mode ("madvise") only backs a mapping with 2 MiB pages when asked, so we ask.
#[derive(Default)]
struct Table {
    ptr: Option<std::ptr::NonNull<u32>>,
    /// Capacity in entries (a multiple of a huge page).
    cap: usize,
}

// SAFETY: Table owns its allocation exclusively (like a Vec<u32>).
unsafe impl Send for Table {}

const HUGE_PAGE: usize = 2 << 20;

impl Table {
    /// The first `n` entries, zeroed or not (callers overwrite every one they read).
    fn get(&mut self, n: usize) -> &mut [u32] {
        if n > self.cap {
            self.free();
            let bytes = (n * 4).div_ceil(HUGE_PAGE) * HUGE_PAGE;
            let layout = std::alloc::Layout::from_size_align(bytes, HUGE_PAGE).expect("valid layout");
            // SAFETY: the layout has a non-zero size.
            let raw = unsafe { std::alloc::alloc_zeroed(layout) } as *mut u32;
            let Some(ptr) = std::ptr::NonNull::new(raw) else { std::alloc::handle_alloc_error(layout) };
            #[cfg(target_os = "linux")]
            // SAFETY: [raw, raw + bytes) is our own mapping-aligned allocation; madvise only changes how the kernel
            // backs it (failure is harmless: we keep 4 KiB pages).
            unsafe {
                libc::madvise(raw as *mut libc::c_void, bytes, libc::MADV_HUGEPAGE);
            }
            self.ptr = Some(ptr);
            self.cap = bytes / 4;
        }
        match self.ptr {
            // SAFETY: ptr points to `cap ≥ n` initialised (zeroed at allocation, then only written as u32) entries
            // that we own, and the &mut self borrow makes the slice unique.
            Some(p) => unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), n) },
            None => &mut [],
        }
    }

    fn free(&mut self) {
        if let Some(p) = self.ptr.take() {
            let layout = std::alloc::Layout::from_size_align(self.cap * 4, HUGE_PAGE).expect("valid layout");
            // SAFETY: allocated in `get` with exactly this layout.
            unsafe { std::alloc::dealloc(p.as_ptr() as *mut u8, layout) };
            self.cap = 0;
        }
    }
}

impl Drop for Table {
    fn drop(&mut self) {
        self.free();
    }
}

/// Why a block could not be decoded: the reason, for the one-line error the orderer may show.
pub type BlockError = String;

/// What `decode_block` found, when it did not decode the block itself.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Decoded and CRC-checked; the stored block CRC.
    Done(u32),
    /// A randomised block (bzip2 0.9.0): left to libbz2.
    Randomised,
}

/// MSB-first bit reader over a byte slice, with a left-aligned 64-bit buffer refilled 8 bytes at a time.
/// Bits past the end of `data` read as zero; `consumed()` tells how far the decoder really went, so the caller can
/// reject a block that ran past its end.
struct Bits<'a> {
    data: &'a [u8],
    /// Next byte of `data` to load into `buf`.
    pos: usize,
    /// Unconsumed bits, left-aligned; bits below the `count` valid ones are the stream's next bits or zero.
    buf: u64,
    count: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8], skip_bits: u32) -> Self {
        let mut b = Bits { data, pos: 0, buf: 0, count: 0 };
        b.refill();
        b.consume(skip_bits);
        b
    }

    /// Make at least 56 bits available.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            // Branch-free refill (Giesen's "variant 4"): OR in the next 8 bytes below the valid bits; advance by the
            // whole bytes that fitted. Bits OR-ed in beyond those are the stream's own next bits, loaded again at the
            // same place by the next refill, so they never disagree.
            let v = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            self.buf |= v >> self.count;
            self.pos += ((63 - self.count) >> 3) as usize;
            self.count |= 56;
        } else {
            while self.count <= 56 {
                let byte = self.data.get(self.pos).copied().unwrap_or(0);
                self.buf |= (byte as u64) << (56 - self.count);
                self.count += 8;
                self.pos += 1;
            }
        }
    }

    #[inline(always)]
    fn peek(&self, n: u32) -> u32 {
        (self.buf >> (64 - n)) as u32
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        debug_assert!(n <= self.count);
        self.buf <<= n;
        self.count -= n;
    }

    /// `n ≤ 32` bits as a number.
    #[inline(always)]
    fn get(&mut self, n: u32) -> u32 {
        if self.count < n {
            self.refill();
        }
        let v = self.peek(n);
        self.consume(n);
        v
    }

    /// A copy of the reader to run in locals (see the decode loop); `put_state` writes it back.
    #[inline(always)]
    fn take_state(&self) -> Bits<'a> {
        Bits { data: self.data, pos: self.pos, buf: self.buf, count: self.count }
    }

    #[inline(always)]
    fn put_state(&mut self, from: Bits<'a>) {
        *self = from;
    }

    /// Bits consumed since the start of `data` (may exceed the data's length if the decoder ran past its end).
    fn consumed(&self) -> u64 {
        self.pos as u64 * 8 - self.count as u64
    }
}

/// One Huffman group's decode tables: libbz2's `limit`/`base`/`perm` plus our 10-bit lookup.
struct Huffman {
    /// `fast[bits] = symbol << 5 | length` for codes of at most FAST_BITS bits; 0 when the code is longer (or
    /// the bits start no code at all, which the slow path then reports).
    fast: [u16; 1 << FAST_BITS],
    limit: [i32; TABLE_LEN],
    base: [i32; TABLE_LEN],
    perm: [u16; MAX_ALPHA],
    min_len: u32,
}

impl Huffman {
    fn new() -> Self {
        Huffman {
            fast: [0; 1 << FAST_BITS],
            limit: [0; TABLE_LEN],
            base: [0; TABLE_LEN],
            perm: [0; MAX_ALPHA],
            min_len: 0,
        }
    }

    /// libbz2's `BZ2_hbCreateDecodeTables`, then the lookup table derived from it.
    fn build(&mut self, lengths: &[u8]) {
        let min_len = *lengths.iter().min().expect("alphabet has ≥ 3 symbols") as usize;
        let max_len = *lengths.iter().max().expect("alphabet has ≥ 3 symbols") as usize;
        let mut pp = 0;
        for len in min_len..=max_len {
            for (sym, &l) in lengths.iter().enumerate() {
                if l as usize == len {
                    self.perm[pp] = sym as u16;
                    pp += 1;
                }
            }
        }
        self.base = [0; TABLE_LEN];
        for &l in lengths {
            self.base[l as usize + 1] += 1;
        }
        for i in 1..TABLE_LEN {
            self.base[i] += self.base[i - 1];
        }
        self.limit = [0; TABLE_LEN];
        let mut vec = 0i32;
        for i in min_len..=max_len {
            vec += self.base[i + 1] - self.base[i];
            self.limit[i] = vec - 1;
            vec <<= 1;
        }
        for i in min_len + 1..=max_len {
            self.base[i] = ((self.limit[i - 1] + 1) << 1) - self.base[i];
        }
        self.min_len = min_len as u32;
        for pattern in 0..(1u32 << FAST_BITS) {
            // The slow decode of these 10 bits (followed by anything): does it finish within them?
            self.fast[pattern as usize] = match self.decode_slow(pattern << (32 - FAST_BITS), FAST_BITS) {
                Some((sym, len)) => (sym << 5) | len as u16,
                None => 0,
            };
        }
    }

    /// libbz2's decode loop on the next bits (`bits`, left-aligned, of which `avail` are meaningful): the symbol and
    /// its length, or None if the code is longer than `avail` or invalid.
    #[inline]
    fn decode_slow(&self, bits: u32, avail: u32) -> Option<(u16, u32)> {
        let mut zn = self.min_len;
        loop {
            if zn as usize > MAX_CODE_LEN || zn > avail {
                return None;
            }
            let zvec = (bits >> (32 - zn)) as i32;
            if zvec <= self.limit[zn as usize] {
                let idx = zvec - self.base[zn as usize];
                if !(0..MAX_ALPHA as i32).contains(&idx) {
                    return None;
                }
                return Some((self.perm[idx as usize], zn));
            }
            zn += 1;
        }
    }
}

/// Decode the block whose magic starts `skip_bits` (< 8) bits into `data` and must end exactly `nbits` bits later
/// (where the next block's or the end-of-stream magic was found). `level` is the stream header's digit: a block
/// holds at most `level × 100000` bytes before its first RLE stage is undone. Output is appended to a cleared `out`,
/// which is not allowed to grow past `max_output` bytes.
pub fn decode_block(
    data: &[u8],
    skip_bits: u32,
    nbits: u64,
    level: u8,
    max_output: usize,
    scratch: &mut Scratch,
    out: &mut Vec<u8>,
) -> Result<Outcome, BlockError> {
    let mut bits = Bits::new(data, skip_bits);
    let magic = ((bits.get(24) as u64) << 24) | bits.get(24) as u64;
    if magic != 0x3141_5926_5359 {
        return Err("no block magic".into());
    }
    let stored_crc = bits.get(32);
    if bits.get(1) == 1 {
        return Ok(Outcome::Randomised);
    }
    let orig_ptr = bits.get(24) as usize;

    // Which byte values occur: 16 groups of 16.
    let in_use16 = bits.get(16);
    let mut seq_to_unseq = [0u8; 256];
    let mut n_in_use = 0usize;
    for i in 0..16 {
        if in_use16 & (0x8000 >> i) != 0 {
            let word = bits.get(16);
            for j in 0..16 {
                if word & (0x8000 >> j) != 0 {
                    seq_to_unseq[n_in_use] = (i * 16 + j) as u8;
                    n_in_use += 1;
                }
            }
        }
    }
    if n_in_use == 0 {
        return Err("block uses no byte values".into());
    }
    let alpha_size = n_in_use + 2;

    let n_groups = bits.get(3) as usize;
    if !(2..=MAX_GROUPS).contains(&n_groups) {
        return Err(format!("{n_groups} Huffman groups (must be 2..6)"));
    }
    let n_selectors_read = bits.get(15) as usize;
    if n_selectors_read < 1 {
        return Err("no selectors".into());
    }
    let mut selectors = Vec::with_capacity(n_selectors_read.min(MAX_SELECTORS));
    for _ in 0..n_selectors_read {
        let mut j = 0;
        while bits.get(1) == 1 {
            j += 1;
            if j >= n_groups {
                return Err("selector out of range".into());
            }
        }
        if selectors.len() < MAX_SELECTORS {
            selectors.push(j as u8);
        }
    }
    // Undo the selectors' MTF coding.
    let mut pos: [u8; MAX_GROUPS] = [0, 1, 2, 3, 4, 5];
    for s in selectors.iter_mut() {
        let v = *s as usize;
        let tmp = pos[v];
        pos.copy_within(0..v, 1);
        pos[0] = tmp;
        *s = tmp;
    }

    // Code lengths, delta-coded per group.
    let mut tables: Vec<Huffman> = Vec::with_capacity(n_groups);
    let mut lengths = [0u8; MAX_ALPHA];
    for _ in 0..n_groups {
        let mut curr = bits.get(5) as i32;
        for len in lengths.iter_mut().take(alpha_size) {
            loop {
                if !(1..=MAX_CODE_LEN as i32).contains(&curr) {
                    return Err("code length out of range".into());
                }
                if bits.get(1) == 0 {
                    break;
                }
                if bits.get(1) == 0 {
                    curr += 1;
                } else {
                    curr -= 1;
                }
            }
            *len = curr as u8;
        }
        let mut h = Huffman::new();
        h.build(&lengths[..alpha_size]);
        tables.push(h);
    }

    // MTF values and RLE2 runs → the BWT's last column, in scratch.ll.
    let block_max = level as usize * 100_000;
    // Exactly block_max long (the bound checks below rely on it); bytes left from the previous block are overwritten
    // before they are read, so only a growing buffer is zero-filled (a clear + resize was a 900 kB memset per block).
    scratch.ll.truncate(block_max);
    scratch.ll.resize(block_max, 0);
    let mut counts = [0u32; 256];
    let eob = (n_in_use + 1) as u16;
    let coding = Coding { selectors: &selectors, tables: &tables, eob, order: &seq_to_unseq };
    let (nblock, saw_eob) = symbols(&mut bits, &coding, &mut scratch.ll, &mut counts)?;
    if !saw_eob {
        return Err("more symbols than selectors".into());
    }
    if bits.consumed() != skip_bits as u64 + nbits {
        return Err("the block does not end where the next block starts".into());
    }
    if orig_ptr >= nblock {
        return Err(format!("origPtr {orig_ptr} outside the block ({nblock} bytes)"));
    }

    let n = nblock;
    let tt: &mut [u32; ROWS] = scratch.tt.get(ROWS).try_into().expect("ROWS entries");
    unbwt(&scratch.ll[..n], &counts, &mut tt[..n]);
    let cycle = walk_pieces(tt, orig_ptr, n, &mut scratch.walk);

    out.clear();
    out.reserve(n + n / 8);
    let mut rle = Rle1::default();
    if cycle == n {
        // RLE1 reads the pieces where the chains left them, in output order: linking them into one buffer first
        // was a copy of every byte (~1.5% of `cat`).
        let ws = &scratch.walk;
        for &(off, len) in &ws.order {
            rle.push(&ws.areas[off as usize..(off + len) as usize], max_output, out)?;
        }
    } else {
        // A periodic block: the output goes round p₀'s cycle more than once, so link it (into ll, whose last-column
        // contents now live in tt) and undo RLE1 from there.
        link(&scratch.walk, cycle, &mut scratch.ll[..n]);
        rle.push(&scratch.ll[..n], max_output, out)?;
    }
    let crc = crc32(out);
    if crc != stored_crc {
        return Err(format!("block CRC mismatch (stored {stored_crc:08x}, data {crc:08x})"));
    }
    Ok(Outcome::Done(stored_crc))
}

/// How a block's symbols are coded: its selectors, its Huffman tables, its end-of-block symbol and the byte values
/// in use (the MTF list's starting order).
struct Coding<'a> {
    selectors: &'a [u8],
    tables: &'a [Huffman],
    eob: u16,
    order: &'a [u8; 256],
}

/// What the symbol loop returns: the block's length, and whether the end-of-block symbol came before the selectors ran
/// out.
type Symbols = Result<(usize, bool), BlockError>;

/// The MTF/RLE2 symbols → the BWT's last column in `ll` (exactly `level × 100000` long), with each byte's count in
/// `counts`.
///
/// The loop runs with the MTF list that suits the CPU: with SSSE3 (every x86_64 CPU since 2006, checked at run time
/// since the x86_64 baseline lacks it) moving a place to the front is one byte shuffle (`MtfShuffle`); otherwise
/// the u128 shifts of `Mtf`.
fn symbols(bits: &mut Bits, coding: &Coding, ll: &mut [u8], counts: &mut [u32; 256]) -> Symbols {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("ssse3") {
        // SAFETY: the CPU has SSSE3 (checked just above).
        return unsafe { symbols_ssse3(bits, coding, ll, counts) };
    }
    symbols_with(Mtf::new(coding.order), bits, coding, ll, counts)
}

/// `symbols_with` compiled with SSSE3 enabled, so that `MtfShuffle`'s shuffle inlines into the loop.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "ssse3")]
unsafe fn symbols_ssse3(bits: &mut Bits, coding: &Coding, ll: &mut [u8], counts: &mut [u32; 256]) -> Symbols {
    symbols_with(MtfShuffle::new(coding.order), bits, coding, ll, counts)
}

#[inline(always)]
fn symbols_with<M: MoveToFront>(
    mut mtf: M,
    bits: &mut Bits,
    coding: &Coding,
    ll: &mut [u8],
    counts: &mut [u32; 256],
) -> Symbols {
    let Coding { selectors, tables, eob, .. } = *coding;
    let mut nblock = 0usize;
    // Pending RUNA/RUNB digits: a bijective base-2 run length of the front byte, flushed at the next other symbol.
    let mut run = 0usize;
    let mut weight = 1usize;
    // The hot loop keeps its state in locals (registers): the bit reader's fields, the output as a slice, and the
    // first 16 MTF places. Through `&mut` structs, each u8 store into `ll` made the compiler reload them (a u8 store
    // may alias anything), and the MTF front made a store-to-load round trip per symbol.
    let mut br = bits.take_state();
    for &sel in selectors {
        // Each selector picks the table for the next 50 symbols.
        let table = &tables[sel as usize];
        for _ in 0..GROUP_SIZE {
            if br.count < MAX_CODE_LEN as u32 {
                br.refill();
            }
            let e = table.fast[br.peek(FAST_BITS) as usize];
            let sym = if e != 0 {
                br.consume((e & 31) as u32);
                e >> 5
            } else {
                match table.decode_slow(br.peek(32), 32) {
                    Some((sym, len)) => {
                        br.consume(len);
                        sym
                    }
                    None => return Err("invalid Huffman code".into()),
                }
            };
            if sym <= 1 {
                if weight >= 2 * 1024 * 1024 {
                    return Err("run too long".into());
                }
                run += weight << sym;
                weight <<= 1;
                continue;
            }
            if run > 0 {
                let uc = mtf.front();
                if run > ll.len() - nblock {
                    return Err("block longer than the level allows".into());
                }
                // Most runs are short: one 16-byte store (the bytes past the run are overwritten later), where
                // `fill` of a variable length called memset for each (~3% of `bz2cat`).
                match ll.get_mut(nblock..nblock + 16) {
                    Some(dst) if run <= 16 => dst.copy_from_slice(&[uc; 16]),
                    _ => ll[nblock..nblock + run].fill(uc),
                }
                counts[uc as usize] += run as u32;
                nblock += run;
                run = 0;
                weight = 1;
            }
            if sym == eob {
                bits.put_state(br);
                return Ok((nblock, true));
            }
            let uc = mtf.take((sym - 1) as usize);
            let Some(dst) = ll.get_mut(nblock) else {
                return Err("block longer than the level allows".into());
            };
            *dst = uc;
            counts[uc as usize] += 1;
            nblock += 1;
        }
    }
    bits.put_state(br);
    Ok((nblock, false))
}

/// The MTF list as the symbol loop uses it.
trait MoveToFront {
    /// The byte in place 0.
    fn front(&self) -> u8;
    /// Move place `idx` (< 256) to the front and return its byte.
    fn take(&mut self, idx: usize) -> u8;
}

/// The MTF list of byte values. Text mostly hits the first few places: those live in one u128 (a register in the
/// decode loop), shifted in place; places 16.. are in `rest` (indices below 16 unused).
struct Mtf {
    head: u128,
    rest: [u8; 256],
}

impl Mtf {
    fn new(order: &[u8; 256]) -> Self {
        Mtf { head: u128::from_le_bytes(order[..16].try_into().expect("16 bytes")), rest: *order }
    }
}

impl MoveToFront for Mtf {
    #[inline(always)]
    fn front(&self) -> u8 {
        self.head as u8
    }

    #[inline(always)]
    fn take(&mut self, idx: usize) -> u8 {
        if idx < 16 {
            let uc = (self.head >> (8 * idx)) as u8;
            // Bytes 0..=idx: the old bytes 0..idx moved up one place, then uc in byte 0; bytes above idx unchanged.
            let upto = u128::MAX >> (8 * (15 - idx));
            self.head = (self.head & !upto) | ((self.head << 8) & upto) | uc as u128;
            uc
        } else {
            let uc = take_from_rest(&mut self.rest, idx, (self.head >> 120) as u8);
            self.head = (self.head << 8) | uc as u128;
            uc
        }
    }
}

/// `Mtf` with the first 16 places in an SSE register: moving place `idx` < 16 to the front is one `pshufb` with a
/// fixed mask per `idx` (where `Mtf`'s variable u128 shifts are ~30 instructions), and the front byte is the
/// register's low byte. Only built inside `symbols_ssse3`.
#[cfg(target_arch = "x86_64")]
struct MtfShuffle {
    head: std::arch::x86_64::__m128i,
    rest: [u8; 256],
}

/// `MTF_TO_FRONT[idx]`: the shuffle that puts byte `idx` first and moves bytes `0..idx` up one place.
#[cfg(target_arch = "x86_64")]
static MTF_TO_FRONT: [[u8; 16]; 16] = {
    let mut masks = [[0u8; 16]; 16];
    let mut idx = 0;
    while idx < 16 {
        let mut k = 0;
        while k < 16 {
            masks[idx][k] = if k == 0 {
                idx as u8
            } else if k <= idx {
                (k - 1) as u8
            } else {
                k as u8
            };
            k += 1;
        }
        idx += 1;
    }
    masks
};

#[cfg(target_arch = "x86_64")]
impl MtfShuffle {
    #[inline(always)]
    fn new(order: &[u8; 256]) -> Self {
        use std::arch::x86_64::*;
        // SAFETY: an unaligned load of 16 of the 256 bytes (SSE2, the x86_64 baseline).
        let head = unsafe { _mm_loadu_si128(order.as_ptr() as *const __m128i) };
        MtfShuffle { head, rest: *order }
    }
}

#[cfg(target_arch = "x86_64")]
impl MoveToFront for MtfShuffle {
    #[inline(always)]
    fn front(&self) -> u8 {
        use std::arch::x86_64::*;
        // SAFETY: SSE2.
        unsafe { _mm_cvtsi128_si32(self.head) as u8 }
    }

    #[inline(always)]
    fn take(&mut self, idx: usize) -> u8 {
        use std::arch::x86_64::*;
        // SAFETY: only reached from `symbols_ssse3`, which runs after a check that the CPU has SSSE3; the mask load
        // reads one 16-byte row of MTF_TO_FRONT (idx < 16).
        unsafe {
            if idx < 16 {
                let mask = _mm_loadu_si128(MTF_TO_FRONT[idx].as_ptr() as *const __m128i);
                self.head = _mm_shuffle_epi8(self.head, mask);
                _mm_cvtsi128_si32(self.head) as u8
            } else {
                let uc = take_from_rest(&mut self.rest, idx, (_mm_extract_epi16::<7>(self.head) >> 8) as u8);
                self.head = _mm_or_si128(_mm_slli_si128::<1>(self.head), _mm_cvtsi32_si128(uc as i32));
                uc
            }
        }
    }
}

/// The part of a move to front that both MTF lists share, for a place `idx` in 16..256: returns `rest[idx]`, moves
/// `rest[16..idx]` up one place and puts `spilled` (the head's place 15, pushed out by the move) at place 16.
///
/// The move is what `copy_within(16..idx, 17)` does, but in 16-byte moves from the top down with no call:
/// `copy_within`'s length is not a constant, so it was a call to memmove per symbol past the 16th MTF place (~1.5%
/// of `bz2cat`). The last move may start below place 16 and so write places 1..16, which are unused; place 16 is
/// written last.
#[inline(always)]
fn take_from_rest(rest: &mut [u8; 256], idx: usize, spilled: u8) -> u8 {
    debug_assert!((16..256).contains(&idx));
    let uc = rest[idx];
    let mut top = idx;
    while top > 16 {
        let chunk: [u8; 16] = rest[top - 16..top].try_into().expect("16 bytes");
        rest[top - 15..top + 1].copy_from_slice(&chunk);
        top -= 16;
    }
    rest[16] = spilled;
    uc
}

/// The counting pass of the inverse BWT: `tt[j] = T[j] << 8 | ll[j]`, libbz2's "fast" packing, where T[j] is the
/// row of the last column that holds the j-th byte of the first column. One pass: T is a permutation, so each
/// `tt[j]` is written exactly once, whole (a first pass storing `ll[j]` and a second OR-ing T in cost a load and a
/// store more per byte: `bz2cat FILE 1` 2.40-2.42 -> 2.34-2.35 s, 4 interleaved rounds, 2026-12-07).
fn unbwt(ll: &[u8], counts: &[u32; 256], tt: &mut [u32]) {
    // cftab[c] = how many bytes of the block are < c: where c's rows start in the first column.
    let mut cftab = [0u32; 256];
    let mut sum = 0u32;
    for c in 0..256 {
        cftab[c] = sum;
        sum += counts[c];
    }
    for (i, &c) in ll.iter().enumerate() {
        // Row i of the last column is the j-th occurrence of c; it precedes row j of the first column.
        let j = cftab[c as usize] as usize;
        cftab[c as usize] += 1;
        tt[j] = (i as u32) << 8 | ll[j] as u32;
    }
}

/// Chains walked at once by `walk`: enough cache misses in flight to cover the latency (the walk's loads mostly miss
/// L2). With the lockstep loop, 16 chains were 8% faster than 8 in all (one thread, 250 MB bench corpus), and 32
/// (with pieces of 4096 rows, so the last chains do not idle long) 3% faster again; their state lives in L1.
const CHAINS: usize = 32;
/// `walk` cuts a block into pieces of about this many bytes (so ~220 pieces at level 9, spread over CHAINS chains).
const PIECE: usize = 4096;
/// Marks a row where a piece starts, in bit 31 of its `tt` entry (T needs 20 bits, the byte 8).
const MARK: u32 = 1 << 31;
const ROW_MASK: u32 = (1 << 20) - 1;

/// Rows `walk` can address: a row number has 20 bits (a block holds at most 900,000 bytes), so a table of 2^20
/// entries can be indexed by any row without a bounds check.
pub(crate) const ROWS: usize = 1 << 20;

/// Where chain c's output area starts in `WalkScratch::areas`. The areas are ROWS apart plus c × 17 cache lines:
/// areas whose starts were equal modulo 4 KiB (separate allocations) made the chains' stores collide in the same L1
/// sets, and the walk 15-20% slower.
fn area_start(c: usize) -> usize {
    c * (ROWS + 17 * 64)
}
const AREAS_LEN: usize = CHAINS * (ROWS + 17 * 64);

/// Where `walk` puts each piece while the chains run.
#[derive(Default)]
pub(crate) struct WalkScratch {
    /// One output area per chain (one chain may in principle walk the whole block, so each has room for ROWS bytes),
    /// chain c's starting at `area_start(c)`. One fresh zeroed allocation, so the kernel maps its pages only as they
    /// are touched: a chain writes only the ~n / CHAINS bytes it walks, from the start of its area, so resident
    /// memory stays ~n bytes in all, not the 32 MiB reserved.
    areas: Vec<u8>,
    /// Pieces in the order they were started: (start row, chain, offset in `areas`, length, row it stopped at).
    pieces: Vec<(u32, u8, u32, u32, u32)>,
    /// The pieces of p₀'s cycle in output order: (offset in `areas`, length).
    order: Vec<(u32, u32)>,
}

/// The inverse BWT's walk: out[k] = ll[p_k] with p₀ = T[origPtr] and p_{k+1} = T[p_k] — one dependent random load
/// per byte, so latency, not arithmetic, is its cost (libbz2 and lbzip2 walk one chain).
///
/// We walk CHAINS chains at once. Besides p₀ we mark every ~PIECE-th row (in `tt`, bit 31); each marked row starts
/// a piece that runs until the walk reaches the next marked row. We do not know where in the output a piece lands
/// until the pieces are linked: the one starting at p₀ comes first, then the one starting at the row it stopped at,
/// and so on. The chains take pieces from a queue, so they stay busy until the last few. Every row belongs to one
/// piece, so the chains take n steps in all whatever T is (corrupt data cannot make them loop).
///
/// `tt[..n]` (n = `out.len()`) is the block's table, every row in it < n (`unbwt` writes them so); the table is
/// `ROWS` long so that the walk's loads need no bounds checks. While all CHAINS chains have pieces, they step in
/// lockstep with no per-chain bookkeeping beyond the mark test (`walk`'s time is in this loop); the last pieces
/// finish in a loop that skips idle chains.
#[cfg(test)]
fn walk(tt: &mut [u32; ROWS], orig_ptr: usize, out: &mut [u8], ws: &mut WalkScratch) {
    let cycle = walk_pieces(tt, orig_ptr, out.len(), ws);
    link(ws, cycle, out);
}

/// `walk` up to the linking: the pieces of p₀'s cycle are left in `ws.areas`, listed in output order in `ws.order`.
/// Returns the cycle's length (n unless the block is periodic, see `link`).
fn walk_pieces(tt: &mut [u32; ROWS], orig_ptr: usize, n: usize, ws: &mut WalkScratch) -> usize {
    assert!(n <= ROWS && orig_ptr < n.max(1));
    let p0 = (tt[orig_ptr] >> 8) & ROW_MASK;
    // Start rows: p₀ first, then evenly spaced rows (their places in the output are effectively random).
    let extra = n / PIECE;
    ws.pieces.clear();
    let mut starts: Vec<u32> = Vec::with_capacity(extra + 1);
    starts.push(p0);
    for i in 1..=extra {
        let r = (i * n / (extra + 1)) as u32;
        if r != p0 {
            starts.push(r);
        }
    }
    for &r in &starts {
        tt[r as usize] |= MARK;
    }
    if ws.areas.len() != AREAS_LEN {
        ws.areas = vec![0u8; AREAS_LEN];
    }
    let areas: &mut [u8] = &mut ws.areas;
    let pieces = &mut ws.pieces;

    // Chain state: current row, where its next byte goes in its area, and the piece it is walking (usize::MAX once
    // the queue is empty).
    let mut row = [0u32; CHAINS];
    let mut pos: [usize; CHAINS] = std::array::from_fn(area_start);
    let mut piece = [usize::MAX; CHAINS];
    let mut next_start = 0usize;
    let mut active = 0usize;

    // Give chain `c` the next queued piece: take its first step here (its start row carries the mark it must not
    // stop at). Returns whether a piece was left.
    let mut start_piece = |c: usize,
                           row: &mut [u32; CHAINS],
                           pos: &mut [usize; CHAINS],
                           piece: &mut [usize; CHAINS],
                           pieces: &mut Vec<(u32, u8, u32, u32, u32)>,
                           areas: &mut [u8]|
     -> bool {
        let Some(&r) = starts.get(next_start) else {
            return false;
        };
        next_start += 1;
        let x = tt[r as usize];
        pieces.push((r, c as u8, pos[c] as u32, 0, u32::MAX));
        areas[pos[c]] = x as u8;
        pos[c] += 1;
        row[c] = (x >> 8) & ROW_MASK;
        piece[c] = pieces.len() - 1;
        true
    };
    // Close chain c's piece, which reached the marked row `at`.
    let end_piece = |c: usize, at: u32, pos: &[usize; CHAINS], piece: &[usize; CHAINS], pieces: &mut [_]| {
        let p: &mut (u32, u8, u32, u32, u32) = &mut pieces[piece[c]];
        p.3 = pos[c] as u32 - p.2;
        p.4 = at;
    };
    for c in 0..CHAINS {
        if start_piece(c, &mut row, &mut pos, &mut piece, pieces, areas) {
            active += 1;
        }
    }
    // One step of chain c: its next byte, or (at a marked row) the end of its piece and the start of the next one,
    // or idleness when the queue is empty. A macro, not a closure, so that both loops below compile to the same
    // straight-line code they had when it was written out in each.
    macro_rules! step {
        ($c:expr) => {{
            let c = $c;
            let x = tt[row[c] as usize];
            if x & MARK != 0 {
                end_piece(c, row[c], &pos, &piece, pieces);
                if !start_piece(c, &mut row, &mut pos, &mut piece, pieces, areas) {
                    piece[c] = usize::MAX;
                    active -= 1;
                }
            } else {
                // A chain visits each row at most once, so it never writes past its n bytes.
                areas[pos[c]] = x as u8;
                pos[c] += 1;
                row[c] = (x >> 8) & ROW_MASK;
                // Ask for the chain's next row now: its load comes only after the other chains' steps, and
                // starting the cache miss here made the walk ~4% cheaper in all (`bz2cat FILE 1`, 250 MB corpus,
                // 4 interleaved rounds: 2.20-2.23 -> 2.11-2.19 s).
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a prefetch is a hint that cannot fault; the address is inside `tt` anyway (row < ROWS).
                unsafe {
                    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
                    _mm_prefetch::<_MM_HINT_T0>(tt.as_ptr().add(row[c] as usize) as *const i8);
                }
            }
        }};
    }
    // Lockstep while every chain has a piece.
    while active == CHAINS {
        for c in 0..CHAINS {
            step!(c);
        }
    }
    // The last pieces.
    while active > 0 {
        for c in 0..CHAINS {
            if piece[c] != usize::MAX {
                step!(c);
            }
        }
    }
    for &r in &starts {
        tt[r as usize] &= !MARK;
    }

    // Order the pieces: p₀'s first, then each one starting where the previous stopped, until the walk is back at p₀.
    ws.pieces.sort_unstable_by_key(|p| p.0);
    ws.order.clear();
    let mut cycle = 0usize;
    let mut r = p0;
    loop {
        let Ok(i) = ws.pieces.binary_search_by_key(&r, |p| p.0) else {
            unreachable!("only start rows are marked, so every piece stops at the start of another")
        };
        let (_, _, off, len, stop) = ws.pieces[i];
        ws.order.push((off, len));
        cycle += len as usize;
        r = stop;
        if r == p0 {
            break;
        }
    }
    cycle
}

/// Copy the pieces `walk_pieces` ordered into `out` (n bytes). p₀'s cycle is `cycle` rows long. It is all n rows
/// unless the block is periodic ("aaa", "abab"...): bzip2's stable sort then leaves T with several identical cycles,
/// and libbz2's walk of n steps simply goes round p₀'s cycle again. Do the same (pieces in the other cycles were
/// walked for nothing).
fn link(ws: &WalkScratch, cycle: usize, out: &mut [u8]) {
    let n = out.len();
    let mut at = 0usize;
    for &(off, len) in &ws.order {
        let (off, len) = (off as usize, len as usize);
        out[at..at + len].copy_from_slice(&ws.areas[off..off + len]);
        at += len;
    }
    while at < n {
        let take = cycle.min(n - at);
        out.copy_within(0..take, at);
        at += take;
    }
}

/// `n` (0..=255) copies of `b` appended to `out`. Most RLE1 counts are small (the indentation of the XML's lines):
/// those are one 16-byte store into spare capacity, where `resize` called memset for each (~1.7% of `bz2cat`).
#[inline(always)]
fn push_run(out: &mut Vec<u8>, b: u8, n: usize) {
    if n <= 16 {
        out.reserve(16);
        let len = out.len();
        // SAFETY: reserve(16) leaves room for 16 bytes past len; the first n of them are initialised here before
        // set_len makes them part of the vector (n <= 16).
        unsafe {
            std::ptr::write_unaligned(out.as_mut_ptr().add(len) as *mut [u8; 16], [b; 16]);
            out.set_len(len + n);
        }
    } else {
        out.resize(out.len() + n, b);
    }
}

/// Undo bzip2's first stage: after 4 equal bytes comes a count (0..=255) of further copies. Runs start afresh after
/// each count byte, and a block may end right after 4 equal bytes (libbz2 accepts that too).
///
/// Streaming: the block's bytes come in pieces (the walk's, in output order), and a run or its count may straddle
/// two pieces, so the state between pieces is the run in progress at the end of the output.
#[derive(Default)]
struct Rle1 {
    /// The byte of the run in progress.
    last: u8,
    /// How many copies of `last` end the output since the last count byte (0..=4; 4: the next byte is a count).
    run: usize,
}

impl Rle1 {
    /// One byte, as libbz2 takes them.
    #[inline]
    fn step(&mut self, b: u8, out: &mut Vec<u8>) {
        if self.run == 4 {
            push_run(out, self.last, b as usize);
            self.run = 0;
        } else if self.run > 0 && b == self.last {
            out.push(b);
            self.run += 1;
        } else {
            out.push(b);
            self.last = b;
            self.run = 1;
        }
    }

    /// The next bytes of the block, appended to `out` undone; `out` may not grow past `max_output` bytes.
    fn push(&mut self, pre: &[u8], max_output: usize, out: &mut Vec<u8>) -> Result<(), BlockError> {
        let n = pre.len();
        // Byte by byte until the run in progress lies inside `pre` (it may have begun in the previous piece) and no
        // count is due; then the bulk loop below, which looks for runs from where the current one began.
        let mut i = 0;
        while i < n && (i < 4 || self.run == 4) {
            self.step(pre[i], out);
            i += 1;
        }
        if i == n {
            return self.check(max_output, out);
        }
        // pre[i - run..i] is the run in progress (already in `out`): a run of 4 can only start there or later.
        let mut search = i - self.run;
        while i < n {
            // Copy a stretch with no 4 equal bytes in a row. A run of 4 starting at k needs pre[k] == pre[k+3]; test
            // that first (rarely true in text), then the middle two.
            let mut k = search;
            #[cfg(target_arch = "x86_64")]
            {
                k = sse2_run4(pre, k);
            }
            let run_at = loop {
                if k + 3 >= n {
                    break None;
                }
                if pre[k] == pre[k + 3] && pre[k] == pre[k + 1] && pre[k] == pre[k + 2] {
                    break Some(k);
                }
                k += 1;
            };
            match run_at {
                None => {
                    out.extend_from_slice(&pre[i..]);
                    // The run in progress at the end: the equal bytes ending `pre` since `search` (fewer than 4,
                    // or the loop would have found them).
                    self.last = pre[n - 1];
                    self.run = pre[search..].iter().rev().take_while(|&&b| b == self.last).count();
                    i = n;
                }
                Some(k) => {
                    out.extend_from_slice(&pre[i..k + 4]);
                    match pre.get(k + 4) {
                        Some(&extra) => {
                            push_run(out, pre[k], extra as usize);
                            self.run = 0;
                            i = k + 5;
                            search = i;
                        }
                        None => {
                            // The count is the next piece's first byte (or the block ends here).
                            (self.last, self.run) = (pre[k], 4);
                            i = n;
                        }
                    }
                }
            }
            if out.len() > max_output {
                return self.check(max_output, out);
            }
        }
        self.check(max_output, out)
    }

    fn check(&self, max_output: usize, out: &[u8]) -> Result<(), BlockError> {
        if out.len() > max_output {
            return Err(format!("block decodes to more than {max_output} bytes"));
        }
        Ok(())
    }
}

/// `Rle1` over a whole block at once (the tests' reference for the streaming).
#[cfg(test)]
fn undo_rle1(pre: &[u8], max_output: usize, out: &mut Vec<u8>) -> Result<(), BlockError> {
    Rle1::default().push(pre, max_output, out)
}

/// The first k >= `from` where `pre[k..k + 4]` are 4 equal bytes, 16 candidates per step while `k + 19 < pre.len()`;
/// otherwise where that stops (the scalar loop of `undo_rle1` finishes from there). Text rarely has such runs, so
/// the scalar test of every position was most of `undo_rle1`'s time.
#[cfg(target_arch = "x86_64")]
#[inline]
fn sse2_run4(pre: &[u8], from: usize) -> usize {
    use std::arch::x86_64::*;
    let mut k = from;
    while k + 19 < pre.len() {
        // SAFETY: SSE2 is part of x86_64; the loads read pre[k..k + 19] with k + 19 < pre.len().
        let mask = unsafe {
            let p = pre.as_ptr().add(k);
            let v0 = _mm_loadu_si128(p as *const __m128i);
            let v1 = _mm_loadu_si128(p.add(1) as *const __m128i);
            let v2 = _mm_loadu_si128(p.add(2) as *const __m128i);
            let v3 = _mm_loadu_si128(p.add(3) as *const __m128i);
            let eq =
                _mm_and_si128(_mm_and_si128(_mm_cmpeq_epi8(v0, v1), _mm_cmpeq_epi8(v0, v2)), _mm_cmpeq_epi8(v0, v3));
            _mm_movemask_epi8(eq) as u32
        };
        if mask != 0 {
            return k + mask.trailing_zeros() as usize;
        }
        k += 16;
    }
    k
}

const CRC_POLY: u32 = 0x04C1_1DB7;

/// Slicing-by-8 tables for bzip2's CRC-32 (MSB-first, polynomial 0x04C11DB7).
static CRC_TABLES: [[u32; 256]; 8] = {
    let mut t = [[0u32; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut c = (i as u32) << 24;
        let mut b = 0;
        while b < 8 {
            c = if c & 0x8000_0000 != 0 { (c << 1) ^ CRC_POLY } else { c << 1 };
            b += 1;
        }
        t[0][i] = c;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev << 8) ^ t[0][(prev >> 24) as usize];
            i += 1;
        }
        k += 1;
    }
    t
};

/// bzip2's block CRC of `data` (init all ones, final complement): carry-less multiplication where the CPU has it
/// (`clmul::crc32`, ~10x the tables' speed), else slicing-by-8.
pub fn crc32(data: &[u8]) -> u32 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 128
        && std::arch::is_x86_feature_detected!("pclmulqdq")
        && std::arch::is_x86_feature_detected!("ssse3")
    {
        // SAFETY: both features were just detected.
        return unsafe { clmul::crc32(data) };
    }
    crc32_tables(data)
}

/// `crc32` by slicing-by-8 tables.
pub(crate) fn crc32_tables(data: &[u8]) -> u32 {
    !crc32_update(0xFFFF_FFFF, data)
}

/// The CRC register after feeding `data` to it (no final complement): with `crc` = 0, `data`·x^32 mod P.
fn crc32_update(crc: u32, data: &[u8]) -> u32 {
    let t = &CRC_TABLES;
    let mut crc = crc;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let a = u32::from_be_bytes([c[0], c[1], c[2], c[3]]) ^ crc;
        let b = u32::from_be_bytes([c[4], c[5], c[6], c[7]]);
        crc = t[7][(a >> 24) as usize]
            ^ t[6][((a >> 16) & 0xFF) as usize]
            ^ t[5][((a >> 8) & 0xFF) as usize]
            ^ t[4][(a & 0xFF) as usize]
            ^ t[3][(b >> 24) as usize]
            ^ t[2][((b >> 16) & 0xFF) as usize]
            ^ t[1][((b >> 8) & 0xFF) as usize]
            ^ t[0][(b & 0xFF) as usize];
    }
    for &byte in chunks.remainder() {
        crc = (crc << 8) ^ t[0][((crc >> 24) ^ byte as u32) as usize];
    }
    crc
}

/// x^k mod P for bzip2's CRC polynomial P = x^32 + CRC_POLY (bit i = coefficient of x^i).
const fn xpow_mod(k: u32) -> u64 {
    let mut r: u64 = 1;
    let mut i = 0;
    while i < k {
        r <<= 1;
        if r & (1 << 32) != 0 {
            r ^= (1 << 32) | CRC_POLY as u64;
        }
        i += 1;
    }
    r
}

/// bzip2's CRC by folding 16-byte chunks with carry-less multiplication (the method of Intel's "Fast CRC Computation
/// for Generic Polynomials Using PCLMULQDQ", MSB-first form). A chunk is read as a 128-bit big-endian number `a`,
/// i.e. a polynomial whose top bit is the chunk's first bit; moving it `d` bits further on is multiplying by x^d,
/// and `a_hi·x^(d+64) + a_lo·x^d` is congruent mod P to `a_hi·(x^(d+64) mod P) + a_lo·(x^d mod P)`, two 64×32-bit
/// products that fit in 128 bits. Four chunks are in flight (512 bits a step); what is left, the 128-bit remainder
/// and the last < 16 bytes, goes through the tables, which give exactly (remainder·x^(8·tail) + tail)·x^32 mod P.
/// The initial all-ones register is the same as XOR-ing it into the first 32 bits of the message.
#[cfg(target_arch = "x86_64")]
mod clmul {
    use super::{crc32_update, xpow_mod};
    use std::arch::x86_64::*;

    /// (x^(d+64) mod P, x^d mod P) for d = 512, 384, 256, 128 bits.
    const K512: (u64, u64) = (xpow_mod(576), xpow_mod(512));
    const K384: (u64, u64) = (xpow_mod(448), xpow_mod(384));
    const K256: (u64, u64) = (xpow_mod(320), xpow_mod(256));
    const K128: (u64, u64) = (xpow_mod(192), xpow_mod(128));

    #[inline(always)]
    unsafe fn consts(k: (u64, u64)) -> __m128i {
        _mm_set_epi64x(k.0 as i64, k.1 as i64)
    }

    /// 16 bytes at `p` as a big-endian 128-bit number (lane 1 = the first 8 bytes).
    #[inline(always)]
    unsafe fn load(p: *const u8) -> __m128i {
        let rev = _mm_set_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        _mm_shuffle_epi8(_mm_loadu_si128(p as *const __m128i), rev)
    }

    /// `a` moved on by the distance whose constants are `k`.
    #[inline(always)]
    unsafe fn fold(a: __m128i, k: __m128i) -> __m128i {
        _mm_xor_si128(_mm_clmulepi64_si128(a, k, 0x11), _mm_clmulepi64_si128(a, k, 0x00))
    }

    /// SAFETY: the CPU must have pclmulqdq and ssse3; `data.len() >= 64`.
    #[target_feature(enable = "pclmulqdq,ssse3,sse2")]
    pub(super) unsafe fn crc32(data: &[u8]) -> u32 {
        debug_assert!(data.len() >= 64);
        let p = data.as_ptr();
        let mut acc = [load(p), load(p.add(16)), load(p.add(32)), load(p.add(48))];
        acc[0] = _mm_xor_si128(acc[0], _mm_set_epi64x(0xFFFF_FFFF_0000_0000u64 as i64, 0));
        let mut at = 64;
        let k512 = consts(K512);
        while at + 64 <= data.len() {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm_xor_si128(fold(*a, k512), load(p.add(at + 16 * j)));
            }
            at += 64;
        }
        let mut r = _mm_xor_si128(
            _mm_xor_si128(fold(acc[0], consts(K384)), fold(acc[1], consts(K256))),
            _mm_xor_si128(fold(acc[2], consts(K128)), acc[3]),
        );
        let k128 = consts(K128);
        while at + 16 <= data.len() {
            r = _mm_xor_si128(fold(r, k128), load(p.add(at)));
            at += 16;
        }
        let mut lanes = [0u64; 2];
        _mm_storeu_si128(lanes.as_mut_ptr() as *mut __m128i, r);
        let mut rem = [0u8; 16];
        rem[..8].copy_from_slice(&lanes[1].to_be_bytes());
        rem[8..].copy_from_slice(&lanes[0].to_be_bytes());
        !crc32_update(crc32_update(0, &rem), &data[at..])
    }
}

#[cfg(test)]
#[path = "bz2_decode_tests.rs"]
mod tests;
