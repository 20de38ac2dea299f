/* infer.c — `mpitrain eval` and `mpitrain predict`: a checkpoint's model on a dataset, on any number of ranks.
 *
 * Rank 0 reads the checkpoint (one reader, whatever the rank count) and broadcasts the architecture and the
 * model's whole state (model_replicate: parameters and batch-norm statistics); every rank then evaluates a
 * contiguous slice of the split. eval reduces the loss and per-class counts; predict streams every rank's rows, in
 * rank order, to rank 0, which writes the CSV under a temporary name and renames it into place when complete. */
#include "infer.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mpitrain/atomicfile.h"
#include "mpitrain/blas.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/comm.h"
#include "mpitrain/config.h"
#include "mpitrain/data.h"
#include "mpitrain/fileid.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"
#include "mpitrain/opts.h"
#include "mpitrain/replicate.h"
#include "mpitrain/train.h"
#include "mpitrain/util.h"

typedef struct InferOptions {
  char checkpoint[1024];
  char data[1024];
  char out[1024];
  int split;         /* Split */
  int micro_batch;
  int threads;
  int in_memory;     /* MemoryMode */
  int64_t memory_limit_mb;
  char config[1024]; /* --config FILE, if any (set by parse: not in the option tables) */
  float stall_timeout;
} InferOptions;

static const char *const split_choices[] = {"train", "test", NULL};
static const char *const memory_choices[] = {"auto", "yes", "no", NULL};

#define INFER_COMMON_OPTIONS                                                                                       \
  {.name = "checkpoint", .type = OT_STRING, .offset = offsetof(InferOptions, checkpoint),                         \
   .size = sizeof(((InferOptions *)0)->checkpoint), .def = "", .metavar = "FILE",                                  \
   .help = "checkpoint to load (required): a ckpt-*.h5 written by mpitrain train"},                                \
      {.name = "data", .type = OT_STRING, .offset = offsetof(InferOptions, data),                                  \
       .size = sizeof(((InferOptions *)0)->data), .def = "datasets/fashion-mnist.h5", .metavar = "FILE",           \
       .help = "dataset (one file, a shard, or a set's base name)"},                                               \
      {.name = "split", .type = OT_ENUM, .offset = offsetof(InferOptions, split), .def = "test",                   \
       .choices = split_choices, .help = "which split of the dataset"},                                            \
      {.name = "micro-batch", .type = OT_INT, .offset = offsetof(InferOptions, micro_batch), .def = "1024",        \
       .metavar = "N", .min = 1, .max = 1 << 24, .flags = OPT_RANGED, .help = "rows per forward pass on a rank"},  \
      {.name = "threads", .type = OT_INT, .offset = offsetof(InferOptions, threads), .def = "auto",               \
       .metavar = "N", .min = 1, .max = 1024, .flags = OPT_RANGED, .word = "auto", .word_value = 0,               \
       .help = "OpenBLAS threads per rank; auto = OPENBLAS_NUM_THREADS if set, else OMP_NUM_THREADS, else the "  \
               "node's cores shared among its ranks"},                                                          \
      {.name = "in-memory", .type = OT_ENUM, .offset = offsetof(InferOptions, in_memory), .def = "auto",          \
       .choices = memory_choices, .help = "hold the split in memory (yes) or read rows per chunk (no)"},           \
      {.name = "memory-limit-mb", .type = OT_INT64, .offset = offsetof(InferOptions, memory_limit_mb),             \
       .def = "2048", .metavar = "MB", .min = 1, .max = 1e12, .flags = OPT_RANGED,                                \
       .help = "largest split --in-memory auto loads"},                                                       \
      COMM_STALL_OPTION(InferOptions, stall_timeout)

static const OptionSpec eval_options[] = {INFER_COMMON_OPTIONS, {.name = NULL}};
static const OptionSpec predict_options[] = {
    INFER_COMMON_OPTIONS,
    {.name = "out", .type = OT_STRING, .offset = offsetof(InferOptions, out), .size = sizeof(((InferOptions *)0)->out),
     .def = "", .metavar = "FILE.csv",
     .help = "where to write one line per row: row, label (when the data has labels), predicted class, and each "
             "class's probability (required)"},
    {.name = NULL}};

