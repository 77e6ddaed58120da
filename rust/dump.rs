//! MediaWiki XML export ("pages-articles") → pages.
//!
//! Three steps, so the expensive one runs on N workers:
//! 1. [`PageSplitter`] (one thread) cuts the ordered decoded byte stream into the header (everything before the first
//!    `<page>`) and page-aligned chunks. It only looks for the byte strings `<page>` and `</page>`: inside `<text>`
//!    every `<` is escaped as `&lt;`, so those strings can only be markup, and a memmem scan is enough (GB/s).
//! 2. [`parse_siteinfo`] reads the header once: the root element, its schema version, the declared encoding, and the
//!    namespace names (localized, e.g. "Datei"/"Kategorie" on dewiki), which the cleaner needs to recognise file and
//!    category links.
//! 3. [`parse_pages`] (N workers) parses each chunk with quick-xml's borrowing reader: the text of every element is
//!    appended straight from the input slice and the five XML entities / character references are resolved by hand,
//!    so a page costs one allocation for its text. The wikitext itself (most of the bytes) is decoded in one pass by
//!    `decode_xml_text` and skipped by the reader, see the notes below. Malformed XML is an `Error::Xml` with the
//!    decoded byte offset and the page id when known.
//!
//! The second round of entities (`&amp;nbsp;` in the XML is `&nbsp;` in the wikitext) is NOT resolved here: in
//! wikitext an entity is text, and `&lt;ref&gt;` written that way must not become a `<ref>` tag. The cleaner
//! (`wikitext::clean`) decodes HTML entities after it has parsed the markup.
//!
//! Performance notes (2-core dev machine, single-thread CPU time, `cargo run --release --example clean_bench` on the
//! bundled sample; examples/extract_file.rs runs the whole pipeline):
//! - `parse_pages` went from 1.5-1.8 to 0.6-0.8 CPU-s per GB of XML. quick-xml delivers character data as one event
//!   per piece between references (&quot;, &lt;, &gt; come every few dozen bytes in wikitext) and re-checks each
//!   piece for UTF-8 although the chunk was checked once; now the `<text>` content up to the next '<' is decoded by
//!   `decode_xml_text` (SSE2 search for '&'/CR, the four common references matched directly) and the reader skips
//!   it through `reader.stream().consume`, which keeps its error positions right. Anything the fast path does not
//!   accept is left to the event loop; `fast_text_path_matches_the_event_loop` holds the two to the same result.
//!   What is left is mostly the whole-chunk UTF-8 check (~0.15) and writing the page text into fresh memory.
//! - `PageSplitter` copied each byte three times (into its buffer, `to_vec` into the chunk, `drain` of the rest);
//!   now the buffer is the chunk and is handed out as is (one copy, straight from the decoder's output). With
//!   plain-XML input the splitting thread's remaining cost is that copy and the kernel's `read` copy.

use std::path::Path;

use memchr::memmem;
use quick_xml::events::{BytesStart, Event};
use quick_xml::Reader;
use rustc_hash::FxHashMap;

use crate::bytescan::ByteSet;
use crate::error::{Error, Result};

// ---------------------------------------------------------------------------------------------------------------
// Namespaces and siteinfo
// ---------------------------------------------------------------------------------------------------------------

/// Namespace names of this wiki, from `<siteinfo><namespaces>` (localized: "Datei"/"Kategorie" on dewiki), plus the
/// canonical English names and aliases (Image → File) that MediaWiki always accepts.
#[derive(Clone, Debug, Default)]
pub struct Namespaces {
    /// key → the wiki's own name (as in siteinfo); key 0 has the empty name.
    names: Vec<(i64, String)>,
    /// normalized name (lowercase, '_' → ' ', single spaces, trimmed) → key; holds siteinfo names, canonical English
    /// names and aliases.
    lookup: FxHashMap<String, i64>,
}

/// The canonical (English) names MediaWiki accepts on every wiki, whatever the content language, with the aliases
/// it has always kept ("Image" for File since 1.14, "Project" for the project namespace).
const CANONICAL: &[(i64, &str)] = &[
    (-2, "Media"),
    (-1, "Special"),
    (1, "Talk"),
    (2, "User"),
    (3, "User talk"),
    (4, "Project"),
    (5, "Project talk"),
    (6, "File"),
    (6, "Image"),
    (7, "File talk"),
    (7, "Image talk"),
    (8, "MediaWiki"),
    (9, "MediaWiki talk"),
    (10, "Template"),
    (11, "Template talk"),
    (12, "Help"),
    (13, "Help talk"),
    (14, "Category"),
    (15, "Category talk"),
];

/// enwiki's namespaces as its siteinfo lists them (the bundled 2016 sample, plus Module/TimedText that later dumps
/// also list).
const ENWIKI: &[(i64, &str)] = &[
    (-2, "Media"),
    (-1, "Special"),
    (0, ""),
    (1, "Talk"),
    (2, "User"),
    (3, "User talk"),
    (4, "Wikipedia"),
    (5, "Wikipedia talk"),
    (6, "File"),
    (7, "File talk"),
    (8, "MediaWiki"),
    (9, "MediaWiki talk"),
    (10, "Template"),
    (11, "Template talk"),
    (12, "Help"),
    (13, "Help talk"),
    (14, "Category"),
    (15, "Category talk"),
    (100, "Portal"),
    (101, "Portal talk"),
    (108, "Book"),
    (109, "Book talk"),
    (118, "Draft"),
    (119, "Draft talk"),
    (446, "Education Program"),
    (447, "Education Program talk"),
    (710, "TimedText"),
    (711, "TimedText talk"),
    (828, "Module"),
    (829, "Module talk"),
    (2300, "Gadget"),
    (2301, "Gadget talk"),
    (2302, "Gadget definition"),
    (2303, "Gadget definition talk"),
];

/// MediaWiki's title normalization for comparing namespace names: case-insensitive, '_' ≡ ' ', runs of spaces
/// collapse, ends trimmed.
fn normalize_ns_name(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for word in s.split([' ', '_', '\t']).filter(|w| !w.is_empty()) {
        if !out.is_empty() {
            out.push(' ');
        }
        for c in word.chars() {
            out.extend(c.to_lowercase());
        }
    }
    out
}

impl Namespaces {
    /// An empty table that still knows the canonical English names (what a wiki without siteinfo would accept).
    fn with_canonical() -> Self {
        let mut ns = Namespaces { names: vec![(0, String::new())], lookup: FxHashMap::default() };
        for &(k, n) in CANONICAL {
            ns.lookup.insert(normalize_ns_name(n), k);
        }
        ns
    }

    /// Add (or rename) a namespace as the wiki's siteinfo lists it. The wiki's own names win over canonical aliases.
    pub fn insert(&mut self, key: i64, name: &str) {
        match self.names.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = name.to_string(),
            None => self.names.push((key, name.to_string())),
        }
        if key != 0 && !name.is_empty() {
            self.lookup.insert(normalize_ns_name(name), key);
        }
    }

    /// enwiki's namespaces, for tests and for dumps without siteinfo.
    pub fn english_default() -> Self {
        let mut ns = Self::with_canonical();
        for &(k, n) in ENWIKI {
            ns.insert(k, n);
        }
        ns
    }

    /// The wiki's name of namespace `key` ("" for the main namespace 0).
    pub fn name(&self, key: i64) -> Option<&str> {
        self.names.iter().find(|(k, _)| *k == key).map(|(_, n)| n.as_str())
    }

    /// The namespace key a link target's prefix names ("File:x.jpg" → Some(6), "image:x" → Some(6), "File" →
    /// Some(6); case-insensitive, spaces/underscores equivalent), or None (no colon-prefix that is a namespace).
    /// A leading ':' (as in `[[:Category:X]]`) is skipped: callers that care about it check it themselves.
    pub fn key_of_prefix(&self, prefix: &str) -> Option<i64> {
        let p = prefix.trim_start().strip_prefix(':').unwrap_or(prefix);
        let p = match p.find(':') {
            Some(i) => &p[..i],
            None => p,
        };
        if p.trim().is_empty() {
            return None;
        }
        self.lookup.get(&normalize_ns_name(p)).copied()
    }

    /// Number of namespaces listed (the main namespace included).
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

