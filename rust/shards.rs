//! Token shards in llm.c's format (karpathy/llm.c `dev/data`): a 256 × int32 little-endian header
//! (`[0]` = 20240520 magic, `[1]` = 1 version, `[2]` = token count, the rest 0), then the tokens as little-endian
//! uint16. A shard is exactly 1024 + 2·count bytes; readers check all of it. python/wikigpt/shards.py reads the same
//! files (and nanoGPT users can `np.memmap(path, np.uint16, offset=1024)`).
//!
//! The writer is sequential and buffered: shard writing is a small fraction of the pipeline's work (2 bytes out per
//! ~4.7 bytes of text in), so one thread per split keeps up.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

pub const MAGIC: i32 = 20240520;
pub const VERSION: i32 = 1;
pub const HEADER_BYTES: usize = 1024;
/// Write buffer per open shard.
const BUF_BYTES: usize = 2 << 20;
/// Tokens converted to u16 bytes per step (a stack buffer; keeps the conversion in L1).
const CHUNK_TOKENS: usize = 4096;

/// One finished shard, as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ShardInfo {
    /// File name only (`train_000000.bin`), relative to the dataset folder.
    pub file: String,
    pub tokens: u64,
    /// Lowercase hex SHA-256 of the whole file, header included.
    pub sha256: String,
}

/// The 1024-byte header for a shard of `count` tokens.
fn header(count: u64) -> [u8; HEADER_BYTES] {
    let mut h = [0u8; HEADER_BYTES];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4..8].copy_from_slice(&VERSION.to_le_bytes());
    h[8..12].copy_from_slice(&(count as i32).to_le_bytes());
    h
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `{split}_{NNNNNN}.bin` shards of exactly `tokens_per_shard` tokens (the last may be shorter) into a folder,
/// numbering from `first_index`. Each shard is written to `.{name}.tmp`, its header patched with the final count,
/// fsynced, then renamed to its final name (and the folder fsynced), so a crash never leaves a half shard under a
/// final name. Dropping the writer without [`ShardWriter::finish`] removes the unfinished temp file; shards already
/// finished stay.
pub struct ShardWriter {
    dir: PathBuf,
    split: String,
    next_index: u32,
    tokens_per_shard: u64,
    open: Option<OpenShard>,
    done: Vec<ShardInfo>,
    written: u64,
}

/// The shard being written. Its Drop removes the temp file unless it was renamed into place.
struct OpenShard {
    name: String,
    /// `Some` until the rename succeeds.
    tmp: Option<PathBuf>,
    out: BufWriter<File>,
    count: u64,
    /// SHA-256 of the bytes written so far, header included (see `ShardWriter::open_next`).
    hasher: Sha256,
}

impl Drop for OpenShard {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            // Best effort: this runs on error paths, where the first error is the one to report.
            let _ = fs::remove_file(tmp);
        }
    }
}

