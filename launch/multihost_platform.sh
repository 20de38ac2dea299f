#!/usr/bin/env bash
# multihost_platform.sh — measures launch/multihost.sh's emulated network with MPI and writes the SimGrid platform
# that describes it (launch/smpi/testbed-*.xml), so the simulator is calibrated on point-to-point messages alone and
# its predictions of collectives and training steps can be checked against the test bed (README "Across nodes on
# the emulated network").
#
#   bash launch/multihost_platform.sh [--link RATE|unshaped] [--rounds N] [--runs FILE] [--out FILE]
#
#   --link RATE     the link to measure (default 1gbit; "unshaped" for the bare veths)
#   --rounds N      measurements whose medians are fitted (default 5; 0: fit --runs as it is)
#   --runs FILE     keep the measurements in FILE, appending to what it holds, and fit all of them
#                   (launch/multihost_bench.sh --simulate measures one round at a time between its own runs)
#   --out FILE      the platform to write (default: print it)
#
# What it measures: 2 hosts x 1 rank, tests/smpi/allreduce_time.c built with mpicc, -x (both ranks send BYTES to each
# other at once: the traffic of every step of a 2-rank allreduce, full duplex) for 8 B .. 4 MiB, 30 repetitions
# each. What it fits: the time of an exchange of s bytes as t(s) = L + s / B (least squares over s >= 256 KiB for B;
# L = t(8 B)). In a SimGrid cluster a message crosses two host links, so each link gets latency L / 2 and bandwidth
# B (SPLITDUPLEX: each direction its own). The bandwidth is MPI's over TCP through the kernel, not the qdisc's
# rate: on the unshaped and 10gbit links the cores, not the wire, set it.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
link=1gbit rounds=5 out="" runs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --link) link=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --runs) runs=$2; shift 2 ;;
    -h|--help) mt_help "$0"; exit 0 ;;
    *) echo "multihost_platform: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
tool=$MT_BUILD/allreduce_time_mpi
mkdir -p "$MT_BUILD"
[ "$tool" -nt "$MT_ROOT/tests/smpi/allreduce_time.c" ] || mpicc -O2 -o "$tool" "$MT_ROOT/tests/smpi/allreduce_time.c"
shape=()
[ "$link" = unshaped ] || shape=(--link "$link")
if [ -z "$runs" ]; then
  runs=$(mktemp)
  trap 'rm -f "$runs"' EXIT
fi
for r in $(seq 1 "$rounds"); do
  bash "$MT_ROOT/launch/multihost.sh" --hosts 2 --ranks-per-host 1 "${shape[@]}" -- \
    "$tool" -x -r 30 8 1k 16k 64k 256k 512k 1M 2M 4M 2>/dev/null >>"$runs"
  echo "multihost_platform: $link round $r/$rounds" >&2
done
/usr/bin/python3 - "$runs" "$link" "$(date -u +%Y-%m-%d)" <<'PY' | if [ -n "$out" ]; then tee "$out"; else cat; fi
import statistics, sys
runs, link, day = sys.argv[1:4]
by = {}
for line in open(runs):
    _, s, t = line.strip().split(",")
    by.setdefault(int(s), []).append(float(t))
if not by:
    sys.exit(f"multihost_platform: no measurements in {runs}")
t = {s: statistics.median(v) for s, v in sorted(by.items())}
big = [s for s in t if s >= 256 * 1024]
ms, mt = statistics.mean(big), statistics.mean(t[s] for s in big)
slope = sum((s - ms) * (t[s] - mt) for s in big) / sum((s - ms) ** 2 for s in big)
lat = t[min(t)]
bw = 8 / slope  # bit/s
name = "testbed-" + ("unshaped" if link == "unshaped" else link.replace("gbit", "g").replace("mbit", "m"))
table = "; ".join(f"{s} B {1e6 * v:.1f} us" for s, v in t.items())
print(f'''<?xml version="1.0"?>
<!DOCTYPE platform SYSTEM "https://simgrid.org/simgrid.dtd">
<!-- {name}: launch/multihost.sh's emulated hosts (network namespaces on one machine, veth pairs to a bridge,
     {"unshaped" if link == "unshaped" else "tc tbf " + link + " each way"}), up to 64 hosts (multihost.sh's limit), one rank per host. Written by launch/multihost_platform.sh --link {link} on {day}:
     medians of {len(next(iter(by.values())))} rounds of an MPI exchange (both ranks send s bytes at once), t(s) = L + s / B fitted over
     s >= 256 KiB: L = {1e6 * lat:.1f} us (t(8 B)), B = {bw / 1e9:.3f} Gbit/s. Each host link: latency L / 2 (a message crosses two), bandwidth B.
     Measured: {table}.
     speed: flop/s of one rank's compute; launch/scaling.sh replaces it with the rate it calibrates from a real run. -->
<platform version="4.1">
  <cluster id="{name}" prefix="node-" radical="0-63" suffix="" speed="50Gf" bw="{bw / 1e9:.4f}Gbps" lat="{1e6 * lat / 2:.2f}us"
           sharing_policy="SPLITDUPLEX" bb_bw="1000Tbps" bb_lat="0us"/>
</platform>''')
PY