/// What `<siteinfo>` (and the root element) say about the wiki.
#[derive(Clone, Debug, Default)]
pub struct SiteInfo {
    pub dbname: String,
    /// `<base>`, e.g. <https://en.wikipedia.org/wiki/Main_Page>
    pub base_url: String,
    /// `xml:lang` of the root element, e.g. "en"
    pub lang: String,
    /// The export schema version of the root element, e.g. "0.10"
    pub schema_version: String,
    pub namespaces: Namespaces,
}

impl SiteInfo {
    /// The page's canonical URL, in wikiextractor's `url` form minus its `?curid=`:
    /// `https://en.wikipedia.org/wiki/Title_with_underscores` (the article path is `<base>` up to and including
    /// "/wiki/"; spaces become underscores; '?', '&', '#', '%' and other URL-special characters are percent-encoded,
    /// letters outside ASCII are kept as UTF-8, as Wikipedia's own links show them).
    pub fn page_url(&self, title: &str) -> String {
        let base = match self.base_url.rfind("/wiki/") {
            Some(i) => &self.base_url[..i + "/wiki/".len()],
            None => match self.base_url.rfind('/') {
                Some(i) => &self.base_url[..i + 1],
                None => "",
            },
        };
        let mut url = String::with_capacity(base.len() + title.len() + 8);
        url.push_str(base);
        for c in title.trim().chars() {
            match c {
                ' ' => url.push('_'),
                '?' | '&' | '#' | '%' | '"' | '<' | '>' | '[' | ']' | '{' | '}' | '|' | '\\' | '^' | '`' | '+' => {
                    url.push_str(&format!("%{:02X}", c as u32))
                }
                _ => url.push(c),
            }
        }
        url
    }
}

/// One `<page>` of the dump.
#[derive(Clone, Debug)]
pub struct Page {
    pub id: u64,
    pub ns: i64,
    pub title: String,
    /// The `title` attribute of `<redirect title="…"/>` when present.
    pub redirect: Option<String>,
    /// The `<id>` of the (last) `<revision>`, not the contributor's.
    pub revid: Option<u64>,
    /// XML-unescaped wikitext; "" for empty or deleted text (`<text deleted="deleted"/>`).
    pub text: String,
    /// Decoded byte offset of `<page>` in the XML stream.
    pub offset: u64,
}

// ---------------------------------------------------------------------------------------------------------------
// Splitting the byte stream into page-aligned chunks
// ---------------------------------------------------------------------------------------------------------------

/// What [`PageSplitter`] hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SplitItem {
    /// Everything before the first `<page>` (XML declaration, `<mediawiki …>`, `<siteinfo>`); exactly once.
    Header { bytes: Vec<u8> },
    /// Whole `<page>…</page>` elements (and the whitespace between them); `offset` is the decoded byte offset of
    /// `bytes[0]`.
    Pages { offset: u64, bytes: Vec<u8> },
}

const PAGE_OPEN: &[u8] = b"<page>";
const PAGE_CLOSE: &[u8] = b"</page>";
const ROOT_CLOSE: &[u8] = b"</mediawiki>";
/// The most bytes looked at for the first `<page>`: a real header (`<siteinfo>` and its namespaces) is a few kB.
const MAX_HEADER_BYTES: usize = 16 << 20;

/// Cuts the ordered decoded byte stream into page-aligned chunks: push bytes in (any piece size), get out the header
/// (once) and chunks that each hold only whole `<page>…</page>` elements, cut right after the first `</page>` that
/// ends at or past `target_chunk_bytes` into the chunk (a page larger than that makes a chunk of its own).
///
/// Cost: each byte is copied once, straight into the chunk it belongs to (the chunk being built is the buffer, and
/// it is handed out as is); only the bytes where a cut may fall are searched (`</page>` that end before the target
/// cannot end a chunk), plus a few bytes where a `</page>` straddles two pushes.
pub struct PageSplitter {
    target: usize,
    /// Before the header is complete: everything so far. After: the chunk being built (whole pages, then the start
    /// of the page that is still open).
    buf: Vec<u8>,
    /// Decoded offset of `buf[0]`.
    buf_offset: u64,
    header_done: bool,
    /// `buf` has been searched up to here (a needle starting before it is ruled out or irrelevant).
    scan_from: usize,
    close_finder: memmem::Finder<'static>,
    open_finder: memmem::Finder<'static>,
}

impl PageSplitter {
    pub fn new(target_chunk_bytes: usize) -> Self {
        PageSplitter {
            target: target_chunk_bytes.max(1),
            buf: Vec::new(),
            buf_offset: 0,
            header_done: false,
            scan_from: 0,
            close_finder: memmem::Finder::new(PAGE_CLOSE),
            open_finder: memmem::Finder::new(PAGE_OPEN),
        }
    }

    /// Feed bytes; returns completed items in stream order (the header first, once it is complete).
    pub fn push(&mut self, data: &[u8]) -> Vec<SplitItem> {
        let mut out = Vec::new();
        if self.header_done {
            self.append(data, &mut out);
            return out;
        }
        self.buf.extend_from_slice(data);
        match self.open_finder.find(&self.buf[self.scan_from..]) {
            Some(i) => {
                let at = self.scan_from + i;
                out.push(SplitItem::Header { bytes: self.buf[..at].to_vec() });
                self.header_done = true;
                // The pages that came with the header go through the chunk logic like any later bytes (once per file).
                let pages = self.buf.split_off(at);
                self.buf_offset += at as u64;
                self.buf = Vec::with_capacity(self.chunk_capacity());
                self.scan_from = 0;
                self.append(&pages, &mut out);
            }
            None => self.scan_from = self.buf.len().saturating_sub(PAGE_OPEN.len() - 1),
        }
        out
    }

    /// Room for a chunk: the target plus a page or so, so it rarely grows (a copy) before it is cut.
    fn chunk_capacity(&self) -> usize {
        self.target.saturating_add(self.target / 4).min(64 << 20)
    }

    /// Append page bytes to the chunk being built, cutting (possibly several times) at the end of the first `</page>`
    /// that starts at or after `target - len("</page>")` in the chunk.
    fn append(&mut self, mut rest: &[u8], out: &mut Vec<SplitItem>) {
        const NEEDLE: usize = PAGE_CLOSE.len();
        while !rest.is_empty() {
            let len = self.buf.len();
            let from = self.target.saturating_sub(NEEDLE).max(self.scan_from);
            // End (as an index into `rest`) of the `</page>` that ends this chunk, if it is in these bytes.
            let end = if from < len {
                // Everything in `buf` from `from` on was searched except its last NEEDLE-1 bytes, where a `</page>`
                // may start and continue into `rest`: look at those bytes and the head of `rest` together.
                let t0 = from.max(len.saturating_sub(NEEDLE - 1));
                let (tl, hl) = (len - t0, rest.len().min(NEEDLE - 1));
                let mut window = [0u8; 2 * (NEEDLE - 1)];
                window[..tl].copy_from_slice(&self.buf[t0..]);
                window[tl..tl + hl].copy_from_slice(&rest[..hl]);
                // A match in the window starts in its `buf` part (the `rest` part is shorter than the needle).
                match self.close_finder.find(&window[..tl + hl]) {
                    Some(p) => Some(p + NEEDLE - tl),
                    None => self.close_finder.find(rest).map(|j| j + NEEDLE),
                }
            } else {
                let skip = from - len;
                if skip >= rest.len() {
                    None
                } else {
                    self.close_finder.find(&rest[skip..]).map(|j| skip + j + NEEDLE)
                }
            };
            match end {
                Some(end) => {
                    self.buf.extend_from_slice(&rest[..end]);
                    let fresh = Vec::with_capacity(self.chunk_capacity());
                    let bytes = std::mem::replace(&mut self.buf, fresh);
                    let offset = self.buf_offset;
                    self.buf_offset += bytes.len() as u64;
                    self.scan_from = 0;
                    out.push(SplitItem::Pages { offset, bytes });
                    rest = &rest[end..];
                }
                None => {
                    self.buf.extend_from_slice(rest);
                    self.scan_from = self.buf.len().saturating_sub(NEEDLE - 1);
                    return;
                }
            }
        }
    }

