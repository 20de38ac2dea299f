#!/usr/bin/env bash
# bucket_auto.sh — --bucket-mb auto picks the across-nodes schedule (2 MB buckets) across 2 hosts, one fused bucket
# when the 4 ranks share one host.   bucket_auto.sh MPITRAIN MULTIHOST_SH
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" bucket_auto "$@"
one=(--data small.h5 --hidden 16 --batch 48 --epochs 1 --progress off --threads 1)
onehost4 "$bin" train "${one[@]}" >a.log 2>&1 || { cat a.log; fail "one host"; }
"${hosts2x2[@]}" -- "$bin" train "${one[@]}" >b.log 2>&1 || { cat b.log; fail "2 hosts"; }
grep -q -- "--bucket-mb auto: 0 (ranks on 1 node)" a.log || { cat a.log; fail "one host: not one fused bucket"; }
grep -q -- "--bucket-mb auto: 2 (ranks on 2 nodes)" b.log || { cat b.log; fail "2 hosts: not 2 MB buckets"; }
no_leftovers
echo PASS
