"""`wikigpt bench mfu`: the training-throughput benchmark (python/wikigpt/benchmarks/mfu.py) from the installed
package. The data-pipeline benchmarks need wikiextractor, lbzip2 and a 1 GB corpus: they live in benches/ of a
source checkout (`python benches/extract.py`, `python benches/shards.py`)."""

from __future__ import annotations

import argparse


def _cmd_bench(args) -> int:
    if args.what == "mfu":
        from . import mfu

        return int(mfu.main(args.rest) or 0)
    raise AssertionError(args.what)


def add_cli(sub) -> None:
    p = sub.add_parser(
        "bench",
        help="benchmarks: `wikigpt bench mfu [--help]` (tokens/s, MFU and memory of the 124M model, kernels on/off)",
    )
    p.add_argument("what", choices=["mfu"], help="which benchmark")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="options passed to the benchmark (see its --help)")
    p.set_defaults(func=_cmd_bench)
