#!/usr/bin/env bash
# precision.sh CASE — the command-line tests of --precision (precision.cmake). Runs in a directory of its own under
# the test data directory. Exit 77 (skipped) when this CPU cannot run the case: bf16 needs oneDNN's bf16 ISA (AMX
# for `auto`), both known from the training banner.
#   agree   bf16 at 1-4 ranks: final test loss within 2 % of the 1-rank run's
#   det     --deterministic bf16 at 1-4 ranks: the same /model bits
#   resume  bf16 -> fp32 -> bf16 across a resume (warned, not refused), and eval of the checkpoint in bf16
#   auto    auto is bf16 with AMX, fp32 under ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16
#   default no --precision is auto (train, eval); MPITRAIN_AUTO_PRECISION=fp32|bf16 decides what auto is (named
#           in the banner), an explicit --precision wins over it, any other value is one agreed error line
#   noamx   explicit bf16 under ONEDNN_MAX_CPU_ISA=AVX2: one agreed error line naming the way out, on 2 ranks
#   copy    MPITRAIN_CHECK_BF16_COPY=1 (every bf16 forward aborts unless the weights' bf16 copy is bf16 of the fp32
#           weights): training at 1-3 ranks, unsharded, sharded (one and several buckets), resumed, with each
#           optimiser, --init-from, early stopping's restored best model, eval and predict
#   late    no oneDNN primitive created once the first one ran (ONEDNN_VERBOSE=2), with micro-batches, a last short
#           batch, validation and test chunks of other sizes, and in deterministic mode
#   bench   `bench --precision bf16` reports its roofline against bare oneDNN bf16 matmuls (onednn_bf16_* keys, the
#           table's line), at 1 and 2 ranks with micro-batches; fp32's JSON keeps exactly its keys. Skipped where the
#           CPU as oneDNN sees it (ONEDNN_MAX_CPU_ISA as set for the test) has no bf16.
set -uo pipefail
# The suite pins auto to fp32 (tests/CMakeLists.txt); these cases name their precision or test auto itself.
unset MPITRAIN_AUTO_PRECISION
case_=$1
bin=${MT_BIN:?} mpirun=${MT_MPIRUN:-mpirun}
dir=precision_$case_
rm -rf "$dir" && mkdir -p "$dir" && cd "$dir" || exit 1
fail() { echo "FAIL: $*"; exit 1; }
"$bin" synth --samples 1100 --test-samples 230 --features 40 --classes 5 --noise 1.0 --seed 4 --out d.h5 >/dev/null ||
  fail "synth"
# The banner's precision line tells what the CPU gave (bf16 only where oneDNN has it).
probe=$("$bin" train --data d.h5 --hidden 8 --epochs 1 --max-steps 1 --progress off --precision auto 2>&1)
amx=0
grep -q "^precision bf16" <<<"$probe" && amx=1
bf16_ok=$(ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 "$bin" train --data d.h5 --hidden 8 --epochs 1 --max-steps 1 \
  --progress off --precision bf16 >/dev/null 2>&1 && echo 1 || echo 0)
need_bf16() { [ "$bf16_ok" = 1 ] || { echo "SKIP: no bf16 on this CPU"; exit 77; }; }
train() { local np=$1; shift; "$mpirun" -np "$np" "$bin" train --data d.h5 --hidden 32,16 --batch 64 --seed 9 \
  --threads 1 --progress off "$@" 2>&1; }
final_loss() { sed -n 's/.*final test accuracy: .*(test loss \([0-9.]*\)).*/\1/p' <<<"$1" | tail -n 1; }
model_hash() { /usr/bin/python3 - "$1" <<'PY'
import glob, hashlib, sys, h5py
f = sorted(glob.glob(sys.argv[1] + "/ckpt-*.h5"))[-1]
h = hashlib.sha256()
with h5py.File(f, "r") as z:
    z["model"].visititems(lambda n, o: isinstance(o, h5py.Dataset) and (h.update(n.encode()), h.update(o[()].tobytes())))
print(h.hexdigest())
PY
}

