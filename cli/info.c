/* info.c — `mpitrain info`: describes a dataset (splits, shapes, types, classes, scaling, source, label counts,
 * after the validation `mpitrain train` does) or a checkpoint (mt_checkpoint_describe), on rank 0. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/data.h"
#include "mpitrain/util.h"

typedef struct InfoOptions {
  int scan;
  int64_t memory_limit_mb;
  float stall_timeout;
} InfoOptions;

/* clang-format off */
static const OptionSpec info_options[] = {
  {.name = "scan", .type = OT_BOOL, .offset = offsetof(InfoOptions, scan), .def = "false",
   .help = "also read the splits larger than --memory-limit-mb, to check that every feature is finite"},
  {.name = "memory-limit-mb", .type = OT_INT64, .offset = offsetof(InfoOptions, memory_limit_mb), .def = "1024",
   .metavar = "MB", .min = 0, .max = NOMAX, .flags = OPT_RANGED,
   .help = "splits up to this size are loaded, and their float features checked; larger ones only with --scan"},
  COMM_STALL_OPTION(InfoOptions, stall_timeout),
  {.name = NULL},
};
/* clang-format on */
static const CliUsage info_usage = {
    .usage = "mpitrain info FILE [--scan] [--memory-limit-mb MB]",
    .summary = "Describes a dataset (one file, one shard of a set, or the set's base name): splits, shapes,\n"
               "types, classes, scaling, source and label counts, after the validation `mpitrain train` does;\n"
               "or a checkpoint: model, optimiser, progress, arrays, CRC check and the run's options.",
    .example = "  mpitrain info fmnist.h5\n"};

#define INFO_SCAN_ROWS 4096

static void print_range(const char *what, const float *v /* [n] */, int n) {
  float lo = v[0], hi = v[0];
  for (int j = 1; j < n; j++) {
    if (v[j] < lo) lo = v[j];
    if (v[j] > hi) hi = v[j];
  }
  printf("%s in [%g, %g]", what, (double)lo, (double)hi);
}

/* Reads every row of split s (which mt_data_read_range checks for NaN/Inf). */
static int info_scan(Dataset *ds, Split s, MtError *err) {
  const DataInfo *in = mt_data_info(ds);
  float *x = mt_alloc(sizeof(float) * INFO_SCAN_ROWS * (size_t)in->d, "scan buffer", err);
  int32_t *y = x ? mt_alloc(sizeof(int32_t) * INFO_SCAN_ROWS, "scan labels", err) : NULL;
  int rc = y ? 0 : -1;
  for (int64_t r = 0; rc == 0 && r < in->n[s]; r += INFO_SCAN_ROWS) {
    int n = (int)(in->n[s] - r < INFO_SCAN_ROWS ? in->n[s] - r : INFO_SCAN_ROWS);
    rc = mt_data_read_range(ds, s, r, n, x, y, err);
  }
  mt_free(y);
  mt_free(x);
  return rc;
}

/* The table of label counts per class and split. */
static int info_labels(Dataset *ds, MtError *err) {
  const DataInfo *in = mt_data_info(ds);
  int64_t *count = calloc(2 * (size_t)in->n_classes, sizeof *count);
  if (count == NULL) return mt_fail(err, "out of memory counting labels");
  for (int s = 0; s < 2; s++) {
    const int32_t *y = mt_data_labels(ds, (Split)s);
    for (int64_t i = 0; y && i < in->n[s]; i++) count[(size_t)s * in->n_classes + y[i]]++;
  }
  int w = 5;
  for (int k = 0; k < in->n_classes; k++)
    if (mt_data_class_name(ds, k) && (int)strlen(mt_data_class_name(ds, k)) > w) w = (int)strlen(mt_data_class_name(ds, k));
  if (w > 40) w = 40;
  printf("labels:\n  %6s  %-*s %10s %10s\n", "class", w, "name", "train", in->n[1] > 0 ? "test" : "");
  for (int k = 0; k < in->n_classes; k++) {
    printf("  %6d  %-*.*s", k, w, w, mt_data_class_name(ds, k) ? mt_data_class_name(ds, k) : "");
    for (int s = 0; s < 1 + (in->n[1] > 0); s++)
      if (in->labeled[s])
        printf(" %10lld", (long long)count[(size_t)s * in->n_classes + k]);
      else
        printf(" %10s", "-");
    printf("\n");
  }
  free(count);
  return 0;
}

