#!/usr/bin/env bash
# multihost.sh — several real hosts on one machine: runs PROGRAM under mpirun across H network namespaces, each a
# "host" with its own hostname, network stack and address, joined by veth pairs to a bridge (README "Many nodes on
# one machine"). Ranks on one host talk over shared memory, ranks on different hosts over TCP through the bridge.
#
#   multihost.sh --hosts H --ranks-per-host R [--link RATE[,DELAY]] [--keep-going] -- PROGRAM ARGS...
#
#   --link RATE[,DELAY]  shape every host's link with tc: RATE (tbf, both directions, e.g. 1gbit, 100mbit) and
#                        DELAY (netem, each direction, e.g. 1ms) where the kernel has netem. A delay asked for on a
#                        kernel without netem is an error (exit 77) unless --keep-going: then one line says "delay not
#                        available: no netem" and the run goes on with the rate alone.
#
# What it makes (all named <prefix>-..., prefix "mth<pid>" or $MT_MULTIHOST_PREFIX, so concurrent runs do not
# collide): namespaces <prefix>-sw (the switch: the bridge, and mpirun itself, whose hostname is <prefix>-head) and
# <prefix>-h0 .. -h<H-1> (eth0 = 10.213.N.(i+1)/24; ranks R*i .. R*i+R-1 run there, hostname <prefix>-h<i>). Nothing
# is added to the root namespace: no address, route, link or qdisc. Open MPI's hostfile names the hosts by their
# namespace names, which the rsh agent (multihost-agent.sh) enters, on the cores given to that host (the machine's
# cores split among the hosts; the banner lists them); no /etc/hosts entry is needed because the
# daemons connect back to mpirun by the address in its URI. Everything is removed on exit, on an error and on
# SIGINT / SIGTERM (the processes left in the namespaces are killed, then the namespaces deleted, which takes their
# veths and qdiscs with them).
#
# Exit status: PROGRAM's (as mpirun reports it); 2 for a usage error; 77 when the test bed cannot be made here (not
# root, no iproute2 / unshare / mpirun, namespaces refused, a delay without netem): one line says why, and the
# multihost tests map 77 to CTest's "skipped".
set -u
MT_MH_SKIP=77
usage() { echo "usage: multihost.sh --hosts H --ranks-per-host R [--link RATE[,DELAY]] [--keep-going] -- PROGRAM ARGS..." >&2; exit 2; }
skip() { echo "multihost: cannot make the test bed here: $*" >&2; exit "$MT_MH_SKIP"; }

hosts= rph= link= keep_going=0
while [ $# -gt 0 ]; do
  case "$1" in
    --hosts) hosts=${2-}; shift 2 || usage ;;
    --ranks-per-host) rph=${2-}; shift 2 || usage ;;
    --link) link=${2-}; shift 2 || usage ;;
    --keep-going) keep_going=1; shift ;;
    --) shift; break ;;
    *) echo "multihost: unknown argument '$1'" >&2; usage ;;
  esac
done
[ $# -gt 0 ] || usage
[[ "$hosts" =~ ^[1-9][0-9]?$ ]] && [ "$hosts" -le 64 ] || { echo "multihost: --hosts '$hosts': expected 1..64" >&2; exit 2; }
[[ "$rph" =~ ^[1-9][0-9]*$ ]] || { echo "multihost: --ranks-per-host '$rph': expected a positive integer" >&2; exit 2; }
rate=${link%%,*} delay=
[ "$link" != "${link#*,}" ] && delay=${link#*,}
rate_bits=
if [ -n "$rate" ]; then
  [[ "$rate" =~ ^([0-9]+)(bit|kbit|mbit|gbit)$ ]] ||
    { echo "multihost: --link rate '$rate': expected a number and bit, kbit, mbit or gbit (e.g. 1gbit)" >&2; exit 2; }
  case "${BASH_REMATCH[2]}" in bit) m=1 ;; kbit) m=1000 ;; mbit) m=1000000 ;; gbit) m=1000000000 ;; esac
  rate_bits=$((BASH_REMATCH[1] * m))
  [ "$rate_bits" -ge 8000 ] || { echo "multihost: --link rate '$rate': at least 8kbit" >&2; exit 2; }
fi
if [ -n "$delay" ] && ! [[ "$delay" =~ ^[0-9]+(\.[0-9]+)?(us|ms|s)$ ]]; then
  echo "multihost: --link delay '$delay': expected a time such as 500us or 2ms" >&2; exit 2
fi

