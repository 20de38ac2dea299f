# common.sh — shared by the launch scripts: where things are, and how to call mpirun on this machine.
# Sourced, not run.
MT_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
MT_BUILD=${MT_BUILD:-$MT_ROOT/build}

# mpirun as root needs --allow-run-as-root; more ranks than Open MPI counts slots (physical cores, or fewer in a
# container) need --oversubscribe. Both are harmless otherwise.
mt_mpirun() {
  local flags=(--oversubscribe)
  if [ "$(id -u)" -eq 0 ]; then flags+=(--allow-run-as-root); fi
  mpirun "${flags[@]}" "$@"
}

# Configure and build (Release unless CMAKE_BUILD_TYPE says otherwise). Extra arguments go to cmake.
mt_build() {
  cmake -S "$MT_ROOT" -B "$MT_BUILD" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" "$@" >/dev/null
  cmake --build "$MT_BUILD" -j "$(nproc)"
}

# --help of a launch script: its header comment, from line 2 to the `set -euo` line.
mt_help() { sed -n '2,/^set -euo/p' "$1" | sed '$d; s/^# \{0,1\}//'; }

# The SimGrid SMPI build (simulated clusters, launch/scaling.sh) lives in its own directory.
MT_BUILD_SMPI=${MT_BUILD_SMPI:-$MT_ROOT/build-smpi}
mt_build_smpi() {
  cmake -S "$MT_ROOT" -B "$MT_BUILD_SMPI" -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-Release}" -DMPITRAIN_SMPI=ON "$@" \
    >/dev/null
  cmake --build "$MT_BUILD_SMPI" -j "$(nproc)"
}

# The benchmark scripts report fp32 figures (the sgemm roofline, the README's fp32 tables) unless asked otherwise:
# --precision's default, auto, would be bf16 on a CPU with AMX. An explicit --precision among a script's extra
# arguments wins, and so does MPITRAIN_AUTO_PRECISION set by the caller.
mt_fp32_figures() {
  export MPITRAIN_AUTO_PRECISION=${MPITRAIN_AUTO_PRECISION:-fp32}
}
