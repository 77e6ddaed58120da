"""Cleaning quality, wikigpt vs wikiextractor, on the same real pages.

    python benches/cleaner_vs_wikiextractor.py [--dump FILE.xml.bz2] [--ours-jsonl FILE] [--json OUT]

Both tools clean the articles (ns 0, not redirects) of a dump file, by default the bundled real enwiki sample (206
pages, 106 articles). Ours comes from `wikigpt.iter_articles` when the extension is built, otherwise from the Rust
example `cargo run --release --example clean_sample` (or a JSON-lines file given with --ours-jsonl); wikiextractor
runs through benches/_wikiextractor.py (--json --processes 2). Printed for both:

- articles, total characters;
- leftover markup: how many articles contain each pattern of the issue (`{{`, `[[`, `<ref`, `''`, `()`, ...) and
  how many contain any;
- empty parentheses left by removals: occurrences of `()` and of `( ; )`-like forms;
- numbers from the wikitext's `{{convert}}` / date / `{{circa}}` / `{{formatnum}}` templates: how many
  (article, number) pairs each output keeps, and in how many articles ours keeps a number that theirs lost (and the
  reverse).

Nothing is timed here (benches/extract.py measures speed).
"""

from __future__ import annotations

import argparse
import bz2
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import _wikiextractor  # noqa: E402  (benches/ is not a package)

SAMPLE = ROOT / "python" / "wikigpt" / "data" / "sample" / "enwiki-sample-pages-articles1.xml-p10p30302.bz2"

# The leftover-markup patterns: an article "has leftover markup" if its text contains any.
PATTERNS = ["{{", "}}", "[[", "]]", "{|", "|}", "<ref", "&lt;", "&gt;", "&amp;", "'''", "''", "[http", "<!--",
            "__TOC__", "()"]
EMPTY_PARENS = re.compile(r"\(\s*[,;:.]?\s*[,;:.]?\s*\)")

# Templates whose numbers a reader sees on the rendered page. Group 1 = name, group 2 = argument text (no nesting).
NUM_TEMPLATE = re.compile(
    r"\{\{\s*(convert|cvt|birth[ _]date(?:[ _]and[ _]age)?|death[ _]date(?:[ _]and[ _]age)?|"
    r"start[ _]date(?:[ _]and[ _]age)?|end[ _]date|circa|c\.|formatnum:)\s*\|?([^{}]*)\}\}",
    re.I,
)
RANGE_WORDS = {"-", "–", "to", "and", "or", "by", "x", "×", "+/-", "±", "to(-)", "and(-)"}


def open_dump(path: Path):
    return bz2.open(path, "rb") if path.suffix == ".bz2" else open(path, "rb")


def wikitext_articles(path: Path) -> Dict[str, Tuple[str, str]]:
    """{page id: (title, wikitext)} for ns 0 non-redirects, read with the standard library (a reference that shares
    no code with either tool)."""
    out: Dict[str, Tuple[str, str]] = {}
    with open_dump(path) as f:
        for _, el in ET.iterparse(f, events=("end",)):
            if not el.tag.endswith("}page"):
                continue
            q = el.tag[: -len("page")]
            ns = el.findtext(q + "ns")
            text = el.findtext(f"{q}revision/{q}text") or ""
            redirect = el.find(q + "redirect") is not None or text.lstrip()[:9].lower() == "#redirect"
            if ns == "0" and not redirect:
                out[el.findtext(q + "id")] = (el.findtext(q + "title"), text)
            el.clear()
    return out


def template_numbers(wikitext: str) -> List[str]:
    """The numbers a reader sees from the simple formatting templates: convert's value(s), a date's year, circa's
    year, formatnum's number (commas removed)."""
    nums = []
    for m in NUM_TEMPLATE.finditer(wikitext):
        name = m.group(1).lower().replace("_", " ")
        args = [a.strip() for a in m.group(2).split("|")]
        pos = [a for a in args if "=" not in a]
        if not pos:
            continue
        picked = [pos[0]]
        if name in ("convert", "cvt") and len(pos) > 2 and pos[1] in RANGE_WORDS:
            picked.append(pos[2])
        for p in picked:
            p = p.replace(",", "")
            if re.fullmatch(r"-?\d+(\.\d+)?", p):
                nums.append(p)
    return nums


def has_number(text: str, num: str) -> bool:
    return re.search(r"(?<![\d.])" + re.escape(num) + r"(?![\d])", text) is not None


def strip_thousands(text: str) -> str:
    return re.sub(r"(?<=\d),(?=\d{3}(?!\d))", "", text)


def ours_from_extension(path: Path) -> Optional[Dict[str, dict]]:
    try:
        import wikigpt

        it = wikigpt.iter_articles(str(path))
    except Exception as e:  # noqa: BLE001 - any failure means: use the Rust example instead
        print(f"(wikigpt.iter_articles unavailable: {type(e).__name__}: {e}; using the Rust example)", file=sys.stderr)
        return None
    out = {}
    for a in it:
        get = a.get if isinstance(a, dict) else lambda k, a=a: getattr(a, k)
        out[str(get("id"))] = {"title": get("title"), "text": get("text")}
    return out


def ours_from_example(path: Path) -> Dict[str, dict]:
    cmd = ["cargo", "run", "--quiet", "--release", "--example", "clean_sample", "--", str(path)]
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed: {r.stderr.strip().splitlines()[-1:]}")
    return read_jsonl(r.stdout.splitlines())


