//! Tests for `bz2_decode.rs`: the native block decoder alone (no libbz2 fallback), block by block, against plain
//! libbz2 (the `bzip2` crate) on the real enwiki sample and on data built to hit every path (runs, all byte values,
//! tiny and full blocks, long Huffman codes), plus corruption that must be rejected.

use super::*;
use std::io::{Read, Write};

use crate::test_support::sample_path;
const BLOCK_MAGIC: u64 = 0x3141_5926_5359;
const EOS_MAGIC: u64 = 0x1772_4538_5090;

fn sample_xml() -> &'static [u8] {
    static XML: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    XML.get_or_init(|| {
        let bz = std::fs::read(sample_path()).unwrap();
        let mut out = Vec::new();
        bzip2::read::MultiBzDecoder::new(&bz[..]).read_to_end(&mut out).unwrap();
        out
    })
}

fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn bits_at(data: &[u8], at: u64, n: u32) -> u64 {
    let mut v = 0u64;
    for k in 0..n as u64 {
        let b = at + k;
        let bit = data.get((b / 8) as usize).map_or(0, |byte| (byte >> (7 - b % 8)) & 1);
        v = (v << 1) | bit as u64;
    }
    v
}

/// Bit offsets of every block magic, and of the end-of-stream magic, of a one-stream file (bit by bit: the inputs
/// here are small, and libbz2's output has no chance magics in them, which the decode below would reveal).
fn block_bounds(bz: &[u8]) -> (Vec<u64>, u64) {
    let total = bz.len() as u64 * 8;
    let mut blocks = Vec::new();
    let mut window = 0u64;
    for b in 0..total {
        window = ((window << 1) | bits_at(bz, b, 1)) & ((1 << 48) - 1);
        if b >= 47 {
            let start = b - 47;
            if window == BLOCK_MAGIC {
                blocks.push(start);
            } else if window == EOS_MAGIC {
                return (blocks, start);
            }
        }
    }
    panic!("no end-of-stream magic");
}

/// Decode every block of a libbz2-made stream with the native decoder alone; checks each block's CRC chain against
/// the stream footer too.
fn native_decode(bz: &[u8]) -> Vec<u8> {
    let level = bz[3] - b'0';
    let (blocks, eos) = block_bounds(bz);
    let mut scratch = Scratch::default();
    let mut all = Vec::new();
    let mut combined = 0u32;
    for (i, &start) in blocks.iter().enumerate() {
        let end = blocks.get(i + 1).copied().unwrap_or(eos);
        let from = (start / 8) as usize;
        let mut out = Vec::new();
        match decode_block(&bz[from..], (start % 8) as u32, end - start, level, 50_000_000, &mut scratch, &mut out) {
            Ok(Outcome::Done(crc)) => {
                assert_eq!(crc, crc32(&out));
                combined = combined.rotate_left(1) ^ crc;
            }
            Ok(Outcome::Randomised) => panic!("libbz2 never writes randomised blocks"),
            Err(e) => panic!("block {i} at bit {start}: {e}"),
        }
        all.extend_from_slice(&out);
    }
    assert_eq!(combined as u64, bits_at(bz, eos + 48, 32), "stream CRC");
    all
}

fn check_roundtrip(data: &[u8], level: u32) {
    let bz = compress(data, level);
    let got = native_decode(&bz);
    assert!(got == data, "level {level}: {} bytes decoded, {} expected", got.len(), data.len());
}

