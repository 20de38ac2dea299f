#!/usr/bin/env bash
# multihost_bench.sh — gradient-reduction schedules measured across emulated hosts: `mpitrain bench` under
# launch/multihost.sh on each link (unshaped, or shaped with tbf), every schedule once per round, the rounds
# alternating the schedules so a busy moment of the shared machine hits them all alike. Prints per link and schedule
# the medians of the step time, its phases, the reduction alone and one bare MPI_Allreduce, the same-round ratio to
# the first schedule (the fused baseline) and how much of the reduction the schedule hides (README "Across nodes on
# the emulated network").
#
#   bash launch/multihost_bench.sh [options] [-- extra mpitrain bench options]
#
#   --hosts H, --ranks-per-host R   the test bed (default 2 x 1)
#   --links "L ..."                 links, each "unshaped" or a tbf rate such as 1gbit (default "unshaped 10gbit 1gbit")
#   --schedules "NAME=OPTS;..."     schedules: bench options, and OMPI_MCA_x=v words, which go into mpirun's
#                                   environment (Open MPI passes them to every rank); the first is the baseline
#                                   (default: fused=--bucket-mb 0; bucket0.5=--bucket-mb 0.5; bucket2=--bucket-mb 2;
#                                   zero1=--shard-optimizer --bucket-mb 0; and with --grad-comm in the build,
#                                   bf16=--bucket-mb 0 --grad-comm bf16; bf16-bucket0.5=--bucket-mb 0.5 --grad-comm bf16)
#   --rounds N                      rounds (default 5)
#   --batch B, --steps N, --warmup N  (default 256, 40, 5)
#   --out DIR                       runs.jsonl and summary.txt (default build/multihost-bench)
#   --simulate                      also predict each link's steps with the simulator, calibrated in the same rounds
#                                   (the machine's speed drifts by 20 % and more between minutes): every round also
#                                   runs launch/multihost_platform.sh's point-to-point exchanges on the link; then
#                                   launch/scaling.sh --mode sim runs every schedule on the platform fitted to those
#                                   exchanges (OUT/testbed-<link>.xml) at the emulated ranks' own compute speed (the
#                                   baseline schedule's GEMM flops / (step - exposed reduction), median of the
#                                   rounds), and the summary puts simulated and emulated steps side by side
#
# The model is the issue's 784-512-256-10 with Adam, fp32 (explicit: --precision auto would follow the CPU), one
# OpenBLAS thread per rank, synthetic data. Columns: step = training step (ms); bwd = backward; exposed = the
# reduction time left after backward (bench's ms_allreduce: the blocking collective, or the wait for the buckets);
# reduce = the schedule's reduction alone, no compute (grad_reduce_ms); bare = one MPI_Allreduce of the same bytes;
# x fused = median over rounds of step(fused) / step(schedule) in the same round; hidden = (reduce - exposed) /
# reduce, the share of the reduction that ran under backward.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mt_fp32_figures
root=$MT_ROOT
hosts=2 rph=1 links="unshaped 10gbit 1gbit" schedules="" rounds=5 batch=256 steps=40 warmup=5 out="" simulate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=$2; shift 2 ;;
    --ranks-per-host) rph=$2; shift 2 ;;
    --links) links=$2; shift 2 ;;
    --schedules) schedules=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --batch) batch=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --warmup) warmup=$2; shift 2 ;;
    --simulate) simulate=1; shift ;;
    -h|--help) mt_help "$0"; exit 0 ;;
    --) shift; break ;;
    *) echo "multihost_bench: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
extra=("$@")
mpitrain=${MPITRAIN:-$MT_BUILD/mpitrain}
[ -x "$mpitrain" ] || { echo "multihost_bench: no $mpitrain (build first, or set MPITRAIN)" >&2; exit 2; }
if [ -z "$schedules" ]; then
  schedules="fused=--bucket-mb 0;bucket0.5=--bucket-mb 0.5;bucket2=--bucket-mb 2;zero1=--shard-optimizer --bucket-mb 0"
  if "$mpitrain" bench --help 2>/dev/null | grep -q -- --grad-comm; then
    schedules+=";bf16=--bucket-mb 0 --grad-comm bf16;bf16-bucket0.5=--bucket-mb 0.5 --grad-comm bf16"
  fi
fi
out=$(mkdir -p "${out:-$root/build/multihost-bench}" && cd "${out:-$root/build/multihost-bench}" && pwd)
jsonl=$out/runs.jsonl sims=$out/simulated.jsonl
: >"$jsonl"
: >"$sims"
if [ "$simulate" = 1 ]; then
  [ -x "$MT_BUILD_SMPI/mpitrain" ] || { echo "multihost_bench: --simulate needs the SMPI build (mt_build_smpi)" >&2; exit 2; }
  rm -f "$out"/p2p-*.csv
fi
rows=$((batch / (hosts * rph)))
IFS=';' read -r -a sched <<<"$schedules"

