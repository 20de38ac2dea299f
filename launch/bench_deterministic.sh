#!/usr/bin/env bash
# bench_deterministic.sh — what --deterministic costs: `mpitrain bench` of the default model (784-512-256-10, Adam,
# batch 256) on RANKS ranks (default: one per core), alternating the default mode and deterministic mode with each
# group size in DET_GROUPS (default "64 128") for ROUNDS rounds (default 5), so that a noisy machine slows all of them
# alike. Prints each round's step time and, per mode, the median step time, its ratio to the default mode's median,
# and the median of the per-round ratios (each deterministic run against the default run just before it). Extra arguments go to every `mpitrain bench` (e.g. --batch 512).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mt_fp32_figures
[ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }
np=${RANKS:-$(nproc)}
modes=("default")
for g in ${DET_GROUPS:-64 128}; do modes+=("G=$g"); done
declare -A times ratios
step_ms() { sed -n 's/.*"step_ms": \([0-9.]*\).*/\1/p'; }
for round in $(seq "${ROUNDS:-5}"); do
  for mode in "${modes[@]}"; do
    extra=()
    [ "$mode" != default ] && extra=(--deterministic --det-group "${mode#G=}")
    ms=$(mt_mpirun -np "$np" "$MT_BUILD/mpitrain" bench --threads 1 --batch 256 --json "${extra[@]}" "$@" | step_ms)
    echo "round $round  $mode  step $ms ms"
    times[$mode]="${times[$mode]:-} $ms"
    [ "$mode" = default ] && base_ms=$ms
    ratios[$mode]="${ratios[$mode]:-} $(awk -v a="$ms" -v b="$base_ms" 'BEGIN { print a / b }')"
  done
done
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
base=$(echo "${times[default]}" | median)
echo "== $np ranks, median step time of ${ROUNDS:-5} rounds"
for mode in "${modes[@]}"; do
  m=$(echo "${times[$mode]}" | median)
  r=$(echo "${ratios[$mode]}" | median)
  awk -v mode="$mode" -v m="$m" -v b="$base" -v r="$r" 'BEGIN {
    printf "%-10s %7.3f ms  %5.1f %% of the default median; median of the rounds'"'"' ratios %5.1f %%\n", mode, m, 100 * m / b, 100 * r }'
done
