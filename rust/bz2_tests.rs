//! Tests for `bz2.rs`. The reference is always plain single-threaded libbz2 (the `bzip2` crate's `MultiBzDecoder`)
//! on the real enwiki sample or on streams made from its decoded text.

use super::*;
use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use crate::test_support::sample_path;

fn sample_bytes() -> Vec<u8> {
    std::fs::read(sample_path()).unwrap()
}

fn reference(bz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    bzip2::read::MultiBzDecoder::new(bz).read_to_end(&mut out).unwrap();
    out
}

/// The sample's XML, decoded once for all tests.
fn sample_xml() -> &'static [u8] {
    static XML: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    XML.get_or_init(|| reference(&sample_bytes()))
}

/// The first 400 kB of the sample's XML at level 1: 5 small blocks, cheap to decode again and again.
fn small_l1() -> &'static [u8] {
    static BZ: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    BZ.get_or_init(|| compress(&sample_xml()[..400_000], 1))
}

/// Start bits of the real block and end-of-stream magics of a file that has no chance magics.
fn real_magics(bz: &[u8]) -> (Vec<u64>, Vec<u64>) {
    let all = naive_candidates(bz);
    let pick = |k| all.iter().filter(|c| c.1 == k).map(|c| c.0).collect::<Vec<_>>();
    (pick(Kind::Block), pick(Kind::Eos))
}

fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::new(level));
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// A file in the temp folder, removed on drop.
struct Tmp(PathBuf);

