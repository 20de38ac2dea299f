/* predict.c — `mpitrain predict`: class probabilities of a checkpoint's model for every row of a dataset split, as
 * CSV. Every rank evaluates its slice (infer.h) and streams its rows, in rank order, to rank 0, which writes the CSV
 * under a temporary name and renames it into place when complete. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "mpitrain/atomicfile.h"
#include "mpitrain/gemm.h"
#include "mpitrain/loss.h"
#include "mpitrain/util.h"

static const OptionSpec predict_options[] = {
    INFER_COMMON_OPTIONS,
    {.name = "out", .type = OT_STRING, .offset = offsetof(InferArgs, out), .size = sizeof(((InferArgs *)0)->out),
     .def = "", .metavar = "FILE.csv",
     .help = "where to write one line per row: row, label (when the data has labels), predicted class, and each "
             "class's probability (required)"},
    {.name = NULL}};
static const CliUsage predict_usage = {
    .usage = "mpitrain predict --checkpoint FILE --out FILE.csv [--data FILE] [--split test|train]",
    .summary = "Class probabilities of a checkpoint's model for every row of a dataset split, computed on any\n"
               "number of ranks and written by rank 0 as CSV: row,label,predicted,p0,...,p<C-1>\n"
               "(row,predicted,p0,... for a split without labels)."};

/* One run: the model and data, the output, and the buffers of one micro-batch. */
typedef struct Predict {
  InferArgs o;
  Infer in;
  int C;
  const int32_t *labels; /* in.y, or NULL: a split without labels has no label column */
  float *probs;          /* [micro, C] */
  char *text;            /* [micro, line_bytes] */
  char tmp[1100];        /* rank 0: the temporary the CSV is written to */
  FILE *f;               /* rank 0: open on tmp */
} Predict;

/* Rank 0, before the temporary of --out is created: renaming it into place must not replace an input, whatever name
 * --out gives it. */
