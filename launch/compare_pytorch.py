#!/usr/bin/python3
"""compare_pytorch.py — train mpitrain's MLP with PyTorch for a fixed number of steps and print samples/s.

The same work as `mpitrain bench`: the model 784-512-256-10 (ReLU, He-initialised weights, zero biases), softmax
cross-entropy, Adam (lr 1e-3, betas 0.9/0.999, eps 1e-8) or plain SGD, on in-memory synthetic data shaped like
mpitrain's (float32 [N, 784], Gaussian clusters, 10 classes) or on a dataset file mpitrain wrote (--data, h5py).
Untimed warm-up steps first; then --steps timed steps between two barriers (time.perf_counter), each a forward,
backward and optimiser step on a slice of pre-generated tensors (no data loading, no copies, no .item()).

  --mode single   one process, torch.set_num_threads(--threads) and OpenBLAS limited to as many threads
  --mode ddp      DistributedDataParallel, gloo backend, --np local processes (torch.multiprocessing spawn), one
                  thread each; --scaling strong splits the global --batch over the processes exactly as mpitrain
                  does (rank r takes B/N rows, the first B mod N ranks one more), weak gives each process --batch

Run it with Debian's interpreter, /usr/bin/python3, which is the one python3-torch (PyTorch 1.13) belongs to.
PyTorch's float32 matrix products go to the system BLAS, which on Debian is OpenBLAS; --openblas-coretype sets
OPENBLAS_CORETYPE before torch is loaded, so PyTorch can use the same OpenBLAS kernels as mpitrain (which picks
them itself, see README). The output names the kernels and thread counts actually in use.
"""
import argparse
import json
import os
import socket
import sys
import time

PROG = "compare_pytorch"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="compare_pytorch.py", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mode", choices=["single", "ddp"], default="single",
                   help="one process, or DistributedDataParallel over --np processes (default: single)")
    p.add_argument("--np", type=int, default=2, help="processes for --mode ddp (default: 2)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch and OpenBLAS threads per process (default: 1, like `mpitrain bench --threads 1`)")
    p.add_argument("--scaling", choices=["strong", "weak"], default="strong",
                   help="ddp: strong = --batch is the global batch split over the processes (as mpitrain's "
                        "--batch); weak = --batch rows per process (default: strong)")
    p.add_argument("--batch", type=int, default=128, help="batch size (see --scaling) (default: 128)")
    p.add_argument("--optimizer", choices=["adam", "sgd"], default="adam", help="(default: adam)")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate (default: 1e-3)")
    p.add_argument("--foreach", action="store_true",
                   help="use the optimiser's multi-tensor (foreach) implementation (PyTorch 1.13's default on "
                        "CPU is the per-tensor loop)")
    p.add_argument("--autocast", choices=["none", "bf16"], default="none",
                   help="bf16: forward and loss under torch.autocast(\"cpu\", dtype=torch.bfloat16), PyTorch's mixed "
                        "precision (its matmuls in bf16 through oneDNN, fp32 weights and optimiser), as against "
                        "`mpitrain bench --precision bf16` (default: none)")
    p.add_argument("--hidden", default="512,256", help="hidden widths (default: 512,256)")
    p.add_argument("--samples", type=int, default=16384, help="synthetic training rows (default: 16384)")
    p.add_argument("--features", type=int, default=784, help="synthetic features (default: 784)")
    p.add_argument("--classes", type=int, default=10, help="synthetic classes (default: 10)")
    p.add_argument("--data", help="train on /train of an mpitrain dataset file instead (needs h5py)")
    p.add_argument("--steps", type=int, default=200, help="timed steps (default: 200, as mpitrain bench)")
    p.add_argument("--warmup", type=int, default=20, help="untimed steps first (default: 20, as mpitrain bench)")
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--openblas-coretype", metavar="NAME",
                   help="set OPENBLAS_CORETYPE=NAME before loading torch (e.g. SkylakeX, the kernels mpitrain "
                        "selects on AVX-512 CPUs that OpenBLAS 0.3.21 does not recognise)")
    p.add_argument("--no-bind", dest="bind", action="store_false",
                   help="do not pin process r to core r (mpirun binds its ranks to cores when np <= 2; so does "
                        "this script by default)")
    p.add_argument("--no-flush-denormal", dest="flush_denormal", action="store_false",
                   help="keep subnormal floats (mpitrain flushes them to zero; so does this script by default)")
    p.add_argument("--print-blas-core", action="store_true",
                   help="only print the OpenBLAS kernels PyTorch's process gets, and exit")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    a = p.parse_args(argv)
    for name in ("np", "threads", "batch", "samples", "features", "classes", "steps"):
        if getattr(a, name) < 1:
            p.error(f"--{name}: expected an integer >= 1, got {getattr(a, name)}")
    if a.warmup < 0:
        p.error(f"--warmup: expected an integer >= 0, got {a.warmup}")
    if a.mode == "single":
        a.np = 1
    if not a.data and a.batch * (a.np if a.scaling == "weak" else 1) > a.samples:
        p.error(f"--batch: the global batch exceeds the {a.samples} rows of --samples")
    try:
        a.hidden_list = [int(h) for h in a.hidden.split(",") if h.strip()] if a.hidden not in ("", "none") else []
    except ValueError:
        p.error(f"--hidden: expected a comma-separated list of widths, got '{a.hidden}'")
    return a


