#!/usr/bin/env bash
# On a machine with an NVIDIA GPU, within 8 minutes (sized for an H200):
#  1. correctness on CUDA: the SLAF layer's backend checks (tests/test_nn.py with SLAF_TEST_DEVICE=cuda), then
#     the Triton kernels against the float64 reference (bench/triton_selfcheck.py --quick: all its checks,
#     bandwidth at one size; the bandwidth sweep is now the benchmarks' job);
#  2. the kernel benchmarks on CUDA through `slaf-approx bench` (pytest-benchmark rounds, each paired with
#     a copy of the tensor, synchronised, with warm-up rounds): every SLAF backend available on CUDA,
#     degrees 8 and 16, sizes 2^24 and 2^28, float32 and bfloat16, beside the peers (eager and compiled
#     Horner, the compiled recurrence, PAU (5, 4) and matched, compiled; compile time apart), F.relu/gelu/
#     silu, torch.tanh, the copy roofline and the (128, 512, 32, 32) layer. Benchmarks left when the time
#     budget runs out are skipped (--deadline), so the JSON and the report are always written;
#  3. last, a short table: at 2^28 each backend's GB/s, fraction of the copy and time over the fastest
#     peer's, and the GPU goals of slaf_approx/benchmarks/budgets.toml.
# Writes into OUTDIR: device.txt, tests.xml, tests.log, selfcheck.log, kernels.json (the pytest-benchmark
# run), kernels.md with its PNGs, bench.log. For the main report: copy OUTDIR/kernels.json to
# reports/gpu/kernels.json; `slaf-approx bench` on CPU then includes the GPU section.
# Usage: bench/gpu_check.sh OUTDIR [--quick]   (--quick: the layer checks, then the budgets' size and degree)
# SLAF_GPU_CHECK_SECONDS (default 470) is the whole script's budget.
set -uo pipefail
out=${1:?usage: bench/gpu_check.sh OUTDIR [--quick]}
mkdir -p "$out" && out=$(cd "$out" && pwd)
cd "$(dirname "$0")/.." || exit 2
export SLAF_TEST_DEVICE=cuda PYTHONUNBUFFERED=1 MPLBACKEND=Agg
budget=${SLAF_GPU_CHECK_SECONDS:-470}
python3 -c "import torch; print('device:', torch.cuda.get_device_name(0), 'torch', torch.__version__)" \
    | tee "$out/device.txt"
python3 -m pytest tests/test_nn.py -q -p no:cacheprovider \
    -k "all_there or against_float64 or reproducible or saves_only or compile or nan_and_inf" \
    --junitxml="$out/tests.xml" 2>&1 | tee "$out/tests.log"
status=${PIPESTATUS[0]}
if [ "${2:-}" != --quick ]; then
    python3 bench/triton_selfcheck.py --quick 2>&1 | tee "$out/selfcheck.log"
    status=$((status || PIPESTATUS[0]))
    matrix=(--sizes 2^24 2^28 --degrees 8 16 --peers horner:eager horner:compile recurrence:compile pau:compile)
else
    matrix=(--quick)
fi
# what is left of the budget, less ~40 s for starting pytest, the report and the summary
left=$((budget - SECONDS - 40))
[ "$left" -lt 60 ] && left=60
echo "gpu_check: ${SECONDS} s so far; benchmarks get ${left} s"
python3 -m slaf_approx.cli bench --device cuda --dtype float32 bfloat16 "${matrix[@]}" --deadline "$left" \
    --out "$out" --json "$out/kernels.json" --storage "$out/store" 2>&1 | tee "$out/bench.log"
status=$((status || PIPESTATUS[0]))
echo "gpu_check: ${SECONDS} s in all, exit status ${status}" > "$out/elapsed.txt"
exit "$status"
