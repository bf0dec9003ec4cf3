#!/usr/bin/env bash
# False alarms and detection of the wall-clock regression check (`slaf-approx bench --check --quick`).
#
#  1. two saved quick runs of the current commit (the tree must be clean, or no run-to-run spread is
#     measured and the check uses its default threshold);
#  2. N checks on the unchanged code: every exit 1 is a false alarm;
#  3. N checks with the test hook SLAF_APPROX_BENCH_SLOWDOWN=1.25 (every SLAF op benchmark 25% slower): a
#     check that exits 1 naming a test_slaf benchmark as slower is a detection.
# Prints both counts and the machine's load; logs each run under OUTDIR.
# Usage: bench/false_alarm.sh [N] [OUTDIR]    (default 10 and .scratch/false_alarm; about 1-2 min a run)
set -uo pipefail
n=${1:-10}
out=${2:-.scratch/false_alarm}
bench=${SLAF_APPROX:-slaf-approx}
mkdir -p "$out"
store="$out/store"
rm -rf "$store"
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    echo "false_alarm: the working tree has changes: the spread of unchanged code cannot be measured" >&2
fi
echo "false_alarm: $(date -u +%FT%TZ) start; load: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores"
for i in 1 2; do
    $bench bench --quick --out "$out/base" --storage "$store" > "$out/base-$i.log" 2>&1 \
        || { echo "false_alarm: baseline run $i failed, see $out/base-$i.log" >&2; exit 2; }
done
alarms=0
detected=0
for i in $(seq "$n"); do
    $bench bench --quick --check --out "$out/check" --storage "$store" > "$out/same-$i.log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && alarms=$((alarms + 1))
    echo "unchanged $i: exit $rc; load $(cut -d' ' -f1 /proc/loadavg)"
done
for i in $(seq "$n"); do
    SLAF_APPROX_BENCH_SLOWDOWN=1.25 $bench bench --quick --check --out "$out/check" --storage "$store" \
        > "$out/slow-$i.log" 2>&1
    rc=$?
    if [ "$rc" -eq 1 ] && grep -q "| slower | test_slaf" "$out/slow-$i.log"; then
        detected=$((detected + 1))
    fi
    echo "slowed 25% $i: exit $rc; load $(cut -d' ' -f1 /proc/loadavg)"
done
echo "false_alarm: $(date -u +%FT%TZ) end; load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "false alarms: $alarms of $n checks on unchanged code"
echo "detections:   $detected of $n checks with a 25% slowdown of the SLAF benchmarks"