def fail(msg, code=1):
    print(f"{PROG}: error: {msg}", file=sys.stderr)
    sys.exit(code)


def set_thread_env(args):
    """Before torch (and with it OpenBLAS and libgomp) is loaded: threads and kernels, inherited by spawned ranks."""
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if args.openblas_coretype:
        os.environ["OPENBLAS_CORETYPE"] = args.openblas_coretype


def import_torch():
    try:
        import torch  # noqa: F401
    except ImportError:
        hint = "" if sys.executable == "/usr/bin/python3" else f" (this is {sys.executable}; run /usr/bin/python3)"
        fail(f"PyTorch is not installed for this Python{hint}: install the Debian package python3-torch "
             "(apt-get install python3-torch)")
    return torch


def openblas():
    """OpenBLAS as loaded by torch (Debian's libtorch links libopenblas.so.0 and libblas.so.3 -> OpenBLAS)."""
    import ctypes
    try:
        lib = ctypes.CDLL("libopenblas.so.0")
    except OSError:
        return None
    lib.openblas_get_corename.restype = ctypes.c_char_p
    lib.openblas_get_config.restype = ctypes.c_char_p
    return lib


def blas_state(torch):
    lib = openblas()
    if lib is None:
        return {"blas_core": "unknown", "blas_threads": -1, "torch_threads": torch.get_num_threads()}
    return {"blas_core": lib.openblas_get_corename().decode(), "blas_threads": lib.openblas_get_num_threads(),
            "torch_threads": torch.get_num_threads()}


def setup_process(torch, args, rank):
    torch.set_num_threads(args.threads)
    lib = openblas()
    if lib is not None:  # torch.set_num_threads does not reach OpenBLAS's own thread pool
        lib.openblas_set_num_threads(args.threads)
    if args.bind and hasattr(os, "sched_setaffinity"):
        cpus = sorted(os.sched_getaffinity(0))
        if args.threads == 1 and args.np <= len(cpus):
            os.sched_setaffinity(0, {cpus[rank % len(cpus)]})


def make_data(torch, args):
    """Training rows as float32 [N, D] and int64 [N] labels, in memory before anything is timed."""
    if args.data:
        try:
            import h5py
            import numpy as np
        except ImportError:
            fail("--data needs h5py (Debian package python3-h5py); without --data the data are synthetic")
        try:
            with h5py.File(args.data, "r") as f:
                x = f["train/x"][...].astype(np.float32) * np.float32(f.attrs.get("scale", 1.0))
                if "mean" in f.attrs and "std" in f.attrs:
                    x = (x - f.attrs["mean"].astype(np.float32)) / f.attrs["std"].astype(np.float32)
                y = f["train/y"][...].astype(np.int64)
                classes = int(f.attrs["num_classes"])
        except (OSError, KeyError) as e:
            fail(f"{args.data}: not a readable mpitrain dataset ({e})")
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y), classes
    g = torch.Generator().manual_seed(args.seed)
    centres = torch.randn(args.classes, args.features, generator=g)
    y = torch.randint(0, args.classes, (args.samples,), generator=g)
    x = centres[y] + torch.randn(args.samples, args.features, generator=g)  # noise 1, as mpitrain's synthetic data
    return x.contiguous(), y, args.classes


