#!/usr/bin/env bash
# hier.sh — --allreduce hier across 2 hosts x 2 ranks (auto stays flat: measured no faster), and training through
# it, fused and in buckets, follows the flat reduction of the same 4 ranks on one host within the
# world-size tests' tolerance (relative 1e-5 on every logged loss).   hier.sh MPITRAIN MULTIHOST_SH
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" hier "$@"
onehost4 "$bin" train "${small[@]}" --log-every 1 --log a.csv >a.log 2>&1 || { cat a.log; fail "one host"; }
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --log-every 1 --log b.csv --check-replicas 1 --allreduce hier >b.log 2>&1 ||
  { cat b.log; fail "2 hosts"; }
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --log-every 1 --log c.csv --check-replicas 1 --bucket-mb 0.001 --allreduce hier \
  >c.log 2>&1 || { cat c.log; fail "2 hosts, buckets"; }
grep -q -- "--allreduce auto: flat (1 node, 4 ranks each)" a.log || { cat a.log; fail "one host: not flat"; }
grep -q "hierarchical: reduce-scatter within each node" b.log || { cat b.log; fail "2 hosts: not hier"; }
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --max-steps 1 >d.log 2>&1 || { cat d.log; fail "2 hosts, auto"; }
grep -q -- "--allreduce auto: flat (2 nodes, 2 ranks each)" d.log || { cat d.log; fail "2 hosts: auto not flat"; }
grep -q "hierarchical: reduce-scatter within each node" c.log || { cat c.log; fail "buckets: not hier"; }
grep -q "buckets, each reduced while backward goes on" c.log || { cat c.log; fail "no buckets"; }
same_losses a.csv b.csv 0 1e-5
same_losses a.csv c.csv 0 1e-5
no_leftovers
echo PASS
