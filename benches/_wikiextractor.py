"""Run wikiextractor (PyPI) as the benches' baseline: `python benches/_wikiextractor.py <wikiextractor args>`.

wikiextractor 3.1.0 runs as published on Python 3.11. Releases before 3.1 (3.0.6 is still what many guides pin) fail
on Python >= 3.11 at import with `re.error: global flags not at the start of the expression` (upstream issue #336,
fixed by PR #313): extract.py writes `(?i)` in the middle of two patterns. Before 3.11 Python applied such a flag to
the whole pattern wherever it stood, so moving it to the front is exactly the old behaviour; this runner does that,
only for those releases, and otherwise runs wikiextractor untouched. Its worker processes are forked and inherit it.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from typing import List


def version() -> str:
    """The installed wikiextractor version, or raise a one-line error saying how to get it."""
    try:
        return metadata.version("wikiextractor")
    except metadata.PackageNotFoundError:
        raise SystemExit("wikiextractor is not installed: pip install wikiextractor (the benchmark baseline)") from None


def needs_patch(ver: str, python=sys.version_info) -> bool:
    """True for wikiextractor releases before 3.1 on Python 3.11 or newer."""
    nums = tuple(int(x) for x in re.findall(r"\d+", ver)[:2])
    return python >= (3, 11) and nums < (3, 1)


def hoist_inline_flags(pattern):
    """`\\[((?i)http...` → `(?i)\\[((http...`: a global inline flag moved to the start (its meaning before 3.11)."""
    if not isinstance(pattern, str):
        return pattern
    flags = re.findall(r"\(\?[aiLmsux]+\)", pattern)
    if not flags or pattern.startswith(flags[0]) and len(flags) == 1:
        return pattern
    body = re.sub(r"\(\?[aiLmsux]+\)", "", pattern)
    return "".join(dict.fromkeys(flags)) + body


def _patch_re() -> None:
    original = re.compile

    def compile(pattern, flags=0):  # noqa: A001 - stands in for re.compile
        return original(hoist_inline_flags(pattern), flags)

    re.compile = compile


def command(args: List[str]) -> List[str]:
    """The argv that runs wikiextractor with `args` through this runner (same interpreter as the bench)."""
    return [sys.executable, __file__, *args]


def main(argv: List[str]) -> int:
    if needs_patch(version()):
        _patch_re()
    from wikiextractor import WikiExtractor

    sys.argv = ["wikiextractor", *argv]
    WikiExtractor.main()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
