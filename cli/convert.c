/* convert.c — `mpitrain convert`: IDX files (MNIST, Fashion-MNIST) or CSV files into an mpitrain dataset, on rank 0.
 * The readers are storage's (import.h); the rows go to mt_write_set (writeset.h) from a source: the IDX arrays in
 * memory, or a CSV reader streaming each file a second time. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "mpitrain/checkpoint.h"
#include "mpitrain/data.h"
#include "mpitrain/import.h"
#include "mpitrain/model.h"
#include "mpitrain/util.h"
#include "mpitrain/writeset.h"

static const char *const fmnist_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* snprintf into a fixed buffer where a cut-off text is acceptable (descriptions), without the truncation warning. */
static void text_into(char *buf, size_t n, const char *fmt, ...) MT_PRINTF(3, 4);
static void text_into(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, n, fmt, ap);
  va_end(ap);
}

/* Comma-separated class names into names[] (pointers into buf, which is modified). */
static int split_names(char *buf, const char **names, int max) {
  int n = 0;
  if (buf[0] == '\0') return 0;
  for (char *p = buf;; n++) {
    char *comma = strchr(p, ',');
    if (n < max) names[n] = p;
    if (comma == NULL) return n + 1;
    *comma = '\0';
    p = comma + 1;
  }
}


enum { FROM_IDX = 0, FROM_CSV = 1 };
static const char *const from_choices[] = {"idx", "csv", NULL};
static const char *const label_column_choices[] = {"first", "last", "none", NULL};

typedef struct ConvertOptions {
  int from;
  char dir[CLI_PATH];
  char train_images[CLI_PATH], train_labels[CLI_PATH], test_images[CLI_PATH], test_labels[CLI_PATH];
  char train[CLI_PATH], test[CLI_PATH];
  int label_column;
  int classes;
  char out[CLI_PATH];
  int shards;
  int normalize;
  char normalize_from[CLI_PATH];
  int gzip;
  char class_names[4096];
  float stall_timeout;
} ConvertOptions;