def read_jsonl(lines) -> Dict[str, dict]:
    out = {}
    for line in lines:
        if line.strip():
            d = json.loads(line)
            out[str(d["id"])] = {"title": d["title"], "text": d["text"]}
    return out


def theirs(path: Path, processes: int = 2) -> Dict[str, dict]:
    with tempfile.TemporaryDirectory(prefix="wx-") as tmp:
        cmd = _wikiextractor.command(["--json", "--processes", str(processes), "-q", "-o", tmp, str(path)])
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"wikiextractor failed: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
        lines = []
        for f in sorted(Path(tmp).rglob("wiki_*")):
            lines.extend(f.read_text(encoding="utf-8").splitlines())
    return read_jsonl(lines)


def measure(docs: Dict[str, dict], src: Dict[str, Tuple[str, str]]) -> dict:
    per_pattern = {p: sum(p in d["text"] for d in docs.values()) for p in PATTERNS}
    any_left = sum(any(p in d["text"] for p in PATTERNS) for d in docs.values())
    kept_pairs = 0
    total_pairs = 0
    kept: Dict[str, set] = {}
    for pid, (_, wt) in src.items():
        nums = set(template_numbers(wt))
        text = strip_thousands(docs.get(pid, {"text": ""})["text"])
        kept[pid] = {n for n in nums if has_number(text, n)}
        kept_pairs += len(kept[pid])
        total_pairs += len(nums)
    return {
        "articles": len(docs),
        "chars": sum(len(d["text"]) for d in docs.values()),
        "leftover_articles": any_left,
        "leftover_per_pattern": per_pattern,
        "paren_pairs": sum(d["text"].count("()") for d in docs.values()),
        "empty_parens_any_form": sum(len(EMPTY_PARENS.findall(d["text"])) for d in docs.values()),
        "template_numbers_kept": kept_pairs,
        "template_numbers_total": total_pairs,
        "_kept": kept,
    }


def table(headers: List[str], rows: List[List[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) for c, w in zip(r, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, rows)])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--dump", type=Path, default=SAMPLE, help="dump file (.xml or .xml.bz2); default: the sample")
    ap.add_argument("--ours-jsonl", type=Path, help="our output as JSON lines {id,title,text} (skips running ours)")
    ap.add_argument("--processes", type=int, default=2, help="wikiextractor --processes (default 2)")
    ap.add_argument("--json", type=Path, help="also write the figures here as JSON")
    ap.add_argument("--examples", type=int, default=5, help="print this many articles where only ours keeps a number")
    args = ap.parse_args(argv)

    src = wikitext_articles(args.dump)
    if args.ours_jsonl:
        ours = read_jsonl(args.ours_jsonl.read_text(encoding="utf-8").splitlines())
        ours_how = str(args.ours_jsonl)
    else:
        ours = ours_from_extension(args.dump)
        ours_how = "wikigpt.iter_articles"
        if ours is None:
            ours = ours_from_example(args.dump)
            ours_how = "cargo run --release --example clean_sample"
    wx = theirs(args.dump, args.processes)
    a, b = measure(ours, src), measure(wx, src)

    print(f"input: {args.dump.name} ({len(src)} articles in the wikitext); python {platform.python_version()}, "
          f"wikiextractor {_wikiextractor.version()}; ours via {ours_how}; load {os.getloadavg()[0]:.1f}")
    rows = [
        ["articles", a["articles"], b["articles"]],
        ["total chars", a["chars"], b["chars"]],
        ["articles with any leftover markup", a["leftover_articles"], b["leftover_articles"]],
        *[[f"  articles containing {p!r}", a["leftover_per_pattern"][p], b["leftover_per_pattern"][p]]
          for p in PATTERNS],
        ['"()" occurrences', a["paren_pairs"], b["paren_pairs"]],
        ['empty parens, any form ("( ; )", "(, )", ...)', a["empty_parens_any_form"], b["empty_parens_any_form"]],
        ["template numbers kept (article, number)",
         f'{a["template_numbers_kept"]}/{a["template_numbers_total"]}',
         f'{b["template_numbers_kept"]}/{b["template_numbers_total"]}'],
    ]
    only_ours = sorted(pid for pid in src if a["_kept"][pid] - b["_kept"][pid])
    only_theirs = sorted(pid for pid in src if b["_kept"][pid] - a["_kept"][pid])
    rows.append(["articles where a template number is only in this output", len(only_ours), len(only_theirs)])
    print(table(["", "wikigpt", "wikiextractor"], rows))
    for pid in only_ours[: args.examples]:
        lost = sorted(a["_kept"][pid] - b["_kept"][pid], key=float)
        print(f"  only ours: {src[pid][0]} (id {pid}): {', '.join(lost[:8])}")
    for pid in only_theirs[: args.examples]:
        lost = sorted(b["_kept"][pid] - a["_kept"][pid], key=float)
        print(f"  only theirs: {src[pid][0]} (id {pid}): {', '.join(lost[:8])}")
    if args.json:
        for m in (a, b):
            m.pop("_kept")
        args.json.write_text(json.dumps({"wikigpt": a, "wikiextractor": b, "only_ours": only_ours,
                                         "only_theirs": only_theirs}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
