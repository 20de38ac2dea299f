# procs.sh — sourced by the CLI test scripts that signal their own ranks.
# The PIDs of this test's own processes matching a pgrep -f pattern: those working in this test's directory. Tests
# run in parallel, and a pattern alone can match another test's mpitrain (a SIGTERM or SIGKILL meant for ours would
# then fail it: checkpoint.kill and checkpoint.sigterm, both on a directory R, signalled each other's ranks).
own_pids() {
  local p
  for p in $(pgrep -f "$1"); do [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$PWD" ] && echo "$p"; done
}