# What the test bed needs, each checked before anything is made.
[ "$(id -u)" -eq 0 ] || skip "needs root (network namespaces)"
for tool in ip unshare mpirun taskset; do command -v "$tool" >/dev/null || skip "no $tool"; done
[ -z "$rate" ] || command -v tc >/dev/null || skip "no tc (iproute2) for --link"
agent=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/multihost-agent.sh
[ -x "$agent" ] || { echo "multihost: $agent is missing or not executable" >&2; exit 2; }

prefix=${MT_MULTIHOST_PREFIX:-mth$$}
[[ "$prefix" =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "multihost: MT_MULTIHOST_PREFIX '$prefix': expected [a-z][a-z0-9]{0,9}" >&2; exit 2; }
sw=$prefix-sw
made=()         # namespaces made so far, deleted by cleanup
work=
mpirun_pid=
cleanup() {
  trap - EXIT INT TERM
  local ns pids
  for ns in "${made[@]}"; do
    # Only processes inside our own namespaces: the ranks and daemons of this run, nothing else.
    pids=$(ip netns pids "$ns" 2>/dev/null)
    [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
  done
  for ns in "${made[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1
    done
    ip netns del "$ns" 2>/dev/null || echo "multihost: could not delete namespace $ns" >&2
  done
  [ -z "$work" ] || rm -rf "$work"
}
on_signal() { # $1: the signal; mpirun gets it first, so the job ends the way Ctrl-C ends a normal mpirun
  local sig=$1 code=$2
  if [ -n "$mpirun_pid" ] && kill -0 "$mpirun_pid" 2>/dev/null; then
    kill -"$sig" "$mpirun_pid" 2>/dev/null
    for _ in $(seq 50); do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$mpirun_pid" 2>/dev/null
  fi
  echo "multihost: interrupted by SIG$sig; removing the test bed" >&2
  cleanup
  exit "$code"
}
trap cleanup EXIT
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

mkns() { ip netns add "$1" 2>/dev/null || skip "ip netns add $1 failed (no permission, or no network namespaces)"; made+=("$1"); }
mkns "$sw"
# A subnet the root namespace does not use, so addresses in logs are never ambiguous (the namespaces cannot reach
# the root namespace's networks anyway: the switch has no route out).
net=
for n in $(seq 0 255); do
  ip -4 -o addr show | grep -q " 10\.213\.$n\." || { net=10.213.$n; break; }
done
[ -n "$net" ] || skip "no free 10.213.x.0/24 subnet"
ip -n "$sw" link set lo up && ip -n "$sw" link add br0 type bridge && ip -n "$sw" link set br0 up &&
  ip -n "$sw" addr add "$net.254/24" dev br0 || skip "cannot make a bridge in namespace $sw"

netem=1
# netem, tried on the switch's own loopback (ours, and removed again at once)
ip netns exec "$sw" tc qdisc add dev lo root netem delay 1ms 2>/dev/null || netem=0
[ "$netem" = 0 ] || ip netns exec "$sw" tc qdisc del dev lo root
if [ -n "$delay" ] && [ "$netem" = 0 ]; then
  [ "$keep_going" = 1 ] || skip "--link delay $delay needs netem, which this kernel lacks (--keep-going runs without it)"
  echo "multihost: delay not available: no netem (this kernel); links shaped by rate only" >&2
  delay=
fi
# shape DEV in NS: the rate with tbf, behind netem's delay when there is one. The burst is 3 ms at the rate (at least
# 64 KiB, so a segmentation-offloaded packet fits): a token bucket banks up to a burst of tokens while the link is
# idle and then lets that much through at the veth's speed, which no real link does, so the burst is about the
# smallest that holds the rate here. Measured at 1gbit, 2 hosts x 1 rank, fused fp32 (README "Across nodes on the
# emulated network"): with 10 ms a training step banked its whole compute phase and hid it (step 17.5 ms = the
# 2.1 MB allreduce alone), with 4 ms 3.5 ms of it; with 3 ms the exposed reduction is the reduction alone (18.5 vs
# 18.3 ms); 2 ms and less lose the rate or make collectives jump by ~8 ms (this VM's qdisc timer comes late, and
# tokens beyond the burst are lost).
shape() {
  local ns=$1 dev=$2 burst parent=root
  if [ -n "$delay" ]; then
    ip netns exec "$ns" tc qdisc add dev "$dev" root handle 1: netem delay "$delay" limit 100000 || return 1
    parent="parent 1:"
  fi
  [ -n "$rate" ] || return 0
  burst=$((rate_bits * 3 / 8000))
  [ "$burst" -ge 65536 ] || burst=65536
  ip netns exec "$ns" tc qdisc add dev "$dev" $parent handle 2: tbf rate "$rate" burst "$burst" latency 100ms
}

hostfile_lines=()
for i in $(seq 0 $((hosts - 1))); do
  h=$prefix-h$i
  mkns "$h"
  ip link add eth0 netns "$h" type veth peer name "h$i" netns "$sw" &&
    ip -n "$sw" link set "h$i" master br0 up &&
    ip -n "$h" addr add "$net.$((i + 1))/24" dev eth0 &&
    ip -n "$h" link set eth0 up && ip -n "$h" link set lo up || skip "cannot link $h to the bridge"
  if [ -n "$rate$delay" ]; then
    shape "$h" eth0 && shape "$sw" "h$i" || skip "tc cannot shape $h's link with '$link'"
  fi
  hostfile_lines+=("$h slots=$rph")
done

# Each host gets cores of its own, as a real node has: the machine's allowed cores split into H blocks, host i's
# daemon and ranks confined to block i (the agent's taskset), where the kernel places them (--bind-to none: Open
# MPI's binding ignores that mask and binds every host's first rank to core 0). Before this, every host's daemon
# bound its first rank to core 0: two hosts' ranks shared one core while the other idled, and compute took 1.7x as
# long as on one host. More hosts than cores: hosts share (host i on core i mod N).
cpus=()
for r in $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/self/status | tr , ' '); do
  for c in $(seq "${r%-*}" "${r#*-}"); do cpus+=("$c"); done
done
ncpu=${#cpus[@]}
cpumap=()
for i in $(seq 0 $((hosts - 1))); do
  if [ "$hosts" -le "$ncpu" ]; then
    lo=$((i * ncpu / hosts)) hi=$(((i + 1) * ncpu / hosts - 1)) list=
    for c in $(seq "$lo" "$hi"); do list+=${list:+,}${cpus[$c]}; done
  else
    list=${cpus[$((i % ncpu))]}
  fi
  cpumap+=("$prefix-h$i=$list")
done
export MT_MULTIHOST_CPUS="${cpumap[*]}"

work=$(mktemp -d /tmp/multihost.XXXXXX) || exit 1
printf '%s\n' "${hostfile_lines[@]}" >"$work/hostfile"
shaping=unshaped
[ -n "$rate$delay" ] && shaping="link ${rate:-unlimited}${delay:+, delay $delay} each way"
echo "multihost: $hosts hosts x $rph ranks ($prefix-h0..$prefix-h$((hosts - 1)) = $net.1..$net.$hosts, subnet $net.0/24, $shaping); cores ${MT_MULTIHOST_CPUS//$prefix-/}; mpirun on $prefix-head" >&2

# mpirun runs in the switch namespace (the only other place with an address on the subnet), under a hostname of
# its own, so every host is remote to it and is started through the agent. btl: vader within a host, tcp across.
# mpi_yield_when_idle: the emulated hosts share this machine's cores with the kernel's network processing (softirq
# on the veths), which a rank busy-polling for a message starves until the next scheduler tick: transfers then took
# whole multiples of ~8 ms (a 200 KB allreduce as long as a 2 MB one, 24 ms at 1gbit). Yielding, the 2.1 MB
# allreduce takes 17.0 ms at 1gbit, the wire's time (README "Across nodes on the emulated network"). Still so with
# cores of their own per host: fused steps 7.3 ms yielding against 10.6 busy-polling at 10gbit, 24.9 against 27.8 at
# 1gbit (same minutes). A real node has its own cores and NIC; MT_MULTIHOST_YIELD=0 measures the busy-polling
# default anyway.
mpirun_flags=(--hostfile "$work/hostfile" -np $((hosts * rph)) --oversubscribe --allow-run-as-root
  --mca plm_rsh_agent "$agent" --mca plm_rsh_no_tree_spawn 1
  --mca oob_tcp_if_include "$net.0/24" --mca btl_tcp_if_include "$net.0/24" --mca btl self,vader,tcp
  --mca mpi_yield_when_idle "${MT_MULTIHOST_YIELD:-1}" --bind-to none)
ip netns exec "$sw" unshare --uts sh -c 'hostname "$0" && exec mpirun "$@"' "$prefix-head" "${mpirun_flags[@]}" "$@" &
mpirun_pid=$!
wait "$mpirun_pid"
status=$?
mpirun_pid=
exit "$status"
