#!/usr/bin/env bash
# The next lent-GPU session's plan (benches/RESULTS.md "Next GPU session"), as one call that fits the ~10-minute
# per-call limit. Session 1's gpu_check.sh stalled on its first kernels-ON compiled configuration (no row in 140 s),
# so this runs the questions in the order that separates the causes, each under its own timeout, and always goes on:
#
#   A. kernels OFF then ON, eager (no torch.compile), B=8, 12 GiB   are the kernels themselves slow on CUDA?  <= 100 s
#   B. kernels ON, compiled, B=8, with stack dumps every 30 s and      is it the compiler (and where)?           <= 150 s
#      TORCH_LOGS=recompiles,graph_breaks
#   C. kernels OFF sweep, B=8/16/32, capped and uncapped, one         issue 5 item 10's missing rows            <= 170 s
#      dynamic-batch compile
#   D. kernels ON compiled, B=32 (only if B produced a row)           issue 6's "B=32 fits in 12 GiB"           <= 120 s
#      (if B gave no row: B2 = B with TORCHINDUCTOR_COMPILE_THREADS=1  is it inductor's compile-worker pool?)
#   E. benches/cores.py on the host's 16 cores, 100 MB corpus         issue 2's "how it scales with cores"      the rest
#
# Build here first, then carry the extension (no wheel install needed; the device has torch/triton/numpy):
#   pip install -e .            # puts python/wikigpt/_core.abi3.so in place
#   run(command="OUT=$OUT bash benches/gpu_next.sh", carry=["python/wikigpt/_core.abi3.so"], timeout_s=590)
# Everything prints to stdout (tails) and lands in $OUT (full logs, mfu_*.json/csv).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu_next_out}"
mkdir -p "$OUT"
export PYTHONPATH="$PWD/python${PYTHONPATH:+:$PYTHONPATH}"
export PYTORCH_CUDA_ALLOC_CONF="${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}"
T0=$(date +%s)
LIMIT=${LIMIT:-570}
log() { echo "[gpu_next +$(( $(date +%s) - T0 ))s] $*"; }
left() { echo $(( LIMIT - ($(date +%s) - T0) )); }
# step NAME SECONDS CMD...: run CMD under min(SECONDS, time left), full log in $OUT/NAME.log, tail on stdout
step() {
  local name=$1 want=$2; shift 2
  local t; t=$(left); [ "$t" -lt "$want" ] && want=$t
  if [ "$want" -lt 20 ]; then log "$name: skipped (${t}s left)"; return 99; fi
  log "$name: up to ${want}s: $*"
  timeout "$want" "$@" >"$OUT/$name.log" 2>&1
  local rc=$?
  grep -v "^\s*$" "$OUT/$name.log" | tail -25
  log "$name: exit code $rc$([ $rc -eq 124 ] && echo ' (timed out)')"
  return $rc
}

python - <<'EOF'
import platform, torch, triton, wikigpt
print(f"python {platform.python_version()}, torch {torch.__version__}, triton {triton.__version__}, wikigpt from "
      f"{wikigpt.__file__}; {torch.cuda.get_device_name()} {torch.cuda.get_device_capability()}")
EOF

step A_eager_on 100 python -m wikigpt bench mfu --caps 12 --batches 8 --kernels off,on --no-compile --steps 5 \
  --warmup 2 --out "$OUT/mfu_A"

TORCH_LOGS=recompiles,graph_breaks step B_compiled_on 150 python -m wikigpt bench mfu --caps 12 --batches 8 \
  --kernels on --steps 5 --warmup 2 --dump-stacks-s 30 --out "$OUT/mfu_B"
B_RC=$?

step C_off_sweep 170 python -m wikigpt bench mfu --dynamic-batch --caps 12,none --batches 8,16,32 --kernels off \
  --steps 8 --warmup 2 --budget-s 140 --out "$OUT/mfu_C"

if [ "$B_RC" -eq 0 ] && [ -f "$OUT/mfu_B.json" ]; then
  step D_compiled_on_b32 120 python -m wikigpt bench mfu --caps 12 --batches 32 --kernels on --steps 5 --warmup 2 \
    --out "$OUT/mfu_D"
else
  # B gave no row: use D's time to split the compiler's parts. One compile thread (no inductor subprocess pool) and
  # stack dumps every 20 s: if this finishes, the hang is in the pool or a worker; if not, the stacks say where.
  log "D_compiled_on_b32: skipped (B produced no result); running B2 instead"
  TORCHINDUCTOR_COMPILE_THREADS=1 TORCH_LOGS=recompiles,graph_breaks step B2_compiled_on_1thread 120 \
    python -m wikigpt bench mfu --caps 12 --batches 8 --kernels on --steps 3 --warmup 1 --dump-stacks-s 20 \
    --out "$OUT/mfu_B2"
fi

step E_cores 600 python benches/cores.py --threads 1,2,4,8,16 --size-mb 100
log "done"