    /// Before the first `<page>`: why the bytes so far cannot be a MediaWiki export, once they show it. The caller
    /// checks after every push, so a wrong file (a multistream index, a text file, random bytes) fails within its
    /// first block instead of being buffered whole while the splitter waits for a `<page>` that never comes.
    pub fn header_problem(&self) -> Option<String> {
        if self.header_done {
            return None;
        }
        let head = self.buf.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&self.buf).trim_ascii_start();
        if head.first().is_some_and(|&c| c != b'<') {
            let digits = |b: &[u8]| b.iter().take_while(|c| c.is_ascii_digit()).count();
            let n = digits(head);
            let index_like = n > 0 && head.get(n) == Some(&b':') && digits(&head[n + 1..]) > 0;
            let hint = if index_like {
                " (lines of offset:id:title: a multistream index file; add the matching \
                 pages-articles-multistream .xml.bz2 instead)"
            } else {
                ""
            };
            // text is shown as text, anything else (a binary file) as escaped bytes
            let start = &head[..head.len().min(40)];
            let text = std::str::from_utf8(start).is_ok_and(|t| !t.chars().any(|c| c.is_control() && c != '\n'));
            let shown = if text {
                format!("{:?}", preview(start))
            } else {
                crate::bz2::escape_bytes(&start[..16.min(start.len())])
            };
            return Some(format!("not a MediaWiki XML export: it starts with {}{}", shown, hint));
        }
        if self.buf.len() > MAX_HEADER_BYTES {
            return Some(format!(
                "no <page> in the first {} MiB: not a MediaWiki pages dump (its header is a few kB)",
                MAX_HEADER_BYTES >> 20
            ));
        }
        None
    }

    /// End of input: returns the last chunk (if any pages remain) and checks the stream ended properly: an error
    /// (naming `path`) if it ends inside a `<page>`, or without `</mediawiki>`.
    pub fn finish(&mut self, path: &Path) -> Result<Vec<SplitItem>> {
        let mut out = Vec::new();
        if !self.header_done {
            if let Some(problem) = self.header_problem() {
                return Err(Error::xml(path, 0, None, problem));
            }
            // No <page> at all: a dump of zero pages is valid if it is closed.
            let end = match memmem::find(&self.buf, ROOT_CLOSE) {
                Some(i) => i,
                None => {
                    return Err(Error::xml(
                        path,
                        self.buf_offset + self.buf.len() as u64,
                        None,
                        "input ends without </mediawiki> (truncated file?)",
                    ))
                }
            };
            out.push(SplitItem::Header { bytes: self.buf[..end].to_vec() });
            self.header_done = true;
            self.consume(self.buf.len());
            return Ok(out);
        }
        // The last chunk: up to the last `</page>`.
        if let Some(i) = memmem::rfind(&self.buf, PAGE_CLOSE) {
            let tail = self.buf.split_off(i + PAGE_CLOSE.len());
            let bytes = std::mem::replace(&mut self.buf, tail);
            let offset = self.buf_offset;
            self.buf_offset += bytes.len() as u64;
            out.push(SplitItem::Pages { offset, bytes });
        }
        // What is left must be whitespace and </mediawiki>.
        let tail = &self.buf[..];
        if let Some(i) = self.open_finder.find(tail) {
            let page_off = self.buf_offset + i as u64;
            let id = first_id(&tail[i..]);
            return Err(Error::xml(path, page_off, id, "input ends inside a <page> (truncated file?)"));
        }
        let trimmed: &[u8] = trim_ascii(tail);
        if !trimmed.starts_with(ROOT_CLOSE) {
            let msg = if trimmed.is_empty() {
                "input ends without </mediawiki> (truncated file?)".to_string()
            } else {
                format!("unexpected data after the last </page>: {:?}", preview(trimmed))
            };
            let lead = tail.len() - tail.trim_ascii_start().len();
            return Err(Error::xml(path, self.buf_offset + lead as u64, None, msg));
        }
        let after = trim_ascii(&trimmed[ROOT_CLOSE.len()..]);
        if !after.is_empty() {
            let lead = tail.len() - after.len();
            return Err(Error::xml(
                path,
                self.buf_offset + lead as u64,
                None,
                format!("unexpected data after </mediawiki>: {:?}", preview(after)),
            ));
        }
        let n = self.buf.len();
        self.consume(n);
        Ok(out)
    }

    /// Bytes held back (the unfinished page): a caller can refuse to buffer without bound when a corrupt stream
    /// never closes a page (MediaWiki caps wikitext at 2 MiB, so a real page stays far below 64 MiB of XML).
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Drop `buf[..n]`, keeping offsets and search positions consistent.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.buf_offset += n as u64;
        self.scan_from = self.scan_from.saturating_sub(n);
    }
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    b.trim_ascii()
}

fn preview(b: &[u8]) -> String {
    let n = b.len().min(40);
    String::from_utf8_lossy(&b[..n]).into_owned()
}

/// The page id in a (possibly truncated) page's bytes: the first `<id>N</id>`, which comes before `<revision>`.
fn first_id(page: &[u8]) -> Option<u64> {
    let i = memmem::find(page, b"<id>")? + 4;
    let j = memchr::memchr(b'<', &page[i..])? + i;
    std::str::from_utf8(&page[i..j]).ok()?.trim().parse().ok()
}

// ---------------------------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------------------------

/// Map a quick-xml error to ours, at the reader's error position.
fn xml_err(path: &Path, base: u64, reader: &Reader<&[u8]>, page_id: Option<u64>, e: quick_xml::Error) -> Error {
    Error::xml(path, base + reader.error_position(), page_id, e.to_string())
}

/// UTF-8 check with the decoded offset of the first bad byte.
fn check_utf8<'a>(bytes: &'a [u8], base: u64, path: &Path) -> Result<&'a str> {
    std::str::from_utf8(bytes)
        .map_err(|e| Error::xml(path, base + e.valid_up_to() as u64, None, "not UTF-8 (invalid byte sequence)"))
}

/// Resolve an XML general reference (the name between '&' and ';'): the five predefined entities and character
/// references. Anything else is not defined in a MediaWiki export (it has no DTD).
fn push_xml_ref(out: &mut String, name: &str) -> std::result::Result<(), String> {
    match name {
        "amp" => out.push('&'),
        "lt" => out.push('<'),
        "gt" => out.push('>'),
        "quot" => out.push('"'),
        "apos" => out.push('\''),
        _ => {
            let num = name.strip_prefix('#').ok_or_else(|| format!("undefined entity &{};", name))?;
            let code = match num.strip_prefix('x').or_else(|| num.strip_prefix('X')) {
                Some(hex) => u32::from_str_radix(hex, 16),
                None => num.parse::<u32>(),
            }
            .map_err(|_| format!("bad character reference &{};", name))?;
            let c = char::from_u32(code).ok_or_else(|| format!("bad character reference &{};", name))?;
            out.push(c);
        }
    }
    Ok(())
}

/// Character data as the event loop would deliver it (text split at references, each piece EOL-normalized as XML 1.0
/// says: "\r\n" and a lone "\r" become "\n"; references resolved by `push_xml_ref`), appended to `out`. `text`
/// holds no '<'. False, with `out` partly written, on anything the event loop rejects (a reference `push_xml_ref`
/// refuses, a '&' without its ';'): the caller leaves that text to the event loop, which reports it.
fn decode_xml_text(text: &str, out: &mut String) -> bool {
    // References come every few dozen bytes in wikitext (&quot; for every '"', &lt;/&gt; around every tag): the
    // search is inlined SSE2 rather than a memchr call per reference, and the four common ones are matched directly
    // (each is its own ';' with no '&' before it, which is what the general path checks).
    static SPECIAL: ByteSet<2> = ByteSet::new(*b"&\r");
    let b = text.as_bytes();
    let mut i = 0;
    let mut copy_from = 0;
    loop {
        let k = SPECIAL.find(b, i);
        if k == b.len() {
            break;
        }
        if b[k] == b'\r' {
            out.push_str(&text[copy_from..k]);
            out.push('\n');
            i = if b.get(k + 1) == Some(&b'\n') { k + 2 } else { k + 1 };
            copy_from = i;
            continue;
        }
        let after = &b[k + 1..];
        let common = if after.starts_with(b"quot;") {
            Some(('"', 6))
        } else if after.starts_with(b"lt;") {
            Some(('<', 4))
        } else if after.starts_with(b"gt;") {
            Some(('>', 4))
        } else if after.starts_with(b"amp;") {
            Some(('&', 5))
        } else {
            None
        };
        if let Some((ch, len)) = common {
            out.push_str(&text[copy_from..k]);
            out.push(ch);
            i = k + len;
            copy_from = i;
            continue;
        }
        match memchr::memchr2(b';', b'&', after) {
            Some(m) if after[m] == b';' => {
                out.push_str(&text[copy_from..k]);
                if push_xml_ref(out, &text[k + 1..k + 1 + m]).is_err() {
                    return false;
                }
                i = k + 1 + m + 1;
                copy_from = i;
            }
            // A '&' with no ';' before the next '&' or markup: quick-xml's "unclosed reference" error.
            _ => return false,
        }
    }
    out.push_str(&text[copy_from..]);
    true
}

