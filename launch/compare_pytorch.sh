#!/usr/bin/env bash
# compare_pytorch.sh — mpitrain against PyTorch 1.13 (Debian's python3-torch) on the same model, data shape, batch
# sizes and optimiser: samples/s of `mpitrain bench` at 1 and NP ranks and of launch/compare_pytorch.py in one
# process and in DDP (gloo) over NP processes, one thread per process everywhere, and the ratios mpitrain/PyTorch.
# The runs alternate (mpitrain, PyTorch, mpitrain, PyTorch, ...) for REPS repetitions; each ratio is the median of
# the repetitions' side-by-side ratios, because a shared machine drifts by tens of percent between runs.
#
# PyTorch gets the OpenBLAS kernels mpitrain uses (OPENBLAS_CORETYPE): OpenBLAS 0.3.21 falls back to its SSE3
# "Prescott" kernels on CPUs it does not recognise, which mpitrain corrects for itself (README, Performance). When
# PyTorch's own pick differs, a row "PyTorch with OpenBLAS's own pick" shows what an unmodified PyTorch gets.
#
# bf16 mixed precision: rows pairing `mpitrain bench --precision bf16` with PyTorch under bf16 autocast
# (torch.autocast("cpu", dtype=torch.bfloat16): its matmuls in bf16 through oneDNN, AMX where the CPU has it) and its
# multi-tensor Adam (foreach=True), one process x one thread, at each batch of BF16_BATCHES (default "128"; "" for
# none); left out, with a note, where mpitrain reports no bf16 on this CPU. The fp32 rows are unchanged.
#
# Environment: BATCHES (default "128 32"), NP (2), REPS (3), OPTIMIZER (adam; or sgd), STEPS (200), WARMUP (20);
# WEAK=1 adds NP processes with each batch per process (weak scaling); PYTORCH_ARGS: more options for every
# compare_pytorch.py run (e.g. --foreach: PyTorch's multi-tensor Adam, not its default in 1.13); PYTHON
# (/usr/bin/python3: Debian's packages belong to it, not to another python3 first on PATH). python3-torch is
# optional, not in launch/deps.sh: this script installs it (apt-get, as root or with password-less sudo) or says how.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mt_fp32_figures
PY=${PYTHON:-/usr/bin/python3}
BATCHES=${BATCHES:-128 32}
NP=${NP:-2}
REPS=${REPS:-3}
OPT=${OPTIMIZER:-adam}
STEPS=${STEPS:-200}
WARMUP=${WARMUP:-20}
COMPARE="$MT_ROOT/launch/compare_pytorch.py"
die() {
  echo "compare_pytorch: error: $*" >&2
  exit 1
}

