#!/usr/bin/env bash
# expect.sh — run a command and check how it ended: exit status, output, and that it did not hang.
# usage: expect.sh [--exit ok|fail|N] [--match REGEX] [--nomatch REGEX] [--within SECONDS] -- command args...
set -u
want_exit=ok; match=; nomatch=; within=60
while [ $# -gt 0 ]; do
  case "$1" in
    --exit) want_exit=$2; shift 2 ;;
    --match) match=$2; shift 2 ;;
    --nomatch) nomatch=$2; shift 2 ;;
    --within) within=$2; shift 2 ;;
    --) shift; break ;;
    *) echo "expect.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
out=$(mktemp)
trap 'rm -f "$out"' EXIT
start=$(date +%s%N)
# A hang is a failure: kill the whole process group after the limit (+5 s grace for mpirun to tear down).
timeout --kill-after=5 "$within" "$@" >"$out" 2>&1
status=$?
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
elapsed=$(printf "%d.%03d" $((elapsed_ms / 1000)) $((elapsed_ms % 1000)))
cat "$out"
echo "---- expect.sh: exit status $status after ${elapsed}s"
fail=0
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "FAIL: did not finish within ${within}s (hang?)"; exit 1
fi
case "$want_exit" in
  ok) [ "$status" -eq 0 ] || { echo "FAIL: expected exit status 0"; fail=1; } ;;
  fail) [ "$status" -ne 0 ] || { echo "FAIL: expected a non-zero exit status"; fail=1; } ;;
  *) [ "$status" -eq "$want_exit" ] || { echo "FAIL: expected exit status $want_exit"; fail=1; } ;;
esac
if [ -n "$match" ] && ! grep -Eq -- "$match" "$out"; then
  echo "FAIL: output does not match: $match"; fail=1
fi
if [ -n "$nomatch" ] && grep -Eq -- "$nomatch" "$out"; then
  echo "FAIL: output matches what it must not: $nomatch"; fail=1
fi
# A crash must never pass for a clean error, nor a sanitizer report (MPITRAIN_SANITIZE) for an expected failure.
if grep -Eq 'Segmentation fault|core dumped|Aborted|signal 11|signal 6|AddressSanitizer|LeakSanitizer|runtime error:' "$out"; then
  echo "FAIL: the program crashed"; fail=1
fi
exit $fail