#define CO(f) offsetof(ConvertOptions, f)
#define CS(f) sizeof(((ConvertOptions *)0)->f)
/* clang-format off */
static const OptionSpec convert_options[] = {
  {.name = "from", .type = OT_ENUM, .offset = CO(from), .def = "idx", .choices = from_choices,
   .help = "input format: idx (MNIST-style IDX files, gzip or not) or csv (one sample per line)"},
  {.section = "--from idx", .name = "dir", .type = OT_STRING, .offset = CO(dir), .size = CS(dir),
   .def = "/usr/share/datasets/fashion-mnist", .metavar = "DIR",
   .help = "directory with train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte[.gz], t10k-images-idx3-ubyte[.gz], "
           "t10k-labels-idx1-ubyte[.gz] (the default is Debian's dataset-fashion-mnist; no t10k files = no test "
           "split)"},
  {.name = "train-images", .type = OT_STRING, .offset = CO(train_images), .size = CS(train_images),
   .metavar = "FILE", .help = "training images (default: found in --dir)"},
  {.name = "train-labels", .type = OT_STRING, .offset = CO(train_labels), .size = CS(train_labels),
   .metavar = "FILE", .help = "training labels (default: found in --dir)"},
  {.name = "test-images", .type = OT_STRING, .offset = CO(test_images), .size = CS(test_images),
   .metavar = "FILE", .help = "test images (default: found in --dir)"},
  {.name = "test-labels", .type = OT_STRING, .offset = CO(test_labels), .size = CS(test_labels),
   .metavar = "FILE", .help = "test labels (default: found in --dir)"},
  {.section = "--from csv", .name = "train", .type = OT_STRING, .offset = CO(train), .size = CS(train),
   .metavar = "FILE", .help = "training CSV: a label and numeric features per line; a non-numeric first line is a "
                              "header and skipped"},
  {.name = "test", .type = OT_STRING, .offset = CO(test), .size = CS(test), .metavar = "FILE",
   .help = "test CSV, same columns (optional)"},
  {.name = "label-column", .type = OT_ENUM, .offset = CO(label_column), .def = "first",
   .choices = label_column_choices,
   .help = "which field of a CSV line is the label; none: every field is a feature, and the dataset has no labels "
           "(for predict; --classes C records the class count, else predict takes the checkpoint's)"},
  {.section = "output", .name = "out", .type = OT_STRING, .offset = CO(out), .size = CS(out), .metavar = "FILE.h5",
   .help = "dataset to write (required); with --shards K: FILE-00000-of-0000K.h5 ..."},
  {.name = "shards", .type = OT_INT, .offset = CO(shards), .def = "1", .metavar = "K", .min = 1,
   .max = DATA_MAX_SHARDS, .flags = OPT_RANGED, .help = "split the rows over K files"},
  {.name = "classes", .type = OT_INT, .offset = CO(classes), .def = "auto", .metavar = "C", .min = 2,
   .max = DATA_MAX_CLASSES, .flags = OPT_RANGED, .word = "auto", .word_value = 0,
   .help = "number of classes; auto = largest label + 1"},
  {.name = "class-names", .type = OT_STRING, .offset = CO(class_names), .size = CS(class_names),
   .metavar = "A,B,...", .help = "class names, one per class (Fashion-MNIST's are set automatically)"},
  {.name = "normalize", .type = OT_BOOL, .offset = CO(normalize), .def = "false",
   .help = "store per-feature mean/std of the training split: features become (x*scale - mean)/std"},
  {.name = "normalize-from", .type = OT_STRING, .offset = CO(normalize_from), .size = CS(normalize_from),
   .metavar = "FILE.h5", .help = "store the mean/std of another dataset or of a checkpoint's training data instead "
                                 "(new data for a trained model; the scale must match)"},
  {.name = "gzip", .type = OT_INT, .offset = CO(gzip), .def = "0", .metavar = "L", .min = 0, .max = 9,
   .flags = OPT_RANGED, .help = "deflate level of the stored arrays (0 = none: fastest random reads)"},
  COMM_STALL_OPTION(ConvertOptions, stall_timeout),
  {.name = NULL},
};
/* clang-format on */
static const CliUsage convert_usage = {
    .usage = "mpitrain convert [--from idx|csv] [inputs] --out FILE.h5 [options]",
    .summary = "Turns IDX files (MNIST, Fashion-MNIST) or CSV files into an mpitrain dataset (HDF5).\n"
               "IDX pixels are stored as uint8 with scale 1/255, CSV features as float32. Runs on rank 0.",
    .example = "  mpitrain convert --out fmnist.h5                   # Fashion-MNIST from the Debian package\n"
               "  mpitrain convert --from csv --train a.csv --test b.csv --label-column last --out a.h5\n"};

/* Rows from IDX arrays in memory. */
typedef struct IdxSource {
  Idx img[2], lab[2];
  int d;
} IdxSource;

static int idx_fill(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                    MtError *err) {
  (void)err;
  IdxSource *src = ctx;
  memcpy(x, src->img[s].data + first * src->d, (size_t)(n * src->d));
  for (int64_t i = 0; i < n; i++) y[i] = src->lab[s].data[first + i];
  return 0;
}

/* Rows streamed from CSV readers (pass 2), one per split. */
typedef struct CsvSource {
  Csv rd[2];
  int d;
} CsvSource;

static int csv_fill(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                    MtError *err) {
  CsvSource *src = ctx;
  float *xf = x;
  for (int64_t i = 0; i < n; i++) {
    int r = mt_csv_next(&src->rd[s], err);
    if (r < 0) return -1;
    if (r == 0 || src->rd[s].d != src->d)
      return mt_fail(err, "%s changed while it was being converted (row %lld)", src->rd[s].path,
                     (long long)(first + i));
    memcpy(xf + i * src->d, src->rd[s].row, sizeof(float) * (size_t)src->d);
    y[i] = src->rd[s].label;
  }
  return 0;
}

/* "DIR/NAME.gz" or "DIR/NAME", whichever exists; "" if neither. */
static void idx_find(const char *dir, const char *name, char *out, size_t n) {
  if (snprintf(out, n, "%s/%s.gz", dir, name) < (int)n && access(out, F_OK) == 0) return;
  if (snprintf(out, n, "%s/%s", dir, name) < (int)n && access(out, F_OK) == 0) return;
  out[0] = '\0';
}

