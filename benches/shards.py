"""Dump part → GPT-2 token shards, side by side with the classic pipeline, same threads (not a test).

    python benches/shards.py                       # 1 GB corpus, N = all cores (~5 min on 2 cores)
    python benches/shards.py --size-mb 100         # quick check
    python benches/shards.py --skip classic        # leave out the slow baseline
    python benches/shards.py --runs 3              # three rounds of cat + add, each ratio in the targets table
    python benches/shards.py --scaling             # also cat + add at 1..N-1 threads (single stream)

1. End to end, on the single-stream .bz2 of benches/_corpus.py:
   classic: `wikiextractor --processes N --json` (PyPI), then the extracted files read back in order and encoded with
            tiktoken's `encode_ordinary_batch(num_threads=N)` (1,000 documents per call), EOT after each document,
            written as one uint16 .bin, as nanoGPT's data/openwebtext/prepare.py does. Two processes, timed apart.
   wikigpt: `wikigpt add DATASET FILE --processes N -q` (llm.c shards + manifest, train/val split by page id,
            min_chars 200 by default, so it keeps slightly fewer documents than wikiextractor), on the single
            stream and on its multistream twin, each right after `wikigpt cat -p N` on the same file (the decoding
            floor: the targets table gives add's speed as a fraction of cat's, per run with --runs K). With
            --scaling, also at 1..N-1 threads: `-p t` runs t block decoders and t page workers, so where 2t <= N
            cores the page workers have cores of their own and the work after decoding is off the critical path;
            at N threads on N cores decoders and page workers share every core.
2. Tokenizer alone, in this process, on the same list of texts, at 1 and N threads: tiktoken's
   `encode_ordinary_batch` vs `wikigpt.encode_batch` (both return all tokens to Python). Outputs must be identical.
   Two texts: "unique" = the clean articles of the bundled real sample (2.6 MB, each call starts wikigpt's per-thread
   piece caches empty: conservative); "corpus" = those articles repeated to --tok-mb MB, as in the corpus (the caches
   see the same text again: optimistic). Real Wikipedia sits in between.
3. Peak RSS of `wikigpt add` on the main corpus and on a smaller one (--rss-size-mb): it must not grow with size.
Speed is MB of XML per wall second; tokens/s counts the tokens written (EOTs included). Peak RSS from GNU time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _corpus  # noqa: E402
import _wikiextractor  # noqa: E402
from extract import (  # noqa: E402
    QUIET_LOAD,
    common_args,
    context,
    context_lines,
    cpu_row,
    measure,
    table,
    wait_for_quiet,
    warm_cache,
    wikigpt_available,
    wikigpt_cmd,
)

EOT = 50256
CLASSIC_BATCH_DOCS = 1000


def gpt2_encoding():
    """tiktoken's GPT-2 encoding, offline: built from the ranks wikigpt ships (identical to get_encoding("gpt2"))."""
    try:
        import wikigpt

        return wikigpt.tokenizer()
    except ImportError:
        import tiktoken

        # r50k_base has GPT-2's ranks and pattern; tiktoken fetches it (network, or a seeded TIKTOKEN_CACHE_DIR)
        return tiktoken.get_encoding("r50k_base")


# ---------------------------------------------------------------------------------------------- classic pipeline


def classic_tokenize(src: Path, out_bin: Path, threads: int) -> dict:
    """The classic second step (runs in a child process): wikiextractor's json files → tiktoken → uint16 .bin."""
    import numpy as np

    enc = gpt2_encoding()
    docs = tokens = text_bytes = 0
    with open(out_bin, "wb") as out:

        def flush(texts: List[str]) -> None:
            nonlocal tokens
            ids = enc.encode_ordinary_batch(texts, num_threads=threads)
            for doc in ids:
                doc.append(EOT)  # nanoGPT's prepare.py: EOT after each document
            arr = np.fromiter(itertools.chain.from_iterable(ids), dtype=np.uint16)
            arr.tofile(out)
            tokens += len(arr)

        batch: List[str] = []
        for f in sorted(p for p in src.rglob("*") if p.is_file()):  # AA/wiki_00, AA/wiki_01, ... = extraction order
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    text = json.loads(line)["text"]
                    docs += 1
                    text_bytes += len(text.encode("utf-8"))
                    batch.append(text)
                    if len(batch) == CLASSIC_BATCH_DOCS:
                        flush(batch)
                        batch = []
        if batch:
            flush(batch)
    return {"docs": docs, "tokens": tokens, "text_bytes": text_bytes}


