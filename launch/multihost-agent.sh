#!/bin/sh
# multihost-agent.sh — Open MPI's rsh agent for launch/multihost.sh: "multihost-agent.sh HOST COMMAND..." runs
# COMMAND (the daemon's command line, one shell string as ssh would get it) inside network namespace HOST, in a UTS
# namespace of its own whose hostname is HOST: what ssh to a real node would do. MT_MULTIHOST_CPUS (set by
# multihost.sh: "HOST=CPULIST ...") gives each host the cores that are its own; the daemon and its ranks run there.
host=$1
shift
case "$host" in
  *[!a-z0-9-]* | "") echo "multihost-agent: bad host name '$host'" >&2; exit 1 ;;
esac
cpus=
for m in ${MT_MULTIHOST_CPUS-}; do
  [ "${m%%=*}" = "$host" ] && cpus=${m#*=}
done
set -- ip netns exec "$host" unshare --uts sh -c 'hostname "$0" && eval "$*"' "$host" "$@"
[ -n "$cpus" ] && set -- taskset -c "$cpus" "$@"
exec "$@"
