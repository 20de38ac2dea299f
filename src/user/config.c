/* config.c — the options of `mpitrain train` (bench trains with the same ones): the table that the parser,
 * --help and the INI dump all read, plus the cross-option checks a per-option range cannot express. */
#include "mpitrain/config.h"

#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "mpitrain/comm.h"
#include "mpitrain/fileid.h"
#include "mpitrain/init.h"
#include "mpitrain/log.h"
#include "mpitrain/model.h"
#include "mpitrain/optim.h"

/* The choices of the enum options are the names their modules keep (in enum order, NULL-terminated). */
const char *const mt_nonfinite_names[NONFINITE_COUNT + 1] = {"stop", "skip", NULL};

_Static_assert(OPTS_LIST_MAX <= MODEL_MAX_HIDDEN, "--hidden accepts more layers than a model can hold");

#define NOMAX HUGE_VAL
#define RANGED OPT_RANGED
#define GT0 (OPT_RANGED | OPT_MIN_EXCLUSIVE)
#define UNIT_HALF_OPEN (OPT_RANGED | OPT_MAX_EXCLUSIVE)

/* OPT_MODEL / OPT_TRAJECTORY (opts.h) say what a resume with a changed value means. Not flagged although they matter:
 * --seed (a resumed run keeps the checkpoint's seed, which fixes the data order, and says so), --data (its shape is
 * checked against the checkpoint, its row count warned about; its path may move, e.g. to node-local scratch). */
