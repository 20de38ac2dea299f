/* eval.c — `mpitrain eval`: loss and accuracy of a checkpoint's model on a dataset split, overall and per class.
 * Every rank evaluates its slice of the split (infer.h); the loss and per-class counts are reduced over the ranks. */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "mpitrain/gemm.h"
#include "mpitrain/loss.h"

static const OptionSpec eval_options[] = {INFER_COMMON_OPTIONS, {.name = NULL}};
static const CliUsage eval_usage = {
    .usage = "mpitrain eval --checkpoint FILE [--data FILE] [--split test|train]",
    .summary = "Loss and accuracy of a checkpoint's model on a dataset split, overall and per class, computed\n"
               "data-parallel on any number of ranks."};

int eval_main(Comm *c, int argc, char **argv) {
  InferArgs o;
  Infer in;
  int rc = 0;
  if (cli_infer_start(c, eval_options, &eval_usage, 0, &o, argc, argv, &in, &rc) != 0) return rc;
  const int C = in.model.spec.n_classes;
  /* loss, correct, failed, then per class: rows, correct */
  double *v = calloc(3 + 2 * (size_t)C, sizeof(double));
  MtError local = {0};
  if (v == NULL) mt_fail(&local, "out of memory");
  for (int64_t r = in.lo; v && r < in.hi && !local.failed; r += in.micro) {
    mt_comm_phase(c, "eval", (r - in.lo) / in.micro);
    int cn;
    const float *z = mt_infer_chunk(&in, r, &cn, &local);
    if (z == NULL) break;
    for (int i = 0; i < cn; i++) {
      LossSums s = {0, 0};
      mt_loss_softmax_xent(z + (size_t)i * C, in.y + i, 1, C, 0.0f, NULL, &s);
      v[0] += s.loss;
      v[1] += s.correct;
      v[3 + 2 * in.y[i]] += 1;
      v[4 + 2 * in.y[i]] += s.correct;
    }
  }
  if (v) {
    v[2] = local.failed;
    mt_comm_allreduce_sum_double(c, v, 3 + 2 * (size_t)C);
  }
  if ((v == NULL || v[2] > 0) && mt_comm_agree(c, &local) != 0) {
    mt_comm_report(c, &local);
    free(v);
    mt_infer_free(&in);
    return 1;
  }
  const DataInfo *info = mt_data_info(in.ds);
  int64_t n = info->n[o.in.split];
  if (c->rank == 0) {
    printf("eval: %s on %s (%s split, %lld rows, %d rank%s, %s GEMMs)\n", o.in.checkpoint, o.in.data,
           mt_data_split_names[o.in.split], (long long)n, c->size, c->size == 1 ? "" : "s",
           mt_precision_name(mt_gemm_precision(in.model.gemm)));
    printf("loss %.4f  accuracy %.2f%%\n", v[0] / (double)n, 100 * v[1] / (double)n);
    printf("  class  name                  rows   accuracy\n");
    for (int k = 0; k < C && k < 1000; k++) {
      const char *name = in.meta.class_names ? in.meta.class_names[k] : mt_data_class_name(in.ds, k);
      double rows = v[3 + 2 * k];
      printf("  %5d  %-18.18s %8.0f   %s", k, name ? name : "", rows, rows > 0 ? "" : "-\n");
      if (rows > 0) printf("%6.2f%%\n", 100 * v[4 + 2 * k] / rows);
    }
    fflush(stdout);
  }
  free(v);
  mt_infer_free(&in);
  return 0;
}