impl Tmp {
    fn new(name: &str, bytes: &[u8]) -> Tmp {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("wikigpt-bz2-{}-{n}-{name}", std::process::id()));
        std::fs::write(&p, bytes).unwrap();
        Tmp(p)
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Decode with `threads` workers (and optional injected false candidates); returns the bytes and the chunk count.
/// Every decode here also asks for the input's sha1 and checks it against the file's.
fn decode_fake(path: &Path, threads: usize, fake: &[u64]) -> Result<(Vec<u8>, usize)> {
    let cancel = AtomicBool::new(false);
    let progress = DecodeProgress::default();
    let mut out = Vec::new();
    let mut chunks = 0;
    let (n, sha1) = decode_with_fake_candidates(
        path,
        threads,
        &cancel,
        &progress,
        &mut |b| {
            out.extend_from_slice(b);
            chunks += 1;
            Ok(())
        },
        fake,
        true,
    )?;
    assert_eq!(n, out.len() as u64, "returned total");
    assert_eq!(sha1, Some(sha1_hex(Sha1::new_with_prefix(std::fs::read(path).unwrap()))), "sha1 of the input");
    assert_eq!(progress.decoded_bytes.load(Ordering::Relaxed), n, "progress.decoded_bytes");
    let len = std::fs::metadata(path).unwrap().len();
    assert_eq!(progress.compressed_bytes_done.load(Ordering::Relaxed), len, "progress.compressed_bytes_done");
    Ok((out, chunks))
}

fn decode(path: &Path, threads: usize) -> Result<Vec<u8>> {
    decode_fake(path, threads, &[]).map(|(b, _)| b)
}

/// Every magic in `bz` at any bit offset, by a naive bit-by-bit search.
fn naive_candidates(bz: &[u8]) -> Vec<(u64, Kind)> {
    let nbits = bz.len() as u64 * 8;
    let mut out = Vec::new();
    for b in 0..nbits.saturating_sub(47) {
        match get_bits(bz, b, 48) {
            BLOCK_MAGIC => out.push((b, Kind::Block)),
            EOS_MAGIC => out.push((b, Kind::Eos)),
            _ => {}
        }
    }
    out
}

fn expect_corrupt(r: Result<impl std::fmt::Debug>, len: usize, what: &str) -> (u64, String) {
    match r {
        Err(Error::CorruptDump { offset, msg, .. }) => {
            assert!(offset < len as u64, "{what}: offset {offset} outside the {len}-byte file ({msg})");
            (offset, msg)
        }
        other => panic!("{what}: expected CorruptDump, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Output identical to libbz2

#[test]
fn real_sample_matches_libbz2_on_1_2_5_threads() {
    let want = reference(&sample_bytes());
    for threads in [1, 2, 5] {
        let (got, chunks) = decode_fake(&sample_path(), threads, &[]).unwrap();
        assert!(got == want, "{threads} threads: output differs from libbz2");
        assert_eq!(got.len(), 6_089_746);
        assert_eq!(chunks, 7, "one sink call per block of the 7-block sample");
    }
}

#[test]
fn multistream_and_levels_match_libbz2() {
    let xml = sample_xml();
    // Pieces of different sizes (one empty: an empty stream is legal) at different levels, concatenated.
    let cuts = [0, 1, 150_000, 150_000, 1_000_000, 1_000_017, 2_500_000];
    let mut bz = Vec::new();
    for (i, w) in cuts.windows(2).enumerate() {
        bz.extend(compress(&xml[w[0]..w[1]], [9, 1, 5, 9, 1, 3][i]));
    }
    let f = Tmp::new("multi.bz2", &bz);
    let want = reference(&bz);
    assert!(want == xml[..2_500_000]);
    for threads in [1, 3] {
        assert!(decode(&f.0, threads).unwrap() == want, "{threads} threads");
    }
}

#[test]
fn level_1_many_blocks() {
    let xml = &sample_xml()[..3_000_000];
    let bz = compress(xml, 1);
    let f = Tmp::new("l1.bz2", &bz);
    let (got, chunks) = decode_fake(&f.0, 2, &[]).unwrap();
    assert!(got == xml);
    assert!(chunks > 25, "level 1 cuts 3 MB into 100 kB blocks, got {chunks}");
    assert!(decode(&f.0, 4).unwrap() == xml);
}

#[test]
fn tiny_inputs() {
    for data in [&b""[..], b"x", b"ab", b"<page/>\n"] {
        for level in [1, 9] {
            let bz = compress(data, level);
            let f = Tmp::new("tiny.bz2", &bz);
            for threads in [1, 2] {
                assert_eq!(decode(&f.0, threads).unwrap(), data, "{data:?} level {level}");
            }
        }
    }
    // Two empty streams back to back.
    let bz = [compress(b"", 9), compress(b"", 1)].concat();
    let f = Tmp::new("empty2.bz2", &bz);
    assert_eq!(decode(&f.0, 2).unwrap(), b"");
}

#[test]
fn incompressible_and_run_heavy_blocks() {
    // Pseudo-random bytes: compressed blocks are larger than their input. 10 MB of one byte: the first RLE makes
    // each block expand ~45× on decoding, past the first output reservation.
    let mut x = 0x9E3779B97F4A7C15u64;
    let random: Vec<u8> = (0..1_500_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let runs = vec![b'='; 10_000_000];
    for data in [random, runs] {
        let bz = compress(&data, 9);
        let f = Tmp::new("odd.bz2", &bz);
        assert!(decode(&f.0, 2).unwrap() == data);
    }
}

#[test]
fn plain_xml_passthrough() {
    let xml = sample_xml();
    for prefix in [&b""[..], b"\xEF\xBB\xBF", b"\n  \t"] {
        let body = [prefix, xml].concat();
        let f = Tmp::new("plain.xml", &body);
        assert_eq!(detect(&f.0).unwrap(), InputKind::PlainXml);
        let (got, chunks) = decode_fake(&f.0, 2, &[]).unwrap();
        assert!(got == body);
        assert_eq!(chunks, body.len().div_ceil(XML_PIECE));
    }
    assert_eq!(detect(&sample_path()).unwrap(), InputKind::Bzip2);
}

// ---------------------------------------------------------------------------------------------------------------
// The scanner and false candidates

#[test]
fn scanner_finds_every_magic_at_every_shift_across_reads() {
    // Random bytes with both magics planted at all 8 bit shifts, plus the real sample.
    let mut x = 12345u64;
    let mut data: Vec<u8> = (0..20_000)
        .map(|_| {
            x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (x >> 33) as u8
        })
        .collect();
    for (i, magic) in [BLOCK_MAGIC, EOS_MAGIC].into_iter().enumerate() {
        for s in 0..8u64 {
            let bit = 1000 + (i as u64 * 8 + s) * 1000 + s;
            for k in 0..48 {
                let (byte, mask) = (((bit + k) / 8) as usize, 0x80u8 >> ((bit + k) % 8));
                if (magic >> (47 - k)) & 1 == 1 {
                    data[byte] |= mask;
                } else {
                    data[byte] &= !mask;
                }
            }
        }
    }
    for input in [data, sample_bytes()] {
        let want = naive_candidates(&input);
        // Pieces shorter and longer than the scanner's 32-position vector test, so magics fall on both sides of it.
        for piece in [1, 5, 7, 31, 33, 35, 64, 100, 4096, input.len()] {
            let mut sc = Scanner::new();
            let mut got = Vec::new();
            for chunk in input.chunks(piece) {
                sc.scan(chunk, &mut got);
            }
            assert_eq!(got, want, "read pieces of {piece}");
        }
    }
}

#[test]
fn false_candidates_are_merged_away() {
    // A block whose compressed bits contain a magic by chance needs ~2^48 tries to construct, so inject false
    // candidates instead, everywhere a real one could confuse the structure: inside blocks (also two in one
    // block, and one bit after a real one), inside the header, the footer, the padding, and between streams.
    let xml = &sample_xml()[..1_500_000];
    let bz = [compress(&xml[..600_000], 2), compress(&xml[600_000..], 3)].concat();
    let f = Tmp::new("fake.bz2", &bz);
    let (blocks, eos) = real_magics(&bz);
    assert_eq!((eos.len(), blocks.len()), (2, 6), "no chance magics in this input");
    let second_stream = eos[0].div_ceil(8) * 8 + 80; // bit after the first footer's padding, roughly
    let mut fake = vec![
        8,                 // inside the first stream header
        33,                // one bit after the first block's magic
        blocks[1] + 5_000, // two inside one block
        blocks[1] + 70_000,
        blocks[3] - 1,            // just before a real block
        eos[0] - 3,               // just before the first footer
        eos[0] + 50,              // inside the footer's CRC
        second_stream + 4,        // the padding or the next header
        second_stream + 16,       // the second stream header
        eos[1] + 60,              // the last footer
        bz.len() as u64 * 8 - 49, // the final bits
    ];
    fake.retain(|b| !blocks.contains(b));
    for threads in [1, 3] {
        let (got, chunks) = decode_fake(&f.0, threads, &fake).unwrap();
        assert!(got == xml, "{threads} threads");
        assert_eq!(chunks, blocks.len(), "every block delivered once, whole");
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Errors

#[test]
fn truncated_files_are_reported_as_truncated() {
    let bz = small_l1();
    let (blocks, _) = real_magics(bz);
    let last = (blocks[blocks.len() - 1] / 8) as usize;
    for cut in [4, 5, 10, 30_000, bz.len() / 2, last + 3, last + 20, bz.len() - 10, bz.len() - 5, bz.len() - 1] {
        let f = Tmp::new("cut.bz2", &bz[..cut]);
        for threads in [1, 2] {
            let (_, msg) = expect_corrupt(decode(&f.0, threads), cut, &format!("cut at {cut}"));
            assert!(msg.contains("truncated"), "cut at {cut}: {msg}");
        }
    }
    // The real sample, cut in its middle.
    let real = sample_bytes();
    let f = Tmp::new("cutreal.bz2", &real[..real.len() / 2]);
    let (_, msg) = expect_corrupt(decode(&f.0, 2), real.len() / 2, "real sample cut");
    assert!(msg.contains("truncated"), "{msg}");
    // Inside the header of a second stream.
    let two = [bz.to_vec(), b"BZ".to_vec()].concat();
    let f = Tmp::new("cut2.bz2", &two);
    let (off, msg) = expect_corrupt(decode(&f.0, 2), two.len(), "cut in 2nd header");
    assert!(msg.contains("truncated") && off == bz.len() as u64, "{off}: {msg}");
}

#[test]
fn flipped_bytes_are_caught_with_their_block() {
    let bz = small_l1().to_vec();
    let (blocks, _) = real_magics(&bz);
    let blocks: Vec<u64> = blocks.iter().map(|b| b / 8).collect();
    // In the middle of block 2's data, and in block 3's stored CRC: both fail in that block.
    for (at, block) in [((blocks[2] + blocks[3]) / 2, 2), (blocks[3] + 7, 3)] {
        let mut bad = bz.clone();
        bad[at as usize] ^= 0x10;
        let f = Tmp::new("flip.bz2", &bad);
        for threads in [1, 2] {
            let (off, msg) = expect_corrupt(decode(&f.0, threads), bad.len(), "flip");
            assert_eq!(off, blocks[block], "flip at {at}: {msg}");
            assert!(msg.contains("bad bzip2 block"), "{msg}");
        }
    }
    // In the footer's combined CRC of the real sample.
    let bz = sample_bytes();
    let eos = real_magics(&bz).1[0];
    let mut bad = bz.clone();
    bad[(eos / 8 + 7) as usize] ^= 0x01;
    let f = Tmp::new("flipcrc.bz2", &bad);
    let (off, msg) = expect_corrupt(decode(&f.0, 2), bad.len(), "stream crc");
    assert_eq!(off, eos / 8);
    assert!(msg.contains("stream CRC mismatch"), "{msg}");
}

#[test]
fn garbage_is_rejected() {
    let f = Tmp::new("garbage.bz2", b"PK\x03\x04 this is a zip file");
    let (off, msg) = expect_corrupt(decode(&f.0, 2), 24, "garbage");
    assert_eq!(off, 0);
    assert!(msg.starts_with("not a bzip2 file (starts with b\"PK\\x03\\x04"), "{msg}");
    let f = Tmp::new("empty.bz2", b"");
    assert!(matches!(detect(&f.0), Err(Error::CorruptDump { .. })));
    // A valid stream followed by something that is not a stream.
    let bz = [sample_bytes(), b"\0\0\0\0junk".to_vec()].concat();
    let f = Tmp::new("trailing.bz2", &bz);
    let (_, msg) = expect_corrupt(decode(&f.0, 2), bz.len(), "trailing");
    assert!(msg.contains("trailing garbage"), "{msg}");
    // A valid header, then garbage with no magic for longer than any block can be.
    let mut junk = b"BZh9".to_vec();
    junk.extend(std::iter::repeat_n(0u8, 3_000_000));
    let f = Tmp::new("junk.bz2", &junk);
    let (off, msg) = expect_corrupt(decode(&f.0, 2), junk.len(), "junk");
    assert_eq!(off, 0, "{msg}");
}

#[test]
fn zero_threads_is_invalid() {
    let cancel = AtomicBool::new(false);
    let r = decode_parallel(&sample_path(), 0, &cancel, &DecodeProgress::default(), &mut |_| Ok(()));
    assert!(matches!(r, Err(Error::Invalid(_))));
}

// ---------------------------------------------------------------------------------------------------------------
// Cancellation, sink errors

#[test]
fn cancel_stops_promptly() {
    let f = Tmp::new("cancel.bz2", small_l1());
    // Set from the sink: not one more chunk is delivered.
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let r = decode_parallel(&f.0, 2, &cancel, &DecodeProgress::default(), &mut |_| {
        calls += 1;
        cancel.store(true, Ordering::Relaxed);
        Ok(())
    });
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    assert_eq!(calls, 1);
    // Set before the start.
    let cancel = AtomicBool::new(true);
    let r = decode_parallel(&f.0, 2, &cancel, &DecodeProgress::default(), &mut |_| Ok(()));
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    // Set from another thread while the sink is slow (all 5 blocks would take 1.5 s): returns after the chunk
    // that was in the sink when the flag was set.
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let t0 = Instant::now();
    let r = std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(30));
            cancel.store(true, Ordering::Relaxed);
        });
        decode_parallel(&f.0, 2, &cancel, &DecodeProgress::default(), &mut |_| {
            calls += 1;
            std::thread::sleep(Duration::from_millis(300));
            Ok(())
        })
    });
    assert!(matches!(r, Err(Error::Interrupted)), "{r:?}");
    // 0 when a loaded machine had not decoded the first block within 30 ms.
    assert!(calls <= 1, "{calls} chunks delivered after cancel");
    assert!(t0.elapsed() < Duration::from_millis(1000), "took {:?}", t0.elapsed());
}

#[test]
fn sink_error_stops_everything() {
    let cancel = AtomicBool::new(false);
    let mut calls = 0;
    let r = decode_parallel(&sample_path(), 3, &cancel, &DecodeProgress::default(), &mut |_| {
        calls += 1;
        if calls == 2 {
            return Err(Error::Invalid("disk full".into()));
        }
        Ok(())
    });
    assert!(matches!(r, Err(Error::Invalid(ref m)) if m == "disk full"), "{r:?}");
    assert_eq!(calls, 2);
}