/// xorshift64*: deterministic pseudo-random bytes without a dependency.
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed | 1;
    move || {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        s.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn crc_check_value() {
    // CRC-32/BZIP2 of "123456789" (the catalogue's check value).
    assert_eq!(crc32(b"123456789"), 0xFC89_1918);
    assert_eq!(crc32(b""), 0);
    // The slicing-by-8 path and the byte path agree at every length and alignment.
    let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
    for len in 0..data.len() {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in &data[..len] {
            crc = (crc << 8) ^ CRC_TABLES[0][((crc >> 24) ^ b as u32) as usize];
        }
        assert_eq!(crc32(&data[..len]), !crc, "len {len}");
    }
    // The carry-less-multiplication path (from 128 bytes) agrees with the tables at every length up to 3 kB, at
    // odd offsets, on pseudo-random bytes, and on all-zero and all-one data.
    let mut x = 0x9E37_79B9u32;
    let data: Vec<u8> = (0..3100)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    for off in [0usize, 1, 7] {
        for len in 0..3000 {
            assert_eq!(crc32(&data[off..off + len]), crc32_tables(&data[off..off + len]), "off {off} len {len}");
        }
    }
    for fill in [0u8, 0xFF] {
        let d = vec![fill; 100_003];
        assert_eq!(crc32(&d), crc32_tables(&d));
    }
}

#[test]
fn real_sample_every_level() {
    let xml = sample_xml();
    for level in [1, 5, 9] {
        check_roundtrip(xml, level);
    }
}

#[test]
fn the_bundled_file_itself() {
    // The real dump excerpt as Wikimedia compressed it (not re-compressed by us).
    let bz = std::fs::read(sample_path()).unwrap();
    assert!(native_decode(&bz) == sample_xml());
}

#[test]
fn tiny_blocks() {
    // One byte, short runs around the RLE1 threshold of 4, and a block that ends right on a run.
    for data in [&b"a"[..], b"ab", b"aaa", b"aaaa", b"aaaaa", b"aaaab", b"abbbb", b"abbbbbbbbbbbbbbbbb"] {
        check_roundtrip(data, 9);
    }
    // Every length up to 40 of a two-letter alphabet (small walks, pieces of one byte).
    for len in 1..40 {
        let data: Vec<u8> = (0..len).map(|i| if i % 7 < 4 { b'x' } else { b'y' }).collect();
        check_roundtrip(&data, 1);
    }
}

#[test]
fn runs_and_all_byte_values() {
    let mut data = Vec::new();
    // Runs of every length 1..=300 of every byte value: RLE1 counts 0..=255 and runs split across counts.
    for len in 1..=300usize {
        data.extend(std::iter::repeat_n((len % 256) as u8, len));
    }
    check_roundtrip(&data, 9);
    // One long run: a block of a single symbol (RUNA/RUNB runs of ~900k after RLE1).
    check_roundtrip(&vec![0u8; 3_000_000], 9);
    check_roundtrip(&vec![b'z'; 120_000], 1);
}

#[test]
fn incompressible_and_skewed_data() {
    // Random bytes: all 256 symbols in use, long Huffman codes, MTF indices beyond the 16-byte fast shift.
    let mut r = rng(7);
    let random: Vec<u8> = (0..1_500_000).map(|_| r() as u8).collect();
    check_roundtrip(&random, 9);
    // A steeply skewed distribution gives codes longer than the 10-bit lookup table (slow path).
    let mut r = rng(11);
    let skewed: Vec<u8> = (0..400_000)
        .map(|_| {
            let x = r();
            (x.trailing_zeros().min(40) as u8).wrapping_mul(3).wrapping_add((x >> 60) as u8 & 1)
        })
        .collect();
    check_roundtrip(&skewed, 2);
}

#[test]
fn many_random_shapes() {
    // Mixtures of text, runs and noise at random block sizes: exercises piece boundaries of the walk at many n.
    let xml = sample_xml();
    let mut r = rng(2026);
    for round in 0..24 {
        let mut data = Vec::new();
        let target = 1000 + (r() % 250_000) as usize;
        while data.len() < target {
            match r() % 3 {
                0 => {
                    let at = (r() % (xml.len() as u64 - 5000)) as usize;
                    data.extend_from_slice(&xml[at..at + 1 + (r() % 5000) as usize]);
                }
                1 => data.extend(std::iter::repeat_n(r() as u8, 1 + (r() % 600) as usize)),
                _ => data.extend((0..1 + r() % 300).map(|_| r() as u8)),
            }
        }
        let level = 1 + (round % 9) as u32;
        check_roundtrip(&data, level);
    }
}

/// The first block of the sample's XML at level 1 (about 100 kB of text), with its bounds.
fn one_block() -> (Vec<u8>, u64, u64) {
    let bz = compress(&sample_xml()[..300_000], 1);
    let (blocks, _) = block_bounds(&bz);
    (bz.clone(), blocks[0], blocks[1])
}

#[test]
fn every_flipped_bit_is_rejected() {
    let (bz, start, end) = one_block();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    // Every bit of the header and tables, then a stride through the Huffman data.
    let positions: Vec<u64> = (start..start + 2000).chain((start + 2000..end).step_by(97)).collect();
    for &bit in &positions {
        let mut bad = bz.clone();
        bad[(bit / 8) as usize] ^= 0x80 >> (bit % 8);
        let from = (start / 8) as usize;
        let r = decode_block(&bad[from..], (start % 8) as u32, end - start, 1, 50_000_000, &mut scratch, &mut out);
        match r {
            Err(_) => {}
            // Bit 80 after the magic is the "randomised" flag: handed to libbz2, which then fails the CRC.
            Ok(Outcome::Randomised) => assert_eq!(bit - start, 80),
            Ok(Outcome::Done(_)) => panic!("flipped bit {} of the block was accepted", bit - start),
        }
    }
}

#[test]
fn wrong_end_is_rejected() {
    let (bz, start, end) = one_block();
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let from = (start / 8) as usize;
    let skip = (start % 8) as u32;
    let ok = decode_block(&bz[from..], skip, end - start, 1, 50_000_000, &mut scratch, &mut out);
    assert!(matches!(ok, Ok(Outcome::Done(_))));
    for delta in [-9i64, -1, 1, 8, 1000] {
        let nbits = (end - start) as i64 + delta;
        let r = decode_block(&bz[from..], skip, nbits as u64, 1, 50_000_000, &mut scratch, &mut out);
        assert!(r.is_err(), "an end {delta} bits off was accepted");
    }
    // Cut short: the data itself ends inside the block.
    let cut = &bz[from..(end / 8) as usize - 100];
    assert!(decode_block(cut, skip, end - start, 1, 50_000_000, &mut scratch, &mut out).is_err());
    // Not bzip2 at all.
    assert!(decode_block(b"not a block at all, just text", 0, 200, 9, 50_000_000, &mut scratch, &mut out).is_err());
}

#[test]
fn output_cap_is_enforced() {
    let data = vec![b'q'; 500_000];
    let bz = compress(&data, 9);
    let (blocks, eos) = block_bounds(&bz);
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let r = decode_block(
        &bz[(blocks[0] / 8) as usize..],
        (blocks[0] % 8) as u32,
        eos - blocks[0],
        9,
        100_000,
        &mut scratch,
        &mut out,
    );
    assert!(r.unwrap_err().contains("more than 100000 bytes"));
}

#[test]
fn rle1_streams_across_any_split() {
    // RLE1 runs over the walk's pieces, so a run of 4, or its count byte, may fall on either side of a cut. Inputs
    // dense in runs (two byte values, counts of every size), cut everywhere (short inputs) or at random (long ones),
    // against libbz2's byte-at-a-time rule.
    let reference = |pre: &[u8]| {
        let mut r = Rle1::default();
        let mut out = Vec::new();
        for &b in pre {
            r.step(b, &mut out);
        }
        out
    };
    let mut next = rng(7);
    for len in [0usize, 1, 3, 4, 5, 6, 9, 17, 40, 100, 5000] {
        for _ in 0..20 {
            let pre: Vec<u8> = (0..len).map(|_| if next() % 5 == 0 { (next() % 256) as u8 } else { b'a' }).collect();
            let want = reference(&pre);
            let mut whole = Vec::new();
            undo_rle1(&pre, usize::MAX, &mut whole).unwrap();
            assert_eq!(whole, want, "whole, {len} bytes");
            let cuts: Vec<Vec<usize>> = if len <= 40 {
                (0..=len).flat_map(|a| (a..=len).map(move |b| vec![a, b])).collect()
            } else {
                (0..50).map(|_| (0..8).map(|_| (next() as usize) % (len + 1)).collect()).collect()
            };
            for mut cut in cuts {
                cut.sort_unstable();
                let mut r = Rle1::default();
                let mut got = Vec::new();
                let mut from = 0;
                for &c in cut.iter().chain([len].iter()) {
                    r.push(&pre[from..c], usize::MAX, &mut got).unwrap();
                    from = c;
                }
                assert_eq!(got, want, "{len} bytes cut at {cut:?}");
            }
        }
    }
    // The output cap holds across pieces too.
    let mut r = Rle1::default();
    let mut out = Vec::new();
    r.push(b"aaaa", 200, &mut out).unwrap();
    assert!(r.push(&[255], 200, &mut out).unwrap_err().contains("more than 200 bytes"));
}

#[test]
fn walk_goes_round_a_short_cycle_like_libbz2() {
    // T with two cycles, (0 1) and (2 3), as periodic blocks give: libbz2 walks n steps round p₀'s cycle.
    // walk's table is ROWS long (rows past the block's n are never read); `table` pads the block's entries to that.
    let table = |entries: Vec<u32>| -> Box<[u32; ROWS]> {
        let mut t = entries;
        t.resize(ROWS, 0);
        t.into_boxed_slice().try_into().unwrap()
    };
    let mut tt = table(vec![(1 << 8) | b'a' as u32, b'b' as u32, (3 << 8) | b'c' as u32, (2 << 8) | b'd' as u32]);
    let mut out = vec![0u8; 4];
    let mut ws = WalkScratch::default();
    walk(&mut tt, 0, &mut out, &mut ws);
    assert_eq!(&out, b"baba");
    // Many pieces, two interleaved cycles (T[i] = i + 2): out[k] = ll[T^(k+1)(origPtr)].
    let n = 100_000u32;
    let byte = |i: u32| (i % 251) as u8;
    let mut tt = table((0..n).map(|i| (((i + 2) % n) << 8) | byte(i) as u32).collect());
    let mut out = vec![0u8; n as usize];
    walk(&mut tt, 0, &mut out, &mut ws);
    assert!(out.iter().enumerate().all(|(k, &b)| b == byte((2 * (k as u32 + 1)) % n)));
    // One cycle (T[i] = i + 1) from origPtr n - 1 visits the rows in order.
    let mut tt = table((0..n).map(|i| (((i + 1) % n) << 8) | byte(i) as u32).collect());
    walk(&mut tt, n as usize - 1, &mut out, &mut ws);
    assert!(out.iter().enumerate().all(|(k, &b)| b == byte(k as u32)));
    // The marks are gone afterwards.
    assert!(tt.iter().all(|&x| x & MARK == 0));
}

#[test]
fn periodic_blocks() {
    // Blocks whose rotations repeat give T several cycles (the case above) in real data.
    for unit in [&b"ab"[..], b"abc", b"<page>", b"aab"] {
        for reps in [1usize, 2, 3, 17, 5000, 40_000] {
            check_roundtrip(&unit.repeat(reps), 9);
        }
    }
}

#[test]
fn mutated_blocks_never_panic_or_pass() {
    // Random multi-byte damage, insertions, deletions and cuts of real blocks: every outcome is an error (or the
    // randomised flag), never a panic, a hang or a wrong block accepted.
    let (bz, start, end) = one_block();
    let from = (start / 8) as usize;
    let skip = (start % 8) as u32;
    let block = &bz[from..(end / 8) as usize + 1];
    let mut scratch = Scratch::default();
    let mut out = Vec::new();
    let mut r = rng(99);
    for round in 0..400 {
        let mut bad = block.to_vec();
        match round % 4 {
            0 => {
                for _ in 0..1 + r() % 8 {
                    let at = 6 + (r() % (bad.len() as u64 - 6)) as usize;
                    bad[at] = r() as u8;
                }
            }
            1 => {
                let at = 6 + (r() % (bad.len() as u64 - 6)) as usize;
                bad.insert(at, r() as u8);
            }
            2 => {
                let at = 6 + (r() % (bad.len() as u64 - 6)) as usize;
                bad.remove(at);
            }
            _ => bad.truncate(6 + (r() % (bad.len() as u64 - 6)) as usize),
        }
        // Any other end: must not panic, whatever it returns.
        let _ = decode_block(&bad, skip, bad.len() as u64 * 8 - skip as u64, 1, 50_000_000, &mut scratch, &mut out);
        // The real end: rejected unless the damage left the block's own bits as they were (e.g. a byte inserted
        // into a run of equal bytes, or damage past its last bit).
        let nbits = end - start;
        let intact = (0..nbits).all(|k| bits_at(&bad, skip as u64 + k, 1) == bits_at(block, skip as u64 + k, 1));
        let res = decode_block(&bad, skip, nbits, 1, 50_000_000, &mut scratch, &mut out);
        if !intact {
            assert!(!matches!(res, Ok(Outcome::Done(_))), "round {round}: a damaged block was accepted");
        }
    }
}

#[test]
fn blocks_written_by_lbzip2() {
    // Another encoder's choices (block cuts, Huffman tables, selectors), read by the native decoder alone. lbzip2 is a
    // Debian package, not a build dependency: without it the test says so and checks nothing.
    let run = |level: &str| {
        let mut child = std::process::Command::new("lbzip2")
            .args([level, "-n", "2", "-c"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .ok()?;
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || stdin.write_all(sample_xml()).unwrap());
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        assert!(out.status.success());
        Some(out.stdout)
    };
    for level in ["-1", "-9"] {
        let Some(bz) = run(level) else {
            eprintln!("lbzip2 not installed: skipped");
            return;
        };
        assert!(native_decode(&bz) == sample_xml(), "lbzip2 {level}");
    }
}

/// Both MTF lists (the portable u128 one and the SSSE3 shuffle the decoder uses where the CPU has it) against a
/// plain `Vec` moved place by place, over random moves: mostly the first 20 places, as in text, and every place of
/// the 256 now and then (the `rest` part and its carry from the head). The block tests above run only the list
/// this CPU gets, so this is where the other one is checked.
#[test]
fn mtf_lists_match_a_plain_list() {
    let mut next = rng(7);
    let order: [u8; 256] = std::array::from_fn(|i| (i as u8).wrapping_mul(167).wrapping_add(3));
    let mut plain: Vec<u8> = order.to_vec();
    let mut portable = Mtf::new(&order);
    #[cfg(target_arch = "x86_64")]
    let mut shuffle = std::arch::is_x86_feature_detected!("ssse3").then(|| MtfShuffle::new(&order));
    for _ in 0..200_000 {
        let idx = if next() % 4 == 0 { (next() % 256) as usize } else { (next() % 20) as usize };
        let b = plain.remove(idx);
        plain.insert(0, b);
        assert_eq!(portable.take(idx), b, "portable list, place {idx}");
        assert_eq!(portable.front(), b);
        #[cfg(target_arch = "x86_64")]
        if let Some(s) = shuffle.as_mut() {
            assert_eq!(s.take(idx), b, "shuffle list, place {idx}");
            assert_eq!(s.front(), b);
        }
    }
}
