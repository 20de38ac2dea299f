#!/usr/bin/env bash
# cores.sh — every emulated host runs on cores of its own, as a real node does: at 2 hosts x 1 rank on a machine
# with 2 or more cores the two ranks may run on disjoint sets of cores (before, each host's daemon bound its rank
# to core 0, so two "nodes" shared one core while the other idled); at 2 hosts x 2 ranks a host's two ranks share
# its cores, and the banner names each host's cores.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" cores "$@"
ncpu=$(nproc)
[ "$ncpu" -ge 2 ] || { echo "SKIP: one core here: the hosts must share it"; exit 77; }
probe='echo "$(hostname) $(sed -n "s/^Cpus_allowed_list:[[:space:]]*//p" /proc/self/status)"'
# The cores a line's allowed list covers, one per line ("0-2,5" -> 0 1 2 5).
expand() { tr , '\n' <<<"$1" | awk -F- '{ for (c = $1; c <= ($2 == "" ? $1 : $2); c++) print c }'; }
for rph in 1 2; do
  bash "$mh" --hosts 2 --ranks-per-host $rph -- sh -c "$probe" >cores$rph.log 2>&1 || { cat cores$rph.log; fail "run"; }
  grep -q "cores h0=[0-9,]* h1=[0-9,]*;" cores$rph.log || { cat cores$rph.log; fail "the banner does not name the cores"; }
  for h in h0 h1; do
    lists=$(grep "^$MT_MULTIHOST_PREFIX-$h " cores$rph.log | cut -d' ' -f2 | sort -u)
    [ "$(grep -c "^$MT_MULTIHOST_PREFIX-$h " cores$rph.log)" = $rph ] || { cat cores$rph.log; fail "$h: not $rph ranks"; }
    [ "$(wc -l <<<"$lists")" = 1 ] || { cat cores$rph.log; fail "$h's ranks on different core sets: $lists"; }
    expand "$lists" >"$h.cores"
  done
  shared=$(sort h0.cores h1.cores | uniq -d | tr '\n' ' ')
  [ -z "$shared" ] || { cat cores$rph.log; fail "hosts h0 and h1 share cores: $shared"; }
  echo "2 hosts x $rph: h0 on $(tr '\n' ' ' <h0.cores)| h1 on $(tr '\n' ' ' <h1.cores)"
done
no_leftovers
echo "PASS: each host on cores of its own"