fn attr_value(e: &BytesStart, name: &str) -> std::result::Result<Option<String>, String> {
    match e.try_get_attribute(name) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|e| e.to_string()),
        Ok(None) => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Reads `<mediawiki …>` and `<siteinfo>` from the header (everything before the first `<page>`). Checks that the
/// root is `<mediawiki>`, that the encoding is UTF-8 (an `<?xml encoding="ISO-8859-1"?>` declaration or invalid
/// UTF-8 → `Error::Xml` "not UTF-8"), and the export schema version (0.3 … 0.11 and later 0.x; the elements read
/// here have not changed since 0.3). A header without `<siteinfo>` gets enwiki's namespaces.
pub fn parse_siteinfo(header: &[u8], path: &Path) -> Result<SiteInfo> {
    // The declaration is checked before the UTF-8 validation so that a latin-1 file says what it is.
    let head_text = String::from_utf8_lossy(&header[..header.len().min(200)]);
    if let Some(rest) = head_text.trim_start_matches('\u{feff}').trim_start().strip_prefix("<?xml") {
        let decl = &rest[..rest.find("?>").unwrap_or(rest.len())];
        if let Some(i) = decl.find("encoding") {
            let v = decl[i + "encoding".len()..].trim_start().trim_start_matches('=').trim_start();
            let q = v.chars().next().unwrap_or('"');
            let enc: String = v.chars().skip(1).take_while(|&c| c != q).collect();
            let e = enc.to_ascii_lowercase();
            if e != "utf-8" && e != "utf8" {
                return Err(Error::xml(path, 0, None, format!("not UTF-8: the file declares encoding \"{}\"", enc)));
            }
        }
    }
    let text = check_utf8(header, 0, path)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let bom = (header.len() - text.len()) as u64;
    let mut reader = Reader::from_str(text);
    let mut info = SiteInfo { namespaces: Namespaces::with_canonical(), ..Default::default() };
    let mut seen_root = false;
    let mut seen_namespaces = false;
    let mut stack: Vec<String> = Vec::new();
    let mut cur_text = String::new();
    let mut ns_key: Option<i64> = None;
    loop {
        let pos = reader.buffer_position();
        let ev = reader.read_event().map_err(|e| xml_err(path, bom, &reader, None, e))?;
        match ev {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let name = e.name().as_ref().to_string();
                if !seen_root {
                    if name != "mediawiki" {
                        return Err(Error::xml(
                            path,
                            bom + pos,
                            None,
                            format!("not a MediaWiki export: root element is <{}>, expected <mediawiki>", name),
                        ));
                    }
                    seen_root = true;
                    let bad = |m: String| Error::xml(path, bom + pos, None, m);
                    let version = attr_value(e, "version").map_err(bad)?.unwrap_or_default();
                    check_schema_version(&version).map_err(|m| Error::xml(path, bom + pos, None, m))?;
                    info.schema_version = version;
                    info.lang = attr_value(e, "xml:lang")
                        .map_err(|m| Error::xml(path, bom + pos, None, m))?
                        .unwrap_or_default();
                }
                if name == "namespace" {
                    let key = attr_value(e, "key").map_err(|m| Error::xml(path, bom + pos, None, m))?;
                    let key = key.as_deref().and_then(|k| k.trim().parse::<i64>().ok()).ok_or_else(|| {
                        Error::xml(path, bom + pos, None, "<namespace> without a numeric key attribute")
                    })?;
                    if empty {
                        info.namespaces.insert(key, "");
                    } else {
                        ns_key = Some(key);
                    }
                    seen_namespaces = true;
                }
                if !empty {
                    stack.push(name);
                    cur_text.clear();
                }
            }
            Event::Text(t) => cur_text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) => push_xml_ref(&mut cur_text, &r)
                .map_err(|m| Error::xml(path, bom + reader.buffer_position(), None, m))?,
            Event::CData(t) => cur_text.push_str(&t),
            Event::End(_) => {
                let name = stack.pop().unwrap_or_default();
                let parent = stack.last().map(|s| s.as_str()).unwrap_or("");
                match (parent, name.as_str()) {
                    ("siteinfo", "dbname") => info.dbname = cur_text.trim().to_string(),
                    ("siteinfo", "base") => info.base_url = cur_text.trim().to_string(),
                    ("namespaces", "namespace") => {
                        if let Some(k) = ns_key.take() {
                            info.namespaces.insert(k, cur_text.trim());
                        }
                    }
                    _ => {}
                }
                cur_text.clear();
                if name == "siteinfo" {
                    break;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !seen_root {
        return Err(Error::xml(
            path,
            0,
            None,
            "not a MediaWiki export: no <mediawiki> root element before the first <page>",
        ));
    }
    if !seen_namespaces {
        info.namespaces = Namespaces::english_default();
    }
    Ok(info)
}

/// Accept MediaWiki export schemas 0.x (x ≥ 3): page/revision/text have kept their shape since 0.3, and 0.11 only
/// added elements we do not read.
fn check_schema_version(v: &str) -> std::result::Result<(), String> {
    if v.is_empty() {
        // Very old exports have no version attribute; the element names are the same.
        return Ok(());
    }
    let ok = v.strip_prefix("0.").and_then(|m| m.parse::<u32>().ok()).map(|m| m >= 3).unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(format!("unsupported MediaWiki export schema version \"{}\" (supported: 0.3 to 0.11 and later 0.x)", v))
    }
}

/// Which element's text is being collected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    None,
    Title,
    Ns,
    Id,
    RevId,
    Text,
}

#[derive(Default)]
struct PageBuilder {
    offset: u64,
    id: Option<u64>,
    ns: Option<i64>,
    title: Option<String>,
    redirect: Option<String>,
    revid: Option<u64>,
    text: Option<String>,
}

/// Parse every `<page>` in a page-aligned chunk (as made by [`PageSplitter`]; `offset` is the decoded offset of
/// `chunk[0]`). Malformed XML, a page without `<id>`/`<title>`/`<ns>`, or stray text between elements →
/// `Error::Xml` with the decoded offset and the page id when known.
pub fn parse_pages(chunk: &[u8], offset: u64, path: &Path) -> Result<Vec<Page>> {
    parse_pages_with(chunk, offset, path, true)
}