def run_classic(corpus: _corpus.Corpus, n: int, scratch: Path, log) -> List[dict]:
    wx_dir, out_bin = scratch / "wikiextractor", scratch / "classic.bin"
    shutil.rmtree(wx_dir, ignore_errors=True)
    m1 = measure("wikiextractor", _wikiextractor.command(
        [str(corpus.bz2), "-o", str(wx_dir), "--json", "--processes", str(n), "-q"]))
    m1.check_rc()
    stats_path = scratch / "classic.json"
    m2 = measure("tiktoken", [sys.executable, __file__, "--classic-tokenize", str(wx_dir), str(out_bin),
                              "--threads", str(n), "--stats", str(stats_path)])
    m2.check_rc()
    st = json.loads(stats_path.read_text())
    if out_bin.stat().st_size != 2 * st["tokens"] or st["tokens"] == 0:
        raise RuntimeError(f"classic pipeline: {out_bin} has {out_bin.stat().st_size} bytes for {st['tokens']} tokens")
    shutil.rmtree(wx_dir, ignore_errors=True)
    out_bin.unlink()
    rows = []
    steps = ((m1, f"wikiextractor --processes {n} --json"), (m2, f"tiktoken encode_ordinary_batch, {n} threads"))
    for m, step in steps:
        rows.append({"pipeline": "classic", "step": step, "wall_s": m.wall_s, "cpu_s": m.cpu_s,
                     "max_rss_mib": m.max_rss_mib, "cmd": m.cmd})
    rows.append({"pipeline": "classic", "step": "total", "wall_s": m1.wall_s + m2.wall_s, "cpu_s": m1.cpu_s + m2.cpu_s,
                 "max_rss_mib": max(m1.max_rss_mib, m2.max_rss_mib), "tokens": st["tokens"], "docs": st["docs"],
                 "text_bytes": st["text_bytes"]})
    for r in rows:
        r.update(corpus_mb=corpus.size_mb, xml_bytes=corpus.xml_bytes)
    log(f"  classic: wikiextractor {m1.wall_s:.1f} s + tiktoken {m2.wall_s:.1f} s; {st['docs']:,} docs, "
        f"{st['tokens']:,} tokens; rss {m1.max_rss_mib:.0f} / {m2.max_rss_mib:.0f} MiB")
    return rows


# ---------------------------------------------------------------------------------------------- wikigpt add


def run_cat(corpus: _corpus.Corpus, n: int, layout: str, log) -> dict:
    """`wikigpt cat -p N` on the same file, right before `add`: the decoding floor that add is held to."""
    src = corpus.bz2 if layout == "single" else corpus.multistream
    m = measure("wikigpt cat", wikigpt_cmd("cat", src, "--processes", n, "-q"), hash_stdout=True)
    m.check_rc()
    if m.stdout_sha256 != corpus.xml_sha256:
        raise RuntimeError(f"wikigpt cat {src}: output differs from the corpus XML")
    mbs = corpus.xml_bytes / 1e6 / m.wall_s
    log(f"  wikigpt cat ({corpus.size_mb} MB, {layout}): {m.wall_s:.1f} s, {mbs:.1f} MB/s")
    return {"pipeline": "wikigpt", "step": f"wikigpt cat --processes {n}", "layout": layout, "threads": n,
            "wall_s": m.wall_s,
            "cpu_s": m.cpu_s, "max_rss_mib": m.max_rss_mib, "corpus_mb": corpus.size_mb,
            "xml_bytes": corpus.xml_bytes, "cmd": m.cmd}


def run_add(corpus: _corpus.Corpus, n: int, scratch: Path, log, layout: str = "single") -> dict:
    ds = scratch / f"dataset-{corpus.size_mb}"
    shutil.rmtree(ds, ignore_errors=True)
    src = corpus.bz2 if layout == "single" else corpus.multistream
    m = measure("wikigpt add", wikigpt_cmd("add", ds, src, "--processes", n, "-q"))
    m.check_rc()
    man = json.loads((ds / "manifest.json").read_text())
    (part,) = man["parts"]
    tokens = part["tokens"]["train"] + part["tokens"]["val"]
    # Sanity: every shard is a well-formed llm.c file (read_header checks magic, version and size) and together
    # they hold what the manifest says.
    from wikigpt.data.shards import read_header

    on_disk = sum(read_header(f) for split in ("train", "val")
                  for f in sorted((ds / part["dir"]).glob(f"{split}_*.bin")))
    if on_disk != tokens or tokens == 0:
        raise RuntimeError(f"{ds}: shards hold {on_disk:,} tokens, manifest says {tokens:,}")
    shutil.rmtree(ds, ignore_errors=True)
    docs = part["documents"]["train"] + part["documents"]["val"]
    log(f"  wikigpt add ({corpus.size_mb} MB, {layout}): {m.wall_s:.1f} s, {docs:,} docs, {tokens:,} tokens, "
        f"rss {m.max_rss_mib:.0f} MiB")
    return {"pipeline": "wikigpt", "step": f"wikigpt add --processes {n}", "layout": layout, "threads": n,
            "wall_s": m.wall_s,
            "cpu_s": m.cpu_s,
            "max_rss_mib": m.max_rss_mib, "tokens": tokens, "docs": docs, "text_bytes": part["bytes"]["text"],
            "pages_kept": part["pages"]["kept"], "corpus_mb": corpus.size_mb, "xml_bytes": corpus.xml_bytes,
            "cmd": m.cmd}