case $case_ in
  agree)
    need_bf16
    out1=$(train 1 --epochs 3 --precision bf16) || fail "1 rank: $out1"
    grep -q "^precision bf16" <<<"$out1" || fail "1 rank did not run bf16: $out1"
    l1=$(final_loss "$out1")
    for np in 2 3 4; do
      out=$(train $np --epochs 3 --precision bf16) || fail "$np ranks: $out"
      l=$(final_loss "$out")
      /usr/bin/python3 -c "import sys; a, b = float('$l1'), float('$l'); sys.exit(abs(a - b) > 0.02 * a)" ||
        fail "$np ranks: final test loss $l, 1 rank $l1"
      echo "$np ranks: test loss $l (1 rank $l1)"
    done ;;
  det)
    need_bf16
    ref=
    for np in 1 2 3 4; do
      out=$(train $np --epochs 2 --deterministic --det-group 8 --precision bf16 --checkpoint-dir ck$np) ||
        fail "$np ranks: $out"
      grep -q "^precision bf16" <<<"$out" || fail "did not run bf16: $out"
      h=$(model_hash ck$np) || fail "no checkpoint in ck$np"
      [ -z "$ref" ] && ref=$h
      [ "$h" = "$ref" ] || fail "$np ranks: /model differs from 1 rank's ($h vs $ref)"
      echo "$np ranks: $h"
    done ;;
  resume)
    need_bf16
    out=$(train 2 --epochs 1 --precision bf16 --checkpoint-dir ck) || fail "bf16: $out"
    out=$(train 2 --epochs 2 --precision fp32 --checkpoint-dir ck --resume auto) || fail "bf16 -> fp32: $out"
    grep -q "^precision fp32" <<<"$out" || fail "resumed run is not fp32: $out"
    grep -qi "precision" <<<"$(grep -i warn <<<"$out")" || fail "no warning about the changed precision: $out"
    out=$(train 2 --epochs 3 --precision bf16 --checkpoint-dir ck --resume auto) || fail "fp32 -> bf16: $out"
    grep -q "^precision bf16" <<<"$out" || fail "resumed run is not bf16: $out"
    grep -q "epoch 3" <<<"$out" || fail "did not train epoch 3: $out"
    ck=$(ls ck/ckpt-*.h5 | sort | tail -n 1)
    e32=$("$mpirun" -np 2 "$bin" eval --checkpoint "$ck" --data d.h5 --precision fp32 2>&1) || fail "eval fp32: $e32"
    e16=$("$mpirun" -np 2 "$bin" eval --checkpoint "$ck" --data d.h5 --precision bf16 2>&1) || fail "eval bf16: $e16"
    echo "$e32"; echo "$e16" ;;
  auto)
    [ "$amx" = 1 ] || { echo "SKIP: no AMX here: auto is fp32"; exit 77; }
    out=$(ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 "$bin" train --data d.h5 --hidden 8 --epochs 1 --max-steps 1 \
      --progress off --precision auto 2>&1) || fail "$out"
    grep -q "^precision fp32 (--precision auto)" <<<"$out" || fail "auto without AMX is not fp32: $out"
    grep -q "^precision bf16.*(--precision auto); GEMMs: oneDNN" <<<"$probe" || fail "auto with AMX: $probe" ;;
  default)
    [ "$amx" = 1 ] || { echo "SKIP: no AMX here: the default is fp32"; exit 77; }
    t1() { "$bin" train --data d.h5 --hidden 8 --epochs 1 --max-steps 1 --progress off --checkpoint-dir ck "$@" 2>&1; }
    out=$(t1) || fail "$out"
    grep -q "^precision bf16.*(--precision auto); GEMMs: oneDNN" <<<"$out" || fail "default with AMX is not bf16: $out"
    out=$(ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 t1) || fail "$out"
    grep -q "^precision fp32 (--precision auto)" <<<"$out" || fail "default without AMX is not fp32: $out"
    out=$(MPITRAIN_AUTO_PRECISION=fp32 t1) || fail "$out"
    grep -q "^precision fp32 (--precision auto, MPITRAIN_AUTO_PRECISION=fp32); GEMMs: OpenBLAS" <<<"$out" ||
      fail "MPITRAIN_AUTO_PRECISION=fp32 did not give fp32: $out"
    out=$(MPITRAIN_AUTO_PRECISION=bf16 ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16 t1) || fail "$out"
    grep -q "^precision bf16.*(--precision auto, MPITRAIN_AUTO_PRECISION=bf16)" <<<"$out" ||
      fail "MPITRAIN_AUTO_PRECISION=bf16 without AMX did not give bf16: $out"
    out=$(MPITRAIN_AUTO_PRECISION=bf16 t1 --precision fp32) || fail "$out"
    grep -q "^precision fp32 (--precision fp32)" <<<"$out" || fail "explicit --precision lost to the variable: $out"
    out=$(MPITRAIN_AUTO_PRECISION=fp16 "$mpirun" -np 2 "$bin" train --data d.h5 --hidden 8 --epochs 1 \
      --progress off 2>&1) && fail "MPITRAIN_AUTO_PRECISION=fp16 ran: $out"
    [ "$(grep -c "error: MPITRAIN_AUTO_PRECISION=fp16: expected fp32 or bf16" <<<"$out")" = 1 ] &&
      [ "$(grep -c "^mpitrain" <<<"$out")" = 1 ] || fail "expected one error line: $out"
    # eval's default is auto too: bf16 here (its output names the precision), fp32 with the variable.
    ck=$(ls ck/ckpt-*.h5 | sort | tail -n 1)
    out=$("$bin" eval --checkpoint "$ck" --data d.h5 2>&1) || fail "eval: $out"
    grep -q "^eval: .*, bf16 GEMMs)" <<<"$out" || fail "eval's default is not bf16 here: $out"
    out=$(MPITRAIN_AUTO_PRECISION=fp32 "$bin" eval --checkpoint "$ck" --data d.h5 2>&1) || fail "eval: $out"
    grep -q "^eval: .*, fp32 GEMMs)" <<<"$out" || fail "eval with MPITRAIN_AUTO_PRECISION=fp32 is not fp32: $out"
    echo "default auto: bf16 with AMX, fp32 without; the variable decides auto, --precision wins" ;;
  noamx)
    out=$(ONEDNN_MAX_CPU_ISA=AVX2 "$mpirun" -np 2 "$bin" train --data d.h5 --hidden 8 --epochs 1 --progress off \
      --precision bf16 2>&1) && fail "explicit bf16 without bf16 ran: $out"
    n=$(grep -c "error: --precision bf16: this CPU has no bf16 .* use --precision fp32" <<<"$out")
    [ "$n" = 1 ] || fail "expected one error line, got $n: $out"
    [ "$(grep -c "^mpitrain" <<<"$out")" = 1 ] || fail "more than the error: $out" ;;
  copy)
    need_bf16
    export MPITRAIN_CHECK_BF16_COPY=1
    for np in 1 2 3; do
      for mode in "" "--shard-optimizer" "--shard-optimizer --bucket-mb 0.002"; do
        ck=ck$np$(tr -dc a-z0-9 <<<"$mode")
        # shellcheck disable=SC2086 # $mode: several words
        out=$(train $np --epochs 1 --precision bf16 $mode --checkpoint-dir "$ck") || fail "$np ranks $mode: $out"
        # shellcheck disable=SC2086
        out=$(train $np --epochs 2 --precision bf16 $mode --checkpoint-dir "$ck" --resume auto) ||
          fail "$np ranks $mode, resumed: $out"
        grep -q "^epoch 2" <<<"$out" || fail "$np ranks $mode: no epoch 2 after the resume: $out"
        echo "$np ranks ${mode:-unsharded}: trained, resumed"
      done
    done
    for opt in sgd momentum rmsprop adam; do
      out=$(train 2 --epochs 1 --precision bf16 --optimizer "$opt" --weight-decay 0.01 --clip-norm 1) ||
        fail "--optimizer $opt: $out"
    done
    ck=$(ls ck2/ckpt-*.h5 | sort | tail -n 1)
    out=$(train 2 --epochs 1 --precision bf16 --init-from "$ck") || fail "--init-from: $out"
    out=$(train 2 --epochs 8 --lr 0.3 --val-fraction 0.2 --patience 3 --precision bf16) || fail "early stopping: $out"
    grep -q "^restored the model of epoch" <<<"$out" || fail "no best model restored (the test needs one): $out"
    # A resume that also loads best.h5 (epoch 3 here, not the last one): the model's copy stays the model's.
    out=$(train 2 --epochs 4 --lr 0.3 --val-fraction 0.2 --patience 3 --precision bf16 --checkpoint-dir ckb) ||
      fail "best: $out"
    [ -f ckb/best.h5 ] || fail "no best.h5 (the test needs one): $out"
    out=$(train 2 --epochs 5 --lr 0.3 --val-fraction 0.2 --patience 3 --precision bf16 --checkpoint-dir ckb \
      --resume auto) ||
      fail "resumed with a best model: $out"
    out=$("$mpirun" -np 2 "$bin" eval --checkpoint "$ck" --data d.h5 --precision bf16 2>&1) || fail "eval: $out"
    out=$("$mpirun" -np 3 "$bin" predict --checkpoint "$ck" --data d.h5 --out p.csv --precision bf16 2>&1) ||
      fail "predict: $out"
    echo "optimisers, --init-from, early stopping, eval, predict: copy current at every forward" ;;
  late)
    need_bf16
    late() { awk -F, '/^onednn_verbose,exec/{e=1} /^onednn_verbose,create/{if (e) l++; else c++}
                      END {print c + 0, l + 0}'; }
    read -r c l < <(ONEDNN_VERBOSE=2 "$bin" train --data d.h5 --hidden 32,16 --batch 100 --micro-batch 30 \
      --val-fraction 0.1 --epochs 2 --threads 1 --progress off --precision bf16 2>&1 | late)
    echo "default: $c primitives created at start-up, $l later"
    [ "$c" -gt 0 ] && [ "$l" = 0 ] || fail "default mode: $l primitives created during training"
    read -r c l < <(ONEDNN_VERBOSE=2 "$bin" train --data d.h5 --hidden 32,16 --batch 100 --deterministic \
      --det-group 16 --epochs 2 --progress off --precision bf16 2>&1 | late)
    echo "deterministic: $c at start-up, $l later"
    [ "$c" -gt 0 ] && [ "$l" = 0 ] || fail "deterministic mode: $l primitives created during training" ;;
  bench)
    launch=()
    bench() { "${launch[@]}" "$bin" bench "$@" --threads 1 --hidden 64,32 --features 96 --samples 2048 --batch 128 --steps 20 --warmup 2 \
      --seed 3 --scaling off; }
    probe=$(bench --precision bf16 2>&1)
    grep -q "no bf16 instructions" <<<"$probe" && { echo "SKIP: no bf16 on this CPU: $probe"; exit 77; }
    # fp32: the JSON object's keys exactly as they were before bf16 existed (scripts and tests read them).
    keys="ranks threads model params optimizer batch rows_per_rank micro_batch steps step_ms samples_per_s \
gflops_per_rank sgemm_gflops_per_rank fraction_of_sgemm ms_data ms_forward ms_backward ms_allreduce ms_update \
scaling reference_batch reference_samples_per_s speedup_vs_1_rank buckets sharded grad_reduce_ms \
bare_allreduce_ms grad_busbw_gbs bare_busbw_gbs peak_rss_mb model_mb optimizer_mb blas_core"
    out=$(bench --precision fp32 --json) || fail "fp32 bench: $out"
    got=$(/usr/bin/python3 -c 'import json, sys; print(" ".join(json.loads(sys.stdin.read())))' <<<"$out") ||
      fail "fp32 bench printed no JSON: $out"
    [ "$got" = "$(tr -s ' \n' '  ' <<<"$keys" | sed 's/ $//')" ] || fail "fp32 JSON keys changed: $got"
    check() { # JSON -> fails unless it reports a sane bare-bf16 roofline
      /usr/bin/python3 - "$1" <<'PY' || fail "bf16 bench: $1"
import json, sys
j = json.loads(sys.argv[1])
roof, frac, ach = j.get("onednn_bf16_gflops_per_rank"), j.get("fraction_of_onednn_bf16"), j["gflops_per_rank"]
assert j.get("precision") == "bf16" and "oneDNN" in j.get("roofline", ""), "no bf16 roofline named"
assert "sgemm_gflops_per_rank" not in j and "fraction_of_sgemm" not in j, "a bf16 run reports an sgemm roofline"
assert roof is not None and frac is not None, "no onednn_bf16 keys"
assert roof > 0 and 0 < ach and 0 < frac < 1.5, f"roofline {roof} GFLOP/s, achieved {ach}, fraction {frac}"
print(f"bf16 roofline {roof} GFLOP/s per rank, achieved {ach}, fraction {frac} ({j['roofline']})")
PY
    }
    out=$(bench --precision bf16 --json) || fail "bf16 bench: $out"
    check "$out"
    launch=("$mpirun" -np 2)
    out=$(bench --precision bf16 --micro-batch 40 --json) || fail "bf16 bench, 2 ranks: $out"
    check "$out"
    launch=()
    out=$(bench --precision bf16) || fail "bf16 bench table: $out"
    grep -Eq "^  of oneDNN bf16 roofline +[0-9.]+ %" <<<"$out" || fail "no bf16 roofline line: $out"
    grep -q "bare oneDNN .* matmuls on the same shapes: [0-9.]*[1-9]" <<<"$out" || fail "no bf16 roofline: $out" ;;
  *) fail "unknown case $case_" ;;
esac
echo "OK"
