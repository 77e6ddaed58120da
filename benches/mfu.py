"""Thin runner for the MFU sweep from a source checkout: `python benches/mfu.py --help`.

The benchmark itself lives in the package (python/wikigpt/benchmarks/mfu.py) so an installed wikigpt can run it as
`wikigpt bench mfu`; this file only makes `python benches/mfu.py` work without installing.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))

from wikigpt.benchmarks.mfu import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
