#!/usr/bin/env bash
# platform.sh — launch/multihost_platform.sh measures the test bed with MPI exchanges and fits the simulator's
# platform: on a link shaped to 1gbit the fitted bandwidth is that rate (0.85-1.0 Gbit/s: TCP and MPI headers take
# a few per cent), the latency is microseconds, and the file is a platform SimGrid's DTD describes.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" platform "$@"
root=$(cd "$(dirname "$mh")/.." && pwd)
MT_BUILD=$PWD bash "$root/launch/multihost_platform.sh" --link 1gbit --rounds 1 --out testbed.xml >fit.log 2>&1 ||
  { cat fit.log; fail "multihost_platform.sh"; }
bw=$(sed -n 's/.*bw="\([0-9.]*\)Gbps".*/\1/p' testbed.xml)
lat=$(sed -n 's/.* lat="\([0-9.]*\)us".*/\1/p' testbed.xml)
[ -n "$bw" ] && [ -n "$lat" ] || { cat testbed.xml; fail "no bw or lat in the platform"; }
echo "fitted: bandwidth $bw Gbit/s, latency $lat us per link"
awk -v b="$bw" 'BEGIN { exit !(b >= 0.85 && b <= 1.0) }' || fail "bandwidth $bw Gbit/s on a 1gbit link"
awk -v l="$lat" 'BEGIN { exit !(l > 0 && l < 1000) }' || fail "latency $lat us"
grep -q '<cluster id="testbed-1g"' testbed.xml || fail "no testbed-1g cluster"
no_leftovers
echo PASS