/* Parses and agrees; returns 1 when --help was shown, 0 to go on, -1 after an agreed error (reported). */
static int parse(Comm *c, const OptionSpec *table, InferOptions *o, int argc, char **argv, const char *usage,
                 const char *summary) {
  MtError err = {0};
  OptsResult res;
  if (opts_parse(table, o, argc, argv, 1, 1, &res, &err) == 0) {
    if (res.help) {
      if (c->rank == 0) opts_print_help_ex(stdout, usage, summary, table, 1);
      return 1;
    }
    snprintf(o->config, sizeof o->config, "%s", res.config_path);
    if (res.n_positional > 0)
      mt_fail(&err, "unexpected argument '%s' (the checkpoint is given with --checkpoint)", res.positional[0]);
    else if (o->checkpoint[0] == '\0')
      mt_fail(&err, "--checkpoint: which checkpoint? (a ckpt-*.h5 file written by mpitrain train)");
    else if (table == predict_options && o->out[0] == '\0')
      mt_fail(&err, "--out: where should the predictions go? (a CSV file name)");
  }
  if (comm_agree(c, &err) != 0) {
    comm_report(c, &err);
    return -1;
  }
  comm_watchdog_timeout(c, o->stall_timeout);
  return 0;
}

/* Collective: the checkpoint's model on every rank, with room for max_batch rows, and its metadata in meta (every
 * rank: spec and preprocessing; rank 0: everything, class names included). */
static int load_model(Comm *c, const char *path, Model *m, CheckpointMeta *meta, int max_batch, MtError *err) {
  memset(meta, 0, sizeof *meta);
  MtError local = {0};
  if (c->rank == 0) checkpoint_read_meta(path, meta, &local);
  if (comm_agree(c, &local) != 0) goto fail;
  comm_bcast(c, &meta->spec, sizeof meta->spec, 0);
  model_create(m, &meta->spec, max_batch, &local);
  if (comm_agree(c, &local) != 0) goto fail;
  if (c->rank == 0) checkpoint_read_state(path, meta, m, NULL, &local);
  /* The preprocessing, checked by the CRC just now, for every rank's reads. */
  int pre[2] = {meta->has_preprocess, meta->mean != NULL};
  comm_bcast(c, pre, sizeof pre, 0);
  comm_bcast(c, &meta->scale, sizeof meta->scale, 0);
  size_t bytes = sizeof(float) * (size_t)meta->spec.n_inputs;
  if (pre[1] && c->rank != 0 && !local.failed) {
    meta->mean = malloc(bytes);
    meta->std = malloc(bytes);
    if (meta->mean == NULL || meta->std == NULL) mt_fail(&local, "out of memory reading the checkpoint's mean/std");
  }
  if (comm_agree(c, &local) != 0) {
    model_free(m);
    goto fail;
  }
  meta->has_preprocess = pre[0];
  if (pre[1]) {
    comm_bcast(c, meta->mean, bytes, 0);
    comm_bcast(c, meta->std, bytes, 0);
  }
  model_replicate(c, m, 0);
  return 0;
fail:
  checkpoint_meta_free(meta);
  *err = local;
  return -1;
}

/* Collective: model, dataset and buffers, all checked against each other. */
typedef struct Infer {
  Model model;
  CheckpointMeta meta;  /* the checkpoint's (see load_model) */
  Dataset *ds;
  float *x;        /* [micro, d] */
  int32_t *y;      /* [micro] */
  int micro;
  int64_t lo, hi;  /* this rank's rows of the split */
} Infer;

static void infer_free(Infer *in) {
  mt_free(in->y);
  mt_free(in->x);
  if (in->ds) data_close(in->ds);
  model_free(&in->model);
  checkpoint_meta_free(&in->meta);
}

/* The checkpoint's preprocessing on the data's stored features, with one line (rank 0) for each way the data file's
 * own differs: the stored x is what both have in common. Same verdict on every rank. */
