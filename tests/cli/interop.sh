#!/usr/bin/env bash
# interop.sh — PyTorch interop end to end for CTest: interop.sh SCENARIO MPITRAIN EXPORT_PY TORCH_READ DATA
# launch/export.py's TorchScript / ONNX / state dict against `mpitrain eval`, and `train --init-from` of a
# checkpoint, of an exported state dict and of an nn.Sequential state dict written by torch, plus the refusals
# (shape mismatches, damaged and hostile .pth files). Each scenario works in a fresh directory of its own and exits
# non-zero saying why when an expectation fails; 77 (CTest SKIP_RETURN_CODE) when the scenario needs PyTorch and
# /usr/bin/python3 has none.
set -u
scenario=$1 bin=$2 export_py=$3 torch_read=$4 data=$5
work=interop-$scenario
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
py=/usr/bin/python3
fail() { echo "FAIL: $*"; exit 1; }
need_torch() {
  "$py" -c "import torch, h5py, numpy" 2>/dev/null && return 0
  echo "SKIP: $py has no torch/h5py/numpy (apt-get install python3-torch python3-h5py; launch/deps.sh)"
  exit 77
}
# one rank runs the binary itself (a singleton MPI start is a fraction of mpirun's, and this script starts dozens)
train() {
  local np=$1 run=()
  shift
  [ "$np" -gt 1 ] && run=(mpirun -np "$np")
  "${run[@]}" "$bin" train --data "$data" --progress off --threads 1 "$@"
}
newest() { ls "$1"/ckpt-*.h5 2>/dev/null | sort | tail -n 1; }
# accuracy (percent) printed by `mpitrain eval`
eval_acc() { "$bin" eval --checkpoint "$1" --data "$2" | sed -n 's/^loss [0-9.]*  accuracy \([0-9.]*\)%$/\1/p'; }
# The TorchScript module on the dataset's raw /test/x, with torch.jit.load only, against eval's accuracy.
check_torchscript() { # PT DATA EVAL_ACC
  "$py" - "$@" <<'EOF' || fail "TorchScript accuracy differs from mpitrain eval"
import sys, h5py, numpy as np, torch
pt, data, want = sys.argv[1], sys.argv[2], float(sys.argv[3])
m = torch.jit.load(pt)
with h5py.File(data, "r") as f:
    x = torch.from_numpy(f["test/x"][...].astype(np.float32))  # raw: uint8 bytes as floats, or float32 as stored
    y = f["test/y"][...]
with torch.no_grad():
    logits = m(x)
assert logits.shape == (x.shape[0], int(logits.shape[1])), logits.shape
acc = float((logits.argmax(1).numpy() == y).mean() * 100)
print(f"TorchScript test accuracy {acc:.4f}%, mpitrain eval {want:.2f}% ({x.shape[0]} rows)")
sys.exit(0 if abs(acc - want) <= 0.01 else 1)
EOF
}
# onnx.checker must pass; onnxruntime's accuracy is compared when it is installed.
check_onnx() { # ONNX DATA EVAL_ACC
  "$py" - "$@" <<'EOF' || fail "ONNX model fails its check"
import sys, h5py, numpy as np, onnx
path, data, want = sys.argv[1], sys.argv[2], float(sys.argv[3])
onnx.checker.check_model(onnx.load(path))
print("onnx.checker: passes")
try:
    import onnxruntime
except ImportError:
    print("onnxruntime not installed: not evaluated")
    sys.exit(0)
with h5py.File(data, "r") as f:
    x, y = f["test/x"][...].astype(np.float32), f["test/y"][...]
s = onnxruntime.InferenceSession(path)
acc = float((s.run(["logits"], {"features": x})[0].argmax(1) == y).mean() * 100)
print(f"onnxruntime test accuracy {acc:.4f}%, mpitrain eval {want:.2f}%")
sys.exit(0 if abs(acc - want) <= 0.01 else 1)
EOF
}
# Parameters (and batch-norm statistics) of two checkpoints agree within 1e-6 (the copy took one step at lr 1e-30).
same_model() { h5diff -d 1e-6 "$1" "$2" /model >/dev/null || { h5diff -d 1e-6 -r "$1" "$2" /model | head; fail "$3"; }; }
# A run whose one step changes nothing: lr 1e-30 and a batch-norm momentum of 1e-30 (the running statistics keep
# their values to the last bit), so the checkpoint it writes holds the weights it started from.
copy_run() { local np=$1; shift; train "$np" --max-steps 1 --lr 1e-30 --bn-momentum 1e-30 --no-eval "$@"; }
# exit status, no crash, a one-line reason
expect_refusal() { # LOG WHAT regex
  local log=$1 what=$2 re=$3
  grep -q "mpitrain: error: .*$re" "$log" || { cat "$log"; fail "$what: expected an error matching '$re'"; }
  if grep -qE "Segmentation|on signal|core dumped|Sanitizer|runtime error" "$log"; then cat "$log"; fail "$what: crashed"; fi
}

