#!/usr/bin/python3
"""export.py — turn an mpitrain checkpoint into PyTorch: TorchScript, ONNX and a plain state dict.

  /usr/bin/python3 launch/export.py CKPT.h5 --torchscript OUT.pt [--onnx OUT.onnx] [--state-dict OUT.pth]

The module rebuilt from the checkpoint (README "PyTorch interop") takes RAW features, float32 [N, D] — the values
as stored in the dataset (a uint8 dataset's bytes 0..255 as floats) — applies the training data's preprocessing
(x * scale, then (x - mean) / std, from the checkpoint's /preprocess group) and returns LOGITS [N, C]: softmax
them for probabilities. Layers, in mpitrain's order (include/mpitrain/model.h): per hidden block k dense<k>
(nn.Linear), then bn<k> (nn.BatchNorm1d, evaluated with its running statistics) before or after the activation
act<k>; dropout is the identity at inference and left out; the last dense layer gives the logits. A dense layer
directly followed by batch norm has no bias (BN's beta is its bias), as in the checkpoint.

The state dict (--state-dict) holds the module's tensors under its own names — pre.scale [], pre.mean [D],
pre.std [D] (the preprocessing; mean 0 and std 1 when the data was not normalised), dense<k>.weight [out, in],
dense<k>.bias [out], bn<k>.weight (gamma), bn<k>.bias (beta), bn<k>.running_mean, bn<k>.running_var,
bn<k>.num_batches_tracked — so `load_state_dict` of the module (torch.jit.load'ed, too) works, and `mpitrain train
--init-from FILE.pth` reads it back (ignoring pre.*: mpitrain preprocesses with the dataset's own values).

Needs Debian's python3-torch, python3-h5py (and python3-onnx for --onnx): run it with /usr/bin/python3.
"""
import argparse
import json
import sys
import warnings

PROG = "export"


def fail(msg):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(1)


def warn(msg):
    print(f"{PROG}: warning: {msg}", file=sys.stderr)


def need(module, package):
    try:
        return __import__(module)
    except ImportError:
        hint = "" if sys.executable == "/usr/bin/python3" else f" (this is {sys.executable}; run /usr/bin/python3)"
        fail(f"{module} is not installed for this Python{hint}: apt-get install {package}")


def text(v):
    return v.decode() if isinstance(v, bytes) else str(v)


def read_checkpoint(path):
    """The architecture (root attributes), every tensor under /model, and the preprocessing (None if absent)."""
    h5py = need("h5py", "python3-h5py")
    np = need("numpy", "python3-numpy")
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        fail(f"cannot open checkpoint '{path}': {e}")
    with f:
        a = f.attrs
        if text(a.get("format", "")) != "mpitrain-checkpoint":
            fail(f"{path} is not an mpitrain checkpoint (format attribute '{text(a.get('format', '(none)'))}')")
        try:
            hidden = a["hidden"]
            spec = {
                "n_inputs": int(a["n_inputs"]),
                "n_classes": int(a["n_classes"]),
                # No hidden layer is an empty list, stored as a null dataspace (h5py.Empty).
                "hidden": [] if isinstance(hidden, h5py.Empty) else [int(h) for h in np.atleast_1d(hidden)],
                "activation": text(a["activation"]),
                "leaky_slope": float(a["leaky_slope"]),
                "batchnorm": text(a["batchnorm"]),
                "bn_eps": float(a["bn_eps"]),
            }
        except KeyError as e:
            fail(f"{path}: attribute {e} is missing (damaged, or written by another program?)")
        if spec["activation"] not in ("relu", "leaky_relu", "tanh", "sigmoid"):
            fail(f"{path}: unknown activation '{spec['activation']}'")
        if spec["batchnorm"] not in ("none", "before", "after"):
            fail(f"{path}: unknown batchnorm placement '{spec['batchnorm']}'")
        if "model" not in f:
            fail(f"{path}: group /model is missing")
        tensors = {}
        f["model"].visititems(lambda name, obj: tensors.__setitem__(name, obj[...].astype(np.float32))
                              if isinstance(obj, h5py.Dataset) else None)
        pre = None
        if "preprocess" in f:
            g = f["preprocess"]
            if "scale" not in g.attrs:
                fail(f"{path}: /preprocess has no attribute scale")
            pre = {"scale": float(np.float32(g.attrs["scale"]))}
            if ("mean" in g) != ("std" in g):
                fail(f"{path}: /preprocess has {'mean' if 'mean' in g else 'std'} without "
                     f"{'std' if 'mean' in g else 'mean'}")
            if "mean" in g:
                pre["mean"] = g["mean"][...].astype(np.float32)
                pre["std"] = g["std"][...].astype(np.float32)
                for k in ("mean", "std"):
                    if pre[k].shape != (spec["n_inputs"],):
                        fail(f"{path}: /preprocess/{k} has shape {list(pre[k].shape)}; expected "
                             f"[{spec['n_inputs']}]")
        names = [text(n) for n in a["class_names"]] if "class_names" in a else []
        if names and len(names) != spec["n_classes"]:
            fail(f"{path}: {len(names)} class_names for {spec['n_classes']} classes")
    return spec, tensors, pre, names