run_one() { # link schedule-spec round
  local link=$1 name=${2%%=*} opts=${2#*=} envs=() args=() w j
  for w in $opts; do
    if [[ "$w" == OMPI_MCA_*=* ]]; then envs+=("$w"); else args+=("$w"); fi
  done
  local shape=()
  [ "$link" = unshaped ] || shape=(--link "$link")
  j=$(env "${envs[@]}" bash "$root/launch/multihost.sh" --hosts "$hosts" --ranks-per-host "$rph" "${shape[@]}" -- \
        "$mpitrain" bench --precision fp32 --threads 1 --optimizer adam --hidden 512,256 --features 784 --classes 10 \
        --batch "$batch" --steps "$steps" --warmup "$warmup" --scaling off --json "${args[@]}" "${extra[@]}" \
        2>>"$out/runs.log" | tail -1)
  case "$j" in
    "{"*) echo "{\"link\": \"$link\", \"schedule\": \"$name\", \"round\": $3, ${j#\{}" >>"$jsonl" ;;
    *) echo "multihost_bench: $link $name round $3 failed (see $out/runs.log)" >&2; return 1 ;;
  esac
}

echo "multihost_bench: $hosts hosts x $rph ranks, links: $links; $rounds rounds of: ${schedules//;/ | }" >&2
for link in $links; do
  for r in $(seq 1 "$rounds"); do
    for s in "${sched[@]}"; do run_one "$link" "$s" "$r"; done
    if [ "$simulate" = 1 ]; then # the network, measured between the same round's runs
      bash "$root/launch/multihost_platform.sh" --link "$link" --rounds 1 --runs "$out/p2p-$link.csv" \
        --out "$out/testbed-$link.xml" >/dev/null 2>>"$out/runs.log"
    fi
    echo "multihost_bench: $link round $r/$rounds done" >&2
  done
done

if [ "$simulate" = 1 ]; then
  for link in $links; do
    speed=$(python3 -c 'import json, statistics, sys
rs = [json.loads(l) for l in open(sys.argv[1])]
rs = [r for r in rs if r["link"] == sys.argv[2] and r["schedule"] == rs[0]["schedule"]]
print("%.2f" % statistics.median(r["gflops_per_rank"] * r["step_ms"] / (r["step_ms"] - r["ms_allreduce"]) for r in rs))' \
      "$jsonl" "$link")
    for s in "${sched[@]}"; do
      name=${s%%=*} args=()
      for w in ${s#*=}; do [[ "$w" == OMPI_MCA_*=* ]] || args+=("$w"); done
      bash "$root/launch/scaling.sh" --mode sim --series weak --rows "$rows" --ranks $((hosts * rph)) --hidden 512,256 \
        --platform "$out/testbed-$link.xml" --speed "${speed}Gf" --out "$out/sim-$link-$name" -- "${args[@]}" \
        "${extra[@]}" >>"$out/runs.log" 2>&1 || { echo "multihost_bench: simulating $link $name failed" >&2; exit 1; }
      tail -1 "$out/sim-$link-$name/scaling.csv" | awk -F, -v l="$link" -v n="$name" -v g="$speed" '{ printf \
        "{\"link\": \"%s\", \"schedule\": \"%s\", \"gflops\": %s, \"step_ms\": %s, \"compute_ms\": %s, \"comm_ms\": %s}\n", \
        l, n, g, $9, $10, $11 }' >>"$sims"
    done
  done
fi

python3 - "$jsonl" "$sims" <<'EOF' | tee "$out/summary.txt"
import json, statistics, sys
runs = [json.loads(l) for l in open(sys.argv[1])]
sims = [json.loads(l) for l in open(sys.argv[2])]
med = statistics.median
for link in dict.fromkeys(r["link"] for r in runs):
    rs = [r for r in runs if r["link"] == link]
    names = list(dict.fromkeys(r["schedule"] for r in rs))
    base = {r["round"]: r for r in rs if r["schedule"] == names[0]}
    print(f"link {link}: {rs[0]['ranks']} ranks, batch {rs[0]['batch']}, {rs[0]['model']}, "
          f"median of {len(base)} rounds (ms)")
    print(f"  {'schedule':<16}{'buckets':>8}{'step':>9}{'bwd':>8}{'exposed':>9}{'reduce':>9}{'bare':>9}"
          f"{'x fused':>9}{'hidden':>8}")
    for n in names:
        s = [r for r in rs if r["schedule"] == n]
        m = lambda k: med(r[k] for r in s)
        ratio = med(base[r["round"]]["step_ms"] / r["step_ms"] for r in s if r["round"] in base)
        hidden = med((r["grad_reduce_ms"] - r["ms_allreduce"]) / r["grad_reduce_ms"] for r in s)
        print(f"  {n:<16}{s[0]['buckets']:>8}{m('step_ms'):>9.2f}{m('ms_backward'):>8.2f}{m('ms_allreduce'):>9.2f}"
              f"{m('grad_reduce_ms'):>9.2f}{m('bare_allreduce_ms'):>9.2f}{ratio:>9.3f}{100 * hidden:>7.0f}%")
    for p in (p for p in sims if p["link"] == link):
        s = [r for r in rs if r["schedule"] == p["schedule"]]
        emu = med(r["step_ms"] for r in s)
        print(f"  simulated {p['schedule']:<16} step {p['step_ms']:.2f} = compute {p['compute_ms']:.2f} + communication "
              f"{p['comm_ms']:.2f} ms ({p['gflops']} GFLOP/s) against emulated {emu:.2f} = "
              f"{emu - med(r['ms_allreduce'] for r in s):.2f} + {med(r['ms_allreduce'] for r in s):.2f} ms: "
              f"{100 * (p['step_ms'] - emu) / emu:+.1f} %")
EOF
echo "multihost_bench: $jsonl, $out/summary.txt" >&2
