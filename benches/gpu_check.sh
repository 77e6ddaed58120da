#!/usr/bin/env bash
# The one GPU check of issue 6 (Triton kernels + MFU), for a lent H100/H200 session of ~15 minutes: it must finish in
# about 6 minutes so a rerun still fits. It builds nothing on the GPU machine: the lead builds an abi3 wheel here
# (`maturin build --release -o dist`) and carries dist/. Everything prints to stdout; $OUT/results.json collects it.
#
#   1. install dist/wikigpt-*.whl (--no-deps: torch, triton, numpy are preinstalled there; no network)
#   2. the kernel tests on CUDA (tests/test_kernels_*.py: outputs and gradients vs torch, tiny GPT on vs off, the
#      kernel model under torch.compile, a 124M-sized fused-loss case)                                  <= 150 s
#   3. a dataset from the bundled real sample (for the loss-agreement run)                              <= 60 s
#   4. the MFU sweep: 124M, T=1024, B=8/16/32/48, kernels off/on, capped at 12 GiB first, then uncapped;
#      batch dimension dynamic so each kernels setting compiles once; stops starting configs at 150 s;
#      then 300 steps kernels off vs on on the sample, same init, same batches                        <= 270 s
#
# Usage: OUT=/some/dir bash benches/gpu_check.sh    (OUT defaults to ./gpu_check_out)
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_check_out}"
mkdir -p "$OUT"
T0=$(date +%s)
log() { echo "[gpu_check +$(( $(date +%s) - T0 ))s] $*"; }

log "1/4 install the carried wheel"
WHEEL=$(ls dist/wikigpt-*.whl 2>/dev/null | head -1)
if [ -z "$WHEEL" ]; then
  echo "gpu_check: no dist/wikigpt-*.whl (build one here with 'maturin build --release -o dist' and carry dist/)"
  exit 1
fi
python -m pip install --no-deps --force-reinstall -q "$WHEEL" 2>&1 | tail -3
python - <<'EOF'
import torch, triton, wikigpt, platform
print(f"python {platform.python_version()}, torch {torch.__version__}, triton {triton.__version__}, "
      f"wikigpt {wikigpt.__version__} from {wikigpt.__file__}")
print(f"device {torch.cuda.get_device_name()}, capability {torch.cuda.get_device_capability()}, "
      f"{torch.cuda.get_device_properties(0).total_memory / 2**30:.1f} GiB")
EOF
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader 2>/dev/null || true

log "2/4 kernel tests on CUDA"
# the tests import the installed wheel (nothing puts python/ on sys.path); slow tests included
# -W: a warning from Triton itself (a new version's notice) is printed, not turned into an error by pyproject's
# filterwarnings = error; this run cannot be repeated for such a thing
timeout 130 python -m pytest -q -x -p no:cacheprovider -W "default::UserWarning:triton" \
  --junitxml="$OUT/tests.xml" tests/test_kernels_*.py 2>&1 \
  | tail -25
TEST_RC=${PIPESTATUS[0]}
log "tests exit code $TEST_RC"

log "3/4 dataset from the bundled sample"
rm -rf "$OUT/ds"
timeout 60 python -m wikigpt add "$OUT/ds" python/wikigpt/data/sample/enwiki-sample-pages-articles1.xml-p10p30302.bz2 \
  --val-fraction 0.01 -q 2>&1 | tail -3
AGREE_DATA=()
if [ -f "$OUT/ds/manifest.json" ]; then AGREE_DATA=(--agree-data "$OUT/ds"); else
  log "no dataset: the agreement run uses random tokens"; fi

log "4/4 MFU sweep + loss agreement"
# expandable segments: less fragmentation under the 12 GiB cap (the cap limits reserved memory); kernels off and on
# run under the same setting
PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}" \
timeout 280 python -m wikigpt bench mfu --dynamic-batch --caps 12,none --batches 8,16,32,48 --kernels off,on \
  --steps 8 --warmup 2 --budget-s 150 --out "$OUT/mfu" \
  --agree-steps 200 --agree-batch 8 "${AGREE_DATA[@]}" 2>&1 | grep -v "^\s*$" | tail -60
MFU_RC=${PIPESTATUS[0]}
log "sweep exit code $MFU_RC"

python - "$OUT" "$TEST_RC" "$MFU_RC" <<'EOF'
import json, os, sys, xml.etree.ElementTree as ET
out, test_rc, mfu_rc = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {"tests": {"exit_code": test_rc}, "mfu": None, "sweep_exit_code": mfu_rc}
try:
    root = ET.parse(os.path.join(out, "tests.xml")).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    res["tests"].update({k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")})
    res["tests"]["time_s"] = float(suite.get("time", 0))
    res["tests"]["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                              if c.find("failure") is not None or c.find("error") is not None]
except Exception as e:
    res["tests"]["report_error"] = str(e)
try:
    with open(os.path.join(out, "mfu.json")) as f:
        res["mfu"] = json.load(f)
except Exception as e:
    res["mfu_error"] = str(e)
with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(res, f, indent=1)
t = res["tests"]
print(f"results.json written: tests {t.get('tests')} run, {t.get('failures')} failed, {t.get('errors')} errors; "
      f"{len((res['mfu'] or {}).get('rows', []))} sweep rows")
EOF
log "done"