static int is_fashion_mnist_dir(const char *dir) {
  char buf[CLI_PATH];
  snprintf(buf, sizeof buf, "%s", dir);
  size_t n = strlen(buf);
  while (n > 1 && buf[n - 1] == '/') buf[--n] = '\0';
  const char *base = strrchr(buf, '/');
  return strcmp(base ? base + 1 : buf, "fashion-mnist") == 0;
}

/* Class names for the spec: --class-names, else Fashion-MNIST's when that is the source. */
static int class_names_pick(const ConvertOptions *o, char *buf, const char **names, int classes, int fashion,
                            const char *const **out, MtError *err) {
  *out = NULL;
  if (o->class_names[0] != '\0') {
    snprintf(buf, sizeof o->class_names, "%s", o->class_names);
    int n = split_names(buf, names, classes);
    if (n != classes)
      return mt_fail(err, "--class-names gives %d names but there are %d classes; expected one per class", n,
                     classes);
    *out = names;
  } else if (fashion && classes == 10) {
    *out = fmnist_names;
  }
  return 0;
}

/* --normalize-from: the training data's mean/std [d], from a checkpoint's /preprocess (verified by its CRC) or a
 * dataset's root attributes, for new data stored with the same scale (they normalise x * scale). */
static int normalize_from(const char *path, int d, float scale, float *mean, float *std, MtError *err) {
  char format[128];
  mt_data_probe_format(path, format, sizeof format);
  CheckpointMeta meta;
  memset(&meta, 0, sizeof meta);
  Model model;
  int have_model = 0, rc = -1, from_d = 0;
  Dataset *ds = NULL;
  float from_scale = 0;
  const float *m = NULL, *s = NULL;
  if (strcmp(format, CHECKPOINT_FORMAT) == 0) {
    if (mt_checkpoint_read_meta(path, &meta, err) != 0 || mt_model_create(&model, &meta.spec, 1, err) != 0) goto done;
    have_model = 1;
    if (mt_checkpoint_read_state(path, &meta, &model, NULL, err) != 0) goto done;
    if (!meta.has_preprocess) {
      mt_fail(err, "--normalize-from %s: the checkpoint stores no preprocessing (an older mpitrain wrote it); name "
              "the dataset it was trained on instead", path);
      goto done;
    }
    from_scale = meta.scale;
    from_d = meta.spec.n_inputs;
    m = meta.mean;
    s = meta.std;
  } else {
    DataOptions dopt = {.memory = MEMORY_NO, .max_rows = 1, .allow_unlabeled = 1};
    if (mt_data_open(&ds, path, &dopt, err) != 0) goto done;
    from_scale = mt_data_info(ds)->scale;
    from_d = mt_data_info(ds)->d;
    m = mt_data_mean(ds);
    s = mt_data_std(ds);
  }
  if (from_d != d)
    mt_fail(err, "--normalize-from %s: %s %d features; the data being converted has %d", path,
            ds ? "has" : "was trained on", from_d, d);
  else if (m == NULL)
    mt_fail(err, "--normalize-from %s: %s not normalised (no mean/std); use --normalize to compute them from this "
            "data", path, ds ? "is" : "was trained on data");
  else if (from_scale != scale)
    mt_fail(err, "--normalize-from %s: its statistics are of x * %g but this data is stored with scale %g; expected "
            "the same scale", path, (double)from_scale, (double)scale);
  else {
    memcpy(mean, m, sizeof(float) * (size_t)d);
    memcpy(std, s, sizeof(float) * (size_t)d);
    rc = 0;
  }
done:
  if (ds) mt_data_close(ds);
  if (have_model) mt_model_free(&model);
  mt_checkpoint_meta_free(&meta);
  return rc;
}

