#!/usr/bin/env bash
# alpha_beta.sh — does SMPI's simulated ring allreduce take the time the alpha-beta formula says?
#
#   T(n, S) = 2(n-1)/n * S/bw + 2(n-1) * alpha        (ring: reduce-scatter then allgather, 2(n-1) steps of S/n)
#
# on a flat non-blocking cluster of full-duplex links of bandwidth bw and latency lat (alpha = 2*lat: up to the
# switch and down again), with SMPI's latency and bandwidth correction factors set to 1 (a pure alpha-beta network).
# Also runs recursive doubling (rdb), Rabenseifner (rab) and Open MPI's own choice (ompi) next to it and reports them
# against their formulas:
#   rdb  log2(n) * (alpha + S/bw)                       (whole buffer exchanged in each of log2 n rounds)
#   rab  2(n-1)/n * S/bw + 2*log2(n) * alpha           (recursive halving reduce-scatter + doubling allgather)
# n must be a power of two for those two.
#
# usage: alpha_beta.sh ALLREDUCE_TIME_BINARY [--ranks "2 4 16 64"] [--sizes "64k 1M 4M"] [--bw 10] [--lat 1]
#                      [--algs "lr rdb rab"] [--tol 0.05]
#   --bw in Gb/s, --lat in microseconds per link. Exit status 1 if a ring (lr) time is off by more than --tol
#   (relative); the other algorithms are reported, not checked.
set -euo pipefail
bin=$(readlink -f "$1")
shift
ranks="2 4 16 64"
sizes="64k 1M 4M"
bw=10
lat=1
algs="lr rdb rab"
tol=0.05
while [ $# -gt 0 ]; do
  case "$1" in
    --ranks) ranks=$2; shift 2 ;;
    --sizes) sizes=$2; shift 2 ;;
    --bw) bw=$2; shift 2 ;;
    --lat) lat=$2; shift 2 ;;
    --algs) algs=$2; shift 2 ;;
    --tol) tol=$2; shift 2 ;;
    *) echo "alpha_beta.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
maxn=0
for n in $ranks; do [ "$n" -gt "$maxn" ] && maxn=$n; done
cat > "$work/p.xml" <<EOF
<?xml version="1.0"?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<platform version="4.1">
  <cluster id="c" prefix="node-" radical="0-$((maxn - 1))" suffix="" speed="1Gf" bw="${bw}Gbps" lat="${lat}us"
           sharing_policy="SPLITDUPLEX" bb_bw="1000Tbps" bb_lat="0us"/>
</platform>
EOF
for ((i = 0; i < maxn; i++)); do echo "node-$i"; done > "$work/hosts"
root=()
[ "$(id -u)" -eq 0 ] && root=()  # smpirun runs as root without a flag (checked with SimGrid 3.32)
printf "%-5s %5s %10s %12s %12s %8s\n" alg ranks bytes "sim (us)" "formula (us)" error
fail=0
for alg in $algs; do
  for n in $ranks; do
    out=$(smpirun "${root[@]}" -np "$n" -platform "$work/p.xml" -hostfile "$work/hosts" \
      --cfg=smpi/host-speed:1Gf --cfg=smpi/simulate-computation:no \
      --cfg=smpi/bw-factor:0:1 --cfg=smpi/lat-factor:0:1 --cfg=network/crosstraffic:0 \
      "$( [ "$alg" = ompi ] && echo --cfg=smpi/coll-selector:ompi || echo --cfg=smpi/allreduce:$alg)" \
      --log=root.thres:critical "$bin" -r 3 $sizes 2>"$work/err") || { cat "$work/err" >&2; exit 1; }
    while IFS=, read -r np bytes sec; do
      read -r formula err bad < <(awk -v a="$alg" -v n="$np" -v s="$bytes" -v t="$sec" -v bw="$bw" -v lat="$lat" \
        -v tol="$tol" 'BEGIN {
          B = bw * 1e9 / 8; al = 2 * lat * 1e-6; l2 = log(n) / log(2);
          if (a == "lr" || a == "ompi") f = 2 * (n - 1) / n * s / B + 2 * (n - 1) * al;
          else if (a == "rdb") f = l2 * (al + s / B);
          else f = 2 * (n - 1) / n * s / B + 2 * l2 * al;
          e = (t - f) / f;
          printf "%.1f %+.1f%% %d\n", f * 1e6, 100 * e, (a == "lr" && (e > tol || e < -tol)) }')
      printf "%-5s %5d %10d %12.1f %12s %8s\n" "$alg" "$np" "$bytes" "$(awk -v t="$sec" 'BEGIN{print t*1e6}')" \
        "$formula" "$err"
      [ "$bad" = 1 ] && fail=1
    done <<< "$out"
  done
done
if [ "$fail" = 1 ]; then
  echo "alpha_beta: ring allreduce off the formula by more than $(awk -v t="$tol" 'BEGIN{print 100*t}')%" >&2
  exit 1
fi
echo "alpha_beta: ring allreduce within $(awk -v t="$tol" 'BEGIN{print 100*t}')% of the formula"