# --- PyTorch -------------------------------------------------------------------------------------------------------
have_torch() { "$PY" -c 'import torch' >/dev/null 2>&1; }
if ! have_torch; then
  [ -x "$PY" ] || die "$PY not found; PyTorch comes as the Debian package python3-torch for /usr/bin/python3"
  install=(apt-get install -y -q --no-install-recommends python3-torch)
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    { command -v sudo >/dev/null && sudo -n true 2>/dev/null; } ||
      die "python3-torch is missing (PyTorch for $PY); install it with: sudo apt-get install --no-install-recommends python3-torch"
    sudo=(sudo)
  fi
  log=$(mktemp -t compare_pytorch-apt.XXXXXX)
  echo "compare_pytorch: installing python3-torch (PyTorch 1.13, about 170 Debian packages; log in $log)"
  { "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive "${install[@]}"; } >"$log" 2>&1 ||
    die "python3-torch is missing and '${install[*]}' failed (see $log)"
  have_torch || die "python3-torch is installed but $PY cannot import torch (see $log)"
fi

# --- mpitrain ------------------------------------------------------------------------------------------------------
[ -x "$MT_BUILD/mpitrain" ] || { bash "$MT_ROOT/launch/deps.sh"; mt_build; }

field() { sed -n "s/.*\"$1\": \"\{0,1\}\([^,\"}]*\).*/\1/p"; }
# OpenBLAS kernels: mpitrain's (`mpitrain version`: "...; core SkylakeX (...)") and what PyTorch gets on its own.
mt_core=$("$MT_BUILD/mpitrain" version | sed -n 's/^blas:.*; core \([A-Za-z0-9_]*\).*/\1/p')
pt_core=$("$PY" "$COMPARE" --print-blas-core)
# pt_own: PyTorch with the kernels OpenBLAS picks for it; pt_args: with mpitrain's.
# shellcheck disable=SC2206 # PYTORCH_ARGS is a word list
pt_own=(--optimizer "$OPT" --steps "$STEPS" --warmup "$WARMUP" --threads 1 --json ${PYTORCH_ARGS:-})
pt_args=("${pt_own[@]}")
if [ -n "$mt_core" ]; then pt_args+=(--openblas-coretype "$mt_core"); fi
torch_version=$("$PY" -c 'import torch; print(torch.__version__)')

mpitrain_run() { # NP BATCH [MORE OPTIONS] -> samples/s
  mt_mpirun -np "$1" "$MT_BUILD/mpitrain" bench --json --threads 1 --batch "$2" --optimizer "$OPT" --lr 1e-3 \
    --steps "$STEPS" --warmup "$WARMUP" --scaling off "${@:3}" | field samples_per_s
}
# bf16 where mpitrain has it (an explicit --precision bf16 is an error on a CPU without bf16).
BF16_BATCHES=${BF16_BATCHES-128}
bf16_note=
if [ -n "$BF16_BATCHES" ] && ! "$MT_BUILD/mpitrain" bench --precision bf16 --hidden 8 --features 8 --samples 64 \
  --batch 32 --steps 1 --warmup 0 --json >/dev/null 2>&1; then
  bf16_note="bf16 rows left out: mpitrain bench --precision bf16 does not run on this CPU (no AVX512-BF16 or AMX)"
  BF16_BATCHES=
fi
pytorch_run() { # ARGS... -> samples/s
  "$PY" "$COMPARE" "$@" | field samples_per_s
}

# Rows: "batch|setup|mpitrain ranks|mpitrain batch|PyTorch arguments|mpitrain options". The "own pick" row pairs
# with the 1-rank run.
rows=()
for b in $BATCHES; do
  rows+=("$b|1 process x 1 thread|1|$b|--mode single --batch $b ${pt_args[*]}")
  if [ -n "$mt_core" ] && [ "$pt_core" != "$mt_core" ]; then
    rows+=("$b|  PyTorch with OpenBLAS's own pick ($pt_core)|1|$b|--mode single --batch $b ${pt_own[*]}")
  fi
  rows+=("$b|$NP processes, DDP gloo (strong)|$NP|$b|--mode ddp --np $NP --batch $b ${pt_args[*]}")
  if [ "${WEAK:-0}" = 1 ]; then
    rows+=("$((b * NP))|$NP processes, $b rows each (weak)|$NP|$((b * NP))|--mode ddp --np $NP --scaling weak --batch $b ${pt_args[*]}")
  fi
done
for b in $BF16_BATCHES; do
  rows+=("$b|1 process x 1 thread, bf16 (autocast, foreach)|1|$b|--mode single --batch $b ${pt_args[*]} --autocast bf16 --foreach|--precision bf16")
done

echo "mpitrain $("$MT_BUILD/mpitrain" version | sed -n 's/^mpitrain //p') vs PyTorch $torch_version: 784-512-256-10 relu," \
  "$OPT lr 1e-3, $STEPS timed steps after $WARMUP warm-up, one thread per process, $REPS interleaved repetitions"
opts=${PYTORCH_ARGS:+; PyTorch options: $PYTORCH_ARGS}
echo "OpenBLAS kernels: mpitrain ${mt_core:-?}; PyTorch ${mt_core:-$pt_core} (on its own: $pt_core)$opts"
[ -z "$bf16_note" ] || echo "$bf16_note"

loadavg() { cut -d' ' -f1 /proc/loadavg; }
load0=$(loadavg)
declare -A mt pt mt_done
for ((rep = 1; rep <= REPS; rep++)); do
  echo "repetition $rep/$REPS ..." >&2
  mt_done=()
  for i in "${!rows[@]}"; do
    IFS='|' read -r batch setup np mtbatch args mtargs <<<"${rows[$i]}"
    key="$np/$mtbatch/$mtargs"
    if [ -z "${mt_done[$key]:-}" ]; then # one mpitrain run per (ranks, batch, options) and repetition
      # shellcheck disable=SC2086 # mtargs is a word list
      mt_done[$key]=$(mpitrain_run "$np" "$mtbatch" $mtargs)
      [ -n "${mt_done[$key]}" ] || die "mpitrain bench -np $np --batch $mtbatch $mtargs printed no samples_per_s"
    fi
    mt[$i]="${mt[$i]:-} ${mt_done[$key]}"
    # shellcheck disable=SC2086 # args is a word list
    s=$(pytorch_run $args)
    [ -n "$s" ] || die "compare_pytorch.py $args printed no samples_per_s"
    pt[$i]="${pt[$i]:-} $s"
  done
done

# Median and runs of samples/s, and the median of the repetitions' ratios with their range.
summary() { # "a1 a2 ..." "b1 b2 ..."
  awk -v A="$1" -v B="$2" 'function med(v, n,   i, j, t) {
      for (i = 2; i <= n; i++) for (j = i; j > 1 && v[j] < v[j-1]; j--) { t = v[j]; v[j] = v[j-1]; v[j-1] = t }
      return n % 2 ? v[(n+1)/2] : (v[n/2] + v[n/2+1]) / 2 }
    BEGIN { n = split(A, a, " "); split(B, b, " ")
      ra = rb = ""; for (i = 1; i <= n; i++) { r[i] = a[i] / b[i]; ra = ra sprintf(" %.0f", a[i]); rb = rb sprintf(" %.0f", b[i]) }
      for (i = 1; i <= n; i++) { aa[i] = a[i]; bb[i] = b[i]; rr[i] = r[i] }
      ma = med(aa, n); mb = med(bb, n); mr = med(rr, n)
      printf "%7.0f %-24s %7.0f %-24s %5.2fx (%.2f-%.2f)\n", ma, "(" substr(ra, 2) ")", mb, "(" substr(rb, 2) ")", mr, rr[1], rr[n] }'
}
echo
printf "%-6s %-46s %-32s %-32s %s\n" batch setup "mpitrain samples/s (runs)" "PyTorch samples/s (runs)" \
  "mpitrain/PyTorch (range)"
for i in "${!rows[@]}"; do
  IFS='|' read -r batch setup _ _ _ _ <<<"${rows[$i]}"
  printf "%-6s %-46s %s\n" "$batch" "$setup" "$(summary "${mt[$i]}" "${pt[$i]}")"
done
echo "load average (1 min) at the start $load0, at the end $(loadavg) on $(nproc) cores"
