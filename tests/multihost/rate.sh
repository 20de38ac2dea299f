#!/usr/bin/env bash
# rate.sh — a link shaped to 5 Mbit/s (tc tbf) slows deterministic training measurably (the steps take at least
# 1.5x as long) and changes nothing else: the final parameters are bit-identical to the unshaped run's.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" rate "$@"
run=(train --data small.h5 --hidden 512 --batch 48 --epochs 1 --max-steps 40 --progress off --threads 1 --deterministic --det-group 8)
"${hosts2x2[@]}" -- "$bin" "${run[@]}" --checkpoint-dir A >a.log 2>&1 || { cat a.log; fail "unshaped"; }
"${hosts2x2[@]}" --link 5mbit -- "$bin" "${run[@]}" --checkpoint-dir B >b.log 2>&1 || { cat b.log; fail "shaped"; }
grep -q "link 5mbit each way" b.log || { cat b.log; fail "the link was not shaped"; }
secs() { sed -n 's/^final test accuracy: .* after [0-9]* steps in \([0-9.]*\) s$/\1/p' "$1"; }
a=$(secs a.log) b=$(secs b.log)
[ -n "$a" ] && [ -n "$b" ] || fail "no training time in the logs"
echo "training time: unshaped $a s, 5mbit $b s (ratio $(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", b / a }'))"
awk -v a="$a" -v b="$b" 'BEGIN { exit !(b >= 1.5 * a) }' || fail "the 5mbit link did not slow training (>= 1.5x)"
same_state "$(newest A)" "$(newest B)"
no_leftovers
echo PASS
