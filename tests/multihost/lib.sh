# lib.sh — shared by the multihost tests (sourced): the test bed, a reference run on one host, and the checks.
#   source lib.sh NAME MPITRAIN MULTIHOST_SH     (works in a fresh directory multihost-NAME)
# A test exits 77 (CTest SKIP_RETURN_CODE) when launch/multihost.sh cannot make its namespaces here.
set -u
name=$1 bin=$2 mh=$3
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/../cli" && pwd)/compare.sh" # same_state, same_losses
work=multihost-$name
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
# Namespaces of this test carry their own prefix (the test's name and pid), so leftovers are attributable.
export MT_MULTIHOST_PREFIX=mt${name:0:3}$$
probe=$(bash "$mh" --hosts 1 --ranks-per-host 1 -- true 2>&1)
case $? in
  0) ;;
  77) echo "SKIP: $probe"; exit 77 ;;
  *) echo "$probe"; fail "launch/multihost.sh cannot run 'true'" ;;
esac
# 2 hosts x 2 ranks through the test bed, and the same 4 ranks on this one host.
# (an array, not a function: "${hosts2x2[@]}" ... & gives the pid of multihost.sh itself, which signals must reach)
hosts2x2=(bash "$mh" --hosts 2 --ranks-per-host 2)
onehost4() { mpirun -np 4 "$@"; }
newest() { ls "$1"/ckpt-*.h5 2>/dev/null | sort | tail -n 1; }
# Nothing of this test's prefix is left: no namespace, no link in the root namespace, no work directory.
no_leftovers() {
  local left
  left=$(ip netns list | grep "^$MT_MULTIHOST_PREFIX-"; ip -o link | grep "$MT_MULTIHOST_PREFIX")
  [ -z "$left" ] || fail "left behind by launch/multihost.sh: $left"
}
# The mpitrain ranks running in host namespace $1 (processes of this test's own namespace only).
ranks_of() { local p; for p in $(ip netns pids "$MT_MULTIHOST_PREFIX-$1" 2>/dev/null); do
  [ "$(cat "/proc/$p/comm" 2>/dev/null)" = mpitrain ] && echo "$p"; done; }
# Waits for a checkpoint in $1 (job $2 must still run), up to 30 s.
wait_checkpoint() {
  for _ in $(seq 300); do
    [ -n "$(newest "$1")" ] && return 0
    kill -0 "$2" 2>/dev/null || { cat run.log; fail "the run ended before it could be interrupted"; }
    sleep 0.1
  done
  fail "no checkpoint appeared in $1"
}
"$bin" synth --samples 3000 --test-samples 600 --features 32 --classes 4 --noise 2.0 --seed 5 --out small.h5 \
  >/dev/null || fail synth
small=(--data small.h5 --hidden 32,16 --batch 48 --epochs 2 --progress off --threads 1)
