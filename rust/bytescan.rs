//! Finding the next interesting byte: a small set of ASCII bytes searched 16 bytes at a time.
//!
//! Shared by the stages that skip plain text to the next byte that matters: `dump` (XML text unescaping) and
//! `wikitext` (the cleaner's scans). It sits below both so that neither depends on the other for it.

/// A small set of ASCII bytes to search for. Every pass of the cleaner spends most of its time skipping plain text
/// to the next byte that can start markup; `find` does that 16 bytes per step with SSE2 (part of the x86_64 baseline,
/// so no feature detection), and with one table lookup per byte elsewhere and for the tail. All members are ASCII,
/// so the positions found are always `str` char boundaries.
pub(crate) struct ByteSet<const N: usize> {
    pub(crate) bytes: [u8; N],
    table: [bool; 256],
}

impl<const N: usize> ByteSet<N> {
    pub(crate) const fn new(bytes: [u8; N]) -> Self {
        let mut table = [false; 256];
        let mut i = 0;
        while i < N {
            assert!(bytes[i] < 0x80, "ByteSet members must be ASCII");
            table[bytes[i] as usize] = true;
            i += 1;
        }
        ByteSet { bytes, table }
    }

    #[inline(always)]
    pub(crate) fn contains(&self, b: u8) -> bool {
        self.table[b as usize]
    }

    /// Position of the first member in `hay[from..]` (an index into `hay`), or `hay.len()` if there is none.
    #[inline]
    pub(crate) fn find(&self, hay: &[u8], from: usize) -> usize {
        #[cfg(target_arch = "x86_64")]
        {
            sse2::find(hay, from, &self.bytes).unwrap_or_else(|i| self.find_scalar(hay, i))
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self.find_scalar(hay, from)
        }
    }

    #[inline]
    fn find_scalar(&self, hay: &[u8], from: usize) -> usize {
        let mut i = from;
        while i < hay.len() && !self.contains(hay[i]) {
            i += 1;
        }
        i
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod sse2 {
    use std::arch::x86_64::*;

    /// 16 bytes of `hay` from `i`, each 0xFF where the byte is one of `set`.
    ///
    /// SAFETY: the caller ensures `i + 16 <= hay.len()` (SSE2 itself is always there on x86_64).
    #[inline(always)]
    pub(crate) unsafe fn matches<const N: usize>(hay: &[u8], i: usize, set: &[u8; N]) -> __m128i {
        let v = _mm_loadu_si128(hay.as_ptr().add(i) as *const __m128i);
        let mut m = _mm_cmpeq_epi8(v, _mm_set1_epi8(set[0] as i8));
        for &c in &set[1..] {
            m = _mm_or_si128(m, _mm_cmpeq_epi8(v, _mm_set1_epi8(c as i8)));
        }
        m
    }

    /// The first position `i >= from` (16-byte steps while 16 bytes remain) where `hay[i]` is one of `set`.
    /// `Err(i)`: no hit before the last partial block, which starts at `i` (the caller finishes it with scalar code).
    #[inline(always)]
    pub(crate) fn find<const N: usize>(hay: &[u8], from: usize, set: &[u8; N]) -> Result<usize, usize> {
        let mut i = from;
        while i + 16 <= hay.len() {
            // SAFETY: i + 16 <= hay.len().
            let mask = unsafe { _mm_movemask_epi8(matches(hay, i, set)) } as u32;
            if mask != 0 {
                return Ok(i + mask.trailing_zeros() as usize);
            }
            i += 16;
        }
        Err(i)
    }
}