static int preprocess_apply(Comm *c, const InferOptions *o, Infer *in, MtError *err) {
  const CheckpointMeta *meta = &in->meta;
  const DataInfo *info = data_info(in->ds);
  const int C = meta->spec.n_classes, say = c->rank == 0;
  if (!meta->has_preprocess) {
    if (say)
      fprintf(stderr, "mpitrain: note: %s stores no preprocessing (an older checkpoint): using %s's own scaling\n",
              o->checkpoint, o->data);
    return 0;
  }
  const int differs = data_preprocess_differs(in->ds, meta->scale, meta->mean, meta->std);
  if (say && (differs & DATA_PRE_SCALE))
    fprintf(stderr, "mpitrain: warning: %s has scale %g but the checkpoint was trained with %g: using the "
            "checkpoint's on the stored features\n", o->data, (double)info->scale, (double)meta->scale);
  if (say && (differs & DATA_PRE_NORM))
    fprintf(stderr, "mpitrain: warning: %s is %s but the checkpoint's training data was %s: using the "
            "checkpoint's\n", o->data,
            info->has_norm ? (meta->mean ? "normalised with another mean/std" : "normalised") : "not normalised",
            meta->mean ? "normalised (its mean/std are in the checkpoint)" : "not normalised");
  int names = 0;
  for (int k = 0; say && meta->class_names && k < C; k++)
    names |= data_class_name(in->ds, k) && strcmp(data_class_name(in->ds, k), meta->class_names[k]) != 0;
  if (names)
    fprintf(stderr, "mpitrain: warning: %s names its classes differently from the checkpoint: showing the "
            "checkpoint's\n", o->data);
  return data_set_preprocess(in->ds, meta->scale, meta->mean, meta->std, err);
}

static int infer_open(Comm *c, const InferOptions *o, int need_labels, Infer *in, MtError *err) {
  memset(in, 0, sizeof *in);
  in->micro = o->micro_batch;
  MtError local = {0};
  /* By stat, before anything opens them: opening a FIFO to read blocks until a writer comes. */
  if (fileid_regular(o->checkpoint, "--checkpoint", &local) == 0) fileid_regular(o->data, "--data", &local);
  if (comm_agree(c, &local) != 0) {
    *err = local;
    return -1;
  }
  if (load_model(c, o->checkpoint, &in->model, &in->meta, in->micro, err) != 0) return -1;
  DataOptions dopt = {.memory = o->in_memory, .memory_limit = o->memory_limit_mb * 1024 * 1024, .max_rows = in->micro,
                      .allow_unlabeled = 1};
  if (data_open(&in->ds, o->data, &dopt, &local) == 0) {
    const DataInfo *info = data_info(in->ds);
    const ModelSpec *sp = &in->model.spec;
    if (info->d != sp->n_inputs)
      mt_fail(&local, "%s has %d features; the checkpoint %s was trained on %d", o->data, info->d, o->checkpoint,
              sp->n_inputs);
    else if (info->n_classes > 0 && info->n_classes != sp->n_classes)
      mt_fail(&local, "%s has %d classes; the checkpoint %s predicts %d", o->data, info->n_classes, o->checkpoint,
              sp->n_classes);
    else if (info->n[o->split] == 0)
      mt_fail(&local, "%s has no %s split", o->data, split_choices[o->split]);
    else if (need_labels && !info->labeled[o->split])
      mt_fail(&local, "%s: the %s split has no labels (no /%s/y): eval needs labels; use predict", o->data,
              split_choices[o->split], split_choices[o->split]);
    else
      preprocess_apply(c, o, in, &local);
    if (!local.failed) {
      in->x = mt_alloc(sizeof(float) * (size_t)in->micro * (size_t)info->d, "the input batch", &local);
      in->y = mt_alloc(sizeof(int32_t) * (size_t)in->micro, "the label batch", &local);
      mt_even_split(info->n[o->split], c->rank, c->size, &in->lo, &in->hi);
    }
  }
  BlasThreads bt;
  if (blas_threads_choose(o->threads, 0, c->node_cores, c->node_cpus, c->node_size, &bt, &local) == 0)
    blas_set_threads(bt.n);
  if (comm_agree(c, &local) != 0) {
    infer_free(in);
    *err = local;
    return -1;
  }
  return 0;
}

