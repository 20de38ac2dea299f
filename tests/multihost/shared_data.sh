#!/usr/bin/env bash
# shared_data.sh — node-shared in-memory data across 2 hosts x 2 ranks: the banner says one copy per node of 2 ranks
# on 2 nodes, and resident memory shows it: on each host the copy is mapped by its ranks (RssShmem >= the data) and
# held once (the ranks' proportional shares of shared memory, Pss_Shmem, sum to about one copy, not two).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" shared_data "$@"
"$bin" synth --samples 8000 --features 512 --classes 4 --out big.h5 >/dev/null || fail synth
mb=$((8000 * 512 * 4 / 1048576)) # the training features in MiB (float32)
"${hosts2x2[@]}" -- "$bin" train --data big.h5 --in-memory yes --hidden 8 --batch 256 --epochs 100 --progress off --threads 1 \
  >run.log 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "^epoch 1/" run.log && break; kill -0 $pid || break; sleep 0.1; done
grep -q "^epoch 1/" run.log || { cat run.log; fail "training did not start"; }
kb() { awk -v k="$1:" '$1 == k { s += $2 } END { print s + 0 }' "${@:2}"; }
for h in h0 h1; do
  rollups=() statuses=()
  for p in $(ranks_of $h); do rollups+=("/proc/$p/smaps_rollup"); statuses+=("/proc/$p/status"); done
  [ ${#rollups[@]} = 2 ] || fail "expected 2 ranks on $h, found ${#rollups[@]}"
  pss=$(( $(kb Pss_Shmem "${rollups[@]}") / 1024 ))
  most=0
  for s in "${statuses[@]}"; do r=$(( $(kb RssShmem "$s") / 1024 )); [ $r -gt $most ] && most=$r; done
  echo "$h: data $mb MiB; its ranks' Pss_Shmem sum $pss MiB, largest RssShmem $most MiB"
  [ "$most" -ge "$mb" ] || fail "$h: no rank maps a whole copy ($most < $mb MiB)"
  [ "$pss" -lt $((mb * 3 / 2)) ] || fail "$h: $pss MiB of shared memory: more than one copy of $mb MiB"
done
kill -TERM $pid; wait $pid
grep -q "one copy per node shared by its 2 ranks, 2 nodes" run.log || { cat run.log; fail "banner: not one copy per node of 2"; }
no_leftovers
echo PASS