case "$scenario" in
torchscript_before | torchscript_after)
  # Batch norm before / after the activation (the latter with leaky_relu: its slope must come along too).
  need_torch
  place=${scenario#torchscript_}
  act=relu; [ "$place" = after ] && act=leaky_relu
  train 2 --hidden 24,12 --batchnorm "$place" --activation "$act" --leaky-slope 0.2 --dropout 0.1 --epochs 3 \
    --batch 64 --lr 3e-3 --checkpoint-dir C >train.log 2>&1 || { cat train.log; fail "training"; }
  ck=$(newest C)
  acc=$(eval_acc "$ck" "$data")
  [ -n "$acc" ] || fail "no accuracy from mpitrain eval"
  "$py" "$export_py" "$ck" --torchscript m.pt --onnx m.onnx --state-dict m.pth >export.log 2>&1 ||
    { cat export.log; fail "export.py"; }
  cat export.log
  check_torchscript m.pt "$data" "$acc"
  check_onnx m.onnx "$data" "$acc"
  # The state dict's keys are the documented ones and load into the module.
  "$py" - m.pth m.pt "$place" <<'EOF' || fail "state dict keys"
import sys, torch
sd, m, place = torch.load(sys.argv[1]), torch.jit.load(sys.argv[2]), sys.argv[3]
want = (["pre.scale", "pre.mean", "pre.std", "dense0.weight"] + (["dense0.bias"] if place == "after" else []) +
        [f"bn0.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")] +
        ["dense1.weight"] + (["dense1.bias"] if place == "after" else []) +
        [f"bn1.{k}" for k in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")] +
        ["dense2.weight", "dense2.bias"])
print("state dict keys:", list(sd))
assert list(sd) == want, want
m.load_state_dict(sd)
EOF
  ;;
torchscript_normalized)
  # A uint8 dataset (IDX files, as Fashion-MNIST's) converted with --normalize: the module must take the raw
  # bytes and apply scale (1/255) and the per-feature mean/std itself, from the checkpoint's /preprocess group.
  need_torch
  "$py" - <<'EOF' || fail "writing the IDX files"
import numpy as np, struct
rng = np.random.default_rng(11)
d, classes = 48, 4
centres = rng.uniform(90, 165, size=(classes, d))
for name, n in (("train", 2000), ("t10k", 500)):
    y = rng.integers(0, classes, n)
    x = np.clip(centres[y] + rng.normal(0, 60, size=(n, d)), 0, 255).astype(np.uint8)
    x[:, :3] = 7  # constant features: std floored, as convert does
    with open(f"{name}-images-idx3-ubyte", "wb") as f:
        f.write(struct.pack(">IIII", 0x803, n, 6, 8) + x.tobytes())
    with open(f"{name}-labels-idx1-ubyte", "wb") as f:
        f.write(struct.pack(">II", 0x801, n) + y.astype(np.uint8).tobytes())
EOF
  "$bin" convert --from idx --dir . --normalize --out norm.h5 >convert.log 2>&1 || { cat convert.log; fail "convert"; }
  data=$PWD/norm.h5
  train 2 --hidden 16 --batchnorm before --epochs 3 --batch 50 --lr 3e-3 --checkpoint-dir C >train.log 2>&1 ||
    { cat train.log; fail "training"; }
  ck=$(newest C)
  "$py" - "$data" "$ck" <<'EOF' || fail "the checkpoint of a run on normalised data has no /preprocess mean/std (the /preprocess group is written by the checkpoint change this test waits for)"
