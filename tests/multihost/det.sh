#!/usr/bin/env bash
# det.sh — --deterministic training across 2 hosts x 2 ranks ends with the same bits (parameters, optimiser state,
# every logged loss) as the same 4 ranks on one host.   det.sh MPITRAIN MULTIHOST_SH
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" det "$@"
det=(--deterministic --det-group 8 --log-every 1)
onehost4 "$bin" train "${small[@]}" "${det[@]}" --checkpoint-dir A --log a.csv >a.log 2>&1 || { cat a.log; fail "one host"; }
"${hosts2x2[@]}" -- "$bin" train "${small[@]}" "${det[@]}" --checkpoint-dir B --log b.csv >b.log 2>&1 || { cat b.log; fail "2 hosts"; }
grep -q "shared by its 2 ranks, 2 nodes" b.log || { cat b.log; fail "the run did not span 2 nodes of 2 ranks"; }
[ "$(basename "$(newest A)")" = "$(basename "$(newest B)")" ] || fail "final steps differ: $(newest A) $(newest B)"
same_state "$(newest A)" "$(newest B)"
steps() { awk -F, '$1 == "step" { print $3, $5, $6, $7 }' "$1"; }
cmp -s <(steps a.csv) <(steps b.csv) || { diff <(steps a.csv) <(steps b.csv) | head; fail "losses differ"; }
no_leftovers
echo "PASS: 2 hosts x 2 ranks and 4 ranks on one host bit-identical at $(basename "$(newest A)") ($(steps a.csv | wc -l) losses equal)"
