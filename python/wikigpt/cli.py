"""The `wikigpt` command. Each stage's module registers its own subcommands (`add_cli(subparsers)`), so this file
only wires them and turns wikigpt's errors into one clear line and a non-zero exit, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# Modules that add subcommands, in the order they appear in `wikigpt --help`.
_COMMAND_MODULES = [
    "wikigpt.data.extract",   # cat, extract
    "wikigpt.data.dataset",   # add, status, export-nanogpt
    "wikigpt.data.dumps",     # parts, download
    "wikigpt.training.trainer",   # train, sample, plot
    "wikigpt.training.hf",  # export-hf
    "wikigpt.quickstart",  # quickstart
    "wikigpt.experiments.grow",      # grow, report
    "wikigpt.benchmarks.cli",     # bench
]

# Commands whose work is all in the Rust core. numpy's OpenBLAS starts a thread per core when it is imported, and
# those threads spin for a while waiting for matrix work that never comes: 2.5% of `wikigpt cat`'s CPU on 2 cores
# (perf), taken from the decoder. Set before any command module imports numpy; the user's own setting wins.
_DATA_COMMANDS = {"cat", "extract", "add", "status", "export-nanogpt", "parts", "download"}


def _first_command(argv: list[str]) -> str | None:
    return next((a for a in argv if not a.startswith("-")), None)


def build_parser() -> argparse.ArgumentParser:
    from ._version import __version__

    parser = argparse.ArgumentParser(
        prog="wikigpt",
        description="From Wikipedia dump parts to a trained GPT, fast, one part at a time.",
    )
    parser.add_argument("--version", action="version", version=f"wikigpt {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name == name:  # that stage is not part of this build
                continue
            raise
        module.add_cli(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    if _first_command(sys.argv[1:] if argv is None else argv) in _DATA_COMMANDS:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from .errors import WikiGPTError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except (WikiGPTError, OSError) as e:  # ours, and the OS's (missing file, full disk): one line, no traceback
        if isinstance(e, BrokenPipeError):  # `wikigpt cat ... | head`
            return 0
        print(f"wikigpt: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("wikigpt: interrupted", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
