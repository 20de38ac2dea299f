#!/usr/bin/env bash
# bench.sh — the performance numbers of README: the default model 784-512-256-10 with one BLAS thread per rank,
# for each optimiser in OPTIMIZERS (default "adam sgd"):
#   - 1 rank, batch 128: GEMM GFLOP/s achieved in training as a fraction of sgemm on the same GEMM calls;
#   - N ranks (RANKS, default 2), global batch 128 (strong scaling) and 128 rows per rank (weak scaling): the same
#     fraction and the speed-up over rank 0 training alone, measured in alternating rounds of the same run.
# Every figure comes from one `mpitrain bench` run, which measures its own sgemm roofline; ratios measured side by
# side are what a shared or noisy machine can be trusted for. Extra arguments go to every `mpitrain bench`; with
# --precision bf16 the roofline is bare oneDNN bf16 matmuls on the same shapes (its figures marked "bf16").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mt_fp32_figures
[ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }
field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p"; }
pct() { awk -v f="$1" 'BEGIN{printf "%.1f %%", 100*f}'; }
printf "%-9s %-6s %-13s %-8s %-9s %-11s %-17s %-10s %s\n" optimizer ranks batch rows/rk step_ms samples/s \
  "GFLOP/s/rk (sgemm)" "of sgemm" "vs rank 0 alone"
for opt in ${OPTIMIZERS:-adam sgd}; do
  for np in 1 ${RANKS:-2}; do
    for mode in strong weak; do
      [ "$np" = 1 ] && [ "$mode" = weak ] && continue
      batch=128
      [ "$mode" = weak ] && batch=$((128 * np))
      out=$(mt_mpirun -np "$np" "$MT_BUILD/mpitrain" bench --threads 1 --optimizer "$opt" --batch "$batch" \
            --scaling "$mode" --json "$@")
      roof=sgemm tag=
      if [ -n "$(echo "$out" | field onednn_bf16_gflops_per_rank)" ]; then roof=onednn_bf16 tag=" bf16"; fi
      speed="-"
      [ "$np" != 1 ] && speed="$(echo "$out" | field speedup_vs_1_rank | awk '{printf "%.2fx", $1}') ($mode)"
      printf "%-9s %-6s %-13s %-8s %-9s %-11s %-17s %-10s %s\n" "$opt" "$np" "$batch" \
        "$(echo "$out" | field rows_per_rank)" "$(echo "$out" | field step_ms)" "$(echo "$out" | field samples_per_s)" \
        "$(echo "$out" | field gflops_per_rank) ($(echo "$out" | field ${roof}_gflops_per_rank)$tag)" \
        "$(pct "$(echo "$out" | field fraction_of_$roof)")$tag" "$speed"
    done
  done
done
