#!/usr/bin/env bash
# Behaviour fingerprint, to show a refactor changed no output (issue 14): sha256 of `extract` (jsonl and text) and
# `add` outputs on the bundled sample, and the tiny preset's losses over 30 steps on the CPU.
# Usage: benches/fingerprint.sh OUTDIR [DUMP ...], then diff two OUTDIR/sums.txt. PYTHONPATH picks the wikigpt under
# test, for example an older commit's wheel installed with `pip install --no-deps --target DIR`. Each extra DUMP (say
# the bench corpus of benches/_corpus.py, single stream and multistream) is fingerprinted the same way at 2 threads:
# extract as jsonl and text, and add (issue 15 item 4: a speed change must not change a byte).
set -euo pipefail
out=$1
rm -rf "$out"
mkdir -p "$out"
sample="$(cd "$(dirname "$0")/.." && pwd)/python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2"
python -m wikigpt extract "$sample" -o "$out/jsonl" -q 2>/dev/null
python -m wikigpt extract "$sample" -o "$out/text" --format text -q 2>/dev/null
python -m wikigpt add "$out/ds" "$sample" --val-fraction 0.1 >/dev/null 2>&1
python -m wikigpt train "$out/ds" --out "$out/run" --preset tiny --max-iters 30 --eval-interval 10 --eval-iters 2 \
  --device cpu --seed 1 >/dev/null 2>&1
shift
dirs=(jsonl text ds)
for dump in "$@"; do
  name=$(basename "$dump")
  python -m wikigpt extract "$dump" -o "$out/$name/jsonl" -p 2 -q 2>/dev/null
  python -m wikigpt extract "$dump" -o "$out/$name/text" --format text -p 2 -q 2>/dev/null
  python -m wikigpt add "$out/$name/ds" "$dump" -p 2 -q >/dev/null 2>&1
  dirs+=("$name")
done
# manifest.json is left out: it records when each part was added
(cd "$out" && find "${dirs[@]}" -type f ! -name manifest.json -print0 | sort -z | xargs -0 sha256sum) >"$out/sums.txt"
python - "$out/run/metrics.jsonl" >>"$out/sums.txt" <<'PY'
import json
import sys

for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("kind") in ("step", "eval"):
        print(r["kind"], r["step"], r.get("loss"), r.get("val_loss"), r.get("train_loss"))
PY
python -c 'import wikigpt; print("fingerprint of", wikigpt.__file__)'