impl ShardWriter {
    /// A writer for `dir` (which must exist). `split` names the files (`train`, `val`, ...): letters, digits, `_`, `-`.
    /// `tokens_per_shard` must be 1..=2^31-1 (the header's count is an int32).
    pub fn new(dir: &Path, split: &str, first_index: u32, tokens_per_shard: u64) -> Result<Self> {
        if tokens_per_shard == 0 || tokens_per_shard > i32::MAX as u64 {
            return Err(Error::Invalid(format!(
                "tokens per shard must be between 1 and {} (llm.c's header holds an int32 count), got {tokens_per_shard}",
                i32::MAX
            )));
        }
        if split.is_empty() || !split.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
            return Err(Error::Invalid(format!(
                "shard split name {split:?} must be non-empty letters, digits, '_' or '-'"
            )));
        }
        let meta = fs::metadata(dir).map_err(|e| Error::io(dir, e))?;
        if !meta.is_dir() {
            return Err(Error::Invalid(format!("{}: not a directory (shard output folder)", dir.display())));
        }
        Ok(ShardWriter {
            dir: dir.to_path_buf(),
            split: split.to_string(),
            next_index: first_index,
            tokens_per_shard,
            open: None,
            done: Vec::new(),
            written: 0,
        })
    }

    /// Append a document's tokens (the caller has already put EOT first). A document may span shards. Ids must fit in
    /// uint16 (all GPT-2 ids do); a bad id is an `Error::Shard` and nothing of that call is written.
    pub fn write(&mut self, tokens: &[u32]) -> Result<()> {
        if let Some(pos) = tokens.iter().position(|&t| t > u16::MAX as u32) {
            return Err(Error::shard(
                self.dir.join(self.shard_name(self.next_index)),
                format!("token id {} (document position {pos}) does not fit in uint16", tokens[pos]),
            ));
        }
        let mut rest = tokens;
        while !rest.is_empty() {
            if self.open.is_none() {
                self.open_next()?;
            }
            let shard = self.open.as_mut().expect("opened above");
            let take = ((self.tokens_per_shard - shard.count) as usize).min(rest.len());
            shard.write_tokens(&rest[..take])?;
            self.written += take as u64;
            rest = &rest[take..];
            if shard.count == self.tokens_per_shard {
                self.close_current()?;
            }
        }
        Ok(())
    }

    /// Tokens written so far, over all shards of this writer (including the one still open).
    pub fn tokens_written(&self) -> u64 {
        self.written
    }

    /// Flush the last partial shard (none if it has no tokens) and return every shard this writer finished, in order.
    pub fn finish(mut self) -> Result<Vec<ShardInfo>> {
        if self.open.is_some() {
            self.close_current()?;
        }
        Ok(std::mem::take(&mut self.done))
    }

    fn shard_name(&self, index: u32) -> String {
        format!("{}_{:06}.bin", self.split, index)
    }

    fn open_next(&mut self) -> Result<()> {
        let index = self.next_index;
        if index > 999_999 {
            return Err(Error::Invalid(format!(
                "{}: shard index {index} exceeds the 6-digit names ({}_NNNNNN.bin)",
                self.dir.display(),
                self.split
            )));
        }
        let name = self.shard_name(index);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let file = File::create(&tmp).map_err(|e| Error::io(&tmp, e))?;
        let mut shard = OpenShard {
            name,
            tmp: Some(tmp),
            out: BufWriter::with_capacity(BUF_BYTES, file),
            count: 0,
            hasher: Sha256::new(),
        };
        // The header is written (and hashed) claiming a full shard: every shard but the last is full, so its hash is
        // computed while streaming and the header needs no patch. A short last shard gets its header patched and is
        // hashed again from disk (once per writer).
        let h = header(self.tokens_per_shard);
        shard.hasher.update(h);
        shard.out.write_all(&h).map_err(|e| shard.io_err(e))?;
        self.open = Some(shard);
        self.next_index += 1;
        Ok(())
    }

    fn close_current(&mut self) -> Result<()> {
        let mut shard = self.open.take().expect("a shard is open");
        let tmp = shard.tmp.clone().expect("not yet renamed");
        shard.out.flush().map_err(|e| Error::io(&tmp, e))?;
        let sha256 = if shard.count == self.tokens_per_shard {
            hex(&std::mem::take(&mut shard.hasher).finalize())
        } else {
            let file = shard.out.get_mut();
            file.seek(SeekFrom::Start(0))
                .and_then(|_| file.write_all(&header(shard.count)))
                .map_err(|e| Error::io(&tmp, e))?;
            sha256_file(&tmp)?
        };
        shard.out.get_ref().sync_all().map_err(|e| Error::io(&tmp, e))?;
        let dest = self.dir.join(&shard.name);
        fs::rename(&tmp, &dest).map_err(|e| Error::io(&dest, e))?;
        shard.tmp = None;
        sync_dir(&self.dir)?;
        self.done.push(ShardInfo { file: shard.name.clone(), tokens: shard.count, sha256 });
        Ok(())
    }
}