# ---------------------------------------------------------------------------------------------- tokenizer alone


def timed(fn, reps: int) -> tuple:
    """(median seconds, result of the first call)."""
    times, first = [], None
    for i in range(reps):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
        if i == 0:
            first = out
        del out
    return statistics.median(times), first


def identical(ours: list, theirs: List[List[int]]) -> bool:
    import numpy as np

    if len(ours) != len(theirs) or any(len(a) != len(b) for a, b in zip(ours, theirs)):
        return False
    flat_ours = np.concatenate(ours) if ours else np.zeros(0, np.uint16)
    flat_theirs = np.fromiter(itertools.chain.from_iterable(theirs), dtype=np.int64, count=len(flat_ours))
    return bool((flat_ours.astype(np.int64) == flat_theirs).all())


def run_tokenizers(n: int, tok_mb: int, log) -> List[dict]:
    import wikigpt

    enc = gpt2_encoding()
    unique = [a.text for a in wikigpt.iter_articles(_corpus.SAMPLE, processes=n)]
    size = sum(len(t.encode("utf-8")) for t in unique)
    sets = [("unique", unique, 5)]
    if tok_mb > 0:
        sets.append(("corpus", unique * max(1, round(tok_mb * 1e6 / size)), 3))
    rows = []
    for name, texts, reps in sets:
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        for t in sorted({1, n}):
            enc.encode_ordinary_batch(texts[:8], num_threads=t)  # warm both (regex compile, thread start)
            wikigpt.encode_batch(texts[:8], threads=t)
            s_tt, out_tt = timed(lambda texts=texts, t=t: enc.encode_ordinary_batch(texts, num_threads=t), reps)
            s_wg, out_wg = timed(lambda texts=texts, t=t: wikigpt.encode_batch(texts, threads=t), reps)
            ntok = sum(len(x) for x in out_tt)
            same = identical(out_wg, out_tt)
            del out_tt, out_wg
            rows.append({"text": name, "docs": len(texts), "text_bytes": nbytes, "threads": t, "tokens": ntok,
                         "tiktoken_s": s_tt, "wikigpt_s": s_wg, "tiktoken_mb_s": nbytes / 1e6 / s_tt,
                         "wikigpt_mb_s": nbytes / 1e6 / s_wg, "identical": same, "reps": reps})
            log(f"  tokenizer, {name} text ({nbytes / 1e6:.1f} MB), {t} thread(s): tiktoken {nbytes / 1e6 / s_tt:.1f} "
                f"MB/s, wikigpt {nbytes / 1e6 / s_wg:.1f} MB/s, identical: {same}")
    return rows


# ---------------------------------------------------------------------------------------------- report


def is_add(r: dict) -> bool:
    return r["pipeline"] == "wikigpt" and r["step"].startswith("wikigpt add")


def is_cat(r: dict) -> bool:
    return r["pipeline"] == "wikigpt" and r["step"].startswith("wikigpt cat")


def cat_add_pairs(results: List[dict], layout: str, runs: int, threads: int) -> List[tuple]:
    """(cat, add) of each run on one file layout at one thread count, for the runs that have both."""
    pairs = []
    for run in range(runs):
        same = [r for r in results
                if r.get("layout") == layout and r.get("run", 0) == run and r.get("threads") == threads]
        a, c = next((r for r in same if is_add(r)), None), next((r for r in same if is_cat(r)), None)
        if a and c:
            pairs.append((c, a))
    return pairs