/* Options, checkpoint, dataset: returns -1 when the command is over (rc holds its exit code), 0 to go on. */
static int infer_start(Comm *c, const OptionSpec *table, InferOptions *o, int argc, char **argv, const char *usage,
                       const char *summary, Infer *in, int *rc) {
  int p = parse(c, table, o, argc, argv, usage, summary);
  if (p != 0) {
    *rc = p > 0 ? 0 : 2;
    return -1;
  }
  comm_warn_oversubscribed(c);
  MtError err = {0};
  if (infer_open(c, o, table == eval_options, in, &err) != 0) {
    comm_report(c, &err);
    *rc = 1;
    return -1;
  }
  return 0;
}

/* Logits [cn, C] of the rows [r, r+cn) of this rank's slice (cn = up to a micro-batch); labels in in->y. */
static const float *infer_chunk(Infer *in, const InferOptions *o, int64_t r, int *cn, MtError *err) {
  *cn = (int)(in->hi - r < in->micro ? in->hi - r : in->micro);
  if (data_read_range(in->ds, (Split)o->split, r, *cn, in->x, in->y, err) != 0) return NULL;
  return model_forward(&in->model, in->x, *cn);
}

int eval_main(Comm *c, int argc, char **argv) {
  InferOptions o;
  Infer in;
  int rc = 0;
  if (infer_start(c, eval_options, &o, argc, argv, "mpitrain eval --checkpoint FILE [--data FILE] [--split test|train]",
                  "Loss and accuracy of a checkpoint's model on a dataset split, overall and per class, computed\n"
                  "data-parallel on any number of ranks.",
                  &in, &rc) != 0)
    return rc;
  const int C = in.model.spec.n_classes;
  /* loss, correct, failed, then per class: rows, correct */
  double *v = calloc(3 + 2 * (size_t)C, sizeof(double));
  MtError local = {0};
  if (v == NULL) mt_fail(&local, "out of memory");
  for (int64_t r = in.lo; v && r < in.hi && !local.failed; r += in.micro) {
    comm_phase(c, "eval", (r - in.lo) / in.micro);
    int cn;
    const float *z = infer_chunk(&in, &o, r, &cn, &local);
    if (z == NULL) break;
    for (int i = 0; i < cn; i++) {
      LossSums s = {0, 0};
      loss_softmax_xent(z + (size_t)i * C, in.y + i, 1, C, 0.0f, NULL, &s);
      v[0] += s.loss;
      v[1] += s.correct;
      v[3 + 2 * in.y[i]] += 1;
      v[4 + 2 * in.y[i]] += s.correct;
    }
  }
  if (v) {
    v[2] = local.failed;
    comm_allreduce_sum_double(c, v, 3 + 2 * (size_t)C);
  }
  if ((v == NULL || v[2] > 0) && comm_agree(c, &local) != 0) {
    comm_report(c, &local);
    free(v);
    infer_free(&in);
    return 1;
  }
  const DataInfo *info = data_info(in.ds);
  int64_t n = info->n[o.split];
  if (c->rank == 0) {
    printf("eval: %s on %s (%s split, %lld rows, %d rank%s)\n", o.checkpoint, o.data, split_choices[o.split],
           (long long)n, c->size, c->size == 1 ? "" : "s");
    printf("loss %.4f  accuracy %.2f%%\n", v[0] / (double)n, 100 * v[1] / (double)n);
    printf("  class  name                  rows   accuracy\n");
    for (int k = 0; k < C && k < 1000; k++) {
      const char *name = in.meta.class_names ? in.meta.class_names[k] : data_class_name(in.ds, k);
      double rows = v[3 + 2 * k];
      printf("  %5d  %-18.18s %8.0f   %s", k, name ? name : "", rows, rows > 0 ? "" : "-\n");
      if (rows > 0) printf("%6.2f%%\n", 100 * v[4 + 2 * k] / rows);
    }
    fflush(stdout);
  }
  free(v);
  infer_free(&in);
  return 0;
}

