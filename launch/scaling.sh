#!/usr/bin/env bash
# scaling.sh — strong- and weak-scaling series of `mpitrain bench`: real runs under mpirun, simulated runs of up to
# 1024 ranks under SimGrid's smpirun (the MPITRAIN_SMPI build). Writes OUT/scaling.csv, draws OUT/efficiency.png
# and OUT/throughput.png with gnuplot, and prints step time, compute/communication split and efficiency per run.
#
#   bash launch/scaling.sh [options] [-- extra mpitrain bench options]
#
#   --mode sim|real|both       what to run (default sim)
#   --series weak|strong|both  weak: --rows rows per rank at every rank count; strong: global batch --batch
#                              (default both)
#   --ranks "2 4 ..."          rank counts; 1 is always added (the baseline). Default: sim 2..1024 by powers of 2,
#                              real "2"
#   --rows N                   weak scaling: rows per rank (default 128)
#   --batch B                  strong scaling: global batch (default 16384)
#   --hidden LIST              hidden layers (default 1024,256: 784-1024-256-10, 1.07 M parameters)
#   --features D               input features (default 784)
#   --optimizer NAME           (default adam)
#   --platform NAME|FILE       simulated platform: launch/smpi/NAME.xml or a file (default flat-100g)
#   --allreduce ALG            SMPI allreduce algorithm: ompi (Open MPI's choice by size and ranks), lr (ring),
#                              rab (Rabenseifner), rdb (recursive doubling), ... (default ompi)
#   --speed train|sgemm|XGf    simulated compute rate of a rank: train = the GEMM flop/s a real one-rank training
#                              step achieves here (forward, backward, update and all; measured first with the real
#                              build), sgemm = the GEMMs alone, or a number (default train)
#   --steps N, --warmup N      timed and untimed steps per run (default sim 5 / 1, real 30 / 5)
#   --hostfile FILE            real runs: passed to mpirun
#   --out DIR                  where the CSV, the plots and the logs go (default build-smpi/scaling)
#
# Simulated runs model compute (MPITRAIN_SIM=model): each rank's step charges its GEMM flops at --speed to the
# simulated clock; the gradient allreduce is real SMPI communication of the real buffer over a pure alpha-beta
# network (SMPI's latency and bandwidth correction factors set to 1), so results repeat bit for bit. Efficiency is
# samples/s at N ranks / (N x samples/s at 1 rank): for weak scaling that is T(1)/T(N). Real runs report the
# speed-up bench measures side by side against rank 0 alone (`--scaling`), divided by N.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mt_fp32_figures

mode=sim series=both ranks="" rows=128 batch=16384 hidden=1024,256 features=784 optimizer=adam
platform=flat-100g allreduce=ompi speed=train steps="" warmup="" hostfile="" out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=$2; shift 2 ;;
    --series) series=$2; shift 2 ;;
    --ranks) ranks=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --hidden) hidden=$2; shift 2 ;;
    --features) features=$2; shift 2 ;;
    --optimizer) optimizer=$2; shift 2 ;;
    --platform) platform=$2; shift 2 ;;
    --allreduce) allreduce=$2; shift 2 ;;
    --speed) speed=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --hostfile) hostfile=$(readlink -f "$2"); shift 2 ;;
    --out) out=$2; shift 2 ;;
    --) shift; break ;;
    -h|--help) mt_help "$0"; exit 0 ;;
    *) echo "scaling: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
extra=("$@")
case "$mode" in sim|real|both) ;; *) echo "scaling: --mode sim|real|both" >&2; exit 2 ;; esac
case "$series" in weak|strong) serieses=("$series") ;; both) serieses=(weak strong) ;;
  *) echo "scaling: --series weak|strong|both" >&2; exit 2 ;; esac
out=$(mkdir -p "${out:-$MT_BUILD_SMPI/scaling}" && cd "${out:-$MT_BUILD_SMPI/scaling}" && pwd)
csv="$out/scaling.csv"
log="$out/runs.log"
: > "$log"
echo "kind,series,platform,allreduce,ranks,batch,rows_per_rank,samples_per_s,step_ms,compute_ms,comm_ms,\
comm_fraction,efficiency" > "$csv"

field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p"; }
# Appends one CSV row from a bench JSON line, given the 1-rank samples/s of the series (empty: this is it).
record() { # kind series platform alg json base_sps [efficiency_override]
  local j=$5
  awk -v k="$1" -v s="$2" -v p="$3" -v a="$4" -v n="$(field ranks <<<"$j")" -v b="$(field batch <<<"$j")" \
    -v r="$(field rows_per_rank <<<"$j")" -v sps="$(field samples_per_s <<<"$j")" -v st="$(field step_ms <<<"$j")" \
    -v ar="$(field ms_allreduce <<<"$j")" -v base="$6" -v eff="${7:-}" 'BEGIN {
      if (eff == "") eff = (base > 0 ? sps / (n * base) : 1);
      printf "%s,%s,%s,%s,%d,%d,%d,%.1f,%.4f,%.4f,%.4f,%.4f,%.4f\n", k, s, p, a, n, b, r, sps, st, st - ar, ar, ar / st, eff
    }' >> "$csv"
  tail -1 "$csv" | awk -F, '{ printf "  %-4s %-6s %5d ranks  batch %7d (%5d/rank)  step %8.3f ms = compute %8.3f", \
    $1, $2, $5, $6, $7, $9, $10; printf " + communication %7.3f ms (%4.1f%%)  %10.0f samples/s  efficiency %5.1f%%\n", \
    $11, 100 * $12, $8, 100 * $13 }'
}