/* clang-format off */
const OptionSpec mt_config_train_options[] = {
  {.section = "data", .name = "data", OPTS_STRING_FIELD(Config, data),
   .def = "datasets/fashion-mnist.h5", .metavar = "FILE",
   .help = "dataset (HDF5 from `mpitrain convert` or `mpitrain synth`; one file, one shard or a sharded set's "
           "base name)"},
  {.name = "in-memory", .type = OT_ENUM, .offset = offsetof(Config, in_memory), .def = "auto",
   .choices = mt_memory_names,
   .help = "hold the training split in memory (yes), or read each batch's rows from the file (no); auto = yes "
           "when the split fits in --memory-limit-mb"},
  {.name = "memory-limit-mb", .type = OT_INT64, .offset = offsetof(Config, memory_limit_mb), .def = "2048",
   .metavar = "MB", .min = 1, .max = NOMAX, .flags = RANGED,
   .help = "largest split --in-memory auto loads into memory, in MiB"},

  {.section = "model", .name = "hidden", .type = OT_INT_LIST, .offset = offsetof(Config, hidden),
   .def = "512,256", .metavar = "LIST", .min = 1, .max = 1048576, .flags = RANGED | OPT_MODEL, .word = "none",
   .help = "widths of the hidden layers, input side first; none (or \"\") = no hidden layer, i.e. softmax "
           "regression"},
  {.name = "activation", .flags = OPT_MODEL, .type = OT_ENUM, .offset = offsetof(Config, activation), .def = "relu",
   .choices = mt_act_names, .help = "activation after every hidden layer"},
  {.name = "leaky-slope", .type = OT_FLOAT, .offset = offsetof(Config, leaky_slope), .def = "0.01",
   .metavar = "X", .min = 0, .max = 1, .flags = RANGED | OPT_MIN_EXCLUSIVE | OPT_MAX_EXCLUSIVE | OPT_MODEL,
   .help = "slope of leaky_relu for negative inputs, in (0, 1)"},
  {.name = "init", .type = OT_ENUM, .offset = offsetof(Config, init), .def = "auto", .choices = mt_init_names,
   .help = "weight initialisation: auto = he for (leaky_)relu, xavier for tanh and sigmoid; small = N(0,1)*0.01; "
           "zero = all zero (shows why symmetry must be broken); biases start at zero"},
  {.name = "init-from", OPTS_STRING_FIELD(Config, init_from), .def = "", .metavar = "FILE",
   .help = "start from the weights in FILE instead of --init: an mpitrain checkpoint (its parameters and batch-norm "
           "statistics) or a PyTorch state dict saved with torch.save (launch/export.py's key names, or an "
           "nn.Sequential of Linear [+ BatchNorm1d] layers, matched in order); shapes must fit the model. A fresh "
           "run: step 0, a new optimiser state. With --resume, a checkpoint to resume wins (--init-from is ignored, "
           "with a note)"},

  {.name = "batchnorm", .flags = OPT_MODEL, .type = OT_ENUM, .offset = offsetof(Config, batchnorm), .def = "none",
   .choices = mt_bn_place_names,
   .help = "batch normalisation in every hidden block: before or after the activation; statistics are those of "
           "the global batch, summed over all ranks (synchronised BN), so any rank count trains the same model"},
  {.name = "bn-momentum", .type = OT_FLOAT, .offset = offsetof(Config, bn_momentum), .def = "0.1", .metavar = "X",
   .min = 0, .max = 1, .flags = GT0 | OPT_TRAJECTORY,
   .help = "weight of each batch in the running statistics used at evaluation, in (0, 1]"},
  {.name = "bn-eps", .type = OT_FLOAT, .offset = offsetof(Config, bn_eps), .def = "1e-5", .metavar = "X", .min = 0,
   .max = NOMAX, .flags = GT0 | OPT_TRAJECTORY, .help = "added to the batch variance"},
  {.name = "dropout", .type = OT_FLOAT, .offset = offsetof(Config, dropout), .def = "0", .metavar = "P", .min = 0,
   .max = 1, .flags = UNIT_HALF_OPEN | OPT_TRAJECTORY,
   .help = "inverted dropout after every hidden block: each unit is zeroed with probability P during training and "
           "the others scaled by 1/(1-P); the mask of a sample depends only on (seed, step, sample), not on the rank"},

  {.section = "optimisation", .name = "optimizer", .flags = OPT_MODEL, .type = OT_ENUM,
   .offset = offsetof(Config, optimizer),
   .def = "adam", .choices = mt_optim_names,
   .help = "sgd: w -= lr*g; momentum: v = beta1*v + (1-beta1)*g, w -= lr*v; rmsprop: s = beta2*s + "
           "(1-beta2)*g^2, w -= lr*g/(sqrt(s)+eps); adam: both moments, bias-corrected"},
  {.name = "lr", .type = OT_FLOAT, .offset = offsetof(Config, lr), .def = "5e-4", .metavar = "X", .min = 0,
   .max = NOMAX, .flags = GT0 | OPT_TRAJECTORY, .help = "learning rate"},
  {.name = "beta1", .type = OT_FLOAT, .offset = offsetof(Config, beta1), .def = "0.9", .metavar = "X", .min = 0,
   .max = 1, .flags = UNIT_HALF_OPEN | OPT_TRAJECTORY, .help = "decay of the first moment (momentum, adam), in [0, 1)"},
  {.name = "beta2", .type = OT_FLOAT, .offset = offsetof(Config, beta2), .def = "auto", .metavar = "X",
   .min = 0, .max = 1, .flags = UNIT_HALF_OPEN | OPT_TRAJECTORY, .word = "auto", .word_value = -1,
   .help = "decay of the second moment (rmsprop, adam), in [0, 1); auto = 0.999 for adam, 0.9 for rmsprop"},
  {.name = "eps", .type = OT_FLOAT, .offset = offsetof(Config, eps), .def = "1e-8", .metavar = "X", .min = 0,
   .max = NOMAX, .flags = GT0 | OPT_TRAJECTORY, .help = "added to the root of the second moment (rmsprop, adam)"},
  {.name = "batch", .type = OT_INT64, .offset = offsetof(Config, batch), .def = "256", .metavar = "N", .min = 1,
   .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY, .word = "full", .word_value = 0,
   .help = "global mini-batch size summed over all ranks; 1 = stochastic GD, full = full-batch GD (the whole "
           "training set every step)"},
  {.name = "micro-batch", .type = OT_INT, .offset = offsetof(Config, micro_batch), .def = "auto",
   .metavar = "N", .min = 1, .max = NOMAX, .flags = RANGED, .word = "auto", .word_value = 0,
   .help = "rows per forward/backward chunk on one rank: bounds activation memory, same gradient; auto = "
           "chosen by the trainer"},
  {.name = "epochs", .type = OT_INT, .offset = offsetof(Config, epochs), .def = "20", .metavar = "N", .min = 1,
   .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY, .help = "passes over the training set"},
  {.name = "max-steps", .type = OT_INT64, .offset = offsetof(Config, max_steps), .def = "0", .metavar = "N",
   .min = 0, .max = NOMAX, .flags = RANGED,
   .help = "stop after this many optimisation steps in all, even mid-epoch; 0 = no limit"},
  {.name = "seed", .type = OT_INT64, .offset = offsetof(Config, seed), .def = "42", .metavar = "N", .min = 0,
   .max = NOMAX, .flags = RANGED, .help = "seed of the weight initialisation and of each epoch's shuffle"},

  {.section = "regularisation and tuning", .name = "l2", .type = OT_FLOAT, .offset = offsetof(Config, l2),
   .def = "0", .metavar = "LAMBDA", .min = 0, .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY,
   .help = "L2 regularisation (coupled): adds LAMBDA/(2B)*sum(W^2) to the loss and LAMBDA/B*W to the gradient, B the "
           "global batch; weights only, not biases or BN's gamma/beta. With adam it is rescaled like the gradient"},
  {.name = "weight-decay", .type = OT_FLOAT, .offset = offsetof(Config, weight_decay), .def = "0", .metavar = "WD",
   .min = 0, .max = 1, .flags = RANGED | OPT_TRAJECTORY,
   .help = "decoupled weight decay (AdamW, Loshchilov & Hutter): W -= lr*WD*W every step, outside the gradient and the "
           "optimiser's moments; weights only"},
  {.name = "lr-schedule", .flags = OPT_TRAJECTORY, .type = OT_ENUM, .offset = offsetof(Config, lr_schedule),
   .def = "constant",
   .choices = mt_lr_schedule_names,
   .help = "with e = epochs done (fractional): step = lr*gamma^floor(e/lr-step); exp = lr*gamma^e; "
           "inv = lr/(1 + decay-rate*e); cosine = lr-min + (lr-lr-min)*(1+cos(pi*e/epochs))/2"},
  {.name = "lr-gamma", .type = OT_FLOAT, .offset = offsetof(Config, lr_gamma), .def = "auto", .metavar = "G",
   .min = 0, .max = 1, .flags = OPT_RANGED | OPT_MIN_EXCLUSIVE | OPT_TRAJECTORY, .word = "auto", .word_value = -1,
   .help = "decay factor of step (auto: 0.1 per lr-step epochs) and exp (auto: 0.95 per epoch)"},
  {.name = "lr-step", .type = OT_FLOAT, .offset = offsetof(Config, lr_step), .def = "10", .metavar = "EPOCHS",
   .min = 0, .max = NOMAX, .flags = GT0 | OPT_TRAJECTORY, .help = "epochs between the decays of the step schedule"},
  {.name = "lr-decay-rate", .type = OT_FLOAT, .offset = offsetof(Config, lr_decay_rate), .def = "1", .metavar = "K",
   .min = 0, .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY, .help = "K of the inv schedule lr/(1 + K*e)"},
  {.name = "lr-min", .type = OT_FLOAT, .offset = offsetof(Config, lr_min), .def = "0", .metavar = "X", .min = 0,
   .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY, .help = "the floor of the cosine schedule"},
  {.name = "warmup-steps", .type = OT_INT64, .offset = offsetof(Config, warmup_steps), .def = "0", .metavar = "N",
   .min = 0, .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY,
   .help = "linear warm-up: step t (1-based) of the first N uses lr*t/N times the schedule"},
  {.name = "lr-ref-batch", .type = OT_INT64, .offset = offsetof(Config, lr_ref_batch), .def = "off", .metavar = "B",
   .min = 1, .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY, .word = "off", .word_value = 0,
   .help = "linear scaling rule (Goyal et al. 2017): use lr*batch/B, so --lr is the rate tuned for batch B"},
  {.name = "clip-norm", .type = OT_FLOAT, .offset = offsetof(Config, clip_norm), .def = "0", .metavar = "C",
   .min = 0, .max = NOMAX, .flags = RANGED | OPT_TRAJECTORY,
   .help = "scale the gradient down when its global L2 norm (all layers, after the sum over ranks) exceeds C; 0 = off"},
  {.name = "on-nonfinite", .flags = OPT_TRAJECTORY, .type = OT_ENUM, .offset = offsetof(Config, on_nonfinite),
   .def = "stop",
   .choices = mt_nonfinite_names,
   .help = "a NaN or infinite loss or gradient (the summed values, so every rank sees it at once): stop = end the "
           "run with the step and a hint, the last checkpoint intact; skip = drop that step's update and go on, "
           "counting them (100 in a row still stop)"},
  {.name = "val-fraction", .type = OT_FLOAT, .offset = offsetof(Config, val_fraction), .def = "0", .metavar = "F",
   .min = 0, .max = 0.5, .flags = RANGED | OPT_TRAJECTORY,
   .help = "hold out this share of the training set (a fixed random subset, by --seed) as a validation split, "
           "evaluated after every epoch"},
  {.name = "patience", .type = OT_INT, .offset = offsetof(Config, patience), .def = "0", .metavar = "EPOCHS",
   .min = 0, .max = NOMAX, .flags = RANGED,
   .help = "early stopping: stop when the validation loss has not improved for this many epochs, and end with the "
           "best model (restored); needs --val-fraction; 0 = off"},

  {.section = "system", .name = "precision", .flags = OPT_TRAJECTORY, .type = OT_ENUM,
   .offset = offsetof(Config, precision), .def = "auto", .choices = mt_precision_names,
   .help = "GEMM precision: fp32; bf16 = mixed precision (bf16 GEMM inputs, fp32 accumulation, master weights, "
           "optimiser, loss and batch-norm statistics; needs a CPU with bf16, fast with AMX); auto = bf16 where "
           "oneDNN finds AMX, else fp32 (MPITRAIN_AUTO_PRECISION=fp32|bf16 in the environment decides instead)"},
  {.name = "threads", .type = OT_INT, .offset = offsetof(Config, threads), .def = "auto",
   .metavar = "N", .min = 1, .max = 1024, .flags = RANGED, .word = "auto", .word_value = 0,
   .help = "OpenBLAS threads per rank; auto = OPENBLAS_NUM_THREADS if set, else OMP_NUM_THREADS, else the node's "
           "cores shared among its ranks"},
  {.name = "bucket-mb", .type = OT_FLOAT, .offset = offsetof(Config, bucket_mb), .def = "auto", .metavar = "MB",
   .min = 0, .max = NOMAX, .flags = RANGED, .word = "auto", .word_value = -1,
   .help = "gradient buckets: each bucket's non-blocking reduction starts as soon as backward has finished its "
           "layers (last layer first; a large weight matrix in blocks of rows, each starting its buckets) and "
           "overlaps the rest of backward; 0 = one fused bucket, reduced after "
           "backward by the blocking collective; auto = 0 when all ranks share one node (the cores that would "
           "overlap are busy computing, and Open MPI's blocking allreduce is faster); across nodes 2 when the gradients "
           "other than the first layer's (which backward finishes last) fill two such buckets, else 0"},
  {.name = "shard-optimizer", .type = OT_BOOL, .offset = offsetof(Config, shard_optimizer), .def = "false",
   .help = "ZeRO-1: reduce-scatter the gradient, each rank updates its 1/N of the parameters with its 1/N of the "
           "optimiser state, then all-gather the parameters; same traffic as an allreduce, 1/N of the optimiser "
           "memory and work"},
  {.name = "grad-comm", .flags = OPT_TRAJECTORY, .type = OT_ENUM, .offset = offsetof(Config, grad_comm),
   .def = "fp32", .choices = mt_grad_comm_names,
   .help = "the gradient reduction's numbers on the wire: fp32; bf16 = each rank rounds its gradient to bf16 and "
           "the sums are taken in fp32 (a reduce-scatter of bf16 parts, then an all-gather of the bf16 sums; with "
           "--shard-optimizer only the reduce-scatter), with error feedback (what a rounding drops is added to the "
           "next step's values before they are rounded; checkpoints carry it): half the bytes of fp32, worth it "
           "where the network is the bottleneck (across nodes). One rank: nothing is sent or rounded. Not with "
           "--deterministic"},
  {.name = "allreduce", .type = OT_ENUM, .offset = offsetof(Config, allreduce), .def = "auto",
   .choices = mt_allreduce_names,
   .help = "the fp32 gradient allreduce: flat = one MPI collective over all ranks; hier = reduce-scatter within "
           "each node (shared memory), allreduce of each rank's part across nodes, all-gather within the node "
           "(needs the same number of ranks on every node; not with --shard-optimizer or --grad-comm bf16); auto = "
           "flat (hier measured no faster on 2 emulated hosts x 2 ranks at 1 and 10 Gb/s)"},
  {.name = "deterministic", .type = OT_BOOL, .offset = offsetof(Config, deterministic), .def = "false",
   .help = "bit-identical parameters at every step on any number of ranks, and when resuming on another number: "
           "each global batch is cut into fixed groups of --det-group rows, every GEMM runs on one group, and the "
           "groups' gradients, losses and batch-norm sums are added exactly as fixed-point integers (32-bit up to "
           "16 groups per batch, 64-bit above). Costs about 10-25% of the step time (smaller GEMMs, a fixed-point "
           "pass and, above 16 groups, twice the bytes in the gradient reduction) and the first step runs twice to "
           "find the fixed-point scales. One OpenBLAS thread per rank (OPENBLAS_NUM_THREADS / OMP_NUM_THREADS are "
           "overridden, --threads > 1 is refused): start one rank per core"},
  {.name = "det-group", .type = OT_INT, .offset = offsetof(Config, det_group), .def = "64", .metavar = "ROWS",
   .min = 1, .max = 1 << 20, .flags = RANGED,
   .help = "deterministic mode: rows per group; a rank takes whole groups, so at most batch / ROWS ranks have work. "
           "Runs compare bit for bit only with the same ROWS"},
  COMM_STALL_OPTION(Config, stall_timeout),
  {.name = "check-replicas", .type = OT_INT, .offset = offsetof(Config, check_replicas), .def = "0",
   .metavar = "K", .min = 0, .max = NOMAX, .flags = RANGED, .word = "off", .word_value = 0,
   .help = "every K steps, verify that all ranks hold bit-identical parameters; 0 = off"},

  {.section = "output", .name = "log", OPTS_STRING_FIELD(Config, log), .def = "", .metavar = "FILE",
   .help = "write metrics to FILE: a line per step (see --log-every) and per epoch"},
  {.name = "log-format", .type = OT_ENUM, .offset = offsetof(Config, log_format), .def = "auto",
   .choices = mt_log_format_names,
   .help = "format of --log; auto = from its extension (.csv, or .jsonl / .json)"},
  {.name = "log-every", .type = OT_INT, .offset = offsetof(Config, log_every), .def = "auto", .metavar = "N",
   .min = 1, .max = NOMAX, .flags = RANGED, .word = "auto", .word_value = 0,
   .help = "steps between plain progress lines and between step lines of --log; auto = about 10 progress lines "
           "per epoch, and every step in --log (thinned to about 1000 lines per epoch)"},
  {.name = "progress", .type = OT_ENUM, .offset = offsetof(Config, progress), .def = "auto",
   .choices = mt_progress_names,
   .help = "bar = one line redrawn in place; plain = a line every --log-every steps (for batch-job output); "
           "off = epoch summaries only; auto = bar on a terminal, plain otherwise"},
  {.name = "eval", .type = OT_BOOL, .offset = offsetof(Config, eval), .def = "true",
   .help = "evaluate on the test split after every epoch"},
  {.name = "log-norms", .type = OT_BOOL, .offset = offsetof(Config, log_norms), .def = "false",
   .help = "add each layer's weight and gradient L2 norms to --log at every step line, to see vanishing or "
           "exploding gradients"},

  {.section = "checkpoints", .name = "checkpoint-dir", OPTS_STRING_FIELD(Config, checkpoint_dir), .def = "",
   .metavar = "DIR",
   .help = "write checkpoints (ckpt-<step>.h5) into DIR, created if missing: at every epoch end, every "
           "--checkpoint-every steps, at the end, and when stopped by SIGTERM / SIGUSR1 / SIGINT"},
  {.name = "checkpoint-every", .type = OT_INT64, .offset = offsetof(Config, checkpoint_every), .def = "0",
   .metavar = "N", .min = 0, .max = NOMAX, .flags = RANGED, .word = "off", .word_value = 0,
   .help = "also write a checkpoint every N steps; 0 = off"},
  {.name = "checkpoint-epochs", .type = OT_BOOL, .offset = offsetof(Config, checkpoint_epochs), .def = "true",
   .help = "write a checkpoint at the end of every epoch"},
  {.name = "keep", .type = OT_INT, .offset = offsetof(Config, keep), .def = "3", .metavar = "K", .min = 1,
   .max = NOMAX, .flags = RANGED, .help = "checkpoints kept in --checkpoint-dir; older ones are deleted"},
  {.name = "resume", OPTS_STRING_FIELD(Config, resume), .def = "", .metavar = "auto|FILE",
   .help = "continue from a checkpoint: auto = the newest valid one in --checkpoint-dir (damaged ones are skipped "
           "with a warning; none = start fresh), or FILE; any number of ranks may resume"},
  {.name = NULL},
};
/* clang-format on */