def report(ctx: dict, e2e: List[dict], toks: List[dict], size_mb: int, n: int, runs: int = 1) -> str:
    lines = [f"### Dump part → token shards: {size_mb} MB of XML, {n} threads", "", *context_lines(ctx), ""]
    every = [r for r in e2e if r["corpus_mb"] == size_mb]
    main = [r for r in every if r.get("run", 0) == 0 and r.get("threads", n) == n]
    fewer = sorted({r["threads"] for r in every if r.get("threads", n) < n})  # --scaling
    if runs > 1:
        lines += [f"Run 1 of {runs} (cat and add alternate in every run; the targets table has each run):", ""]
    classic = next((r for r in main if r["pipeline"] == "classic" and r["step"] == "total"), None)
    add = next((r for r in main if is_add(r) and r.get("layout", "single") == "single"), None)
    rows = []
    for r in main:
        mbs = r["xml_bytes"] / 1e6 / r["wall_s"]
        tok = r.get("tokens")
        step = r["step"] + (f" ({r['layout']})" if r.get("layout", "single") != "single" else "")
        rows.append([
            r["pipeline"], step, f"{r['wall_s']:.1f}", f"**{mbs:.1f}**" if "tokens" in r else f"{mbs:.1f}",
            f"{tok / 1e6:.1f} M" if tok else "", f"{tok / r['wall_s'] / 1e6:.2f} M" if tok else "",
            f"{r['docs']:,}" if "docs" in r else "", f"{r['text_bytes'] / 1e6:,.0f}" if "text_bytes" in r else "",
            f"{r['cpu_s']:.1f}", f"{r['max_rss_mib']:.0f}",
            f"{classic['wall_s'] / r['wall_s']:.2f}×" if classic and "tokens" in r else "",
        ])
    if rows:
        lines.append(table(["pipeline", "step", "wall s", "MB/s of XML", "tokens", "tokens/s", "documents", "text MB",
                            "CPU s", "peak RSS MiB", "speed × classic"], rows))
    targets = []
    if classic and add:
        x = classic["wall_s"] / add["wall_s"]
        targets.append([f"wikigpt add vs classic pipeline ({n} threads)", f"{x:.2f}×", "≥ 6×",
                        "yes" if x >= 6 else "**no**"])
    cpu = []  # CPU-s per GB of cat and add, per thread count and layout (see extract.cpu_row)
    for t in [n] + fewer:
        for layout in ("single", "multistream"):
            pairs = cat_add_pairs(every, layout, runs, t)
            if not pairs:
                continue
            xs = [c["wall_s"] / a["wall_s"] for c, a in pairs]  # same XML: ratio of speeds
            what = "single stream" if layout == "single" else layout
            targets.append([f"wikigpt add vs wikigpt cat, {t} thread{'s' if t > 1 else ''}, {what}",
                            " / ".join(f"{x:.2f}×" for x in xs), "≥ 0.8×",
                            "yes" if all(x >= 0.8 for x in xs) else "**no**"])
            cpu.append(cpu_row(t, layout, pairs))
    if toks:
        trows = []
        for r in toks:
            x = r["wikigpt_mb_s"] / r["tiktoken_mb_s"]
            trows.append([r["text"], f"{r['text_bytes'] / 1e6:.1f}", r["threads"], f"{r['tiktoken_mb_s']:.1f}",
                          f"{r['wikigpt_mb_s']:.1f}", f"**{x:.2f}×**", f"{r['tokens'] / 1e6:.2f} M",
                          f"{r['text_bytes'] / r['tokens']:.2f}", "yes" if r["identical"] else "**NO**"])
            if r["threads"] == n:
                targets.append([f"wikigpt tokenizer vs tiktoken, {n} threads, {r['text']} text", f"{x:.2f}×",
                                "≥ 2×, identical", "yes" if x >= 2 and r["identical"] else "**no**"])
        lines += ["", "Tokenizer alone (same texts, all tokens returned to Python; median of the reps):", "",
                  table(["text", "MB", "threads", "tiktoken MB/s", "wikigpt MB/s", "ratio", "tokens", "bytes/token",
                         "identical"], trows)]
    if targets:
        lines += ["", table(["target", "measured", "goal", "met"], targets)]
    if fewer:
        lines += ["", f"`-p t` runs t block decoders and t page workers: where 2t ≤ {ctx['nproc']} cores the page "
                      f"workers have cores of their own; at t = {n} they share every core with the decoders."]
    if cpu:
        lines += ["", "CPU seconds per GB of XML (run 1 / 2 / ...; add − cat is the work after decoding):", "",
                  table(["threads, file", "wikigpt cat", "wikigpt add", "add − cat"], cpu)]
    adds = sorted((r for r in e2e if is_add(r) and r.get("layout", "single") == "single" and r.get("run", 0) == 0
                   and r.get("threads", n) == n),
                  key=lambda r: r["corpus_mb"])
    if len(adds) > 1:
        lines += ["", f"Peak RSS of `wikigpt add` against the part's size ({n} threads):", "",
                  table(["MB of XML", "peak RSS MiB", "MB/s of XML", "wall s"],
                        [[f"{r['xml_bytes'] / 1e6:,.0f}", f"{r['max_rss_mib']:.0f}",
                          f"{r['xml_bytes'] / 1e6 / r['wall_s']:.1f}", f"{r['wall_s']:.1f}"] for r in adds])]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main