series_batch() { # series n -> global batch
  if [ "$1" = weak ]; then echo $((rows * $2)); else echo "$batch"; fi
}

# ==== Real runs (mpirun, the Open MPI build) ====
if [ "$mode" = real ] || [ "$mode" = both ] || [ "$speed" = train ] || [ "$speed" = sgemm ]; then
  [ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }
fi
real_bench() { # n batch scaling -> JSON
  local hf=()
  [ -n "$hostfile" ] && hf=(--hostfile "$hostfile")
  mt_mpirun "${hf[@]}" -np "$1" "$MT_BUILD/mpitrain" bench --threads 1 --hidden "$hidden" --features "$features" \
    --optimizer "$optimizer" --batch "$2" --samples $(($2 > 16384 ? $2 : 16384)) --scaling "$3" \
    --steps "${steps:-30}" --warmup "${warmup:-5}" --json "${extra[@]}" 2>>"$log" | tail -1
}
if [ "$mode" = real ] || [ "$mode" = both ]; then
  echo "scaling: real runs (mpirun${hostfile:+ --hostfile $hostfile}), ${hidden} hidden, ${optimizer}"
  for s in "${serieses[@]}"; do
    j=$(real_bench 1 "$(series_batch "$s" 1)" off)
    record real "$s" "$(hostname)" mpi "$j" ""
    base=$(field samples_per_s <<<"$j")
    for n in ${ranks:-2}; do
      [ "$n" = 1 ] && continue
      j=$(real_bench "$n" "$(series_batch "$s" "$n")" "$s")
      record real "$s" "$(hostname)" mpi "$j" "$base" "$(awk -v x="$(field speedup_vs_1_rank <<<"$j")" -v n="$n" 'BEGIN{print x/n}')"
    done
  done
fi