def build_model(torch, args, n_in, n_out):
    nn = torch.nn
    layers, width = [], n_in
    for h in args.hidden_list:
        layers += [nn.Linear(width, h), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, n_out))
    model = nn.Sequential(*layers)
    with torch.no_grad():  # mpitrain's default for ReLU: He (normal, std sqrt(2/fan_in)) weights, zero biases
        for m in model:
            if isinstance(m, nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
    return model


def rank_slice(batch, rank, size):
    """mpitrain's split of a global batch: the first batch mod size ranks take one row more."""
    q, r = divmod(batch, size)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (1 if rank < r else 0)


def run(rank, args, port=None):
    """One process (rank 0 of 1 in single mode). Returns the result dictionary on rank 0."""
    torch = import_torch()
    import torch.nn.functional as F
    setup_process(torch, args, rank)
    ddp = args.mode == "ddp"
    if ddp:
        import torch.distributed as dist
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(port)
        dist.init_process_group("gloo", rank=rank, world_size=args.np)
    torch.manual_seed(args.seed)
    x, y, classes = make_data(torch, args)
    if args.flush_denormal:  # after numpy (h5py) is set up: it warns when it meets flushed denormals
        torch.set_flush_denormal(True)
    n, d = x.shape
    global_batch = args.batch * args.np if args.scaling == "weak" and ddp else args.batch
    if global_batch > n:
        fail(f"--batch: the global batch {global_batch} exceeds the {n} training rows")
    lo, hi = rank_slice(global_batch, rank, args.np) if ddp else (0, global_batch)
    if hi <= lo:
        fail(f"--batch {global_batch} gives rank {rank} no rows at {args.np} processes")
    model = build_model(torch, args, d, classes)
    if ddp:
        model = torch.nn.parallel.DistributedDataParallel(model)  # broadcasts rank 0's parameters
    params = model.parameters()
    extra = {"foreach": True} if args.foreach else {}
    if args.optimizer == "adam":
        opt = torch.optim.Adam(params, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, **extra)
    else:
        opt = torch.optim.SGD(params, lr=args.lr, **extra)
    # Each step takes the next whole global batch of the pre-generated rows (a view, no copy), wrapping around.
    n_batches = n // global_batch
    xs = [x[k * global_batch + lo:k * global_batch + hi] for k in range(n_batches)]
    ys = [y[k * global_batch + lo:k * global_batch + hi] for k in range(n_batches)]

    import contextlib
    # Autocast wraps the forward and the loss only, as PyTorch's documentation says (backward runs in the dtypes
    # the forward chose).
    mixed = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if args.autocast == "bf16" else contextlib.nullcontext

    def steps(first, count):
        loss = None
        for i in range(first, first + count):
            k = i % n_batches
            opt.zero_grad(set_to_none=True)
            # The mean over this rank's rows; DDP averages the ranks' gradients: the global batch's mean gradient
            # when B divides evenly (as in every run of compare_pytorch.sh), and the same work when it does not.
            with mixed():
                loss = F.cross_entropy(model(xs[k]), ys[k])
            loss.backward()  # DDP: the gradient allreduce (gloo) overlaps backward
            opt.step()
        return loss

    steps(0, args.warmup)
    if ddp:
        dist.barrier()
    t0 = time.perf_counter()
    loss = steps(args.warmup, args.steps)
    if ddp:
        dist.barrier()
    elapsed = time.perf_counter() - t0
    result = None
    if ddp:
        t = torch.tensor([elapsed, loss.item()], dtype=torch.float64)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        elapsed = t[0].item()
        loss_value = t[1].item()
    else:
        loss_value = loss.item()
    if rank == 0:
        arch = "-".join(str(v) for v in [d] + args.hidden_list + [classes])
        result = {"framework": "pytorch", "torch_version": torch.__version__, "mode": args.mode,
                  "backend": "gloo" if ddp else None, "processes": args.np, "threads": args.threads,
                  "model": arch, "optimizer": args.optimizer, "foreach": args.foreach, "autocast": args.autocast,
                  "scaling": args.scaling if ddp else None, "batch": global_batch, "rows_per_rank": hi - lo,
                  "steps": args.steps, "warmup": args.warmup, "step_ms": elapsed / args.steps * 1e3,
                  "samples_per_s": global_batch * args.steps / elapsed, "last_loss": loss_value,
                  "data": args.data or f"synthetic {n}x{d}"}
        result.update(blas_state(torch))
        report(args, result)
    if ddp:
        # Leave without tearing DDP down: PyTorch 1.13's gloo process group can deadlock in its destructor (the
        # Reducer's destructor joins a gloo thread that waits for the GIL the destructor holds).
        dist.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    return result


def report(args, r):
    if args.json:
        print(json.dumps(r), flush=True)
        return
    where = (f"DDP gloo, {r['processes']} processes x {r['threads']} thread" if r["mode"] == "ddp"
             else f"1 process x {r['threads']} thread")
    mixed = ", bf16 autocast" if r["autocast"] == "bf16" else ""
    print(f"pytorch {r['torch_version']}: model {r['model']}, {r['optimizer']}{mixed}, {where}; OpenBLAS {r['blas_core']} "
          f"x {r['blas_threads']} thread(s), torch threads {r['torch_threads']}", flush=True)
    print(f"global batch {r['batch']} ({r['rows_per_rank']} rows on rank 0), {r['steps']} timed steps after "
          f"{r['warmup']} warm-up: {r['step_ms']:.3f} ms/step, {r['samples_per_s']:.0f} samples/s "
          f"(last loss {r['last_loss']:.4f})", flush=True)


def ddp_worker(rank, args, port):
    run(rank, args, port)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main():
    args = parse_args()
    set_thread_env(args)
    torch = import_torch()
    if args.print_blas_core:
        print(blas_state(torch)["blas_core"])
        return 0
    if args.mode == "single":
        run(0, args)
        return 0
    import torch.multiprocessing as mp
    try:
        mp.spawn(ddp_worker, args=(args, free_port()), nprocs=args.np, join=True)
    except mp.ProcessExitedException as e:
        fail(f"a DDP process failed ({e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
