#!/usr/bin/env bash
# install.sh BUILD_DIR WORK_DIR — `cmake --install` into a fresh prefix, then build and run a small program against
# the installed library twice: through find_package(mpitrain) and through pkg-config. Fails if a header, the
# library, a dependency, the package files or the installed binary is missing.
set -euo pipefail
build=$1 work=$2
src=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
rm -rf "$work" && mkdir -p "$work"
prefix=$work/prefix
cmake --install "$build" --prefix "$prefix" >"$work/install.log"
for f in bin/mpitrain include/mpitrain/model.h; do
  [ -e "$prefix/$f" ] || { echo "install.sh: $prefix/$f was not installed"; exit 1; }
done
pc=$(find "$prefix" -name mpitrain.pc | head -n 1)
cfg=$(find "$prefix" -name mpitrainConfig.cmake | head -n 1)
lib=$(find "$prefix" -name libmpitrain_compute.a | head -n 1)
[ -n "$pc" ] && [ -n "$cfg" ] && [ -n "$lib" ] || { echo "install.sh: missing mpitrain.pc, mpitrainConfig.cmake or libmpitrain_compute.a"; exit 1; }
"$prefix/bin/mpitrain" version

echo "== find_package(mpitrain)"
cmake -S "$src/consumer" -B "$work/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" >"$work/configure.log" ||
  { cat "$work/configure.log"; exit 1; }
cmake --build "$work/cmake-build" >"$work/build.log" || { cat "$work/build.log"; exit 1; }
grep "mpitrain::cli = $prefix/bin/mpitrain" "$work/configure.log"
"$work/cmake-build/consumer"

echo "== pkg-config mpitrain"
export PKG_CONFIG_PATH=$(dirname "$pc")
# shellcheck disable=SC2046
cc -std=c11 -o "$work/consumer-pc" "$src/consumer/main.c" $(pkg-config --cflags --libs mpitrain)
"$work/consumer-pc"
echo "install.sh: the installed library builds and runs both ways"
