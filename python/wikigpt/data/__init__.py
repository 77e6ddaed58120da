"""The data stages, in pipeline order: `index` (a dump's dumpstatus.json and sha1sums: its parts), `estimate` (disk
and time before a download), `download` (the transfer engine) and `dumps` (their commands) → `extract` (bz2 → XML →
clean text, on the Rust core) → `tokens` (GPT-2 BPE) → `dataset` (token shards per dump part, `manifest.json`) with
`shards` (the llm.c shard format). The bundled real sample lives in `sample/`."""

from pathlib import Path

#: The bundled real dump excerpt: 206 pages of English Wikipedia, CC BY-SA (see sample/ATTRIBUTION.md).
SAMPLE = Path(__file__).resolve().parent / "sample" / "enwiki-sample-pages-articles1.xml-p10p30302.bz2"