import sys, h5py
with h5py.File(sys.argv[1], "r") as d, h5py.File(sys.argv[2], "r") as c:
    assert "mean" in d.attrs and "std" in d.attrs, "the dataset is not normalised"
    if "preprocess" not in c or "mean" not in c["preprocess"] or "std" not in c["preprocess"]:
        print(f"{sys.argv[2]}: no /preprocess/mean and /preprocess/std")
        sys.exit(1)
EOF
  acc=$(eval_acc "$ck" "$data")
  "$py" "$export_py" "$ck" --torchscript m.pt --onnx m.onnx >export.log 2>&1 || { cat export.log; fail "export.py"; }
  cat export.log
  grep -q "preprocessing scale, mean/std" export.log || fail "export did not take the preprocessing"
  check_torchscript m.pt "$data" "$acc"
  check_onnx m.onnx "$data" "$acc"
  ;;
init_checkpoint)
  # --init-from CKPT.h5: a fresh run (step 1 after one step, fresh optimiser) from exactly those weights, at 2
  # ranks (rank 0 reads, the others receive); a run with another architecture is refused naming what differs.
  train 1 --hidden 16 --batchnorm before --epochs 2 --batch 64 --lr 3e-3 --checkpoint-dir A >a.log 2>&1 ||
    { cat a.log; fail "training the source"; }
  src=$(newest A)
  copy_run 2 --hidden 16 --batchnorm before --optimizer sgd --init-from "$src" --checkpoint-dir B \
    --check-replicas 1 >b.log 2>&1 || { cat b.log; fail "--init-from $src"; }
  grep -q "initialised from $src" b.log || { cat b.log; fail "no note of the initialisation"; }
  [ "$(basename "$(newest B)")" = ckpt-000000000001.h5 ] || fail "not a fresh run: $(newest B)"
  same_model "$src" "$(newest B)" "the run's weights are not the checkpoint's"
  copy_run 1 --hidden 12 --batchnorm before --init-from "$src" >bad.log 2>&1 && fail "another architecture was accepted"
  expect_refusal bad.log "architecture" "--init-from $src: checkpoint $src holds a 32-16-4 relu, batchnorm before model; this run builds 32-12-4"
  [ "$(grep -c 'mpitrain: error' bad.log)" = 1 ] || { cat bad.log; fail "more than one error line"; }
  ;;
init_resume)
  # With --resume and a checkpoint to resume, the checkpoint wins; --init-from is ignored with a note.
  train 1 --hidden 16 --epochs 1 --batch 64 --checkpoint-dir A >a.log 2>&1 || { cat a.log; fail "source"; }
  train 1 --hidden 16 --epochs 1 --batch 64 --checkpoint-dir B --max-steps 10 >b1.log 2>&1 || { cat b1.log; fail "b1"; }
  train 1 --hidden 16 --epochs 1 --batch 64 --checkpoint-dir B --resume auto --init-from "$(newest A)" >b2.log 2>&1 ||
    { cat b2.log; fail "resume with --init-from"; }
  grep -q "resumed from B/ckpt-000000000010.h5" b2.log || { cat b2.log; fail "did not resume"; }
  grep -q "note: --init-from $(newest A) ignored: the run resumed a checkpoint (step 10)" b2.log ||
    { cat b2.log; fail "no note that --init-from was ignored"; }
  # --resume auto with nothing to resume yet: --init-from applies.
  train 1 --hidden 16 --epochs 1 --batch 64 --checkpoint-dir E --resume auto --init-from "$(newest A)" \
    --max-steps 1 --lr 1e-30 >e.log 2>&1 || { cat e.log; fail "fresh --resume auto with --init-from"; }
  grep -q "initialised from $(newest A)" e.log || { cat e.log; fail "--init-from not applied"; }
  same_model "$(newest A)" "$(newest E)" "weights differ after --resume auto (nothing to resume) --init-from"
  ;;