static int info_dataset(const char *path, const InfoOptions *o, MtError *err) {
  DataOptions dopt = {.memory = o->memory_limit_mb > 0 ? MEMORY_AUTO : MEMORY_NO,
                      .memory_limit = o->memory_limit_mb << 20, .max_rows = INFO_SCAN_ROWS, .allow_unlabeled = 1};
  Dataset *ds = NULL;
  if (mt_data_open(&ds, path, &dopt, err) != 0) return -1;
  const DataInfo *in = mt_data_info(ds);
  int scanned[2] = {in->in_memory[0], in->in_memory[1]};
  for (int s = 0; s < 2; s++)
    if (!scanned[s] && o->scan) {
      if (info_scan(ds, (Split)s, err) != 0) {
        mt_data_close(ds);
        return -1;
      }
      scanned[s] = 1;
    }

  printf("dataset:     %s\n", path);
  char format[128];
  mt_data_probe_format(mt_data_shard_path(ds, 0), format, sizeof format);
  printf("format:      %s\n", format[0] ? format : "(no format attribute: read as mpitrain-dataset)");
  if (in->n_shards > 1)
    printf("files:       %d shards: %s .. %s\n", in->n_shards, mt_data_shard_path(ds, 0),
           mt_data_shard_path(ds, in->n_shards - 1));
  else
    printf("files:       1: %s\n", mt_data_shard_path(ds, 0));
  for (int s = 0; s < 2; s++)
    if (in->n[s] > 0)
      printf("%-12s %lld rows x %d features, %s%s\n", s == 0 ? "train:" : "test:", (long long)in->n[s], in->d,
             in->stored_uint8 ? "uint8" : "float32", in->labeled[s] ? "" : ", no labels (for predict)");
    else
      printf("%-12s none\n", s == 0 ? "train:" : "test:");
  if (in->n_classes == 0)
    printf("classes:     unknown (no labels, no num_classes attribute: predict takes the checkpoint's)");
  else
    printf("classes:     %d%s", in->n_classes,
           in->n_classes_inferred ? " (no num_classes attribute: largest label + 1)" : "");
  if (mt_data_class_name(ds, 0)) {
    printf(": ");
    for (int k = 0; k < in->n_classes; k++) printf("%s%s", k ? ", " : "", mt_data_class_name(ds, k));
  }
  printf("\nscale:       %g (features = x * scale%s)\n", (double)in->scale, in->has_norm ? ", then normalised" : "");
  if (in->has_norm) {
    printf("normalised:  per feature, (x * scale - mean) / std; ");
    print_range("mean", mt_data_mean(ds), in->d);
    printf(", ");
    print_range("std", mt_data_std(ds), in->d);
    printf("\n");
  } else {
    printf("normalised:  no\n");
  }
  printf("source:      %s\n", in->source[0] ? in->source : "(none)");
  const int any_labels = (in->n[0] > 0 && in->labeled[0]) || (in->n[1] > 0 && in->labeled[1]);
  printf("checked:     shapes, types");
  if (any_labels) printf(", labels in [0, %d)", in->n_classes);
  for (int s = 0; s < 2; s++)
    if (in->n[s] > 0 && !in->stored_uint8)
      printf(scanned[s] ? "; %s features finite"
                        : "; %s features not scanned (over --memory-limit-mb: --scan reads them)",
             mt_data_split_names[s]);
  printf("\n");

  if (!any_labels) {
    mt_data_close(ds);
    return 0;
  }
  int rc = info_labels(ds, err);
  mt_data_close(ds);
  return rc;
}

typedef int (*InfoFn)(const char *path, const InfoOptions *o, MtError *err);

static int info_checkpoint(const char *path, const InfoOptions *o, MtError *err) {
  (void)o;
  return mt_checkpoint_describe(path, err);
}

/* What info can describe, by the root `format` attribute. Files without one are read as datasets (mt_data_open then
 * says what is missing). Checkpoints join here with their own describer. */
static const struct {
  const char *format;
  InfoFn fn;
} info_kinds[] = {
    {DATA_FORMAT, info_dataset},
    {CHECKPOINT_FORMAT, info_checkpoint},
    {"", info_dataset},
};

int info_main(Comm *c, int argc, char **argv) {
  InfoOptions o;
  OptsResult res;
  MtError err = {0};
  if (cli_parse(c, info_options, &info_usage, &o, argc, argv, &res, &err) != 0) return 0;
  if (!err.failed && res.n_positional != 1)
    mt_fail(&err, "info: expected one FILE (a dataset, one shard of a set, the set's base name, or a checkpoint), got %d",
            res.n_positional);
  if (cli_agree_and_report(c, &err) != 0) return EXIT_USAGE;
  mt_comm_watchdog_timeout(c, o.stall_timeout);
  if (c->rank == 0) {
    const char *path = res.positional[0];
    char format[128];
    mt_data_probe_format(path, format, sizeof format);
    InfoFn fn = NULL;
    for (size_t i = 0; i < sizeof info_kinds / sizeof info_kinds[0]; i++)
      if (strcmp(format, info_kinds[i].format) == 0) fn = info_kinds[i].fn;
    if (fn == NULL)
      mt_fail(&err, "%s: format is '%s'; expected 'mpitrain-dataset' or '" CHECKPOINT_FORMAT "'", path, format);
    else
      fn(path, &o, &err);
    fflush(stdout);
  }
  cli_wait_for_all(c);
  return cli_fail_exit(c, &err);
}