static int convert_idx(const ConvertOptions *o, const char *config, DataWriterSpec *spec, WriteSet *ws,
                       IdxSource *src, char *source, size_t source_n, MtError *err) {
  char path[4][CLI_PATH];
  const char *given[4] = {o->train_images, o->train_labels, o->test_images, o->test_labels};
  const char *std_name[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                             "t10k-labels-idx1-ubyte"};
  int need_dir = 0;
  for (int i = 0; i < 4; i++) need_dir |= given[i][0] == '\0';
  struct stat st;
  if (need_dir && (stat(o->dir, &st) != 0 || !S_ISDIR(st.st_mode)))
    return mt_fail(err, "--dir %s: %s; expected a directory of IDX files (HINT: apt-get install dataset-fashion-mnist, "
                   "or name the files with --train-images etc.)", o->dir,
                   errno == ENOENT || errno == 0 ? "No such directory" : strerror(errno));
  for (int i = 0; i < 4; i++) {
    if (given[i][0] != '\0')
      snprintf(path[i], CLI_PATH, "%s", given[i]);
    else
      idx_find(o->dir, std_name[i], path[i], CLI_PATH);
  }
  for (int i = 0; i < 2; i++)
    if (path[i][0] == '\0')
      return mt_fail(err, "--dir %s has no %s[.gz]; expected the IDX files of MNIST or Fashion-MNIST", o->dir,
                     std_name[i]);
  if ((path[2][0] == '\0') != (path[3][0] == '\0'))
    return mt_fail(err, "test images and labels go together: found %s but not the %s", path[2][0] ? path[2] : path[3],
                   path[2][0] ? "labels" : "images");
  static const char *const option[4] = {"--train-images", "--train-labels", "--test-images", "--test-labels"};
  FileRole inputs[5] = {{.role = "--config", .path = config}};
  for (int i = 0; i < 4; i++) inputs[1 + i] = (FileRole){.role = given[i][0] ? option[i] : "IDX file", .path = path[i]};
  if (cli_check_files(inputs, 5, o->out, o->shards, err) != 0) return -1;
  int has_test = path[2][0] != '\0';
  for (int s = 0; s < 1 + has_test; s++) {
    if (mt_idx_read(path[2 * s], 0, &src->img[s], err) != 0 || mt_idx_read(path[2 * s + 1], 1, &src->lab[s], err) != 0)
      return -1;
    if (src->img[s].n != src->lab[s].n)
      return mt_fail(err, "%s has %lld images but %s has %lld labels; expected one label per image", path[2 * s],
                     (long long)src->img[s].n, path[2 * s + 1], (long long)src->lab[s].n);
  }
  src->d = (int)src->img[0].d;
  if (has_test && src->img[1].d != src->img[0].d)
    return mt_fail(err, "%s has %lld values per image but %s has %lld; expected the same", path[2],
                   (long long)src->img[1].d, path[0], (long long)src->img[0].d);
  int max_label = 0;
  for (int s = 0; s < 1 + has_test; s++)
    for (int64_t i = 0; i < src->lab[s].n; i++) {
      int l = src->lab[s].data[i];
      if (o->classes > 0 && l >= o->classes)
        return mt_fail(err, "%s: label %d of item %lld is outside [0, %d) (--classes %d)", path[2 * s + 1], l,
                       (long long)i, o->classes, o->classes);
      if (l > max_label) max_label = l;
    }
  int fashion = (given[0][0] == '\0' && is_fashion_mnist_dir(o->dir)) || strstr(path[0], "fashion-mnist") != NULL;
  spec->d = src->d;
  spec->n_classes = o->classes > 0 ? o->classes : max_label + 1;
  spec->store_uint8 = 1;
  spec->scale = 1.0f / 255.0f;
  ws->n[0] = src->img[0].n;
  ws->n[1] = has_test ? src->img[1].n : 0;
  if (fashion)
    text_into(source, source_n, "Fashion-MNIST (Zalando Research, MIT licence), converted from IDX files in %s",
             o->dir);
  else
    text_into(source, source_n, "IDX files %s, %s%s%s%s%s", path[0], path[1], has_test ? ", " : "",
             has_test ? path[2] : "", has_test ? ", " : "", has_test ? path[3] : "");
  ws->fill = idx_fill;
  ws->ctx = src;
  return fashion;
}