/* Rank 0, before the temporary of --out is created: renaming it into place must not replace an input, whatever name
 * --out gives it. */
static int check_out(const InferOptions *o, const Infer *in, MtError *err) {
  const int n_shards = data_info(in->ds)->n_shards;
  FileRole *inputs = mt_alloc(sizeof *inputs * (size_t)(n_shards + 2), "the inputs", err);
  if (inputs == NULL) return -1;
  inputs[0] = (FileRole){.role = "--checkpoint", .path = o->checkpoint};
  inputs[1] = (FileRole){.role = "--config", .path = o->config};
  for (int k = 0; k < n_shards; k++) inputs[2 + k] = (FileRole){.role = "--data", .path = data_shard_path(in->ds, k)};
  FileRole out = {.role = "--out", .path = o->out, .replaced = 1};
  int rc = fileid_check(inputs, n_shards + 2, &out, 1, err);
  mt_free(inputs);
  return rc;
}

/* One CSV line per row into buf; returns bytes written (buf is large enough: see line_bytes). y NULL: no label
 * column (a split without labels). */
static size_t format_rows(char *buf, int64_t first, int n, const int32_t *y, const float *probs, int C) {
  char *p = buf;
  for (int i = 0; i < n; i++) {
    const float *pr = probs + (size_t)i * C;
    int arg = 0;
    for (int j = 1; j < C; j++)
      if (pr[j] > pr[arg]) arg = j;
    if (y)
      p += sprintf(p, "%lld,%d,%d", (long long)(first + i), y[i], arg);
    else
      p += sprintf(p, "%lld,%d", (long long)(first + i), arg);
    for (int j = 0; j < C; j++) p += sprintf(p, ",%.6g", pr[j]);
    *p++ = '\n';
  }
  return (size_t)(p - buf);
}