def build_module(torch, spec, tensors, pre, class_names, path):
    """nn.Sequential over named children pre, dense0, [bn0], act0, [bn0], dense1, ...: the names are the
    state-dict prefixes, and a Sequential scripts as it is."""
    nn = torch.nn
    from collections import OrderedDict
    from typing import List

    class Preprocess(nn.Module):
        """x * scale, then (x - mean) / std: mpitrain's row conversion (src/storage/data.c), in float32. Buffers, so they
        move with .to(device); in the state dict as pre.scale, pre.mean, pre.std (--init-from ignores them: mpitrain
        preprocesses with the dataset's own values)."""
        normalize: bool
        class_names: List[str]

        def __init__(self, d, pre, class_names):
            super().__init__()
            scale = 1.0 if pre is None else pre["scale"]
            self.register_buffer("scale", torch.tensor(scale, dtype=torch.float32))
            self.normalize = pre is not None and "mean" in pre
            mean = torch.from_numpy(pre["mean"]) if self.normalize else torch.zeros(d)
            std = torch.from_numpy(pre["std"]) if self.normalize else torch.ones(d)
            self.register_buffer("mean", mean)
            self.register_buffer("std", std)
            self.class_names = list(class_names)

        def forward(self, x):
            x = x * self.scale
            if self.normalize:
                x = (x - self.mean) / self.std
            return x

    def take(name, shape):
        if name not in tensors:
            fail(f"{path}: dataset /model/{name} is missing")
        t = tensors[name]
        if list(t.shape) != list(shape):
            fail(f"{path}: /model/{name} has shape {list(t.shape)}; expected {list(shape)}")
        return torch.from_numpy(t.copy())

    layers = OrderedDict(pre=Preprocess(spec["n_inputs"], pre, class_names))
    width, hidden, bn = spec["n_inputs"], spec["hidden"], spec["batchnorm"]
    for k in range(len(hidden) + 1):
        out = hidden[k] if k < len(hidden) else spec["n_classes"]
        has_bias = not (k < len(hidden) and bn == "before")
        dense = nn.Linear(width, out, bias=has_bias)
        with torch.no_grad():
            dense.weight.copy_(take(f"dense{k}/W", [out, width]))
            if has_bias:
                dense.bias.copy_(take(f"dense{k}/b", [out]))
        layers[f"dense{k}"] = dense
        width = out
        if k == len(hidden):
            break

        def batchnorm():
            b = nn.BatchNorm1d(out, eps=spec["bn_eps"])
            with torch.no_grad():
                b.weight.copy_(take(f"bn{k}/gamma", [out]))
                b.bias.copy_(take(f"bn{k}/beta", [out]))
                b.running_mean.copy_(take(f"bn{k}/running_mean", [out]))
                b.running_var.copy_(take(f"bn{k}/running_var", [out]))
            return b

        if bn == "before":
            layers[f"bn{k}"] = batchnorm()
        act = spec["activation"]
        layers[f"act{k}"] = (nn.ReLU() if act == "relu" else nn.LeakyReLU(spec["leaky_slope"])
                             if act == "leaky_relu" else nn.Tanh() if act == "tanh" else nn.Sigmoid())
        if bn == "after":
            layers[f"bn{k}"] = batchnorm()
    model = nn.Sequential(layers)
    model.eval()
    return model


def main(argv=None):
    p = argparse.ArgumentParser(prog="export.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("checkpoint", metavar="CKPT.h5", help="an mpitrain checkpoint (ckpt-<step>.h5 or best.h5)")
    p.add_argument("--torchscript", metavar="OUT.pt", required=True,
                   help="TorchScript module: torch.jit.load(OUT.pt) needs nothing of mpitrain")
    p.add_argument("--onnx", metavar="OUT.onnx", help="also an ONNX model (input 'features' [N, D], output "
                                                          "'logits' [N, C], N dynamic)")
    p.add_argument("--state-dict", metavar="OUT.pth", help="also the state dict, torch.save format")
    p.add_argument("--opset", type=int, default=13, help="ONNX opset (default: 13)")
    a = p.parse_args(argv)
    torch = need("torch", "python3-torch")
    spec, tensors, pre, class_names = read_checkpoint(a.checkpoint)
    if pre is None:
        warn(f"{a.checkpoint} has no /preprocess group (written by an older mpitrain): the module applies no "
             "preprocessing and expects features already scaled (and normalised) the way training saw them")
    model = build_module(torch, spec, tensors, pre, class_names, a.checkpoint)
    scripted = torch.jit.script(model)
    scripted.save(a.torchscript)
    arch = "-".join(str(v) for v in [spec["n_inputs"]] + spec["hidden"] + [spec["n_classes"]])
    print(f"{PROG}: {a.torchscript}: TorchScript, {arch} {spec['activation']}, batchnorm {spec['batchnorm']}, "
          f"preprocessing {'none' if pre is None else 'scale' + (', mean/std' if 'mean' in pre else '')}")
    if a.state_dict:
        torch.save(model.state_dict(), a.state_dict)
        print(f"{PROG}: {a.state_dict}: state dict, keys {', '.join(model.state_dict().keys())}")
    if a.onnx:
        onnx = need("onnx", "python3-onnx")
        example = torch.zeros(2, spec["n_inputs"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch 1.13 warns about the batch-norm training flag, not our case
            torch.onnx.export(model, example, a.onnx, input_names=["features"], output_names=["logits"],
                              dynamic_axes={"features": {0: "N"}, "logits": {0: "N"}}, opset_version=a.opset)
        m = onnx.load(a.onnx)
        meta = {"producer": "mpitrain export.py", "model": arch, "output": "logits (softmax for probabilities)",
                "input": "raw features as stored in the dataset, float32"}
        if class_names:
            meta["class_names"] = json.dumps(class_names)
        for k, v in meta.items():
            e = m.metadata_props.add()
            e.key, e.value = k, v
        onnx.checker.check_model(m)
        onnx.save(m, a.onnx)
        print(f"{PROG}: {a.onnx}: ONNX opset {a.opset}, passes onnx.checker")
    return 0


if __name__ == "__main__":
    sys.exit(main())