/* --from csv: pass 1 over each file (rows, features, labels, sums), then readers open for pass 2. */
static int convert_csv(const ConvertOptions *o, const char *config, DataWriterSpec *spec, WriteSet *ws,
                       CsvSource *csv, CsvScan scan[2], char *source, size_t source_n, MtError *err) {
  if (o->train[0] == '\0')
    return mt_fail(err, "--from csv needs --train FILE.csv (and optionally --test FILE.csv)");
  const char *files[2] = {o->train, o->test};
  FileRole inputs[3] = {{.role = "--config", .path = config}, {.role = "--train", .path = o->train},
                        {.role = "--test", .path = o->test}};
  if (cli_check_files(inputs, 3, o->out, o->shards, err) != 0) return -1;
  for (int s = 0; s < 2; s++) {
    if (files[s][0] == '\0') continue;
    if (mt_csv_scan(files[s], o->label_column, o->classes, s == 0 && o->normalize, &scan[s], err) != 0) return -1;
    if (s == 1 && scan[1].d != scan[0].d)
      return mt_fail(err, "%s has %d features but %s has %d; expected the same columns", o->test, scan[1].d,
                     o->train, scan[0].d);
    ws->n[s] = scan[s].rows;
  }
  int64_t max_label = scan[0].max_label > scan[1].max_label ? scan[0].max_label : scan[1].max_label;
  spec->d = scan[0].d;
  spec->n_classes = o->classes > 0 ? o->classes : (int)(max_label + 1 > INT32_MAX ? INT32_MAX : max_label + 1);
  if (o->label_column == CSV_LABEL_NONE) {
    /* Features only: the class count is what --classes (or --class-names) says, else unknown (predict takes the
     * checkpoint's). */
    spec->no_labels = 1;
    spec->n_classes = o->classes;
    if (spec->n_classes == 0 && o->class_names[0] != '\0') {
      spec->n_classes = 1;
      for (const char *p = o->class_names; *p; p++) spec->n_classes += *p == ',';
    }
  }
  spec->store_uint8 = 0;
  spec->scale = 1.0f;
  text_into(source, source_n, "CSV %s%s%s", o->train, o->test[0] ? ", " : "", o->test);
  csv->d = spec->d;
  for (int s = 0; s < 2; s++)
    if (files[s][0] != '\0' && mt_csv_open(&csv->rd[s], files[s], o->label_column, o->classes, err) != 0) return -1;
  ws->fill = csv_fill;
  ws->ctx = csv;
  return 0;
}

/* The class count and the shard count against the rows found. */
static int convert_check_counts(const ConvertOptions *o, const DataWriterSpec *spec, const WriteSet *ws,
                                MtError *err) {
  if ((spec->n_classes < 2 && !(spec->no_labels && spec->n_classes == 0)) || spec->n_classes > DATA_MAX_CLASSES)
    return mt_fail(err, "the labels use %d class%s; expected 2 .. %d (set --classes if some classes have no samples)",
                   spec->n_classes, spec->n_classes == 1 ? "" : "es", DATA_MAX_CLASSES);
  if (o->shards > ws->n[0])
    return mt_fail(err, "--shards %d is more than the %lld training rows; expected at most one shard per row",
                   o->shards, (long long)ws->n[0]);
  return 0;
}

/* --normalize / --normalize-from: the mean and std [d] into spec (allocated into *mean, *std; mt_free). */
static int convert_normalise(const ConvertOptions *o, const IdxSource *idx, const CsvScan *scan, DataWriterSpec *spec,
                             float **mean, float **std, MtError *err) {
  if (!o->normalize && o->normalize_from[0] == '\0') return 0;
  *mean = mt_alloc(sizeof(float) * (size_t)spec->d, "mean", err);
  *std = *mean ? mt_alloc(sizeof(float) * (size_t)spec->d, "std", err) : NULL;
  if (*std == NULL) return -1;
  if (o->normalize_from[0] != '\0') {
    if (normalize_from(o->normalize_from, spec->d, spec->scale, *mean, *std, err) != 0) return -1;
  } else if (o->from == FROM_IDX) {
    if (mt_feature_stats(idx->img[0].data, 1, idx->img[0].n, spec->d, spec->scale, *mean, *std, err) != 0) return -1;
  } else {
    mt_feature_stats_from_sums(scan[0].sum, scan[0].rows, spec->d, *mean, *std);
  }
  spec->mean = *mean;
  spec->std = *std;
  return 0;
}

