#!/usr/bin/env bash
# default.sh — default (floating-point) training across 2 hosts x 2 ranks follows the same 4 ranks on one host
# within the tolerance the world-size tests use (relative 1e-5 on every logged loss).   default.sh MPITRAIN MULTIHOST_SH
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" default "$@"
onehost4 "$bin" train "${small[@]}" --log-every 1 --log a.csv >a.log 2>&1 || { cat a.log; fail "one host"; }
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" --log-every 1 --log b.csv >b.log 2>&1 || { cat b.log; fail "2 hosts"; }
grep -q "shared by its 2 ranks, 2 nodes" b.log || { cat b.log; fail "the run did not span 2 nodes of 2 ranks"; }
same_losses a.csv b.csv 0 1e-5
no_leftovers
echo PASS