impl OpenShard {
    fn io_err(&self, e: std::io::Error) -> Error {
        Error::io(self.tmp.as_deref().unwrap_or(Path::new(&self.name)), e)
    }

    /// Append tokens (already checked to fit in u16) as little-endian u16, hashing what is written.
    fn write_tokens(&mut self, tokens: &[u32]) -> Result<()> {
        let mut buf = [0u8; 2 * CHUNK_TOKENS];
        for chunk in tokens.chunks(CHUNK_TOKENS) {
            for (dst, &t) in buf.chunks_exact_mut(2).zip(chunk) {
                dst.copy_from_slice(&(t as u16).to_le_bytes());
            }
            let bytes = &buf[..2 * chunk.len()];
            self.hasher.update(bytes);
            self.out.write_all(bytes).map_err(|e| self.io_err(e))?;
        }
        self.count += tokens.len() as u64;
        Ok(())
    }
}

/// Make a rename in `dir` durable (POSIX: the directory entry lives in the directory's own data).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| Error::io(dir, e))?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

/// Lowercase hex SHA-256 of a whole file.
pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex(&hasher.finalize()))
}

/// Check a header against the file's size; return the token count. (The header's unused ints are not checked, as
/// llm.c does not.)
fn check_header(path: &Path, head: &[u8], file_len: u64) -> Result<u64> {
    if head.len() < HEADER_BYTES {
        return Err(Error::shard(path, format!("{} bytes, shorter than the {HEADER_BYTES}-byte header", head.len())));
    }
    let int = |i: usize| i32::from_le_bytes(head[4 * i..4 * i + 4].try_into().unwrap());
    if int(0) != MAGIC {
        return Err(Error::shard(path, format!("magic {}, expected {MAGIC}", int(0))));
    }
    if int(1) != VERSION {
        return Err(Error::shard(path, format!("version {}, expected {VERSION}", int(1))));
    }
    let count = int(2);
    if count < 0 {
        return Err(Error::shard(path, format!("negative token count {count}")));
    }
    let want = HEADER_BYTES as u64 + 2 * count as u64;
    if file_len != want {
        return Err(Error::shard(
            path,
            format!("header says {count} tokens ({want} bytes) but the file has {file_len} bytes"),
        ));
    }
    Ok(count as u64)
}

/// Check a shard's header and size without reading its tokens; return its token count.
pub fn read_header(path: &Path) -> Result<u64> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let len = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let mut head = Vec::with_capacity(HEADER_BYTES);
    (&mut f).take(HEADER_BYTES as u64).read_to_end(&mut head).map_err(|e| Error::io(path, e))?;
    check_header(path, &head, len)
}