init_exported)
  # The state dict export.py writes reads back: the same weights as the checkpoint, batch norm before and after.
  need_torch
  for place in before after; do
    train 1 --hidden 16,8 --batchnorm $place --epochs 2 --batch 64 --lr 3e-3 --checkpoint-dir "A$place" \
      >"a$place.log" 2>&1 || { cat "a$place.log"; fail "training ($place)"; }
    src=$(newest "A$place")
    "$py" "$export_py" "$src" --torchscript "$place.pt" --state-dict "$place.pth" >/dev/null 2>&1 || fail "export"
    copy_run 2 --hidden 16,8 --batchnorm $place --init-from "$place.pth" --checkpoint-dir "B$place" \
      --check-replicas 1 >"b$place.log" 2>&1 || { cat "b$place.log"; fail "--init-from $place.pth"; }
    grep -q "initialised from $place.pth (PyTorch state dict, keys by name)" "b$place.log" ||
      { cat "b$place.log"; fail "no note"; }
    same_model "$src" "$(newest "B$place")" "weights from $place.pth differ from the checkpoint's"
  done
  # Shapes that do not fit: refused, naming the key, the tensor and both shapes.
  copy_run 1 --hidden 12,8 --batchnorm before --init-from before.pth >bad.log 2>&1 && fail "a 16-wide layer went into 12"
  expect_refusal bad.log "shape" "--init-from before.pth: key dense0.weight has shape \[16, 32\]; this model's dense0/W is \[12, 32\]"
  copy_run 1 --hidden 16 --batchnorm before --init-from before.pth >bad2.log 2>&1 && fail "fewer layers accepted"
  expect_refusal bad2.log "layers" "key bn1.weight does not belong to this model (32-16-4 relu, batchnorm before)"
  copy_run 1 --hidden 16,8 --init-from before.pth >bad3.log 2>&1 && fail "batch norm into a model without"
  expect_refusal bad3.log "no bn" "key bn0.weight does not belong to this model"
  ;;
init_sequential)
  # A model the user built in PyTorch: nn.Sequential(Linear, BatchNorm1d, ReLU, Linear, ReLU, Linear), with a
  # bias before each batch norm (mpitrain folds it into the running mean: BN removes it). After --init-from, mpitrain
  # eval's accuracy must equal PyTorch's on the same rows, and the weights must be torch's.
  need_torch
  "$py" - "$data" <<'EOF' || fail "writing seq.pth"
import sys, h5py, numpy as np, torch
torch.manual_seed(3)
nn = torch.nn
m = nn.Sequential(nn.Linear(32, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 8), nn.BatchNorm1d(8), nn.ReLU(),
                  nn.Linear(8, 4))
with h5py.File(sys.argv[1], "r") as f:
    x, y = torch.from_numpy(f["train/x"][...]), torch.from_numpy(f["train/y"][...].astype(np.int64))
    xt, yt = f["test/x"][...], f["test/y"][...]
