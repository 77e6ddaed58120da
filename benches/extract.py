"""Decoding and extraction speed, side by side on one corpus with the same thread count (not a test).

    python benches/extract.py                      # 1 GB corpus, N = all cores (~6 min on 2 cores)
    python benches/extract.py --size-mb 100        # quick check
    python benches/extract.py --scaling            # also every tool at 1..N-1 threads
    python benches/extract.py --skip wikiextractor # leave out a slow baseline
    python benches/extract.py --runs 3             # three interleaved rounds; the targets table gives each ratio

Measured on the single-stream file (one `bzip2 -9` stream, like the enwiki parts), then on its multistream twin:
  bzip2 -dc            the reference decoder (one thread)
  lbzip2 -d -n N       the parallel bzip2 (Debian package)
  wikigpt cat -p N     our block-parallel decoder
  wikigpt extract -p N decode + parse + clean, jsonl out
  wikiextractor --processes N --json   (PyPI; run through benches/_wikiextractor.py)
Speed is MB of XML (10^6 bytes of decoded XML) per wall second. Every decoder's stdout is streamed through sha256 in
this process (~1 CPU-second per GB, the same for every decoder) and must equal the corpus XML; the extractors'
outputs are counted (articles, text bytes). CPU seconds (user + sys, child processes included) come from wait4(),
peak RSS from GNU time (/usr/bin/time -f %M): for wikiextractor, whose work runs in N+1 processes, that is its
largest single process, not their sum.
Peak RSS is also measured on a smaller corpus (--rss-size-mb) to show it does not grow with the part's size.
Results: a markdown table on stdout, and JSON + markdown files under benches/_work/ (--out).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _corpus  # noqa: E402
import _wikiextractor  # noqa: E402

QUIET_LOAD = 1.5  # 1-minute load average under which the 2-core machine counts as quiet


# ---------------------------------------------------------------------------------------------- measuring


@dataclass
class Measure:
    """One child process: its wall time, CPU time (user + sys, children included) and peak RSS."""

    label: str
    cmd: List[str]
    wall_s: float
    cpu_s: float
    max_rss_mib: float
    rc: int
    stdout_sha256: Optional[str] = None
    stdout_bytes: Optional[int] = None
    stderr_tail: str = ""
    extra: Dict = field(default_factory=dict)

    def check_rc(self) -> None:
        if self.rc != 0:
            raise RuntimeError(f"{self.label} failed (exit {self.rc}): {' '.join(self.cmd)}\n{self.stderr_tail}")


#: GNU time measures a child's peak RSS from a 2 MB process. Measuring from here would not work: a child forked
#: (or vforked) from this Python process counts this process's own RSS as its peak until it execs, which would put a
#: floor of ~30 MiB (more in shards.py, which holds texts) under every figure.
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def measure(label: str, cmd: List[str], hash_stdout: bool = False, env: Optional[dict] = None) -> Measure:
    """Run `cmd`; with hash_stdout its stdout is streamed through sha256 (1 MiB reads, never held in memory)."""
    with tempfile.TemporaryFile() as err, tempfile.NamedTemporaryFile("r") as rss_file:
        argv = [str(c) for c in cmd]
        if GNU_TIME:
            argv = [GNU_TIME, "-f", "%M", "-o", rss_file.name, *argv]
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE if hash_stdout else subprocess.DEVNULL, stderr=err,
                                env=env)
        digest = nbytes = None
        if hash_stdout:
            h = hashlib.sha256()
            nbytes = 0
            buf = bytearray(1 << 20)
            view = memoryview(buf)
            while True:
                n = proc.stdout.readinto(buf)
                if not n:
                    break
                h.update(view[:n])
                nbytes += n
            proc.stdout.close()
            digest = h.hexdigest()
        # wait4 gives this child's own rusage (its waited-for descendants included), unlike RUSAGE_CHILDREN, which
        # would mix in every earlier child of this bench.
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        tail = err.read()[-3000:].decode("utf-8", "replace")
        rss_kib = ru.ru_maxrss  # fallback without GNU time: an upper bound (see GNU_TIME)
        if GNU_TIME:
            lines = rss_file.read().split()
            if lines and lines[-1].isdigit():
                rss_kib = int(lines[-1])
    return Measure(label, [str(c) for c in cmd], wall, ru.ru_utime + ru.ru_stime, rss_kib / 1024,
                   proc.returncode, digest, nbytes, tail)


def _first_line(cmd: List[str]) -> str:
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "not found"
    return ((r.stdout or "") + (r.stderr or "")).strip().splitlines()[0] if (r.stdout or r.stderr) else "?"


def _pkg_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def wikigpt_available() -> Optional[str]:
    """None if `import wikigpt._core` works in a child (what the benched commands need), else why not."""
    r = subprocess.run([sys.executable, "-c", "import wikigpt._core"], capture_output=True, text=True)
    return None if r.returncode == 0 else (r.stderr.strip().splitlines() or ["?"])[-1]


def context(n: int, corpora: list) -> dict:
    """Machine, versions, load and corpus: printed above the tables and saved in the JSON."""
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    root = HERE.parent
    git = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True)
    return {
        "date_utc": time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime()),
        "host": platform.node(),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "threads": n,
        "python": platform.python_version(),
        "load_avg_start": [round(x, 2) for x in os.getloadavg()],
        "git": (git.stdout.strip() or "?") + ("+dirty" if dirty.stdout.strip() else ""),
        "versions": {
            "wikigpt": _pkg_version("wikigpt"),
            "bzip2": (re.findall(r"Version (\S+?),", _first_line(["bzip2", "-V"])) or ["?"])[0],
            "lbzip2": _first_line(["lbzip2", "-V"]),
            "wikiextractor": _pkg_version("wikiextractor"),
            "tiktoken": _pkg_version("tiktoken"),
        },
        "corpus": [c.describe() for c in corpora],
    }


def context_lines(ctx: dict) -> List[str]:
    v = ctx["versions"]
    return [
        f"- machine: {ctx['nproc']} cores ({ctx['cpu']}), Python {ctx['python']}; {ctx['threads']} threads for "
        f"every parallel tool; load average at start {ctx['load_avg_start'][0]:.2f} "
        f"(end {ctx.get('load_avg_end', ['?'])[0]})",
        f"- versions: wikigpt {v['wikigpt']} (git {ctx['git']}), bzip2 {v['bzip2']}, {v['lbzip2']}, "
        f"wikiextractor {v['wikiextractor']}, tiktoken {v['tiktoken']}",
        *[f"- corpus: {c}" for c in ctx["corpus"]],
        f"- date: {ctx['date_utc']} UTC",
    ]


def wait_for_quiet(max_wait_s: float, log=print) -> float:
    """Wait (up to max_wait_s) for the 1-minute load average to drop under QUIET_LOAD; returns the last value."""
    deadline = time.monotonic() + max_wait_s
    load = os.getloadavg()[0]
    while load >= QUIET_LOAD and time.monotonic() < deadline:
        log(f"load average {load:.2f} >= {QUIET_LOAD}: waiting for a quiet machine ...")
        time.sleep(15)
        load = os.getloadavg()[0]
    return load


def warm_cache(*paths: Path) -> None:
    """Read the inputs once so that the first tool measured does not pay for the disk and the others do not."""
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def table(headers: List[str], rows: List[List[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def ratio(a: Optional[float], b: Optional[float]) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


def count_jsonl(folder: Path) -> dict:
    """Articles and UTF-8 text bytes in every jsonl file under `folder` (wikigpt's *.jsonl, wikiextractor's wiki_NN)."""
    docs = text = 0
    for f in sorted(p for p in folder.rglob("*") if p.is_file()):
        with open(f, "rb") as fh:
            for line in fh:
                if line.strip():
                    docs += 1
                    text += len(json.loads(line)["text"].encode("utf-8"))
    return {"articles": docs, "text_bytes": text}


# ---------------------------------------------------------------------------------------------- the jobs


def wikigpt_cmd(*args) -> List[str]:
    return [sys.executable, "-m", "wikigpt", *[str(a) for a in args]]


@dataclass
class Job:
    key: str  # for --skip
    tool: str
    layout: str  # "single" / "multistream"
    threads: int
    kind: str  # "cat": stdout must equal the XML; "extract": writes a folder of jsonl
    build: Callable[[Path, Path], List[str]]  # (input, output folder) -> argv


def jobs_for(n: int, scaling: bool) -> List[Job]:
    sweep = sorted(set(range(1, n + 1) if scaling else [n]))
    jobs: List[Job] = []
    for layout in ("single", "multistream"):
        if layout == "single":
            jobs.append(Job("bzip2", "bzip2 -dc", layout, 1, "cat", lambda f, o: ["bzip2", "-dc", f]))
        for t in sweep:
            jobs.append(Job("lbzip2", f"lbzip2 -d -n {t}", layout, t, "cat",
                            lambda f, o, t=t: ["lbzip2", "-d", "-c", "-n", str(t), f]))
            jobs.append(Job("cat", f"wikigpt cat -p {t}", layout, t, "cat",
                            lambda f, o, t=t: wikigpt_cmd("cat", f, "--processes", t, "-q")))
            jobs.append(Job("extract", f"wikigpt extract -p {t}", layout, t, "extract",
                            lambda f, o, t=t: wikigpt_cmd("extract", f, "-o", o, "--processes", t, "--format",
                                                          "jsonl", "-q")))
        if layout == "single":  # wikiextractor reads both layouts at the same (slow) speed: once is enough
            jobs.append(Job("wikiextractor", f"wikiextractor --processes {n}", layout, n, "extract",
                            lambda f, o: _wikiextractor.command([str(f), "-o", str(o), "--json", "--processes",
                                                                 str(n), "-q"])))
    return jobs


def run_job(job: Job, corpus: _corpus.Corpus, scratch: Path, log=print) -> dict:
    src = corpus.bz2 if job.layout == "single" else corpus.multistream
    out = scratch / "out"
    shutil.rmtree(out, ignore_errors=True)
    m = measure(job.tool, job.build(src, out), hash_stdout=job.kind == "cat")
    m.check_rc()
    res = {"tool": job.tool, "key": job.key, "layout": job.layout, "threads": job.threads, "kind": job.kind,
           "corpus_mb": corpus.size_mb, "xml_bytes": corpus.xml_bytes,
           "xml_mb_per_s": corpus.xml_bytes / 1e6 / m.wall_s,
           **{k: v for k, v in asdict(m).items() if k not in ("label", "extra")}}
    if job.kind == "cat":
        res["ok"] = m.stdout_sha256 == corpus.xml_sha256 and m.stdout_bytes == corpus.xml_bytes
        res["check"] = "sha256 = XML" if res["ok"] else f"MISMATCH ({m.stdout_bytes:,} bytes)"
    else:
        counts = count_jsonl(out)
        res.update(counts)
        res["ok"] = counts["articles"] > 0
        res["check"] = f"{counts['articles']:,} articles, {counts['text_bytes'] / 1e6:,.0f} MB text"
        shutil.rmtree(out, ignore_errors=True)
    log(f"  {job.tool:<34} {job.layout:<11} {m.wall_s:7.1f} s {res['xml_mb_per_s']:7.1f} MB/s  "
        f"cpu {m.cpu_s:6.1f} s  rss {m.max_rss_mib:7.1f} MiB  {res['check']}")
    return res


# ---------------------------------------------------------------------------------------------- report


def find(results: List[dict], key: str, layout: str = "single", threads: Optional[int] = None,
         corpus_mb: Optional[int] = None, run: int = 0) -> Optional[dict]:
    for r in results:
        if r["key"] == key and r["layout"] == layout and (threads is None or r["threads"] == threads) and (
                corpus_mb is None or r["corpus_mb"] == corpus_mb) and r.get("run", 0) == run:
            return r
    return None


#: The issue-15 targets: (what, numerator key, denominator key, goal). Ratios are of MB/s of XML, same file, same
#: threads, measured side by side in the same round.
TARGETS = (
    ("wikigpt cat vs lbzip2 -d", "cat", "lbzip2", 2.0),
    ("wikigpt extract vs wikigpt cat", "extract", "cat", 0.9),
)


def run_pairs(results: List[dict], a_key: str, b_key: str, layout: str, threads: int, runs: int) -> List[tuple]:
    """(a, b) of each run on one file layout and thread count, for the runs that have both."""
    pairs = [(find(results, a_key, layout, threads, run=run), find(results, b_key, layout, threads, run=run))
             for run in range(runs)]
    return [(a, b) for a, b in pairs if a and b]


def target_rows(results: List[dict], runs: int) -> List[List[str]]:
    """One row per target, file layout and thread count: the ratio in each run, and whether every run meets it."""
    rows = []
    threads = sorted({r["threads"] for r in results if r["key"] in ("cat", "extract", "lbzip2")})
    for what, a_key, b_key, goal in TARGETS:
        for layout in ("single", "multistream"):
            for t in threads:
                pairs = run_pairs(results, a_key, b_key, layout, t, runs)
                xs = [a["xml_mb_per_s"] / b["xml_mb_per_s"] for a, b in pairs]
                if xs:
                    rows.append([f"{what}, {t} thr, {'single stream' if layout == 'single' else layout}",
                                 " / ".join(f"{x:.2f}×" for x in xs), f"≥ {goal}×",
                                 "yes" if all(x >= goal for x in xs) else "**no**"])
    return rows


def cpu_per_gb(r: dict) -> float:
    """CPU seconds (user + sys) per GB of XML of one measured run."""
    return r["cpu_s"] / (r["xml_bytes"] / 1e9)


def cpu_row(threads: int, layout: str, pairs: List[tuple]) -> List[str]:
    """A CPU table row: `cat` and a job on one file layout and thread count, each run (`pairs` of measured runs:
    (cat, job)), in CPU-s per GB of XML, and their difference: the work after decoding. When both keep every core
    busy (N threads on N cores), the job's speed relative to cat is about cat's CPU over the job's, so this
    difference, not the decoder, decides how close the job comes to cat. Shared with benches/shards.py."""
    per_gb = [(cpu_per_gb(c), cpu_per_gb(j)) for c, j in pairs]
    return [f"{threads} thr, {'single stream' if layout == 'single' else layout}",
            " / ".join(f"{c:.1f}" for c, _ in per_gb), " / ".join(f"{j:.1f}" for _, j in per_gb),
            " / ".join(f"{j - c:.1f}" for c, j in per_gb)]


def cpu_rows(results: List[dict], runs: int) -> List[List[str]]:
    """`cpu_row` for `extract` at every file layout and thread count measured."""
    rows = []
    threads = sorted({r["threads"] for r in results if r["key"] in ("cat", "extract")})
    for layout in ("single", "multistream"):
        for t in threads:
            pairs = run_pairs(results, "cat", "extract", layout, t, runs)
            if pairs:
                rows.append(cpu_row(t, layout, pairs))
    return rows


def speed(r: Optional[dict]) -> Optional[float]:
    return r["xml_mb_per_s"] if r else None


def report(ctx: dict, results: List[dict], size_mb: int, rss_mb: int, n: int, runs: int = 1) -> str:
    every = [r for r in results if r["corpus_mb"] == size_mb]
    main = [r for r in every if r.get("run", 0) == 0]
    lines = [f"### Decode and extract: {size_mb} MB of XML, {n} threads", "", *context_lines(ctx), ""]
    if runs > 1:
        lines += [f"Run 1 of {runs} (the runs are interleaved rounds of every tool; the targets table has each):", ""]
    rows = []
    for r in main:
        base = find(main, "bzip2")
        lb = find(main, "lbzip2", r["layout"], r["threads"])
        rows.append([
            "single stream" if r["layout"] == "single" else "multistream", r["tool"], f"{r['wall_s']:.1f}",
            f"**{r['xml_mb_per_s']:.1f}**", ratio(r["xml_mb_per_s"], speed(base)),
            ratio(r["xml_mb_per_s"], speed(lb)), f"{r['cpu_s']:.1f}", f"{r['max_rss_mib']:.0f}", r["check"],
        ])
    lines.append(table(["file", "tool", "wall s", "MB/s of XML", "× bzip2 -dc", "× lbzip2 (same file, threads)",
                        "CPU s", "peak RSS MiB", "output"], rows))

    ext, wx = (find(main, k, "single", n) for k in ("extract", "wikiextractor"))
    targets = target_rows(every, runs)
    if ext and wx:
        x = ext["xml_mb_per_s"] / wx["xml_mb_per_s"]
        targets.append([f"wikigpt extract vs wikiextractor --processes {n}", f"{x:.2f}×", "≥ 8.0×",
                        "yes" if x >= 8 else "**no**"])
    if targets:
        lines += ["", table(["target", "measured (run 1 / 2 / ...)", "goal", "met (every run)"], targets)]
    cpu = cpu_rows(every, runs)
    if cpu:
        lines += ["", "CPU seconds per GB of XML (run 1 / 2 / ...; extract − cat is the work after decoding):", "",
                  table(["threads, file", "wikigpt cat", "wikigpt extract", "extract − cat"], cpu)]

    threads = sorted({r["threads"] for r in main if r["key"] in ("cat", "extract", "lbzip2")})
    if len(threads) > 1:
        srows = []
        for key, name in (("lbzip2", "lbzip2"), ("cat", "wikigpt cat"), ("extract", "wikigpt extract")):
            for layout in ("single", "multistream"):
                sp = [speed(find(main, key, layout, t)) for t in threads]
                if all(sp):
                    srows.append([name, layout] + [f"{s:.1f}" for s in sp] + [f"{sp[-1] / sp[0]:.2f}×"])
        lines += ["", f"Scaling with threads (MB/s of XML; {ctx['nproc']} cores):", "",
                  table(["tool", "file"] + [f"{t} thr" for t in threads] + [f"{threads[-1]} vs 1"], srows)]

    small = [r for r in results if r["corpus_mb"] == rss_mb]
    if small:
        mrows = []
        for r in small:
            big = find(main, r["key"], r["layout"], r["threads"])
            if big:
                mrows.append([r["tool"], f"{r['max_rss_mib']:.0f}", f"{big['max_rss_mib']:.0f}",
                              f"{r['xml_mb_per_s']:.1f}", f"{big['xml_mb_per_s']:.1f}"])
        lines += ["", f"Peak RSS against the part's size (single stream, {n} threads):", "",
                  table(["tool", f"RSS MiB, {rss_mb} MB XML", f"RSS MiB, {size_mb} MB XML",
                         f"MB/s, {rss_mb} MB", f"MB/s, {size_mb} MB"], mrows)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- main


SKIPPABLE = ("bzip2", "lbzip2", "cat", "extract", "wikiextractor", "multistream", "rss")


def parse_skip(text: str) -> set:
    skip = {s.strip() for s in text.split(",") if s.strip()}
    bad = skip - set(SKIPPABLE)
    if bad:
        raise SystemExit(f"--skip: unknown {', '.join(sorted(bad))} (choose from {', '.join(SKIPPABLE)})")
    return skip


def common_args(ap: argparse.ArgumentParser, default_out: str) -> None:
    ap.add_argument("--size-mb", type=int, default=1000, help="corpus size in MB of XML (default 1000)")
    ap.add_argument("--processes", "-p", type=int, default=os.cpu_count() or 2,
                    help="threads/processes for every parallel tool (default: all cores)")
    ap.add_argument("--rss-size-mb", type=int, default=250,
                    help="also measure peak RSS on a corpus this big, to compare with --size-mb (0: skip)")
    ap.add_argument("--wait-quiet", type=float, default=0, metavar="S",
                    help=f"first wait up to S seconds for the load average to drop under {QUIET_LOAD}")
    ap.add_argument("--out", type=Path, default=None, help=f"JSON results path (default {default_out}); "
                    "a .md with the tables is written beside it")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    common_args(ap, "benches/_work/extract-<size>MB.json")
    ap.add_argument("--scaling", action="store_true", help="also run lbzip2 / wikigpt at 1..N-1 threads")
    ap.add_argument("--skip", default="", help=f"comma-separated, from: {', '.join(SKIPPABLE)}")
    ap.add_argument("--runs", type=int, default=1,
                    help="rounds of every job on the main corpus, interleaved (the targets table gives each run)")
    args = ap.parse_args(argv)
    skip = parse_skip(args.skip)
    n = args.processes
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731

    why = wikigpt_available()
    if why:
        log(f"wikigpt rows skipped: `import wikigpt._core` fails ({why}); build it with `pip install -e .`")
        skip |= {"cat", "extract"}
    corpus = _corpus.build(args.size_mb, log=log)
    small = None
    if args.rss_size_mb and args.rss_size_mb != args.size_mb and "rss" not in skip and not {"cat", "extract"} <= skip:
        small = _corpus.build(args.rss_size_mb, log=log)
    if args.wait_quiet:
        wait_for_quiet(args.wait_quiet, log)
    ctx = context(n, [c for c in (corpus, small) if c])
    if ctx["load_avg_start"][0] >= QUIET_LOAD:
        log(f"warning: load average {ctx['load_avg_start'][0]:.2f} >= {QUIET_LOAD}: the machine is busy, "
            "figures will be low and noisy")

    scratch = _corpus.WORK / "scratch-extract"
    scratch.mkdir(parents=True, exist_ok=True)
    results = []
    try:
        warm_cache(corpus.bz2, corpus.multistream)
        log(f"{corpus.describe()}\nrunning ({n} threads):")
        for run in range(max(1, args.runs)):
            if args.runs > 1:
                log(f" run {run + 1} of {args.runs} (load average {os.getloadavg()[0]:.2f})")
            for job in jobs_for(n, args.scaling):
                if job.key in skip or (job.layout == "multistream" and "multistream" in skip):
                    continue
                if run > 0 and job.key in ("bzip2", "wikiextractor"):
                    continue  # the slow references: once is enough
                results.append({**run_job(job, corpus, scratch, log), "run": run})
        if small:
            warm_cache(small.bz2)
            log(f"{small.describe()}\nrunning ({n} threads), for peak RSS against size:")
            for job in jobs_for(n, False):
                if job.key in ("cat", "extract") and job.key not in skip and job.layout == "single":
                    results.append(run_job(job, small, scratch, log))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ctx["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]

    md = report(ctx, results, corpus.size_mb, small.size_mb if small else -1, n, max(1, args.runs))
    print(md)
    out = args.out or (_corpus.WORK / f"extract-{corpus.size_mb}MB.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"context": ctx, "results": results}, indent=1))
    out.with_suffix(".md").write_text(md + "\n")
    log(f"results: {out} and {out.with_suffix('.md')}")
    bad = [r["tool"] for r in results if not r["ok"]]
    if bad:
        log(f"OUTPUT CHECK FAILED: {', '.join(bad)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