# ==== Simulated runs (smpirun, the MPITRAIN_SMPI build) ====
if [ "$mode" = sim ] || [ "$mode" = both ]; then
  command -v smpirun >/dev/null || { bash "$MT_ROOT/launch/deps.sh"; }
  [ -x "$MT_BUILD_SMPI/mpitrain" ] || mt_build_smpi
  pfile=$platform
  [ -f "$pfile" ] || pfile="$MT_ROOT/launch/smpi/$platform.xml"
  [ -f "$pfile" ] || { echo "scaling: no platform $platform (launch/smpi/*.xml or a file)" >&2; exit 2; }
  pname=$(basename "$pfile" .xml)
  case "$speed" in
    train|sgemm)
      j=$(real_bench 1 "$rows" off)
      gf=$(field "$([ "$speed" = train ] && echo gflops_per_rank || echo sgemm_gflops_per_rank)" <<<"$j")
      echo "scaling: calibrated on this machine (one real rank, $rows rows, step $(field step_ms <<<"$j") ms):" \
        "${gf} GFLOP/s ($speed)"
      speed_cfg="${gf}Gf" ;;
    *) speed_cfg=$speed ;;
  esac
  # The platform as given, at the calibrated speed; hosts named in order, one rank per host.
  sed "s/speed=\"[^\"]*\"/speed=\"$speed_cfg\"/" "$pfile" > "$out/platform.xml"
  nhosts=$(grep -o 'radical="[0-9]*-[0-9]*"' "$out/platform.xml" | head -1 | sed 's/.*-\([0-9]*\)"/\1/')
  nhosts=$((nhosts + 1))
  prefix=$(grep -o 'prefix="[^"]*"' "$out/platform.xml" | head -1 | sed 's/prefix="\(.*\)"/\1/')
  for ((i = 0; i < nhosts; i++)); do echo "$prefix$i"; done > "$out/hostfile"
  sim_ranks=${ranks:-"2 4 8 16 32 64 128 256 512 1024"}
  maxb=0
  for s in "${serieses[@]}"; do
    for n in 1 $sim_ranks; do b=$(series_batch "$s" "$n"); [ "$b" -gt "$maxb" ] && maxb=$b; done
  done
  # A dataset file read per batch (--in-memory no): in-memory synthetic data would be held by every simulated
  # rank in the one process. Modelled compute never reads the rows; only the shape and labels are loaded.
  data="$out/sim-data-$maxb-$features.h5"
  if [ ! -f "$data" ]; then
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} smpirun -np 1 -platform "$out/platform.xml" \
      -hostfile "$out/hostfile" --log=root.thres:critical "$MT_BUILD_SMPI/mpitrain" synth --samples "$maxb" \
      --features "$features" --classes 10 --dtype uint8 --out "$data" >>"$log" 2>&1
  fi
  coll=(--cfg=smpi/allreduce:"$allreduce")
  [ "$allreduce" = ompi ] && coll=(--cfg=smpi/coll-selector:ompi)
  params=$(awk -v h="$hidden" -v d="$features" 'BEGIN { n = split(h, w, ","); p = 0; prev = d;
    for (i = 1; i <= n; i++) { p += prev * w[i] + w[i]; prev = w[i] } print p + prev * 10 + 10 }')
  optbufs=2
  case "$optimizer" in sgd) optbufs=0 ;; momentum|rmsprop) optbufs=1 ;; esac
  echo "scaling: simulated runs on $pname (${speed_cfg} per rank, allreduce $allreduce), ${hidden} hidden" \
    "($params parameters), ${optimizer}"
  sim_bench() { # n batch -> JSON
    OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-SkylakeX} MPITRAIN_SIM=model smpirun -np "$1" \
      -platform "$out/platform.xml" -hostfile "$out/hostfile" \
      --cfg=smpi/host-speed:"$speed_cfg" --cfg=smpi/simulate-computation:no \
      --cfg=smpi/bw-factor:0:1 --cfg=smpi/lat-factor:0:1 --cfg=network/crosstraffic:0 "${coll[@]}" \
      --log=root.thres:critical \
      "$MT_BUILD_SMPI/mpitrain" bench --threads 1 --hidden "$hidden" --optimizer "$optimizer" --batch "$2" \
      --synthetic=false --data "$data" --in-memory no --scaling off --steps "${steps:-5}" --warmup "${warmup:-1}" \
      --json "${extra[@]}" 2>>"$log" | tail -1
  }
  for s in "${serieses[@]}"; do
    base=""
    for n in 1 $sim_ranks; do
      [ "$n" -gt "$nhosts" ] && { echo "  $n ranks: the platform has only $nhosts hosts; skipped"; continue; }
      # Per rank: parameters, gradients, optimiser moments, the benchmark's shadow model and SMPI's copies of
      # the payload, ~4 bytes x params x (6 + moments) (measured: 28 MB per rank for 1.07 M parameters, SGD).
      need=$(awk -v n="$n" -v p="$params" -v o="$optbufs" 'BEGIN { printf "%d", n * (4 * p * (6.5 + o) + 2e6) / 1048576 }')
      avail=$(awk '/MemAvailable/ { printf "%d", $2 / 1024 }' /proc/meminfo)
      if [ "$need" -gt $((avail * 8 / 10)) ]; then
        echo "  $n ranks: needs ~${need} MiB of memory, ${avail} MiB available; skipped"
        continue
      fi
      t0=$(date +%s)
      j=$(sim_bench "$n" "$(series_batch "$s" "$n")")
      [ -n "$j" ] || { echo "scaling: smpirun failed at $n ranks; see $log" >&2; exit 1; }
      echo "$j" >> "$log"
      record sim "$s" "$pname" "$allreduce" "$j" "$base" | sed "s/\$/  ($(($(date +%s) - t0)) s)/"
      [ -z "$base" ] && base=$(field samples_per_s <<<"$j")
    done
  done
fi

# ==== Plots ====
if command -v gnuplot >/dev/null && [ "$(wc -l < "$csv")" -gt 2 ]; then
  keys=$(tail -n +2 "$csv" | cut -d, -f1,2 | sort -u)
  eff="" thr=""
  for k in $keys; do
    kind=${k%,*} ser=${k#*,}
    dat="$out/$kind-$ser.dat"
    awk -F, -v k="$kind" -v s="$ser" '$1 == k && $2 == s { print $5, $8, 100 * $13 }' "$csv" > "$dat"
    eff+="${eff:+, }'$dat' using 1:3 with linespoints title '$kind $ser'"
    thr+="${thr:+, }'$dat' using 1:2 with linespoints title '$kind $ser'"
  done
  title="${hidden} hidden, $optimizer; simulated: $(basename "${pfile:-none}" .xml), allreduce $allreduce"
  gnuplot -e "set terminal pngcairo size 900,520 font 'sans,11'; set output '$out/efficiency.png'; set grid;
    set logscale x 2; set xlabel 'ranks'; set ylabel 'parallel efficiency (%)'; set yrange [0:105];
    set key bottom left; set title '$title'; plot $eff, 90 with lines dt 2 lc 'gray' title '90 %'"
  gnuplot -e "set terminal pngcairo size 900,520 font 'sans,11'; set output '$out/throughput.png'; set grid;
    set logscale xy; set xlabel 'ranks'; set ylabel 'samples/s'; set key top left; set title '$title'; plot $thr"
  echo "scaling: $csv, $out/efficiency.png, $out/throughput.png"
else
  echo "scaling: $csv"
fi