opt = torch.optim.Adam(m.parameters(), 3e-3)
for epoch in range(2):
    for i in range(0, len(x), 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(m(x[i:i + 64]), y[i:i + 64]).backward()
        opt.step()
m.eval()
with torch.no_grad():
    acc = float((m(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean() * 100)
torch.save(m.state_dict(), "seq.pth")
open("torch_acc", "w").write(f"{acc}\n")
print(f"torch test accuracy {acc:.2f}%; keys {list(m.state_dict())}")
EOF
  copy_run 2 --hidden 16,8 --batchnorm before --init-from seq.pth --checkpoint-dir B --check-replicas 1 >b.log 2>&1 ||
    { cat b.log; fail "--init-from seq.pth"; }
  grep -q "initialised from seq.pth (PyTorch state dict, keys in layer order)" b.log || { cat b.log; fail "no note"; }
  ck=$(newest B)
  acc=$(eval_acc "$ck" "$data")
  "$py" - seq.pth "$ck" "$acc" "$(cat torch_acc)" <<'EOF' || fail "weights or accuracy differ from torch's"
import sys, h5py, numpy as np, torch
sd, ck, acc, want = torch.load(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
with h5py.File(ck, "r") as f:
    m = lambda k: f["model/" + k][...]
    pairs = [("dense0/W", sd["0.weight"]), ("bn0/gamma", sd["1.weight"]), ("bn0/beta", sd["1.bias"]),
             ("bn0/running_mean", sd["1.running_mean"] - sd["0.bias"]), ("bn0/running_var", sd["1.running_var"]),
             ("dense1/W", sd["3.weight"]), ("bn1/running_mean", sd["4.running_mean"] - sd["3.bias"]),
             ("dense2/W", sd["6.weight"]), ("dense2/b", sd["6.bias"])]
    for k, t in pairs:
        d = np.abs(m(k) - t.numpy()).max()
        assert d <= 1e-6, f"{k}: differs by {d}"
print(f"weights match; mpitrain eval {acc:.2f}%, torch {want:.4f}%")
sys.exit(0 if abs(acc - want) <= 0.01 else 1)
EOF
  # Too few layers in the model for the state dict, and a layer of the wrong width: the key is named.
  copy_run 1 --hidden 16 --batchnorm before --init-from seq.pth >bad.log 2>&1 && fail "7 layers into 3"
  expect_refusal bad.log "order" "--init-from seq.pth: key 3.weight has shape \[8, 16\]; this model's dense1/W is \[4, 16\]"
  copy_run 1 --hidden 16,8,8 --batchnorm before --init-from seq.pth >bad2.log 2>&1 && fail "a missing layer accepted"
  expect_refusal bad2.log "short" "--init-from seq.pth: key 6.weight has shape \[4, 8\]; this model's dense2/W is \[8, 8\]"
  copy_run 1 --hidden 16,8 --init-from seq.pth >bad3.log 2>&1 && fail "batch norm into a model without"
  expect_refusal bad3.log "no bn" "--init-from seq.pth: key 1.weight: a batch norm where this model (32-16-8-4 relu) has dense1"
  ;;
init_damaged)
  # Damaged and hostile .pth files are refused with a one-line reason and never crash: every truncation of a real
  # file (all lengths up to the central directory, sampled beyond), flipped bytes, a pickle that would run code,
  # the legacy (non-zip) format, tensors of another dtype or layout.
  need_torch
  "$py" - <<'EOF' || fail "writing the test files"
import io, pickle, struct, zipfile, torch
nn = torch.nn
torch.manual_seed(1)
m = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 4))
torch.save(m.state_dict(), "good.pth")
torch.save(m.state_dict(), "legacy.pth", _use_new_zipfile_serialization=False)
torch.save({k: v.double() for k, v in m.state_dict().items()}, "double.pth")
torch.save({k: (v.t() if v.dim() == 2 else v) for k, v in m.state_dict().items()}, "strided.pth")
torch.save(tuple(m.state_dict().values()), "tuple.pth")
def archive(name, pkl):
    with zipfile.ZipFile(name, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/version", "3\n")
archive("evil.pth", b"\x80\x02cos\nsystem\nq\x00X\x0b\x00\x00\x00touch PWNEDq\x01\x85q\x02Rq\x03.")
archive("evil_build.pth", b"\x80\x02ccollections\nOrderedDict\n)R}X\x04\x00\x00\x00testcos\nsystem\nsb.")
archive("deep.pth", b"\x80\x02" + b"(" * 100000 + b".")
archive("huge_string.pth", b"\x80\x02X\xff\xff\xff\x7fabc.")
archive("memo.pth", b"\x80\x02j\xff\xff\xff\x7f.")
with zipfile.ZipFile("deflated.pth", "w", zipfile.ZIP_DEFLATED) as z:
    with zipfile.ZipFile("good.pth") as g:
        for i in g.infolist():
            z.writestr(i.filename, g.read(i.filename))
EOF
  [ -f good.pth ] || fail "no good.pth"
  ok() { copy_run 1 --hidden 16 --init-from "$1" >run.log 2>&1; }
  ok good.pth || { cat run.log; fail "good.pth refused"; }
  refuse() { # FILE regex
    copy_run 1 --hidden 16 --init-from "$1" >run.log 2>&1 && { cat run.log; fail "$1 was accepted"; }
    expect_refusal run.log "$1" "$2"
    echo "$1: $(grep 'mpitrain: error' run.log)"
  }
  refuse legacy.pth "legacy .*torch.save"
  refuse evil.pth "refusing pickle global os.system"
  refuse evil_build.pth "refusing pickle global os.system"
  [ ! -e PWNED ] || fail "the pickle ran code"
  refuse deep.pth "nested deeper than"
  refuse huge_string.pth "string of 2147483647 bytes runs past the end"
  refuse memo.pth "memo"
  refuse double.pth "key 0.weight is float64; mpitrain reads float32 tensors"
  refuse strided.pth "key 0.weight is not contiguous"
  refuse tuple.pth "not a state dict: the pickle holds a tuple"
  refuse deflated.pth "compressed"
  # Every truncation of the file and of its pickle (rewrapped into a valid archive), every byte of the pickle
  # flipped, a third of the archive's bytes flipped — through torch_read (one process for thousands of files);
  # a sample of them through `train --init-from`.
  "$py" - <<'EOF' || fail "writing the damaged files"
import os, zipfile
os.makedirs("t", exist_ok=True)
raw = open("good.pth", "rb").read()
for n in range(len(raw)):
    open(f"t/file-{n:05d}.pth", "wb").write(raw[:n])
with zipfile.ZipFile("good.pth") as z:
    entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
pkl = next(d for n, d in entries if n.endswith("/data.pkl"))
def rewrap(name, new_pkl):
    with zipfile.ZipFile(name, "w", zipfile.ZIP_STORED) as z:
        for n, d in entries:
            z.writestr(n, new_pkl if n.endswith("/data.pkl") else d)
for n in range(len(pkl)):
    rewrap(f"t/pickle-{n:05d}.pth", pkl[:n])
    rewrap(f"t/flip-{n:05d}.pth", pkl[:n] + bytes([pkl[n] ^ 0xa5]) + pkl[n + 1:])
for off in range(0, len(raw), 3):  # a byte of the archive flipped: the CRC-32s or the structure catch it
    open(f"t/byte-{off:05d}.pth", "wb").write(raw[:off] + bytes([raw[off] ^ 0xa5]) + raw[off + 1:])
EOF
  "$torch_read" good.pth >good.txt || fail "torch_read good.pth"
  good=$(sed 's/^good.pth: //' good.txt)
  total=$(ls t | wc -l)
  "$torch_read" t/*.pth >all.txt 2>&1 || { tail -n 3 all.txt; fail "torch_read crashed or gave no message"; }
  [ "$(wc -l <all.txt)" -eq "$total" ] || { tail -n 3 all.txt; fail "torch_read did not report every file"; }
  # A truncated file or pickle is refused with a message; a file with a byte flipped is refused, or (where the
  # byte is one no check covers: the zip's padding, times, attributes) reads back exactly the good tensors. A
  # flipped byte of the pickle itself may make another valid pickle (another key, a smaller shape): refused or
  # read, never a crash (torch_read would exit non-zero). mpitrain's own mapping then checks keys and shapes.
  bad=$(grep -a -v ': error: ' all.txt | grep -a -v '^t/flip-' | sed 's/^[^:]*: //' | grep -a -vxF "$good" | head -n 3)
  [ -z "$bad" ] || { echo "$bad"; fail "a damaged file read back as something else"; }
  [ -z "$(grep -a ': ok: ' all.txt | grep -a -E '^t/(file|pickle)-')" ] || fail "a truncated file was read"
  echo "$(grep -a -c ': error: ' all.txt) of $total damaged files refused, the others read back valid tensors"
  grep -a -q "^t/file-00100.pth: error: t/file-00100.pth: no end of the zip central directory" all.txt ||
    fail "truncation not reported as such"
  for f in t/file-00000.pth t/file-00031.pth t/pickle-00001.pth t/pickle-00120.pth t/flip-00002.pth \
           t/byte-00030.pth; do
    copy_run 1 --hidden 16 --init-from "$f" >run.log 2>&1 && { cat run.log; fail "$f was accepted"; }
    expect_refusal run.log "$f" "--init-from $f: "
  done
  ;;
*)
  fail "unknown scenario $scenario"
  ;;
esac
echo "PASS: $scenario"
