#!/usr/bin/env bash
# deps.sh — install the Debian packages mpitrain needs, if any are missing. Idempotent: with everything present it
# changes nothing. Uses apt-get as root, or through sudo when that works without a password; otherwise prints the
# exact command to run and fails.
set -euo pipefail
packages=(
  gcc make cmake pkg-config            # toolchain
  openmpi-bin libopenmpi-dev           # MPI
  libopenblas-dev                      # BLAS (CBLAS interface)
  libdnnl-dev                          # oneDNN: the bf16 GEMMs (--precision bf16, AMX)
  ocl-icd-opencl-dev                   # only Recommended by libdnnl-dev, but its CMake config requires OpenCL
  libhdf5-openmpi-dev hdf5-tools       # parallel HDF5, h5dump
  zlib1g-dev                           # gzipped IDX files
  libinih-dev                          # INI configuration files
  libcmocka-dev procps                 # unit tests; pgrep for the checkpoint tests
  dataset-fashion-mnist                # the default dataset, IDX files under /usr/share/datasets/fashion-mnist
  gnuplot-nox                          # the lessons' and launch/scaling.sh's plots
  libsimgrid-dev libhdf5-dev           # the SMPI build (simulated clusters): SimGrid, serial HDF5 (the normal
                                       # build still finds the parallel HDF5: h5pcc and hdf5.pc stay Open MPI's)
  clang libclang-rt-14-dev             # libFuzzer targets (launch/fuzz.sh)
  valgrind                             # memcheck on a short run (launch/valgrind.sh)
  python3-torch python3-h5py           # launch/export.py (TorchScript, state dicts) and the interop tests, which
  python3-numpy python3-onnx           # also write .pth files with torch; --onnx and its check need python3-onnx
)
missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then missing+=("$p"); fi
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "deps: all ${#packages[@]} packages present"
  exit 0
fi
echo "deps: installing ${missing[*]}"
cmd=(apt-get install -y --no-install-recommends "${missing[@]}")
if [ "$(id -u)" -eq 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${cmd[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
  sudo DEBIAN_FRONTEND=noninteractive apt-get update -q
  sudo DEBIAN_FRONTEND=noninteractive "${cmd[@]}"
else
  echo "deps: missing packages and no root or password-less sudo. Run:" >&2
  echo "  sudo apt-get update && sudo ${cmd[*]}" >&2
  exit 1
fi
