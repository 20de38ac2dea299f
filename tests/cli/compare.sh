# compare.sh — checks of two runs' results, sourced by the end-to-end test scripts (tests/cli/checkpoint.sh,
# tests/multihost/lib.sh); the sourcing script defines fail MESSAGE.
# bit-identical parameters and optimiser moments
same_state() {
  h5diff "$1" "$2" /model >/dev/null || fail "parameters differ: $1 vs $2"
  h5diff "$1" "$2" /optimizer >/dev/null || fail "optimiser state differs: $1 vs $2"
}
# step losses of two CSV metrics files, over the steps both have after $3, agree within relative $4
same_losses() {
  awk -F, -v after="$3" -v tol="$4" '
    FNR == 1 { next }
    $1 != "step" || $3 <= after { next }
    NR == FNR { a[$3] = $5; next }
    ($3 in a) { n++; d = $5 - a[$3]; if (d < 0) d = -d; r = d / ($5 < 0 ? -$5 : $5);
                if (r > worst) worst = r; if (r > tol) { print "step " $3 ": " a[$3] " vs " $5; bad++ } }
    END { printf "%d steps compared, largest relative difference %.3g\n", n, worst; exit (bad > 0 || n == 0) }
  ' "$1" "$2" || fail "losses of $1 and $2 differ"
}