SKIPPABLE = ("classic", "add", "tokenizer", "rss")


def main(argv=None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--classic-tokenize":  # the classic pipeline's second process
        ap = argparse.ArgumentParser(prog="shards.py --classic-tokenize")
        ap.add_argument("src", type=Path)
        ap.add_argument("out", type=Path)
        ap.add_argument("--threads", type=int, required=True)
        ap.add_argument("--stats", type=Path, required=True)
        a = ap.parse_args(argv[1:])
        a.stats.write_text(json.dumps(classic_tokenize(a.src, a.out, a.threads)))
        return 0

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    common_args(ap, "benches/_work/shards-<size>MB.json")
    ap.add_argument("--tok-mb", type=int, default=50,
                    help="size of the repeated 'corpus' text for the tokenizer comparison (0: unique text only)")
    ap.add_argument("--skip", default="", help=f"comma-separated, from: {', '.join(SKIPPABLE)}")
    ap.add_argument("--runs", type=int, default=1,
                    help="rounds of cat + add on the main corpus (single stream and multistream), interleaved")
    ap.add_argument("--scaling", action="store_true",
                    help="also cat + add at 1..N-1 threads in every round (single stream)")
    args = ap.parse_args(argv)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if skip - set(SKIPPABLE):
        ap.error(f"--skip: unknown {', '.join(sorted(skip - set(SKIPPABLE)))}")
    n = args.processes
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    why = wikigpt_available()
    if why:
        log(f"wikigpt rows skipped: `import wikigpt._core` fails ({why}); build it with `pip install -e .`")
        skip |= {"add", "tokenizer", "rss"}
    corpus = _corpus.build(args.size_mb, log=log)
    small = None
    if args.rss_size_mb and args.rss_size_mb != args.size_mb and not {"rss", "add"} & skip:
        small = _corpus.build(args.rss_size_mb, log=log)
    if args.wait_quiet:
        wait_for_quiet(args.wait_quiet, log)
    ctx = context(n, [c for c in (corpus, small) if c])
    if ctx["load_avg_start"][0] >= QUIET_LOAD:
        log(f"warning: load average {ctx['load_avg_start'][0]:.2f} >= {QUIET_LOAD}: the machine is busy, "
            "figures will be low and noisy")

    scratch = _corpus.WORK / "scratch-shards"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    e2e: List[dict] = []
    toks: List[dict] = []
    try:
        warm_cache(corpus.bz2)
        log(f"{corpus.describe()}\nrunning ({n} threads):")
        if "classic" not in skip:
            e2e += run_classic(corpus, n, scratch, log)
        if "add" not in skip:
            for run in range(max(1, args.runs)):
                if args.runs > 1:
                    log(f" run {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.2f})")
                for layout in ("single", "multistream"):
                    e2e.append({**run_cat(corpus, n, layout, log), "run": run})
                    e2e.append({**run_add(corpus, n, scratch, log, layout), "run": run})
                for t in range(1, n) if args.scaling else ():
                    e2e.append({**run_cat(corpus, t, "single", log), "run": run})
                    e2e.append({**run_add(corpus, t, scratch, log), "run": run})
        if small:
            warm_cache(small.bz2)
            e2e.append(run_add(small, n, scratch, log))
        if "tokenizer" not in skip:
            toks = run_tokenizers(n, args.tok_mb, log)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ctx["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]

    md = report(ctx, e2e, toks, corpus.size_mb, n, max(1, args.runs))
    print(md)
    out: Optional[Path] = args.out or (_corpus.WORK / f"shards-{corpus.size_mb}MB.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "end_to_end": e2e, "tokenizer": toks}, indent=1))
    out.with_suffix(".md").write_text(md + "\n")
    log(f"results: {out} and {out.with_suffix('.md')}")
    if any(not r["identical"] for r in toks):
        log("TOKENIZER OUTPUT DIFFERS FROM TIKTOKEN")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