int predict_main(Comm *c, int argc, char **argv) {
  InferOptions o;
  Infer in;
  int rc = 0;
  if (infer_start(c, predict_options, &o, argc, argv,
                  "mpitrain predict --checkpoint FILE --out FILE.csv [--data FILE] [--split test|train]",
                  "Class probabilities of a checkpoint's model for every row of a dataset split, computed on any\n"
                  "number of ranks and written by rank 0 as CSV: row,label,predicted,p0,...,p<C-1>\n"
                  "(row,predicted,p0,... for a split without labels).",
                  &in, &rc) != 0)
    return rc;
  const int C = in.model.spec.n_classes;
  const int32_t *labels = data_info(in.ds)->labeled[o.split] ? in.y : NULL;
  /* Worst case per value: 13 characters for %.6g plus the comma. */
  const size_t line_bytes = 64 + 14 * (size_t)C;
  MtError local = {0};
  float *probs = mt_alloc(sizeof(float) * (size_t)in.micro * (size_t)C, "probabilities", &local);
  char *text = mt_alloc(line_bytes * (size_t)in.micro, "the output buffer", &local);
  char tmp[1100] = "";
  FILE *f = NULL;
  comm_stop_catch(); /* SIGTERM / SIGINT from here on: abandon the output (below), remove the temporary */
  if (c->rank == 0 && !local.failed && check_out(&o, &in, &local) == 0) {
    f = atomic_temp_name(o.out, tmp, sizeof tmp) == 0 ? fopen(tmp, "w") : NULL;
    if (f == NULL) {
      mt_fail(&local, "--out %s: cannot create it: %s", o.out, strerror(errno));
    } else {
      fprintf(f, labels ? "row,label,predicted" : "row,predicted");
      for (int j = 0; j < C; j++) fprintf(f, ",p%d", j);
      fputc('\n', f);
    }
  }
  if (comm_agree(c, &local) != 0) {
    comm_report(c, &local);
    if (f) fclose(f);
    if (tmp[0]) unlink(tmp);
    comm_stop_release();
    mt_free(text);
    mt_free(probs);
    infer_free(&in);
    return 1;
  }
  /* Rank 0 writes its own rows, then each other rank's in rank order: each sends (length, text) chunks and a
   * length of 0 when done (-1 if its reads failed, the reason agreed on afterwards; -100 - SIG if a stop signal cut
   * it short). A stop signal anywhere leaves rank 0 receiving what is still sent without writing it, so every rank
   * ends through the same agreement below. */
  const int TAG = 7;
  int cut = 0; /* the stop signal that left rows unwritten (rank 0) or unsent (the others) */
  if (c->rank == 0) {
    for (int src = 0; src < c->size; src++) {
      if (src == 0) {
        for (int64_t r = in.lo; r < in.hi && !local.failed; r += in.micro) {
          if ((cut = comm_stop_signal()) != 0) break;
          comm_phase(c, "predict", (r - in.lo) / in.micro);
          int cn;
          const float *z = infer_chunk(&in, &o, r, &cn, &local);
          if (z == NULL) break;
          loss_softmax(z, cn, C, probs);
          size_t len = format_rows(text, r, cn, labels, probs, C);
          if (fwrite(text, 1, len, f) != len) mt_fail(&local, "--out %s: write failed: %s", o.out, strerror(errno));
        }
        continue;
      }
      for (long long chunk = 0;; chunk++) {
        long long len = 0;
        comm_recv(c, &len, 1, MPI_LONG_LONG, src, TAG, "receive of predictions");
        if (len <= -100 && cut == 0) cut = (int)(-100 - len);
        if (len <= 0) break;
        comm_recv(c, text, (int)len, MPI_CHAR, src, TAG, "receive of predictions");
        comm_phase(c, "write", chunk);
        if (cut == 0) cut = comm_stop_signal();
        if (!local.failed && cut == 0 && fwrite(text, 1, (size_t)len, f) != (size_t)len)
          mt_fail(&local, "--out %s: write failed: %s", o.out, strerror(errno));
      }
    }
    if (cut != 0)
      mt_fail(&local, "predict interrupted by %s: removed the unfinished %s; nothing written", comm_signal_name(cut),
              tmp);
  } else {
    for (int64_t r = in.lo; r < in.hi && !local.failed; r += in.micro) {
      if ((cut = comm_stop_signal()) != 0) break;
      comm_phase(c, "predict", (r - in.lo) / in.micro);
      int cn;
      const float *z = infer_chunk(&in, &o, r, &cn, &local);
      if (z == NULL) break;
      loss_softmax(z, cn, C, probs);
      long long len = (long long)format_rows(text, r, cn, labels, probs, C);
      comm_send(c, &len, 1, MPI_LONG_LONG, 0, TAG, "send of predictions");
      comm_send(c, text, (int)len, MPI_CHAR, 0, TAG, "send of predictions");
    }
    long long end = local.failed ? -1 : cut != 0 ? -100 - cut : 0;
    comm_send(c, &end, 1, MPI_LONG_LONG, 0, TAG, "send of predictions");
  }
  if (c->rank == 0) {
    if (fclose(f) != 0) mt_fail(&local, "--out %s: write failed: %s", o.out, strerror(errno));
    if (!local.failed && atomic_commit(tmp, o.out) != 0)
      mt_fail(&local, "--out %s: cannot move %s into place: %s", o.out, tmp, strerror(errno));
    if (local.failed) unlink(tmp);
  }
  comm_stop_release(); /* the output is complete and in place, or removed */
  if (comm_agree(c, &local) != 0) {
    rc = comm_fail_exit(c, &local);
  } else if (c->rank == 0) {
    printf("predict: wrote %s: %lld rows x %d classes (%s split of %s, %d rank%s)\n", o.out,
           (long long)data_info(in.ds)->n[o.split], C, split_choices[o.split], o.data, c->size, c->size == 1 ? "" : "s");
  }
  mt_free(text);
  mt_free(probs);
  infer_free(&in);
  return rc;
}