static int check_out(const InferArgs *o, const Infer *in, MtError *err) {
  const int n_shards = mt_data_info(in->ds)->n_shards;
  FileRole *inputs = mt_alloc(sizeof *inputs * (size_t)(n_shards + 2), "the inputs", err);
  if (inputs == NULL) return -1;
  inputs[0] = (FileRole){.role = "--checkpoint", .path = o->in.checkpoint};
  inputs[1] = (FileRole){.role = "--config", .path = o->config};
  for (int k = 0; k < n_shards; k++) inputs[2 + k] = (FileRole){.role = "--data", .path = mt_data_shard_path(in->ds, k)};
  FileRole out = {.role = "--out", .path = o->out, .replaced = 1};
  int rc = mt_fileid_check(inputs, n_shards + 2, &out, 1, err);
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

/* The CSV lines of the rows [r, r + a micro-batch) of this rank's slice into p->text: their length, or -1. */
static long long predict_chunk(Predict *p, int64_t r, MtError *err) {
  int cn;
  const float *z = mt_infer_chunk(&p->in, r, &cn, err);
  if (z == NULL) return -1;
  mt_loss_softmax(z, cn, p->C, p->probs);
  return (long long)format_rows(p->text, r, cn, p->labels, p->probs, p->C);
}

/* Rank 0: the temporary of --out, with the CSV header. */
static void predict_create(Predict *p, MtError *err) {
  if (check_out(&p->o, &p->in, err) != 0) return;
  p->f = mt_atomic_temp_name(p->o.out, p->tmp, sizeof p->tmp) == 0 ? fopen(p->tmp, "w") : NULL;
  if (p->f == NULL) {
    mt_fail(err, "--out %s: cannot create it: %s", p->o.out, strerror(errno));
    return;
  }
  fprintf(p->f, p->labels ? "row,label,predicted" : "row,predicted");
  for (int j = 0; j < p->C; j++) fprintf(p->f, ",p%d", j);
  fputc('\n', p->f);
}

/* Rank 0 writes its own rows, then each other rank's in rank order: each sends (length, text) chunks and a length
 * of 0 when done (-1 if its reads failed, the reason agreed on afterwards; -100 - SIG if a stop signal cut it short).
 * A stop signal anywhere leaves rank 0 receiving what is still sent without writing it, so every rank ends through
 * the same agreement. */
enum { PREDICT_TAG = 7 };

/* This rank's own rows: into the file (rank 0) or sent to rank 0. Returns the stop signal that cut them short, or 0. */
static int predict_own_rows(Comm *c, Predict *p, MtError *err) {
  int cut = 0;
  for (int64_t r = p->in.lo; r < p->in.hi && !err->failed; r += p->in.micro) {
    if ((cut = mt_comm_stop_signal()) != 0) break;
    mt_comm_phase(c, "predict", (r - p->in.lo) / p->in.micro);
    long long len = predict_chunk(p, r, err);
    if (len < 0) break;
    if (c->rank == 0 && fwrite(p->text, 1, (size_t)len, p->f) != (size_t)len)
      mt_fail(err, "--out %s: write failed: %s", p->o.out, strerror(errno));
    if (c->rank != 0) {
      mt_comm_send(c, &len, 1, MPI_LONG_LONG, 0, PREDICT_TAG, "send of predictions");
      mt_comm_send(c, p->text, (int)len, MPI_CHAR, 0, PREDICT_TAG, "send of predictions");
    }
  }
  return cut;
}

/* Rank 0: its own rows, then every other rank's, into the file. */
static void predict_write(Comm *c, Predict *p, MtError *err) {
  int cut = predict_own_rows(c, p, err); /* the stop signal that left rows unwritten */
  for (int src = 1; src < c->size; src++)
    for (long long chunk = 0;; chunk++) {
      long long len = 0;
      mt_comm_recv(c, &len, 1, MPI_LONG_LONG, src, PREDICT_TAG, "receive of predictions");
      if (len <= -100 && cut == 0) cut = (int)(-100 - len);
      if (len <= 0) break;
      mt_comm_recv(c, p->text, (int)len, MPI_CHAR, src, PREDICT_TAG, "receive of predictions");
      mt_comm_phase(c, "write", chunk);
      if (cut == 0) cut = mt_comm_stop_signal();
      if (!err->failed && cut == 0 && fwrite(p->text, 1, (size_t)len, p->f) != (size_t)len)
        mt_fail(err, "--out %s: write failed: %s", p->o.out, strerror(errno));
    }
  if (cut != 0)
    mt_fail(err, "predict interrupted by %s: removed the unfinished %s; nothing written", mt_comm_signal_name(cut),
            p->tmp);
}

/* The ranks other than 0: their rows to rank 0, then the end mark. */
static void predict_send(Comm *c, Predict *p, MtError *err) {
  int cut = predict_own_rows(c, p, err); /* the stop signal that left rows unsent */
  long long end = err->failed ? -1 : cut != 0 ? -100 - cut : 0;
  mt_comm_send(c, &end, 1, MPI_LONG_LONG, 0, PREDICT_TAG, "send of predictions");
}

/* Rank 0: the complete output into place, or the temporary removed. */
static void predict_commit(Predict *p, MtError *err) {
  if (fclose(p->f) != 0) mt_fail(err, "--out %s: write failed: %s", p->o.out, strerror(errno));
  if (!err->failed && mt_atomic_commit(p->tmp, p->o.out) != 0)
    mt_fail(err, "--out %s: cannot move %s into place: %s", p->o.out, p->tmp, strerror(errno));
  if (err->failed) unlink(p->tmp);
}

static void predict_free(Predict *p) {
  mt_free(p->text);
  mt_free(p->probs);
  mt_infer_free(&p->in);
}

int predict_main(Comm *c, int argc, char **argv) {
  Predict p = {0};
  int rc = 0;
  if (cli_infer_start(c, predict_options, &predict_usage, 1, &p.o, argc, argv, &p.in, &rc) != 0) return rc;
  p.C = p.in.model.spec.n_classes;
  p.labels = mt_data_info(p.in.ds)->labeled[p.o.in.split] ? p.in.y : NULL;
  /* Worst case per value: 13 characters for %.6g plus the comma. */
  const size_t line_bytes = 64 + 14 * (size_t)p.C;
  MtError local = {0};
  p.probs = mt_alloc(sizeof(float) * (size_t)p.in.micro * (size_t)p.C, "probabilities", &local);
  p.text = mt_alloc(line_bytes * (size_t)p.in.micro, "the output buffer", &local);
  mt_comm_stop_catch(); /* SIGTERM / SIGINT from here on: abandon the output (below), remove the temporary */
  if (c->rank == 0 && !local.failed) predict_create(&p, &local);
  if (cli_agree_and_report(c, &local) != 0) {
    if (p.f) fclose(p.f);
    if (p.tmp[0]) unlink(p.tmp);
    mt_comm_stop_release();
    predict_free(&p);
    return 1;
  }
  if (c->rank == 0) {
    predict_write(c, &p, &local);
    predict_commit(&p, &local);
  } else {
    predict_send(c, &p, &local);
  }
  mt_comm_stop_release(); /* the output is complete and in place, or removed */
  if (mt_comm_agree(c, &local) != 0) {
    rc = mt_comm_fail_exit(c, &local);
  } else if (c->rank == 0) {
    printf("predict: wrote %s: %lld rows x %d classes (%s split of %s, %d rank%s, %s GEMMs)\n", p.o.out,
           (long long)mt_data_info(p.in.ds)->n[p.o.in.split], p.C, mt_data_split_names[p.o.in.split], p.o.in.data, c->size,
           c->size == 1 ? "" : "s", mt_precision_name(mt_gemm_precision(p.in.model.gemm)));
  }
  predict_free(&p);
  return rc;
}
