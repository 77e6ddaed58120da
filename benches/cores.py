"""How `wikigpt cat` / `extract` / `add` scale with cores (not a test): the user has 8-16, this dev machine 2.

    python benches/cores.py --threads 1,2,4,8,16 --size-mb 250

Run it on a machine with that many cores (the lent GPU host has 16). Builds (or reuses) the benchmark corpus of
benches/_corpus.py, then times, on its single-stream file, `lbzip2 -d -n N` when lbzip2 is installed, `wikigpt cat`,
`wikigpt extract` (jsonl) and `wikigpt add` (token shards) at each N, with extract.py's `measure` (wall, CPU seconds,
peak RSS; cat's output checked against the XML's sha256). Prints one markdown table: MB/s of XML, speed-up over
one thread, and cat against lbzip2 at the same N.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _corpus  # noqa: E402
from extract import GNU_TIME, measure, table, wikigpt_cmd  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", default=f"1,2,{os.cpu_count() or 2}",
                    help="comma-separated thread counts (default 1,2,all cores)")
    ap.add_argument("--size-mb", type=int, default=250, help="corpus size in MB of XML (default 250)")
    ap.add_argument("--skip", default="", help="comma-separated, from: lbzip2,cat,extract,add")
    args = ap.parse_args(argv)
    counts = sorted({int(t) for t in args.threads.split(",") if t.strip()})
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    corpus = _corpus.build(args.size_mb, log=lambda m: print(m, file=sys.stderr))
    src = corpus.bz2
    have_lbzip2 = shutil.which("lbzip2") is not None and "lbzip2" not in skip
    print(f"machine: {os.cpu_count()} cores ({platform.processor() or platform.machine()}), Python "
          f"{platform.python_version()}; corpus {corpus.xml_bytes / 1e6:,.0f} MB of XML, {src.name}"
          f"{'' if GNU_TIME else '; no /usr/bin/time: RSS is an upper bound'}", file=sys.stderr)
    rows, speeds = [], {}
    with tempfile.TemporaryDirectory(prefix="wikigpt-cores-") as tmp:
        for n in counts:
            jobs = []
            if have_lbzip2:
                jobs.append(("lbzip2", ["lbzip2", "-d", "-c", "-n", n, src], True))
            if "cat" not in skip:
                jobs.append(("wikigpt cat", wikigpt_cmd("cat", src, "--processes", n, "-q"), True))
            if "extract" not in skip:
                jobs.append(("wikigpt extract", wikigpt_cmd("extract", src, "-o", Path(tmp) / "x", "--processes",
                                                            n, "--format", "jsonl", "-q"), False))
            if "add" not in skip:
                jobs.append(("wikigpt add", wikigpt_cmd("add", Path(tmp) / "ds", src, "--processes", n, "-q"), False))
            for tool, cmd, hashed in jobs:
                for p in ("x", "ds"):
                    shutil.rmtree(Path(tmp) / p, ignore_errors=True)
                m = measure(f"{tool} {n}", cmd, hash_stdout=hashed)
                m.check_rc()
                if hashed and m.stdout_sha256 != corpus.xml_sha256:
                    raise SystemExit(f"{tool} -n {n}: output differs from the XML")
                mbs = corpus.xml_bytes / 1e6 / m.wall_s
                speeds[(tool, n)] = mbs
                base = speeds.get((tool, counts[0]))
                vs_lb = speeds.get(("lbzip2", n)) if tool == "wikigpt cat" else None
                rows.append([tool, str(n), f"{m.wall_s:.1f}", f"**{mbs:.1f}**", f"{m.cpu_s:.1f}",
                             f"{mbs / base:.2f}×" if base else "", f"{mbs / vs_lb:.2f}×" if vs_lb else "",
                             f"{m.max_rss_mib:.0f}"])
                print(f"  {tool:<16} -p {n:<3} {m.wall_s:7.1f} s {mbs:7.1f} MB/s  cpu {m.cpu_s:6.1f} s",
                      file=sys.stderr)
    print(table(["tool", "threads", "wall s", "MB/s of XML", "CPU s", f"× {counts[0]} thread", "× lbzip2",
                 "peak RSS MiB"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