/* Rank 0's line (and the shards') after the set is written. */
static void convert_report(const ConvertOptions *o, const DataWriterSpec *spec, const WriteSet *ws, double t0) {
  char classes[64], tail[64 + 2 * CLI_PATH];
  if (spec->no_labels && spec->n_classes == 0)
    snprintf(classes, sizeof classes, "no labels, classes unknown");
  else
    snprintf(classes, sizeof classes, "%s%d classes", spec->no_labels ? "no labels, " : "", spec->n_classes);
  snprintf(tail, sizeof tail, "%s%s%s, in %.1f s", classes, o->normalize_from[0] ? ", mean/std from " : "",
           o->normalize_from, mt_now() - t0);
  cli_report_set("convert", o->out, o->shards, ws->n, spec->d, spec->store_uint8, tail);
}

static int convert_run(Comm *c, const ConvertOptions *o, const char *config, double t0, MtError *err) {
  IdxSource idx = {0};
  CsvSource csv = {0};
  CsvScan scan[2] = {{0}, {0}};
  float *mean = NULL, *std = NULL;
  char source[256] = "", names_buf[sizeof o->class_names];
  const char **names = NULL;
  char(*written)[WRITE_SET_PATH] = NULL;
  int rc = -1, fashion = 0;
  DataWriterSpec spec = {.gzip = o->gzip, .source = source};
  WriteSet ws = {.c = c, .cmd = "convert", .out = o->out, .shards = o->shards, .rank = 0, .size = 1};

  if (o->from == FROM_IDX) {
    fashion = convert_idx(o, config, &spec, &ws, &idx, source, sizeof source, err);
    if (fashion < 0) goto done;
  } else if (convert_csv(o, config, &spec, &ws, &csv, scan, source, sizeof source, err) != 0) {
    goto done;
  }
  if (convert_check_counts(o, &spec, &ws, err) != 0) goto done;
  names = calloc((size_t)spec.n_classes + 1, sizeof *names);
  if (names == NULL || class_names_pick(o, names_buf, names, spec.n_classes, fashion, &spec.class_names, err) != 0) {
    if (names == NULL) mt_fail(err, "out of memory");
    goto done;
  }
  if (convert_normalise(o, &idx, scan, &spec, &mean, &std, err) != 0) goto done;
  written = calloc((size_t)o->shards, sizeof *written);
  if (written == NULL) {
    mt_fail(err, "out of memory");
    goto done;
  }
  ws.written = written;
  ws.spec = spec;
  if (mt_write_set(&ws, err) != 0) {
    mt_write_set_undo(&ws);
    goto done;
  }
  convert_report(o, &spec, &ws, t0);
  rc = 0;
done:
  free(written);
  mt_free(std);
  mt_free(mean);
  free(names);
  for (int s = 1; s >= 0; s--) {
    mt_csv_close(&csv.rd[s]);
    mt_free(scan[s].sum);
    mt_free(idx.lab[s].data);
    mt_free(idx.img[s].data);
  }
  return rc;
}

int convert_main(Comm *c, int argc, char **argv) {
  double t0 = mt_now();
  ConvertOptions o;
  OptsResult res;
  MtError err = {0};
  if (cli_parse(c, convert_options, &convert_usage, &o, argc, argv, &res, &err) != 0) return 0;
  if (!err.failed && res.n_positional > 0)
    mt_fail(&err, "convert takes no arguments besides options (got '%s'); the output is --out FILE.h5",
            res.positional[0]);
  if (!err.failed) cli_check_out(o.out, &err);
  if (!err.failed && o.normalize && o.normalize_from[0] != '\0')
    mt_fail(&err, "--normalize and --normalize-from: choose one (compute the statistics from this data, or reuse "
            "the training data's)");
  if (cli_agree_and_report(c, &err) != 0) return EXIT_USAGE;
  mt_comm_watchdog_timeout(c, o.stall_timeout);
  mt_comm_stop_catch(); /* SIGTERM / SIGINT: the write is given up and its temporary removed (mt_write_set) */
  if (c->rank == 0 && convert_run(c, &o, res.config_path, t0, &err) == 0) fflush(stdout);
  cli_wait_for_all(c);
  mt_comm_stop_release();
  return cli_fail_exit(c, &err);
}
