#!/usr/bin/env bash
# bench.sh — the performance numbers of README: the default model 784-512-256-10 with Adam, one BLAS thread per
# rank, at 1 and 2 ranks (or the rank counts in RANKS="1 2 4"), for a global batch of 128 (strong scaling) and for
# 128 rows per rank (weak scaling). Each line is one `mpitrain bench` run, which measures sgemm on the model's own
# GEMM shapes in the same run. Extra arguments go to every `mpitrain bench` (e.g. --optimizer sgd --steps 500).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
[ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }
ranks=${RANKS:-"1 2"}
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p"; }
printf "%-6s %-5s %-7s %-10s %-12s %-14s %-12s %s\n" ranks batch rows/rk step_ms samples/s "GFLOP/s/rank" "of sgemm" "vs 1 rank"
base=""
for mode in strong weak; do
  for np in $ranks; do
    batch=128
    [ "$mode" = weak ] && batch=$((128 * np))
    out=$(mt_mpirun -np "$np" "$MT_BUILD/mpitrain" bench --threads 1 --batch "$batch" --json "$@")
    sps=$(echo "$out" | field samples_per_s)
    [ "$np" = 1 ] && base=$sps
    printf "%-6s %-5s %-7s %-10s %-12s %-14s %-12s %s\n" "$np" "$batch" "$(echo "$out" | field rows_per_rank)" \
      "$(echo "$out" | field step_ms)" "$sps" \
      "$(echo "$out" | field gflops_per_rank) / $(echo "$out" | field sgemm_gflops_per_rank)" \
      "$(awk -v f="$(echo "$out" | field fraction_of_sgemm)" 'BEGIN{printf "%.1f %%", 100*f}')" \
      "$(awk -v a="$sps" -v b="$base" 'BEGIN{printf "%.2fx", a/b}')"
  done
done