/// `parse_pages`; with `fast_text` false the wikitext goes through quick-xml's events like every other element (the
/// reference the tests hold the fast path to).
fn parse_pages_with(chunk: &[u8], offset: u64, path: &Path, fast_text: bool) -> Result<Vec<Page>> {
    let text = check_utf8(chunk, offset, path)?;
    let mut reader = Reader::from_str(text);
    let mut pages = Vec::new();
    // The elements open below (and including) <page>: only containers matter, the rest are `Elem::Other`.
    let mut stack: Vec<Elem> = Vec::with_capacity(8);
    let mut page: Option<PageBuilder> = None;
    let mut field = Field::None;
    let mut buf = String::new();

    // Errors carry the id of the page being read.
    macro_rules! fail {
        ($pos:expr, $msg:expr) => {
            return Err(Error::xml(path, offset + $pos, page.as_ref().and_then(|p| p.id), $msg))
        };
    }

    loop {
        let pos = reader.buffer_position();
        let ev = match reader.read_event() {
            Ok(ev) => ev,
            Err(e) => return Err(xml_err(path, offset, &reader, page.as_ref().and_then(|p| p.id), e)),
        };
        match ev {
            Event::Start(e) => {
                let name = local_name(e.name().into_inner());
                if page.is_none() {
                    if name != "page" {
                        fail!(pos, format!("expected <page>, found <{}>", name));
                    }
                    page = Some(PageBuilder { offset: offset + pos, ..Default::default() });
                    stack.clear();
                    stack.push(Elem::Page);
                    continue;
                }
                let parent = *stack.last().unwrap();
                field = match (parent, name) {
                    (Elem::Page, "title") => Field::Title,
                    (Elem::Page, "ns") => Field::Ns,
                    (Elem::Page, "id") => Field::Id,
                    (Elem::Revision, "id") => Field::RevId,
                    (Elem::Revision, "text") => Field::Text,
                    _ => Field::None,
                };
                if field == Field::Text {
                    let p = page.as_mut().unwrap();
                    match p.text.as_mut() {
                        // A later revision (full-history dumps): the last one wins.
                        Some(t) => t.clear(),
                        None => {
                            // MediaWiki's byte count sizes the buffer; capped by the chunk, so a corrupt attribute
                            // cannot ask for more memory than the input holds.
                            let hint = attr_value(&e, "bytes").ok().flatten().and_then(|b| b.parse::<usize>().ok());
                            p.text = Some(String::with_capacity(hint.unwrap_or(0).min(chunk.len())));
                        }
                    }
                    // The wikitext is most of the dump: decode it up to the next markup ('<' is always escaped
                    // inside it, so that is normally `</text>`) in one pass here instead of as quick-xml events, one
                    // per entity, each checked for UTF-8 again. The reader then skips those bytes (its positions stay
                    // right) and reads what follows as usual. Anything the fast path does not accept (an undefined
                    // entity, no markup after the text) is left to the event loop, which reports it as before.
                    let at = reader.buffer_position() as usize;
                    if let Some(lt) = memchr::memchr(b'<', &chunk[at..]).filter(|_| fast_text) {
                        let t = p.text.as_mut().unwrap();
                        let mark = t.len();
                        if decode_xml_text(&text[at..at + lt], t) {
                            std::io::BufRead::consume(&mut reader.stream(), lt);
                        } else {
                            t.truncate(mark);
                        }
                    }
                }
                buf.clear();
                stack.push(match name {
                    "revision" => Elem::Revision,
                    "contributor" | "upload" => Elem::Container,
                    _ => Elem::Other,
                });
            }
            Event::Empty(e) => {
                let name = local_name(e.name().into_inner());
                let Some(p) = page.as_mut() else {
                    fail!(pos, format!("expected <page>, found <{}/>", name));
                };
                match (*stack.last().unwrap(), name) {
                    (Elem::Page, "redirect") => match attr_value(&e, "title") {
                        Ok(t) => p.redirect = Some(t.unwrap_or_default()),
                        Err(m) => fail!(pos, m),
                    },
                    // Empty or deleted text: <text bytes="0" /> or <text deleted="deleted" />.
                    (Elem::Revision, "text") => p.text = Some(String::new()),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if field == Field::None {
                    // Between elements only whitespace is allowed; anything else is corruption.
                    if !t.trim_ascii().is_empty() && page.is_some() && !in_free_text(&stack) {
                        fail!(pos, format!("unexpected text {:?}", preview(t.trim_ascii().as_bytes())));
                    }
                    if page.is_none() && !t.trim_ascii().is_empty() {
                        fail!(pos, format!("unexpected text between pages: {:?}", preview(t.trim_ascii().as_bytes())));
                    }
                    continue;
                }
                let content = t.xml10_content();
                if field == Field::Text {
                    page.as_mut().unwrap().text.as_mut().unwrap().push_str(&content);
                } else {
                    buf.push_str(&content);
                }
            }
            Event::GeneralRef(r) => {
                if field == Field::None {
                    if in_free_text(&stack) {
                        continue;
                    }
                    fail!(pos, format!("unexpected entity &{}; between elements", &*r));
                }
                let target =
                    if field == Field::Text { page.as_mut().unwrap().text.as_mut().unwrap() } else { &mut buf };
                if let Err(m) = push_xml_ref(target, &r) {
                    fail!(pos, m);
                }
            }
            Event::CData(t) => {
                if field == Field::Text {
                    page.as_mut().unwrap().text.as_mut().unwrap().push_str(&t);
                } else if field != Field::None {
                    buf.push_str(&t);
                }
            }
            Event::End(e) => {
                let name = local_name(e.name().into_inner());
                if page.is_none() {
                    fail!(pos, format!("unexpected </{}> between pages", name));
                }
                stack.pop();
                let p = page.as_mut().unwrap();
                let bad_num = |what: &str, v: &str| format!("bad {} {:?}", what, v.trim());
                match field {
                    Field::Title => p.title = Some(std::mem::take(&mut buf)),
                    Field::Ns => match buf.trim().parse() {
                        Ok(v) => p.ns = Some(v),
                        Err(_) => fail!(pos, bad_num("<ns>", &buf)),
                    },
                    Field::Id => match buf.trim().parse() {
                        Ok(v) => p.id = Some(v),
                        Err(_) => fail!(pos, bad_num("page <id>", &buf)),
                    },
                    Field::RevId => match buf.trim().parse() {
                        Ok(v) => p.revid = Some(v),
                        Err(_) => fail!(pos, bad_num("revision <id>", &buf)),
                    },
                    Field::Text | Field::None => {}
                }
                field = Field::None;
                if stack.is_empty() {
                    // </page>
                    let p = page.take().unwrap();
                    let id = match p.id {
                        Some(id) => id,
                        None => return Err(Error::xml(path, p.offset, None, "<page> without <id>")),
                    };
                    let (Some(title), Some(ns)) = (p.title, p.ns) else {
                        return Err(Error::xml(path, p.offset, Some(id), "<page> without <title> or <ns>"));
                    };
                    pages.push(Page {
                        id,
                        ns,
                        title,
                        redirect: p.redirect,
                        revid: p.revid,
                        text: p.text.unwrap_or_default(),
                        offset: p.offset,
                    });
                }
            }
            Event::Eof => {
                if let Some(p) = page.as_ref() {
                    return Err(Error::xml(path, p.offset, p.id, "chunk ends inside <page> (unclosed element)"));
                }
                break;
            }
            Event::Decl(_) | Event::DocType(_) => fail!(pos, "XML declaration or DOCTYPE inside the page stream"),
            Event::Comment(_) | Event::PI(_) => {}
        }
    }
    Ok(pages)
}

/// Elements whose free text we ignore (contributor names, comments, sha1, timestamps are read as Field::None but are
/// legitimately non-empty): any element below <page> that is not a container.
fn in_free_text(stack: &[Elem]) -> bool {
    matches!(stack.last(), Some(Elem::Other))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Elem {
    Page,
    Revision,
    /// <contributor>, <upload>: hold elements only.
    Container,
    /// Any element with text content.
    Other,
}

fn local_name(s: &str) -> &str {
    match s.rfind(':') {
        Some(i) => &s[i + 1..],
        None => s,
    }
}

/// Redirect words MediaWiki accepts in some large wikis (the magic word `redirect` is localized: "#WEITERLEITUNG" on
/// dewiki); English "#REDIRECT" works everywhere.
const REDIRECT_WORDS: &[&str] = &[
    "#redirect",
    "#weiterleitung",
    "#redirection",
    "#rinvia",
    "#doorverwijzing",
    "#redirecionamento",
    "#przekieruj",
    "#перенаправление",
    "#перенапр",
    "#tujuk",
    "#omdirigering",
    "#uudelleenohjaus",
    "#ohjaus",
    "#yönlendir",
    "#yönlendirme",
    "#転送",
    "#リダイレクト",
    "#重定向",
    "#넘겨주기",
    "#đổi",
];

/// A redirect page: a `<redirect/>` element, or text starting with `#REDIRECT` (case-insensitive; also the common
/// localized forms, e.g. `#WEITERLEITUNG`).
pub fn is_redirect(page: &Page) -> bool {
    if page.redirect.is_some() {
        return true;
    }
    let t = page.text.trim_start();
    if !t.starts_with('#') {
        return false;
    }
    let head: String = t.chars().take(24).flat_map(|c| c.to_lowercase()).collect();
    REDIRECT_WORDS.iter().any(|w| head.starts_with(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn sample_xml() -> Vec<u8> {
        let f = std::fs::File::open(crate::test_support::sample_path()).unwrap();
        let mut out = Vec::new();
        bzip2::read::BzDecoder::new(f).read_to_end(&mut out).unwrap();
        out
    }

    fn split_all(xml: &[u8], piece: usize, target: usize) -> (Vec<u8>, Vec<(u64, Vec<u8>)>) {
        let mut s = PageSplitter::new(target);
        let mut items = Vec::new();
        for p in xml.chunks(piece) {
            items.extend(s.push(p));
        }
        items.extend(s.finish(Path::new("t.xml")).unwrap());
        let mut header = None;
        let mut chunks = Vec::new();
        for it in items {
            match it {
                SplitItem::Header { bytes } => {
                    assert!(header.is_none(), "header twice");
                    assert!(chunks.is_empty(), "header after pages");
                    header = Some(bytes)
                }
                SplitItem::Pages { offset, bytes } => chunks.push((offset, bytes)),
            }
        }
        (header.expect("no header"), chunks)
    }

    fn parse_all(xml: &[u8], piece: usize, target: usize) -> (SiteInfo, Vec<Page>) {
        let (header, chunks) = split_all(xml, piece, target);
        let info = parse_siteinfo(&header, Path::new("t.xml")).unwrap();
        let mut pages = Vec::new();
        for (off, c) in chunks {
            // Chunks are contiguous and page-aligned.
            assert!(c.ends_with(b"</page>"));
            pages.extend(parse_pages(&c, off, Path::new("t.xml")).unwrap());
        }
        (info, pages)
    }

    #[test]
    fn sample_pages() {
        let xml = sample_xml();
        let (info, pages) = parse_all(&xml, 1 << 16, 1 << 20);
        assert_eq!(info.dbname, "enwiki");
        assert_eq!(info.lang, "en");
        assert_eq!(info.schema_version, "0.10");
        assert_eq!(info.base_url, "https://en.wikipedia.org/wiki/Main_Page");
        assert_eq!(info.namespaces.name(6), Some("File"));
        assert_eq!(info.namespaces.name(14), Some("Category"));
        assert_eq!(info.namespaces.name(2600), Some("Topic"));
        assert_eq!(info.namespaces.key_of_prefix("Image:x.jpg"), Some(6));
        assert_eq!(pages.len(), 206);
        let redirects = pages.iter().filter(|p| is_redirect(p)).count();
        assert_eq!(redirects, 100);
        // Element and text agree on every page of the sample.
        assert!(pages.iter().all(|p| p.redirect.is_some() == is_redirect(p)));
        let articles = pages.iter().filter(|p| p.ns == 0 && !is_redirect(p)).count();
        assert_eq!(articles, 106);
        assert!(pages.windows(2).all(|w| w[0].id < w[1].id), "ids strictly increasing");
        let p = &pages[0];
        assert_eq!((p.id, p.ns, p.title.as_str()), (10, 0, "AccessibleComputing"));
        assert_eq!(p.redirect.as_deref(), Some("Computer accessibility"));
        assert_eq!(p.revid, Some(631144794));
        assert_eq!(p.text, "#REDIRECT [[Computer accessibility]]\n\n{{Redr|move|from CamelCase|up}}");
        // The offset points at "<page>" in the decoded stream.
        for p in &pages {
            assert_eq!(&xml[p.offset as usize..p.offset as usize + 6], b"<page>");
        }
        let anarchism = &pages[1];
        assert_eq!((anarchism.id, anarchism.title.as_str(), anarchism.revid), (12, "Anarchism", Some(716551092)));
        // XML entities are resolved once: &lt;ref&gt; → <ref>, &amp;nbsp; → &nbsp; (the cleaner does the second round).
        assert!(anarchism.text.contains("<ref>"));
        assert!(anarchism.text.contains("Anarchism&nbsp;..."));
        assert!(!anarchism.text.contains("&lt;"));
        // Text length equals the bytes attribute MediaWiki wrote.
        let bytes_attr = |p: &Page| -> usize {
            let s = &xml[p.offset as usize..];
            let i = memmem::find(s, b"<text").unwrap();
            let j = memmem::find(&s[i..], b"bytes=\"").unwrap() + i + 7;
            let k = memchr::memchr(b'"', &s[j..]).unwrap() + j;
            std::str::from_utf8(&s[j..k]).unwrap().parse().unwrap()
        };
        for p in &pages {
            if memmem::find(
                &xml[p.offset as usize..p.offset as usize + 2000.min(xml.len() - p.offset as usize)],
                b"bytes=\"",
            )
            .is_some()
            {
                assert_eq!(p.text.len(), bytes_attr(p), "page {}", p.id);
            }
        }
    }

    #[test]
    fn splitter_piece_sizes_agree() {
        let xml = sample_xml();
        let (_, reference) = parse_all(&xml, xml.len(), 1 << 20);
        type Key = (u64, u64, String, Option<String>, Option<u64>, usize, u64);
        let key = |ps: &[Page]| -> Vec<Key> {
            ps.iter()
                .map(|p| (p.id, p.offset, p.title.clone(), p.redirect.clone(), p.revid, p.text.len(), p.ns as u64))
                .collect()
        };
        let texts: Vec<&String> = reference.iter().map(|p| &p.text).collect();
        // 1-byte pieces on the first 300 kB (the whole file byte by byte is slow only in debug builds), then the
        // whole sample in 7-byte and 4096-byte pieces, with small and large chunk targets.
        let mut s = PageSplitter::new(1 << 20);
        s.push(&xml[..100_000]);
        assert!(s.buffered() < 100_000 && s.buffered() > 0);
        for (piece, target) in [(7usize, 1usize << 20), (4096, 1 << 20), (4096, 1), (7, 100_000), (65536, 3_000_000)] {
            let (_, pages) = parse_all(&xml, piece, target);
            assert_eq!(key(&pages), key(&reference), "piece {} target {}", piece, target);
            assert!(pages.iter().zip(&texts).all(|(a, b)| &a.text == *b));
        }
        // Byte by byte on a prefix that ends right after a page.
        let cut = memmem::find_iter(&xml, b"</page>").nth(20).unwrap() + 7;
        let mut prefix = xml[..cut].to_vec();
        prefix.extend_from_slice(b"\n</mediawiki>\n");
        let (_, one) = parse_all(&prefix, 1, 50_000);
        assert_eq!(key(&one), key(&reference[..21]));
    }

    #[test]
    fn fixture_matches_sample() {
        // tests/fixtures/pages is cut from the sample: every page there must equal the sample's page of that id.
        let fixture =
            std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/pages/enwiki-sample-7pages.xml"))
                .unwrap();
        let (info, pages) = parse_all(&fixture, 999, 4096);
        assert_eq!(info.dbname, "enwiki");
        assert_eq!(pages.len(), 7);
        let (_, all) = parse_all(&sample_xml(), 1 << 16, 1 << 20);
        for p in &pages {
            let q = all.iter().find(|q| q.id == p.id).unwrap();
            assert_eq!(
                (&p.title, &p.redirect, p.revid, &p.text, p.ns),
                (&q.title, &q.redirect, q.revid, &q.text, q.ns)
            );
        }
        assert_eq!(pages.iter().filter(|p| is_redirect(p)).count(), 1);
    }

    /// The chunk boundaries an obviously correct splitter makes on the whole input at once: after the header, each
    /// chunk ends right after the first `</page>` that ends at or past `target` bytes into it; the last chunk ends
    /// at the last `</page>`.
    fn reference_cuts(xml: &[u8], target: usize) -> Vec<(u64, usize)> {
        let mut start = memmem::find(xml, PAGE_OPEN).unwrap();
        let ends: Vec<usize> = memmem::find_iter(xml, PAGE_CLOSE).map(|i| i + PAGE_CLOSE.len()).collect();
        let mut cuts = Vec::new();
        for &e in &ends {
            if e - start >= target {
                cuts.push((start as u64, e - start));
                start = e;
            }
        }
        if let Some(&last) = ends.last() {
            if last > start {
                cuts.push((start as u64, last - start));
            }
        }
        cuts
    }

    #[test]
    fn chunk_boundaries_match_the_reference_for_any_piece_size() {
        // Piece sizes around the needle length catch a `</page>` straddling two pushes at every position.
        let xml = sample_xml();
        let cut = memmem::find_iter(&xml, b"</page>").nth(30).unwrap() + 7;
        let mut prefix = xml[..cut].to_vec();
        prefix.extend_from_slice(b"\n</mediawiki>\n");
        for target in [1usize, 6, 7, 8, 5_000, 100_000, 1 << 20] {
            let want = reference_cuts(&prefix, target);
            for piece in [1usize, 2, 3, 5, 6, 7, 8, 9, 13, 4096, 65_536, 1 << 20] {
                let (_, chunks) = split_all(&prefix, piece, target);
                let got: Vec<(u64, usize)> = chunks.iter().map(|(o, c)| (*o, c.len())).collect();
                assert_eq!(got, want, "piece {} target {}", piece, target);
                for (o, c) in &chunks {
                    assert_eq!(&prefix[*o as usize..*o as usize + c.len()], &c[..]);
                }
            }
        }
        let (_, chunks) = split_all(&xml, 1 << 20, 1 << 20);
        let got: Vec<(u64, usize)> = chunks.iter().map(|(o, c)| (*o, c.len())).collect();
        assert_eq!(got, reference_cuts(&xml, 1 << 20));
    }

    fn page_key(p: &Page) -> (u64, i64, &str, Option<&str>, Option<u64>, &str, u64) {
        (p.id, p.ns, &p.title, p.redirect.as_deref(), p.revid, &p.text, p.offset)
    }

    #[test]
    fn fast_text_path_matches_the_event_loop() {
        // The sample, then wikitext with every kind of character data: references of each kind, lone '&', CR/CRLF,
        // CDATA and comments inside <text>, undefined entities (an error either way, at the same offset).
        let xml = sample_xml();
        let (_, chunks) = split_all(&xml, 1 << 16, 1 << 20);
        for (off, c) in &chunks {
            let fast = parse_pages_with(c, *off, Path::new("s"), true).unwrap();
            let slow = parse_pages_with(c, *off, Path::new("s"), false).unwrap();
            assert_eq!(fast.iter().map(page_key).collect::<Vec<_>>(), slow.iter().map(page_key).collect::<Vec<_>>());
        }
        let bodies = [
            "",
            "plain",
            "a &amp; b &lt;ref&gt;x&lt;/ref&gt; &quot;q&quot; &apos;s",
            "&#65;&#x42;&#X43; &#233;",
            "lone & amp; and && and &;",
            "end with &",
            "end with &amp",
            "&amp;nbsp; second round stays",
            "line\r\nline\rline\n\r\r\nx\r",
            "cr before ref\r&amp;\r\n",
            "before<![CDATA[<b>&amp;</b>]]>after &amp;",
            "before<!-- c -->after",
            "bad &nbsp; entity",
            "bad &#xZZ; ref",
            "bad &#0; ref",
            "é ж 𐀟 &amp; é",
        ];
        for body in bodies {
            let page = format!(
                "  <page>\n    <title>T</title>\n    <ns>0</ns>\n    <id>9</id>\n    <revision>\n      <id>3</id>\n      \
                 <text bytes=\"5\" xml:space=\"preserve\">{}</text>\n    </revision>\n  </page>\n",
                body
            );
            let fast = parse_pages_with(page.as_bytes(), 100, Path::new("p"), true);
            let slow = parse_pages_with(page.as_bytes(), 100, Path::new("p"), false);
            match (fast, slow) {
                (Ok(f), Ok(s)) => assert_eq!(page_key(&f[0]), page_key(&s[0]), "{:?}", body),
                (Err(f), Err(s)) => assert_eq!(f.to_string(), s.to_string(), "{:?}", body),
                (f, s) => panic!("{:?}: fast {:?} slow {:?}", body, f.map(|v| v.len()), s.map(|v| v.len())),
            }
        }
    }

    #[test]
    fn chunks_respect_target() {
        let xml = sample_xml();
        let (_, chunks) = split_all(&xml, 4096, 500_000);
        assert!(chunks.len() >= 8, "{} chunks", chunks.len());
        for w in chunks.windows(2) {
            assert_eq!(w[0].0 + w[0].1.len() as u64, w[1].0, "chunks are contiguous");
        }
    }

    const HEAD: &str = r#"<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.11/" version="0.11" xml:lang="de">
  <siteinfo>
    <sitename>Wikipedia</sitename>
    <dbname>dewiki</dbname>
    <base>https://de.wikipedia.org/wiki/Wikipedia:Hauptseite</base>
    <namespaces>
      <namespace key="-2" case="first-letter">Medium</namespace>
      <namespace key="0" case="first-letter" />
      <namespace key="6" case="first-letter">Datei</namespace>
      <namespace key="14" case="first-letter">Kategorie</namespace>
    </namespaces>
  </siteinfo>
"#;

    fn doc(pages: &str) -> String {
        format!("{}{}\n</mediawiki>\n", HEAD, pages)
    }

    const P1: &str = r#"  <page>
    <title>A &amp; B</title>
    <ns>0</ns>
    <id>5</id>
    <revision>
      <id>77</id>
      <contributor><username>X</username><id>999</id></contributor>
      <text bytes="0" deleted="deleted" />
    </revision>
  </page>
  <page>
    <title>Leer</title>
    <ns>0</ns>
    <id>6</id>
    <revision>
      <id>78</id>
      <text bytes="0" xml:space="preserve" />
    </revision>
  </page>
  <page>
    <title>Umleitung</title>
    <ns>0</ns>
    <id>7</id>
    <revision>
      <id>79</id>
      <text xml:space="preserve">#WEITERLEITUNG [[Ziel]]</text>
    </revision>
  </page>
"#;

    #[test]
    fn schema_011_localized_deleted_text() {
        let d = doc(P1);
        let (info, pages) = parse_all(d.as_bytes(), 13, 1000);
        assert_eq!(info.schema_version, "0.11");
        assert_eq!(info.lang, "de");
        assert_eq!(info.dbname, "dewiki");
        assert_eq!(info.namespaces.key_of_prefix("Datei:x.jpg"), Some(6));
        assert_eq!(info.namespaces.key_of_prefix("datei"), Some(6));
        assert_eq!(info.namespaces.key_of_prefix("Kategorie:X"), Some(14));
        // Canonical English names still work on a localized wiki.
        assert_eq!(info.namespaces.key_of_prefix("File:x.jpg"), Some(6));
        assert_eq!(info.namespaces.key_of_prefix("IMAGE:x.jpg"), Some(6));
        assert_eq!(info.namespaces.key_of_prefix("Category:X"), Some(14));
        assert_eq!(info.namespaces.key_of_prefix("Paris"), None);
        assert_eq!(info.namespaces.key_of_prefix("de:Paris"), None);
        assert_eq!(info.page_url("A b?"), "https://de.wikipedia.org/wiki/A_b%3F");
        assert_eq!(pages.len(), 3);
        assert_eq!(pages[0].title, "A & B");
        assert_eq!(pages[0].revid, Some(77), "revision id, not the contributor's");
        assert_eq!(pages[0].text, "");
        assert_eq!(pages[1].text, "");
        assert!(!is_redirect(&pages[0]));
        assert!(is_redirect(&pages[2]), "localized #WEITERLEITUNG");
    }

    #[test]
    fn namespaces_and_url() {
        let ns = Namespaces::english_default();
        assert_eq!(ns.key_of_prefix("File:x.jpg"), Some(6));
        assert_eq!(ns.key_of_prefix("image:x"), Some(6));
        assert_eq!(ns.key_of_prefix("file_talk:x"), Some(7));
        assert_eq!(ns.key_of_prefix("User  talk:x"), Some(3));
        assert_eq!(ns.key_of_prefix(":Category:X"), Some(14));
        assert_eq!(ns.key_of_prefix("Media:x.ogg"), Some(-2));
        assert_eq!(ns.key_of_prefix("wikt:word"), None);
        assert_eq!(ns.key_of_prefix("x"), None);
        assert_eq!(ns.name(0), Some(""));
        assert_eq!(ns.name(4), Some("Wikipedia"));
        let info = SiteInfo { base_url: "https://en.wikipedia.org/wiki/Main_Page".into(), ..Default::default() };
        assert_eq!(info.page_url("Albert Einstein"), "https://en.wikipedia.org/wiki/Albert_Einstein");
        assert_eq!(info.page_url("AC/DC"), "https://en.wikipedia.org/wiki/AC/DC");
        assert_eq!(info.page_url("Zürich"), "https://en.wikipedia.org/wiki/Zürich");
    }

    fn err_of(r: Result<Vec<Page>>) -> (u64, Option<u64>, String) {
        match r {
            Err(Error::Xml { offset, page_id, msg, .. }) => (offset, page_id, msg),
            Err(e) => panic!("wrong error {}", e),
            Ok(p) => panic!("no error, {} pages", p.len()),
        }
    }

    #[test]
    fn malformed_xml() {
        let good = "<page><title>T</title><ns>0</ns><id>42</id><revision><id>1</id><text>x</text></revision></page>";
        assert_eq!(parse_pages(good.as_bytes(), 0, Path::new("f")).unwrap()[0].id, 42);
        // Unclosed tag: <title> closed by </page>.
        let unclosed = "  <page><title>T</title><ns>0</ns><id>42</id><revision><id>1</id><text>abc</revision></page>";
        let (off, id, msg) = err_of(parse_pages(unclosed.as_bytes(), 1000, Path::new("f")));
        assert_eq!(id, Some(42));
        assert!(off >= 1000 + 50, "{} {}", off, msg);
        // Garbage in the middle of a page.
        let garbage = "<page><title>T</title><ns>0</ns><id>43</id>@@garbage@@<revision><id>1</id><text>x</text></revision></page>";
        let (off, id, msg) = err_of(parse_pages(garbage.as_bytes(), 0, Path::new("f")));
        assert_eq!(id, Some(43));
        assert!(msg.contains("garbage"), "{}", msg);
        assert_eq!(off, garbage.find("@@").unwrap() as u64);
        let garbage2 =
            "<page><title>T</title><ns>0</ns><id>44</id><revision><id>1</id><text>x</text></revision><<x</page>";
        let (_, id, _) = err_of(parse_pages(garbage2.as_bytes(), 0, Path::new("f")));
        assert_eq!(id, Some(44));
        // A truncated page: the chunk ends inside it.
        let truncated = &good[..good.len() - 30];
        let (off, id, msg) = err_of(parse_pages(truncated.as_bytes(), 500, Path::new("f")));
        assert_eq!(id, Some(42));
        assert!((500..500 + truncated.len() as u64).contains(&off), "{} {}", off, msg);
        // Truncated between two elements: our own check.
        let truncated = &good[..good.find("<revision>").unwrap()];
        let (off, id, msg) = err_of(parse_pages(truncated.as_bytes(), 500, Path::new("f")));
        assert_eq!((off, id), (500, Some(42)));
        assert!(msg.contains("inside <page>"), "{}", msg);
        // Undefined entity.
        let ent = "<page><title>T&nbsp;</title><ns>0</ns><id>45</id></page>";
        let (_, id, msg) = err_of(parse_pages(ent.as_bytes(), 0, Path::new("f")));
        assert!(msg.contains("nbsp"), "{}", msg);
        assert_eq!(id, Some(45).filter(|_| false).or(None), "id not read yet when the title fails");
        // Invalid UTF-8 inside a chunk.
        let mut bad = good.as_bytes().to_vec();
        bad[15] = 0xE9;
        let (off, _, msg) = err_of(parse_pages(&bad, 7, Path::new("f")));
        assert_eq!(off, 22);
        assert!(msg.contains("not UTF-8"));
        // The error prints as one line with what and where.
        let e = parse_pages(garbage.as_bytes(), 0, Path::new("dump.xml")).unwrap_err().to_string();
        assert!(e.starts_with("dump.xml: bad XML at decoded byte 43 (page id 43): unexpected text"), "{}", e);
    }

    #[test]
    fn splitter_errors() {
        let d = doc(P1);
        // Truncated inside the last page.
        let cut = d.find("<title>Umleitung").unwrap() + 60;
        let mut s = PageSplitter::new(1 << 20);
        s.push(&d.as_bytes()[..cut]);
        match s.finish(Path::new("p.xml")) {
            Err(Error::Xml { offset, page_id, msg, .. }) => {
                assert_eq!(offset as usize, d.find("<page>\n    <title>Umleitung").unwrap());
                assert_eq!(page_id, Some(7));
                assert!(msg.contains("inside a <page>"));
            }
            other => panic!("{:?}", other.map(|v| v.len())),
        }
        // Missing </mediawiki>.
        let cut = d.find("</mediawiki>").unwrap();
        let mut s = PageSplitter::new(1 << 20);
        s.push(&d.as_bytes()[..cut]);
        let e = s.finish(Path::new("p.xml")).unwrap_err().to_string();
        assert!(e.contains("without </mediawiki>"), "{}", e);
        // A dump with no pages at all is fine when closed.
        let empty = format!("{}</mediawiki>\n", HEAD);
        let (h, chunks) = split_all(empty.as_bytes(), 5, 100);
        assert!(chunks.is_empty());
        assert_eq!(parse_siteinfo(&h, Path::new("e.xml")).unwrap().dbname, "dewiki");
    }

    #[test]
    fn wrong_files_fail_at_their_start() {
        // A multistream index (offset:id:title lines), plain text, and a header that never reaches a <page>.
        let mut s = PageSplitter::new(1 << 20);
        s.push(b"  ");
        assert_eq!(s.header_problem(), None, "whitespace alone says nothing yet");
        s.push(b"597:10:AccessibleComputing\n597:12:Anarchism\n");
        let p = s.header_problem().unwrap();
        assert!(p.starts_with("not a MediaWiki XML export: it starts with \"597:10:AccessibleComputing"), "{p}");
        assert!(p.contains("a multistream index file"), "{p}");
        let e = s.finish(Path::new("i.txt")).unwrap_err().to_string();
        assert!(e.contains("not a MediaWiki XML export"), "{e}");
        let mut s = PageSplitter::new(1 << 20);
        s.push(b"\xEF\xBB\xBFHello, world");
        let p = s.header_problem().unwrap();
        assert!(p.ends_with("it starts with \"Hello, world\""), "{p}");
        let mut s = PageSplitter::new(1 << 20);
        s.push(&[0x8e, 0x1b, 0xff, 0x00, 0x41]);
        let p = s.header_problem().unwrap();
        assert!(p.ends_with(r#"it starts with b"\x8e\x1b\xff\x00A""#), "{p}");
        // XML, with a BOM: fine so far; a real dump's header passes untouched
        let mut s = PageSplitter::new(1 << 20);
        s.push(b"\xEF\xBB\xBF\n<mediawiki>");
        assert_eq!(s.header_problem(), None);
        let d = doc(P1);
        let mut s = PageSplitter::new(1 << 20);
        s.push(&d.as_bytes()[..HEAD.len()]);
        assert_eq!(s.header_problem(), None);
        // XML without any <page> for longer than a header can be
        let mut s = PageSplitter::new(1 << 20);
        s.push(b"<html>");
        s.push(&vec![b'x'; MAX_HEADER_BYTES]);
        assert!(s.header_problem().unwrap().starts_with("no <page> in the first 16 MiB"));
    }

    #[test]
    fn header_checks() {
        let latin1 =
            b"<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?>\n<mediawiki version=\"0.10\"><siteinfo></siteinfo>";
        let e = parse_siteinfo(latin1, Path::new("l.xml")).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{}", e);
        let mut bad = HEAD.as_bytes().to_vec();
        bad[HEAD.find("Wikipedia").unwrap()] = 0xFC;
        let e = parse_siteinfo(&bad, Path::new("l.xml")).unwrap_err().to_string();
        assert!(e.contains("not UTF-8"), "{}", e);
        let ok = b"<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<mediawiki version=\"0.10\" xml:lang=\"en\"><siteinfo><dbname>x</dbname></siteinfo>";
        let info = parse_siteinfo(ok, Path::new("u.xml")).unwrap();
        assert_eq!(info.dbname, "x");
        // No <namespaces>: enwiki's.
        assert_eq!(info.namespaces.key_of_prefix("Category:X"), Some(14));
        let v2 = b"<mediawiki version=\"2.0\"><siteinfo></siteinfo>";
        assert!(parse_siteinfo(v2, Path::new("v.xml")).unwrap_err().to_string().contains("schema version"));
        let notmw = b"<html><siteinfo></siteinfo>";
        assert!(parse_siteinfo(notmw, Path::new("v.xml")).unwrap_err().to_string().contains("not a MediaWiki export"));
    }

    use crate::test_support::cpu_seconds;

    #[test]
    #[ignore]
    fn bench_parse_pages() {
        // cargo test --release --lib dump::tests::bench_parse_pages -- --ignored --nocapture
        let xml = sample_xml();
        let (_, chunks) = split_all(&xml, 1 << 16, 2 << 20);
        let total: usize = chunks.iter().map(|c| c.1.len()).sum();
        let reps = 20;
        let w = std::time::Instant::now();
        let t0 = cpu_seconds(w);
        let mut n = 0;
        for _ in 0..reps {
            for (off, c) in &chunks {
                n += parse_pages(c, *off, Path::new("b")).unwrap().len();
            }
        }
        let dt = cpu_seconds(w) - t0;
        println!("parse_pages: {} pages, {:.1} MB/s of XML per core (CPU time)", n, (total * reps) as f64 / dt / 1e6);
        let t0 = cpu_seconds(w);
        for _ in 0..reps {
            split_all(&xml, 1 << 16, 2 << 20);
        }
        let dt = cpu_seconds(w) - t0;
        println!("PageSplitter (4 KiB pushes): {:.1} MB/s per core (CPU time)", (xml.len() * reps) as f64 / dt / 1e6);
    }
}