/// Read and check a shard (magic, version, exact size); return its tokens.
pub fn read_shard(path: &Path) -> Result<Vec<u16>> {
    let data = fs::read(path).map_err(|e| Error::io(path, e))?;
    check_header(path, &data, data.len() as u64)?;
    Ok(data[HEADER_BYTES..].chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh folder under the system temp dir, removed on drop (no tempfile crate needed).
    struct TestDir(PathBuf);
    impl TestDir {
        fn new(name: &str) -> Self {
            let p = std::env::temp_dir().join(format!("wikigpt-shards-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TestDir(p)
        }
        fn files(&self) -> Vec<String> {
            let mut v: Vec<String> =
                fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
            v.sort();
            v
        }
    }
    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ints(path: &Path) -> Vec<i32> {
        let d = fs::read(path).unwrap();
        d[..HEADER_BYTES].chunks_exact(4).map(|b| i32::from_le_bytes(b.try_into().unwrap())).collect()
    }

    fn sha256_of(path: &Path) -> String {
        hex(&Sha256::digest(fs::read(path).unwrap()))
    }

    #[test]
    fn roundtrip_header_size_and_hash() {
        let dir = TestDir::new("roundtrip");
        let doc: Vec<u32> =
            std::iter::once(crate::tokenizer::EOT).chain((0..1000u32).map(|i| i * 37 % 50257)).collect();
        let mut w = ShardWriter::new(&dir.0, "train", 0, 100_000).unwrap();
        w.write(&doc).unwrap();
        w.write(&[65535, 0]).unwrap();
        assert_eq!(w.tokens_written(), 1003);
        let infos = w.finish().unwrap();
        assert_eq!(infos.len(), 1);
        let path = dir.0.join("train_000000.bin");
        assert_eq!(infos[0], ShardInfo { file: "train_000000.bin".into(), tokens: 1003, sha256: sha256_of(&path) });
        assert_eq!(fs::metadata(&path).unwrap().len(), 1024 + 2 * 1003);
        let h = ints(&path);
        assert_eq!(&h[..3], &[20240520, 1, 1003]);
        assert!(h[3..].iter().all(|&x| x == 0));
        let want: Vec<u16> = doc.iter().chain(&[65535, 0]).map(|&t| t as u16).collect();
        assert_eq!(read_shard(&path).unwrap(), want);
        assert_eq!(read_header(&path).unwrap(), 1003);
        assert_eq!(dir.files(), vec!["train_000000.bin"], "no temp files left");
    }

    #[test]
    fn rollover_at_exact_boundaries() {
        let dir = TestDir::new("rollover");
        let docs: [Vec<u32>; 3] = [(1..=3).collect(), (11..=15).collect(), (21..=31).collect()];
        let mut w = ShardWriter::new(&dir.0, "val", 5, 7).unwrap();
        for d in &docs {
            w.write(d).unwrap();
        }
        assert_eq!(w.tokens_written(), 19);
        let infos = w.finish().unwrap();
        let names: Vec<&str> = infos.iter().map(|i| i.file.as_str()).collect();
        assert_eq!(names, ["val_000005.bin", "val_000006.bin", "val_000007.bin"]);
        assert_eq!(infos.iter().map(|i| i.tokens).collect::<Vec<_>>(), [7, 7, 5]);
        let all: Vec<u16> = docs.concat().iter().map(|&t| t as u16).collect();
        let back: Vec<Vec<u16>> = infos.iter().map(|i| read_shard(&dir.0.join(&i.file)).unwrap()).collect();
        assert_eq!(back, vec![all[0..7].to_vec(), all[7..14].to_vec(), all[14..19].to_vec()]);
        for i in &infos {
            let p = dir.0.join(&i.file);
            assert_eq!(i.sha256, sha256_of(&p), "{}", i.file);
            assert_eq!(ints(&p)[2] as u64, i.tokens);
            assert_eq!(fs::metadata(&p).unwrap().len(), 1024 + 2 * i.tokens);
        }
        assert_eq!(dir.files(), names);
    }

    #[test]
    fn exact_multiple_leaves_no_empty_shard() {
        let dir = TestDir::new("multiple");
        let mut w = ShardWriter::new(&dir.0, "train", 0, 7).unwrap();
        w.write(&[1; 14]).unwrap();
        let infos = w.finish().unwrap();
        assert_eq!(infos.iter().map(|i| i.tokens).collect::<Vec<_>>(), [7, 7]);
        assert_eq!(dir.files(), ["train_000000.bin", "train_000001.bin"]);
    }

    #[test]
    fn empty_writer_writes_nothing() {
        let dir = TestDir::new("empty");
        let mut w = ShardWriter::new(&dir.0, "train", 0, 7).unwrap();
        w.write(&[]).unwrap();
        assert!(w.finish().unwrap().is_empty());
        assert!(dir.files().is_empty());
    }

    #[test]
    fn drop_without_finish_removes_only_the_temp_file() {
        let dir = TestDir::new("drop");
        let mut w = ShardWriter::new(&dir.0, "train", 0, 4).unwrap();
        w.write(&[1, 2, 3, 4, 5, 6]).unwrap();
        assert_eq!(dir.files(), [".train_000001.bin.tmp", "train_000000.bin"]);
        drop(w);
        assert_eq!(dir.files(), ["train_000000.bin"]);
        assert_eq!(read_shard(&dir.0.join("train_000000.bin")).unwrap(), [1, 2, 3, 4]);
    }

    #[test]
    fn rejects_ids_over_u16_without_writing() {
        let dir = TestDir::new("bigid");
        let mut w = ShardWriter::new(&dir.0, "train", 0, 10).unwrap();
        w.write(&[1, 2]).unwrap();
        let e = w.write(&[3, 70000]).unwrap_err();
        assert!(matches!(e, Error::Shard { .. }), "{e}");
        assert!(e.to_string().contains("70000"), "{e}");
        assert_eq!(w.tokens_written(), 2);
        let infos = w.finish().unwrap();
        assert_eq!(read_shard(&dir.0.join(&infos[0].file)).unwrap(), [1, 2]);
    }

    #[test]
    fn bad_arguments() {
        let dir = TestDir::new("args");
        for (split, tps) in [("train", 0), ("train", 1 << 31), ("", 7), ("a/b", 7), ("..", 7)] {
            assert!(matches!(ShardWriter::new(&dir.0, split, 0, tps), Err(Error::Invalid(_))), "{split} {tps}");
        }
        let missing = dir.0.join("missing");
        match ShardWriter::new(&missing, "train", 0, 7) {
            Err(Error::Io { path, .. }) => assert_eq!(path, missing),
            other => panic!("expected an Io error, got {:?}", other.err()),
        }
        let mut w = ShardWriter::new(&dir.0, "train", 999_999, 1).unwrap();
        w.write(&[1]).unwrap();
        assert!(matches!(w.write(&[2]), Err(Error::Invalid(_))));
    }

    #[test]
    fn corrupt_shards_are_shard_errors() {
        let dir = TestDir::new("corrupt");
        let mut w = ShardWriter::new(&dir.0, "train", 0, 100).unwrap();
        w.write(&[7; 10]).unwrap();
        w.finish().unwrap();
        let good = fs::read(dir.0.join("train_000000.bin")).unwrap();
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("magic", [&[0u8, 0, 0, 0][..], &good[4..]].concat(), "magic 0"),
            ("version", [&good[..4], &2i32.to_le_bytes(), &good[8..]].concat(), "version 2"),
            ("negative", [&good[..8], &(-1i32).to_le_bytes(), &good[12..]].concat(), "negative"),
            ("count", [&good[..8], &11i32.to_le_bytes(), &good[12..]].concat(), "header says 11 tokens"),
            ("truncated", good[..good.len() - 1].to_vec(), "the file has 1043 bytes"),
            ("extra", [&good[..], &[0u8, 0]].concat(), "the file has 1046 bytes"),
            ("short", good[..100].to_vec(), "shorter than the 1024-byte header"),
            ("empty", Vec::new(), "0 bytes"),
        ];
        for (name, bytes, msg) in cases {
            let p = dir.0.join(format!("{name}.bin"));
            fs::write(&p, bytes).unwrap();
            for r in [read_shard(&p).map(|_| ()), read_header(&p).map(|_| ())] {
                match r {
                    Err(e @ Error::Shard { .. }) => {
                        let s = e.to_string();
                        assert!(s.contains(msg) && s.contains(&format!("{name}.bin")), "{name}: {s}");
                    }
                    other => panic!("{name}: expected a shard error, got {other:?}"),
                }
            }
        }
        assert!(matches!(read_shard(&dir.0.join("nope.bin")), Err(Error::Io { .. })));
    }
}