/* ==== Parsing and checks ==== */

int mt_config_parse(Config *c, int argc, char **argv, int first, MtError *err) {
  OptsResult res;
  if (mt_opts_parse(mt_config_train_options, c, argc, argv, first, 1, &res, err) != 0) return -1;
  if (res.help) return 1;
  if (res.n_positional > 0) {
    const char *a = res.positional[0];
    size_t n = strlen(a);
    /* The usual slip is naming the dataset without --data. */
    if (n > 3 && strcmp(a + n - 3, ".h5") == 0)
      return mt_fail(err, "unexpected argument '%s': the dataset is given with --data %s", a, a);
    return mt_fail(err, "unexpected argument '%s': this command takes only --options (see --help)", a);
  }
  if (mt_config_validate(c, err) != 0) return -1;
  /* The INI file is read by now; the metrics file, created later, must not be it (by any name). */
  FileRole config = {.role = "--config", .path = res.config_path}, log = {.role = "--log", .path = c->log};
  return mt_fileid_check(&config, 1, &log, 1, err);
}

int mt_config_validate(const Config *c, MtError *err) {
  if (c->data[0] == '\0') return mt_fail(err, "--data: expected a dataset file name, got ''");
  if (c->hidden.n > MODEL_MAX_HIDDEN)
    return mt_fail(err, "--hidden: at most %d hidden layers, got %d", MODEL_MAX_HIDDEN, c->hidden.n);
  if (c->patience > 0 && c->val_fraction <= 0)
    return mt_fail(err, "--patience %d: early stopping watches the validation loss; add --val-fraction (e.g. 0.1)",
                   c->patience);
  if (c->log_norms && c->log[0] == '\0')
    return mt_fail(err, "--log-norms: the norms go to the metrics log; add --log FILE.csv");
  if (c->checkpoint_dir[0] == '\0' && c->checkpoint_every > 0)
    return mt_fail(err, "--checkpoint-every %lld: checkpoints need a directory; add --checkpoint-dir DIR",
                   (long long)c->checkpoint_every);
  if (c->checkpoint_dir[0] == '\0' && strcmp(c->resume, "auto") == 0)
    return mt_fail(err, "--resume auto: looks for checkpoints in --checkpoint-dir, which is not set");
  if (c->deterministic && c->threads > 1)
    return mt_fail(err, "--threads %d with --deterministic: OpenBLAS's results depend on its thread count, so "
                        "deterministic mode uses one thread per rank; start one rank per core instead", c->threads);
  if (c->deterministic && c->grad_comm == GRAD_COMM_BF16)
    return mt_fail(err, "--grad-comm bf16 with --deterministic: deterministic mode sends exact fixed-point sums "
                        "(32 or 64 bits per value), which cannot be halved to 16 bits and stay exact; use one or "
                        "the other");
  if (c->deterministic && c->allreduce == ALLREDUCE_HIER)
    return mt_fail(err, "--allreduce hier with --deterministic: deterministic mode reduces exact fixed-point sums "
                        "in one integer allreduce, whose result does not depend on how it is reduced; use one or "
                        "the other");
  if (c->deterministic && c->micro_batch > 0 && c->micro_batch < c->det_group)
    return mt_fail(err, "--micro-batch %d with --deterministic: a micro-batch holds whole groups; use at least "
                        "--det-group (%d) rows", c->micro_batch, c->det_group);
  if (c->log[0] != '\0') {
    if (c->log_format == LOGFMT_AUTO && mt_log_format_from_path(c->log) == LOGFMT_AUTO)
      return mt_fail(err,
                     "--log %s: cannot tell the format from the file name; add --log-format csv or "
                     "--log-format jsonl (or name it .csv or .jsonl)",
                     c->log);
    if (strcmp(c->log, c->data) == 0)
      return mt_fail(err, "--log %s: that is the dataset (--data); writing metrics there would destroy it",
                     c->log);
  }
  return 0;
}

float mt_config_beta2(const Config *c) {
  if (c->beta2 >= 0) return c->beta2;
  /* RMSProp's customary 0.9 (Hinton's lecture) forgets faster than Adam's 0.999 (Kingma & Ba), which can afford
   * a long memory because of its bias correction. */
  return c->optimizer == OPT_RMSPROP ? 0.9f : 0.999f;
}
