#!/usr/bin/env bash
# bucket_auto.sh — --bucket-mb auto picks the across-nodes schedule (2 MB buckets) across 2 hosts when the gradients
# other than the first layer's fill two buckets, one fused bucket when they do not (a small model) and when the 4
# ranks share one host.   bucket_auto.sh MPITRAIN MULTIHOST_SH
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" bucket_auto "$@"
one=(--data small.h5 --batch 48 --epochs 1 --progress off --threads 1)
big=(--hidden 16,1100,1000 --max-steps 2) # 16·1100 + 1100·1000 + 1000·4 + biases: 4.3 MB besides the first layer
onehost4 "$bin" train "${one[@]}" "${big[@]}" >a.log 2>&1 || { cat a.log; fail "one host"; }
"${hosts2x2[@]}" -- "$bin" train "${one[@]}" "${big[@]}" >b.log 2>&1 || { cat b.log; fail "2 hosts"; }
"${hosts2x2[@]}" -- "$bin" train "${one[@]}" --hidden 16 >c.log 2>&1 || { cat c.log; fail "2 hosts, small"; }
grep -q -- "--bucket-mb auto: 0 (ranks on 1 node)" a.log || { cat a.log; fail "one host: not one fused bucket"; }
grep -q -- "--bucket-mb auto: 2 (ranks on 2 nodes)" b.log || { cat b.log; fail "2 hosts: not 2 MB buckets"; }
grep -q -- "--bucket-mb auto: 0 (ranks on 2 nodes)" c.log || { cat c.log; fail "2 hosts, small model: not fused"; }
no_leftovers
echo PASS
