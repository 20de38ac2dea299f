/* tools.c — the dataset subcommands: convert (IDX or CSV -> HDF5), synth (generated data of any size), info.
 *
 * Each is a thin layer over datawriter / data / synth: parse the option table (opts.h), do the work on the rank(s)
 * that own it, agree on the outcome (comm_agree) so every rank exits together, and let rank 0 print one line on
 * failure. Writing goes through one function, write_set, fed row by row by a source (IDX arrays in memory, a CSV
 * reader streaming the file, or the synthetic generator), so shards and chunked appends are done once. */
#include "tools.h"

#include <errno.h>
#include <stdarg.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/comm.h"
#include "mpitrain/config.h"
#include "mpitrain/data.h"
#include "mpitrain/datawriter.h"
#include "mpitrain/fileid.h"
#include "mpitrain/opts.h"
#include "mpitrain/synth.h"
#include "mpitrain/util.h"

#define TOOL_PATH 1024
#define TOOL_MAX_SHARDS 99999
#define TOOL_MAX_D (1 << 24)
#define TOOL_MAX_ROWS ((int64_t)INT32_MAX)
#define TOOL_MAX_CLASSES (1 << 20)
#define TOOL_CHUNK_BYTES ((size_t)4 << 20) /* rows handed to one datawriter_append */
#define TOOL_STD_FLOOR 1e-3f                /* a feature constant in training must not blow up 1e6x elsewhere */
#define EXIT_USAGE 2

#define NOMAX HUGE_VAL

static const char *const fmnist_names[10] = {"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                                             "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};

/* ==== Shared plumbing ==== */

/* snprintf into a fixed buffer where a cut-off text is acceptable (descriptions), without the truncation warning. */
static void text_into(char *buf, size_t n, const char *fmt, ...) MT_PRINTF(3, 4);
static void text_into(char *buf, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, n, fmt, ap);
  va_end(ap);
}


/* Ranks with nothing to do wait here for the busy ones without spinning a core each (comm_agree's allreduce would
 * busy-poll while rank 0 converts), watched by the stall inspector. */
static void wait_for_all(Comm *c) { comm_wait_all(c, "wait for the other ranks"); }

/* After a failure agreed on (err): rank 0 says it, and the exit code (128 + the signal when interrupted, else 1). */
static int fail_exit(Comm *c, MtError *err) {
  return comm_agree(c, err) == 0 ? 0 : comm_fail_exit(c, err);
}

/* Parses options; returns 0 to go on, or an exit code (0 after --help, 2 on a usage error, agreed over ranks). */
static int tool_parse(Comm *c, const OptionSpec *table, void *dst, int argc, char **argv, const char *usage,
                      const char *summary, const char *example, OptsResult *res, MtError *err) {
  int rc = opts_parse(table, dst, argc, argv, 1, 1, res, err);
  if (rc == 0 && res->help) {
    if (c->rank == 0) {
      opts_print_help_ex(stdout, usage, summary, table, 1);
      if (example) printf("\nexample:\n%s", example);
      fflush(stdout);
    }
    return -1;
  }
  return 0;
}

static int agree_and_report(Comm *c, MtError *err) {
  if (comm_agree(c, err) == 0) return 0;
  comm_report(c, err);
  return -1;
}


static int check_out(const char *out, MtError *err) {
  if (out[0] == '\0') return mt_fail(err, "--out FILE.h5 is required (where to write the dataset)");
  if (!mt_has_suffix(out, ".h5", 0) || strlen(out) == 3)
    return mt_fail(err, "--out %s: expected a file name ending in .h5 (shards are named NAME-00000-of-0000K.h5)",
                   out);
  return 0;
}

/* File k of the set named out: out itself when there is one file, else its shard names. */
static void set_file_name(const char *out, int k, int shards, char *path, size_t n) {
  if (shards == 1)
    snprintf(path, n, "%s", out);
  else
    data_shard_name(out, k, shards, path, n);
}

/* Before anything is read or written: the inputs that exist are regular files (a FIFO would block its reader), and
 * no file of the set to write (out, or each of its shards) is one of them: renaming the new file into place would
 * destroy that input. */
static int check_files(const FileRole *inputs, int n_inputs, const char *out, int shards, MtError *err) {
  for (int i = 0; i < n_inputs; i++)
    if (fileid_regular(inputs[i].path, inputs[i].role, err) != 0) return -1;
  for (int k = 0; k < shards; k++) {
    char path[TOOL_PATH];
    set_file_name(out, k, shards, path, sizeof path);
    FileRole o = {.role = "--out", .path = path, .replaced = 1};
    if (fileid_check(inputs, n_inputs, &o, 1, err) != 0) return -1;
  }
  return 0;
}


/* ==== Writing a set of shards from a row source ==== */

/* Fills rows [first, first+n) of split s into x [n, d] (stored type) and y [n]. Called in increasing row order
 * within each split for the shards one rank writes. */
typedef int (*RowFill)(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                       MtError *err);

typedef struct WriteSet {
  Comm *c;                /* for the stall inspector's progress */
  const char *cmd;        /* "synth", "convert": in the message of an interruption */
  const char *out;        /* the set's name: written as is when shards = 1 */
  int shards;
  int64_t n[2];           /* rows of the whole set */
  DataWriterSpec spec;    /* everything but n */
  RowFill fill;
  void *ctx;
  int rank, size;         /* shard k is written by rank k % size */
  char (*written)[TOOL_PATH]; /* [shards]: files this rank completed, removed again if the set fails */
  int n_written;
} WriteSet;

static int write_set(WriteSet *ws, MtError *err) {
  size_t elem = ws->spec.store_uint8 ? 1 : sizeof(float);
  int64_t chunk = (int64_t)(TOOL_CHUNK_BYTES / (elem * (size_t)ws->spec.d));
  if (chunk < 1) chunk = 1;
  void *x = mt_alloc((size_t)chunk * (size_t)ws->spec.d * elem, "write buffer", err);
  int32_t *y = x ? mt_alloc((size_t)chunk * sizeof *y, "label buffer", err) : NULL;
  int rc = -1;
  if (y == NULL) goto done;
  for (int k = ws->rank; k < ws->shards; k += ws->size) {
    char path[TOOL_PATH];
    set_file_name(ws->out, k, ws->shards, path, sizeof path);
    int64_t lo[2], hi[2];
    DataWriterSpec spec = ws->spec;
    for (int s = 0; s < 2; s++) {
      mt_even_split(ws->n[s], k, ws->shards, &lo[s], &hi[s]);
      spec.n[s] = hi[s] - lo[s];
    }
    DataWriter *w = NULL;
    if (datawriter_open(&w, path, &spec, err) != 0) goto done;
    for (int s = 0; s < 2; s++)
      for (int64_t r = lo[s]; r < hi[s]; r += chunk) {
        int64_t cnt = hi[s] - r < chunk ? hi[s] - r : chunk;
        comm_phase(ws->c, "write", r / chunk);
        int sig = comm_stop_signal(); /* SIGTERM / SIGINT (comm_stop_catch): give the set up, like any failure */
        if (sig != 0 && ws->shards == 1)
          mt_fail(err, "%s interrupted by %s: removed the unfinished %s; nothing written", ws->cmd,
                  comm_signal_name(sig), datawriter_temp(w));
        else if (sig != 0)
          mt_fail(err, "%s interrupted by %s: removed the unfinished shards of %s; nothing written", ws->cmd,
                  comm_signal_name(sig), ws->out);
        if (sig != 0 || ws->fill(ws->ctx, s, r, cnt, x, y, err) != 0 ||
            datawriter_append(w, (Split)s, x, y, cnt, err) != 0) {
          datawriter_abort(w);
          goto done;
        }
      }
    if (datawriter_close(w, err) != 0) goto done;
    snprintf(ws->written[ws->n_written++], TOOL_PATH, "%s", path);
  }
  rc = 0;
done:
  mt_free(y);
  mt_free(x);
  return rc;
}

/* After a failure anywhere: a partial set would open as a broken dataset, so take back what this rank wrote. */
static void write_set_undo(WriteSet *ws) {
  for (int i = ws->n_written - 1; i >= 0; i--) unlink(ws->written[i]);
  ws->n_written = 0;
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

/* Per-feature mean and std of x*scale over n rows (stored type), std floored at TOOL_STD_FLOOR. */
static int feature_stats(const void *x /* [n, d] */, int uint8, int64_t n, int d, float scale, float *mean /* [d] */,
                         float *std /* [d] */,
                         MtError *err) {
  double *sum = mt_alloc(2 * (size_t)d * sizeof(double), "feature statistics", err);
  if (sum == NULL) return -1;
  double *sq = sum + d;
  for (int64_t i = 0; i < n; i++)
    for (int j = 0; j < d; j++) {
      double v = uint8 ? (double)((const uint8_t *)x)[i * d + j] : (double)((const float *)x)[i * d + j];
      v *= scale;
      sum[j] += v;
      sq[j] += v * v;
    }
  for (int j = 0; j < d; j++) {
    double m = sum[j] / (double)n, var = sq[j] / (double)n - m * m;
    mean[j] = (float)m;
    std[j] = (float)sqrt(var > 0 ? var : 0);
    if (!(std[j] >= TOOL_STD_FLOOR)) std[j] = TOOL_STD_FLOOR;
  }
  mt_free(sum);
  return 0;
}

/* ==== IDX files (MNIST, Fashion-MNIST) ==== */

typedef struct Idx {
  uint8_t *data;  /* [n, d] */
  int64_t n, d;
} Idx;

static uint32_t be32(const unsigned char *b) {
  return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | (uint32_t)b[3];
}

/* Reads exactly n bytes; 0 on success, else the number of bytes read is in *got. */
static int gz_read_all(gzFile f, void *buf, size_t n, size_t *got) {
  *got = 0;
  while (*got < n) {
    size_t want = n - *got > ((size_t)1 << 30) ? (size_t)1 << 30 : n - *got;
    int r = gzread(f, (char *)buf + *got, (unsigned)want);
    if (r <= 0) return -1;
    *got += (size_t)r;
  }
  return 0;
}

/* An IDX file of unsigned bytes, gzip-compressed or not: labels (1 dimension) or images (2 or more). */
static int idx_read(const char *path, int labels, Idx *out, MtError *err) {
  memset(out, 0, sizeof *out);
  if (fileid_regular(path, NULL, err) != 0) return -1; /* before gzopen: a FIFO would block it */
  errno = 0;
  gzFile f = gzopen(path, "rb");
  if (f == NULL) return mt_fail(err, "cannot open '%s': %s", path, errno ? strerror(errno) : "out of memory");
  gzbuffer(f, 1 << 17);
  int rc = -1;
  unsigned char hdr[4], dimb[4 * 8];
  size_t got;
  const char *want = labels ? "0x00000801 (labels)" : "0x00000803 (images)";
  if (gz_read_all(f, hdr, 4, &got) != 0) {
    mt_fail(err, "%s: too short for an IDX file (%zu bytes); expected magic %s", path, got, want);
    goto done;
  }
  uint32_t magic = be32(hdr);
  int ndims = hdr[3];
  if (hdr[0] != 0 || hdr[1] != 0 || (labels ? ndims != 1 : (ndims < 2 || ndims > 8))) {
    mt_fail(err, "%s: bad IDX magic 0x%08x; expected %s", path, (unsigned)magic, want);
    goto done;
  }
  if (hdr[2] != 0x08) {
    mt_fail(err, "%s: IDX element type 0x%02x is not supported; expected 0x08 (unsigned byte)", path, hdr[2]);
    goto done;
  }
  if (gz_read_all(f, dimb, 4 * (size_t)ndims, &got) != 0) {
    mt_fail(err, "%s: truncated IDX header (%d dimensions announced)", path, ndims);
    goto done;
  }
  out->n = be32(dimb);
  out->d = 1;
  for (int i = 1; i < ndims; i++) {
    out->d *= be32(dimb + 4 * i);
    if (out->d > TOOL_MAX_D) break;
  }
  if (out->n < 1 || out->n > TOOL_MAX_ROWS || out->d < 1 || out->d > TOOL_MAX_D) {
    mt_fail(err, "%s: IDX header announces %lld items of %lld values; expected 1 .. %lld items of 1 .. %d", path,
            (long long)out->n, (long long)out->d, (long long)TOOL_MAX_ROWS, TOOL_MAX_D);
    goto done;
  }
  size_t bytes = (size_t)out->n * (size_t)out->d;
  out->data = mt_alloc(bytes, labels ? "IDX labels" : "IDX images", err);
  if (out->data == NULL) goto done;
  if (gz_read_all(f, out->data, bytes, &got) != 0) {
    int zerr = 0;
    const char *zmsg = gzerror(f, &zerr);
    if (zerr != Z_OK && zerr != Z_BUF_ERROR)
      mt_fail(err, "%s: %s", path, zmsg);
    else
      mt_fail(err, "%s: truncated: %zu of the %zu bytes its header announces (%lld x %lld)", path, got, bytes,
              (long long)out->n, (long long)out->d);
    goto done;
  }
  unsigned char extra;
  if (gzread(f, &extra, 1) > 0) {
    mt_fail(err, "%s: longer than its header announces (%lld x %lld bytes); expected nothing after them", path,
            (long long)out->n, (long long)out->d);
    goto done;
  }
  rc = 0;
done:
  gzclose(f);
  if (rc != 0) {
    mt_free(out->data);
    out->data = NULL;
  }
  return rc;
}

/* ==== CSV files (the reader: tools.h) ==== */

int csv_open(Csv *c, const char *path, int label_col, int64_t classes, MtError *err) {
  memset(c, 0, sizeof *c);
  c->path = path;
  c->label_col = label_col;
  c->classes = classes;
  if (fileid_regular(path, NULL, err) != 0) return -1; /* before fopen: a FIFO would block it */
  c->f = fopen(path, "r");
  if (c->f == NULL) return mt_fail(err, "cannot open '%s': %s", path, strerror(errno));
  return 0;
}

void csv_close(Csv *c) {
  free(c->row);
  free(c->line);
  if (c->f) fclose(c->f);
  memset(c, 0, sizeof *c);
}

/* The next line into c->line: 1, 0 at the end of the file, -1 on error. At most TOOL_CSV_MAX_LINE bytes:
 * getline grew its buffer to the size of whatever it was given (a file without line breaks, read whole). A NUL byte
 * would cut the line short unseen (the fields after it lost): refused. */
static int csv_line(Csv *c, MtError *err) {
  if (c->line == NULL && (c->line = malloc(c->cap = 4096)) == NULL) return mt_fail(err, "%s: out of memory", c->path);
  size_t len = 0;
  int ch = EOF;
  errno = 0;
  while ((ch = getc_unlocked(c->f)) != EOF && ch != '\n') {
    if (ch == '\0')
      return mt_fail(err, "%s:%lld: the line holds a NUL byte; expected a text file (UTF-8 or ASCII)", c->path,
                     (long long)c->lineno + 1);
    if (len == TOOL_CSV_MAX_LINE + 1) /* one more than the limit: a '\r' before the '\n' is not counted */
      return mt_fail(err, "%s:%lld: line longer than %zu bytes; is this a CSV file?", c->path,
                     (long long)c->lineno + 1, TOOL_CSV_MAX_LINE);
    if (len + 1 >= c->cap) {
      size_t cap = 2 * c->cap;
      if (cap > TOOL_CSV_MAX_LINE + 2) cap = TOOL_CSV_MAX_LINE + 2;
      char *l = realloc(c->line, cap);
      if (l == NULL) return mt_fail(err, "%s:%lld: out of memory", c->path, (long long)c->lineno + 1);
      c->line = l;
      c->cap = cap;
    }
    c->line[len++] = (char)ch;
  }
  if (ferror(c->f)) return mt_fail(err, "%s: read error: %s", c->path, strerror(errno ? errno : EIO));
  if (ch == EOF && len == 0) return 0;
  while (len > 0 && c->line[len - 1] == '\r') len--;
  if (len > TOOL_CSV_MAX_LINE)
    return mt_fail(err, "%s:%lld: line longer than %zu bytes; is this a CSV file?", c->path, (long long)c->lineno + 1,
                   TOOL_CSV_MAX_LINE);
  c->line[len] = '\0';
  c->lineno++;
  return 1;
}

/* The next row into c->row / c->label: 1 read, 0 end of file, -1 error (FILE:LINE in the message). Blank lines
 * are skipped, and so is the first line when it is not all numbers (a header). A UTF-8 byte-order mark (Excel's
 * "CSV UTF-8") before the first line is not part of it: it made the first row read as a header, and lost it. */
int csv_next(Csv *c, MtError *err) {
  for (;;) {
    int got = csv_line(c, err);
    if (got <= 0) return got;
    if (c->lineno == 1 && strncmp(c->line, "\xEF\xBB\xBF", 3) == 0) memmove(c->line, c->line + 3, strlen(c->line) - 2);
    const char *p = c->line;
    while (*p == ' ' || *p == '\t') p++;
    if (*p == '\0') continue;
    int first_line = !c->seen_line;
    c->seen_line = 1;

    /* Count fields first, so a ragged line is reported as ragged rather than as a bad number. */
    int fields = 1;
    for (const char *q = p; *q; q++) fields += *q == ',';
    if (c->fields != 0 && fields != c->fields)
      return mt_fail(err, "%s:%lld: %d fields but line %lld has %d; expected the same number on every line", c->path,
                     (long long)c->lineno, fields, (long long)c->first_line, c->fields);
    const int labeled = c->label_col != CSV_LABEL_NONE, d = fields - labeled;
    if (d > TOOL_MAX_D)
      return mt_fail(err, "%s:%lld: %d features; at most %d are supported", c->path, (long long)c->lineno, d,
                     TOOL_MAX_D);
    if (d > c->row_cap) {
      float *r = realloc(c->row, sizeof(float) * (size_t)d);
      if (r == NULL) return mt_fail(err, "%s:%lld: out of memory", c->path, (long long)c->lineno);
      c->row = r;
      c->row_cap = d;
    }
    int label_field = !labeled ? -1 : c->label_col == CSV_LABEL_LAST ? fields - 1 : 0, j = 0, bad = -1;
    double lab = 0;
    const char *q = p, *bad_at = p;
    for (int i = 0; i < fields; i++) {
      char *end;
      double v = strtod(q, &end);
      const char *e = end;
      while (*e == ' ' || *e == '\t') e++;
      int ok = end != q && (*e == ',' || *e == '\0') && isfinite(v) && isfinite((float)v);
      if (!ok && bad < 0) {
        bad = i;
        bad_at = q;
      }
      if (i == label_field)
        lab = v;
      else if (ok)
        c->row[j++] = (float)v;
      else
        j++;
      q = strchr(q, ',');
      q = q ? q + 1 : "";
    }
    if (bad >= 0) {
      if (first_line) continue; /* a header */
      while (*bad_at == ' ' || *bad_at == '\t') bad_at++;
      return mt_fail(err, "%s:%lld: field %d ('%.*s') is not a finite number", c->path, (long long)c->lineno, bad + 1,
                     (int)(strcspn(bad_at, ",") > 30 ? 30 : strcspn(bad_at, ",")), bad_at);
    }
    if (labeled && fields < 2)
      return mt_fail(err, "%s:%lld: one field; expected a label and at least one feature, separated by commas "
                     "(features only: --label-column none)", c->path, (long long)c->lineno);
    if (labeled && (lab < 0 || lab != floor(lab) || lab > INT32_MAX))
      return mt_fail(err, "%s:%lld: label %g (field %d) is not a class id; expected an integer >= 0", c->path,
                     (long long)c->lineno, lab, label_field + 1);
    if (labeled && c->classes > 0 && lab >= (double)c->classes)
      return mt_fail(err, "%s:%lld: label %.0f is outside [0, %lld) (--classes %lld)", c->path, (long long)c->lineno,
                     lab, (long long)c->classes, (long long)c->classes);
    if (c->fields == 0) {
      c->fields = fields;
      c->d = d;
      c->first_line = c->lineno;
    }
    c->label = labeled ? (int32_t)lab : -1;
    return 1;
  }
}

/* Pass 1 over a CSV file (tools.h). */
int csv_scan(const char *path, int label_col, int64_t classes, int want_stats, CsvScan *sc, MtError *err) {
  memset(sc, 0, sizeof *sc);
  sc->max_label = -1;
  Csv c;
  if (csv_open(&c, path, label_col, classes, err) != 0) return -1;
  int rc = -1, r;
  while ((r = csv_next(&c, err)) == 1) {
    int sig = comm_stop_signal();
    if (sig != 0) {
      mt_fail(err, "convert interrupted by %s while reading %s; nothing written", comm_signal_name(sig), path);
      goto done;
    }
    if (sc->rows == 0) {
      sc->d = c.d;
      if (want_stats && (sc->sum = mt_alloc(2 * (size_t)sc->d * sizeof(double), "feature statistics", err)) == NULL)
        goto done;
    }
    if (sc->rows == TOOL_MAX_ROWS) {
      mt_fail(err, "%s: more than %lld rows; at most that many per split are supported", path,
              (long long)TOOL_MAX_ROWS);
      goto done;
    }
    sc->rows++;
    if (c.label > sc->max_label) sc->max_label = c.label;
    if (sc->sum)
      for (int j = 0; j < sc->d; j++) {
        sc->sum[j] += c.row[j];
        sc->sum[sc->d + j] += (double)c.row[j] * c.row[j];
      }
  }
  if (r < 0) goto done;
  if (sc->rows == 0) {
    mt_fail(err, "%s: no data rows; expected lines of comma-separated numbers %s", path,
            label_col == CSV_LABEL_NONE ? "(features only)" : label_col == CSV_LABEL_LAST ? "with the label last"
                                                                               : "with the label first");
    goto done;
  }
  rc = 0;
done:
  csv_close(&c);
  if (rc != 0) {
    mt_free(sc->sum);
    sc->sum = NULL;
  }
  return rc;
}

/* ==== convert ==== */

enum { FROM_IDX = 0, FROM_CSV = 1 };
static const char *const from_choices[] = {"idx", "csv", NULL};
static const char *const label_column_choices[] = {"first", "last", "none", NULL};

typedef struct ConvertOptions {
  int from;
  char dir[TOOL_PATH];
  char train_images[TOOL_PATH], train_labels[TOOL_PATH], test_images[TOOL_PATH], test_labels[TOOL_PATH];
  char train[TOOL_PATH], test[TOOL_PATH];
  int label_column;
  int classes;
  char out[TOOL_PATH];
  int shards;
  int normalize;
  char normalize_from[TOOL_PATH];
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
   .max = TOOL_MAX_SHARDS, .flags = OPT_RANGED, .help = "split the rows over K files"},
  {.name = "classes", .type = OT_INT, .offset = CO(classes), .def = "auto", .metavar = "C", .min = 2,
   .max = TOOL_MAX_CLASSES, .flags = OPT_RANGED, .word = "auto", .word_value = 0,
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
    int r = csv_next(&src->rd[s], err);
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
  char buf[TOOL_PATH];
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
  data_probe_format(path, format, sizeof format);
  CheckpointMeta meta;
  memset(&meta, 0, sizeof meta);
  Model model;
  int have_model = 0, rc = -1, from_d = 0;
  Dataset *ds = NULL;
  float from_scale = 0;
  const float *m = NULL, *s = NULL;
  if (strcmp(format, CHECKPOINT_FORMAT) == 0) {
    if (checkpoint_read_meta(path, &meta, err) != 0 || model_create(&model, &meta.spec, 1, err) != 0) goto done;
    have_model = 1;
    if (checkpoint_read_state(path, &meta, &model, NULL, err) != 0) goto done;
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
    if (data_open(&ds, path, &dopt, err) != 0) goto done;
    from_scale = data_info(ds)->scale;
    from_d = data_info(ds)->d;
    m = data_mean(ds);
    s = data_std(ds);
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
  if (ds) data_close(ds);
  if (have_model) model_free(&model);
  checkpoint_meta_free(&meta);
  return rc;
}

static int convert_idx(const ConvertOptions *o, const char *config, DataWriterSpec *spec, WriteSet *ws,
                       IdxSource *src, char *source, size_t source_n, MtError *err) {
  char path[4][TOOL_PATH];
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
      snprintf(path[i], TOOL_PATH, "%s", given[i]);
    else
      idx_find(o->dir, std_name[i], path[i], TOOL_PATH);
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
  if (check_files(inputs, 5, o->out, o->shards, err) != 0) return -1;
  int has_test = path[2][0] != '\0';
  for (int s = 0; s < 1 + has_test; s++) {
    if (idx_read(path[2 * s], 0, &src->img[s], err) != 0 || idx_read(path[2 * s + 1], 1, &src->lab[s], err) != 0)
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

static int convert_run(Comm *c, const ConvertOptions *o, const char *config, double t0, MtError *err) {
  IdxSource idx = {0};
  CsvSource csv = {0};
  CsvScan scan[2] = {{0}, {0}};
  float *mean = NULL, *std = NULL;
  char source[256] = "", names_buf[sizeof o->class_names];
  const char **names = NULL;
  char(*written)[TOOL_PATH] = NULL;
  int rc = -1, fashion = 0;
  DataWriterSpec spec = {.gzip = o->gzip, .source = source};
  WriteSet ws = {.c = c, .cmd = "convert", .out = o->out, .shards = o->shards, .rank = 0, .size = 1};

  if (o->from == FROM_IDX) {
    fashion = convert_idx(o, config, &spec, &ws, &idx, source, sizeof source, err);
    if (fashion < 0) goto done;
  } else {
    if (o->train[0] == '\0') {
      mt_fail(err, "--from csv needs --train FILE.csv (and optionally --test FILE.csv)");
      goto done;
    }
    const char *files[2] = {o->train, o->test};
    FileRole inputs[3] = {{.role = "--config", .path = config}, {.role = "--train", .path = o->train},
                          {.role = "--test", .path = o->test}};
    if (check_files(inputs, 3, o->out, o->shards, err) != 0) goto done;
    for (int s = 0; s < 2; s++) {
      if (files[s][0] == '\0') continue;
      if (csv_scan(files[s], o->label_column, o->classes, s == 0 && o->normalize, &scan[s], err) != 0) goto done;
      if (s == 1 && scan[1].d != scan[0].d) {
        mt_fail(err, "%s has %d features but %s has %d; expected the same columns", o->test, scan[1].d, o->train,
                scan[0].d);
        goto done;
      }
      ws.n[s] = scan[s].rows;
    }
    int64_t max_label = scan[0].max_label > scan[1].max_label ? scan[0].max_label : scan[1].max_label;
    spec.d = scan[0].d;
    spec.n_classes = o->classes > 0 ? o->classes : (int)(max_label + 1 > INT32_MAX ? INT32_MAX : max_label + 1);
    if (o->label_column == CSV_LABEL_NONE) {
      /* Features only: the class count is what --classes (or --class-names) says, else unknown (predict takes the
       * checkpoint's). */
      spec.no_labels = 1;
      spec.n_classes = o->classes;
      if (spec.n_classes == 0 && o->class_names[0] != '\0') {
        spec.n_classes = 1;
        for (const char *p = o->class_names; *p; p++) spec.n_classes += *p == ',';
      }
    }
    spec.store_uint8 = 0;
    spec.scale = 1.0f;
    text_into(source, sizeof source, "CSV %s%s%s", o->train, o->test[0] ? ", " : "", o->test);
    csv.d = spec.d;
    for (int s = 0; s < 2; s++)
      if (files[s][0] != '\0' && csv_open(&csv.rd[s], files[s], o->label_column, o->classes, err) != 0) goto done;
    ws.fill = csv_fill;
    ws.ctx = &csv;
  }
  if ((spec.n_classes < 2 && !(spec.no_labels && spec.n_classes == 0)) || spec.n_classes > TOOL_MAX_CLASSES) {
    mt_fail(err, "the labels use %d class%s; expected 2 .. %d (set --classes if some classes have no samples)",
            spec.n_classes, spec.n_classes == 1 ? "" : "es", TOOL_MAX_CLASSES);
    goto done;
  }
  if (o->shards > ws.n[0]) {
    mt_fail(err, "--shards %d is more than the %lld training rows; expected at most one shard per row", o->shards,
            (long long)ws.n[0]);
    goto done;
  }
  names = calloc((size_t)spec.n_classes + 1, sizeof *names);
  if (names == NULL || class_names_pick(o, names_buf, names, spec.n_classes, fashion, &spec.class_names, err) != 0) {
    if (names == NULL) mt_fail(err, "out of memory");
    goto done;
  }
  if (o->normalize || o->normalize_from[0] != '\0') {
    mean = mt_alloc(sizeof(float) * (size_t)spec.d, "mean", err);
    std = mean ? mt_alloc(sizeof(float) * (size_t)spec.d, "std", err) : NULL;
    if (std == NULL) goto done;
    if (o->normalize_from[0] != '\0') {
      if (normalize_from(o->normalize_from, spec.d, spec.scale, mean, std, err) != 0) goto done;
    } else if (o->from == FROM_IDX) {
      if (feature_stats(idx.img[0].data, 1, idx.img[0].n, spec.d, spec.scale, mean, std, err) != 0) goto done;
    } else {
      for (int j = 0; j < spec.d; j++) {
        double m = scan[0].sum[j] / (double)scan[0].rows, var = scan[0].sum[spec.d + j] / (double)scan[0].rows - m * m;
        mean[j] = (float)m;
        std[j] = (float)sqrt(var > 0 ? var : 0);
        if (!(std[j] >= TOOL_STD_FLOOR)) std[j] = TOOL_STD_FLOOR;
      }
    }
    spec.mean = mean;
    spec.std = std;
  }
  written = calloc((size_t)o->shards, sizeof *written);
  if (written == NULL) {
    mt_fail(err, "out of memory");
    goto done;
  }
  ws.written = written;
  ws.spec = spec;
  if (write_set(&ws, err) != 0) {
    write_set_undo(&ws);
    goto done;
  }
  char classes[64];
  if (spec.no_labels && spec.n_classes == 0)
    snprintf(classes, sizeof classes, "no labels, classes unknown");
  else
    snprintf(classes, sizeof classes, "%s%d classes", spec.no_labels ? "no labels, " : "", spec.n_classes);
  printf("convert: wrote %s%s: %lld train + %lld test rows x %d features (%s), %s%s%s, in %.1f s\n", o->out,
         o->shards > 1 ? " as shards" : "", (long long)ws.n[0], (long long)ws.n[1], spec.d,
         spec.store_uint8 ? "uint8" : "float32", classes, o->normalize_from[0] ? ", mean/std from " : "",
         o->normalize_from, mt_now() - t0);
  if (o->shards > 1) {
    char first[TOOL_PATH];
    data_shard_name(o->out, 0, o->shards, first, sizeof first);
    printf("convert: %d files, %s ...\n", o->shards, first);
  }
  rc = 0;
done:
  free(written);
  mt_free(std);
  mt_free(mean);
  free(names);
  for (int s = 1; s >= 0; s--) {
    csv_close(&csv.rd[s]);
    mt_free(scan[s].sum);
    mt_free(idx.lab[s].data);
    mt_free(idx.img[s].data);
  }
  return rc;
}

int tool_convert(Comm *c, int argc, char **argv) {
  double t0 = mt_now();
  ConvertOptions o;
  OptsResult res;
  MtError err = {0};
  if (tool_parse(c, convert_options, &o, argc, argv,
                 "mpitrain convert [--from idx|csv] [inputs] --out FILE.h5 [options]",
                 "Turns IDX files (MNIST, Fashion-MNIST) or CSV files into an mpitrain dataset (HDF5).\n"
                 "IDX pixels are stored as uint8 with scale 1/255, CSV features as float32. Runs on rank 0.",
                 "  mpitrain convert --out fmnist.h5                   # Fashion-MNIST from the Debian package\n"
                 "  mpitrain convert --from csv --train a.csv --test b.csv --label-column last --out a.h5\n",
                 &res, &err) != 0)
    return 0;
  if (!err.failed && res.n_positional > 0)
    mt_fail(&err, "convert takes no arguments besides options (got '%s'); the output is --out FILE.h5",
            res.positional[0]);
  if (!err.failed) check_out(o.out, &err);
  if (!err.failed && o.normalize && o.normalize_from[0] != '\0')
    mt_fail(&err, "--normalize and --normalize-from: choose one (compute the statistics from this data, or reuse "
            "the training data's)");
  if (agree_and_report(c, &err) != 0) return EXIT_USAGE;
  comm_watchdog_timeout(c, o.stall_timeout);
  comm_stop_catch(); /* SIGTERM / SIGINT: the write is given up and its temporary removed (write_set) */
  if (c->rank == 0 && convert_run(c, &o, res.config_path, t0, &err) == 0) fflush(stdout);
  wait_for_all(c);
  comm_stop_release();
  return fail_exit(c, &err);
}

/* ==== synth ==== */

static const char *const dtype_choices[] = {"float32", "uint8", NULL};

typedef struct SynthOptions {
  int64_t samples, test_samples;
  int features, classes;
  int64_t seed;
  float noise;
  int dtype;  /* 0 float32, 1 uint8 */
  char out[TOOL_PATH];
  int shards, gzip;
  float stall_timeout;
} SynthOptions;

#define SO(f) offsetof(SynthOptions, f)
/* clang-format off */
static const OptionSpec synth_options[] = {
  {.name = "samples", .type = OT_INT64, .offset = SO(samples), .metavar = "N", .min = 1, .max = TOOL_MAX_ROWS,
   .flags = OPT_RANGED, .help = "training rows (required)"},
  {.name = "test-samples", .type = OT_INT64, .offset = SO(test_samples), .def = "0", .metavar = "M", .min = 0,
   .max = TOOL_MAX_ROWS, .flags = OPT_RANGED, .help = "test rows"},
  {.name = "features", .type = OT_INT, .offset = SO(features), .metavar = "D", .min = 1, .max = TOOL_MAX_D,
   .flags = OPT_RANGED, .help = "features per row (required)"},
  {.name = "classes", .type = OT_INT, .offset = SO(classes), .metavar = "C", .min = 2, .max = TOOL_MAX_CLASSES,
   .flags = OPT_RANGED, .help = "number of classes (required)"},
  {.name = "seed", .type = OT_INT64, .offset = SO(seed), .def = "1", .metavar = "S", .min = 0, .max = NOMAX,
   .flags = OPT_RANGED, .help = "seed: the same seed gives the same rows whatever --shards and ranks"},
  {.name = "noise", .type = OT_FLOAT, .offset = SO(noise), .def = "1", .metavar = "X", .min = 0, .max = NOMAX,
   .flags = OPT_RANGED, .help = "standard deviation of the noise around the class centres (centres are N(0,1))"},
  {.name = "dtype", .type = OT_ENUM, .offset = SO(dtype), .def = "float32", .choices = dtype_choices,
   .help = "stored type; uint8 quantises [-4s, 4s] (s = sqrt(1 + noise^2)) to 0..255, with scale/mean set so "
           "features come back within one step"},
  {.name = "out", .type = OT_STRING, .offset = SO(out), .size = sizeof(((SynthOptions *)0)->out),
   .metavar = "FILE.h5", .help = "dataset to write (required); with --shards K: FILE-00000-of-0000K.h5 ..."},
  {.name = "shards", .type = OT_INT, .offset = SO(shards), .def = "1", .metavar = "K", .min = 1,
   .max = TOOL_MAX_SHARDS, .flags = OPT_RANGED,
   .help = "split the rows over K files; under mpirun shard k is written by rank k % ranks"},
  {.name = "gzip", .type = OT_INT, .offset = SO(gzip), .def = "0", .metavar = "L", .min = 0, .max = 9,
   .flags = OPT_RANGED, .help = "deflate level of the stored arrays (0 = none)"},
  COMM_STALL_OPTION(SynthOptions, stall_timeout),
  {.name = NULL},
};
/* clang-format on */

typedef struct SynthSource {
  SynthSpec spec;
  float *centres;  /* [classes, d] */
  int uint8;
  float lo, step;  /* uint8: x is stored as round((x - lo) / step) */
  float *tmp;      /* uint8: [chunk, d] floats before quantising */
} SynthSource;

static int synth_fill(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                      MtError *err) {
  (void)err;
  SynthSource *src = ctx;
  int d = src->spec.d;
  if (!src->uint8) {
    synth_rows(&src->spec, src->centres, s, first, n, x, y);
    return 0;
  }
  synth_rows(&src->spec, src->centres, s, first, n, src->tmp, y);
  uint8_t *q = x;
  for (int64_t i = 0; i < n * d; i++) {
    float v = rintf((src->tmp[i] - src->lo) / src->step);
    q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  return 0;
}

int tool_synth(Comm *c, int argc, char **argv) {
  double t0 = mt_now();
  SynthOptions o;
  OptsResult res;
  MtError err = {0};
  if (tool_parse(c, synth_options, &o, argc, argv,
                 "mpitrain synth --samples N --features D --classes C --out FILE.h5 [options]",
                 "Writes a generated classification dataset of any size: Gaussian clusters around N(0,1) class\n"
                 "centres, in chunks with bounded memory. Row i is a function of (seed, split, i) only, so any\n"
                 "--shards and any number of ranks write the same rows.",
                 "  mpirun -np 4 mpitrain synth --samples 10000000 --test-samples 100000 --features 1024 "
                 "--classes 100 --shards 8 --out big.h5\n",
                 &res, &err) != 0)
    return 0;
  if (!err.failed && res.n_positional > 0)
    mt_fail(&err, "synth takes no arguments besides options (got '%s')", res.positional[0]);
  if (!err.failed && o.samples == 0) mt_fail(&err, "--samples N is required (training rows, at least 1)");
  if (!err.failed && o.features == 0) mt_fail(&err, "--features D is required (features per row, at least 1)");
  if (!err.failed && o.classes == 0) mt_fail(&err, "--classes C is required (at least 2)");
  if (!err.failed) check_out(o.out, &err);
  if (!err.failed && o.shards > o.samples)
    mt_fail(&err, "--shards %d is more than --samples %lld; expected at most one shard per row", o.shards,
            (long long)o.samples);
  if (!err.failed && !isfinite(o.noise)) mt_fail(&err, "--noise %g: expected a finite number >= 0", (double)o.noise);
  if (!err.failed && (double)o.classes * o.features * sizeof(float) > (double)((size_t)1 << 30))
    mt_fail(&err, "--classes %d x --features %d: the class centres alone would need more than 1 GiB", o.classes,
            o.features);
  if (agree_and_report(c, &err) != 0) return EXIT_USAGE;
  FileRole config = {.role = "--config", .path = res.config_path};
  if (c->rank == 0) check_files(&config, 1, o.out, o.shards, &err);
  if (agree_and_report(c, &err) != 0) return 1;
  comm_watchdog_timeout(c, o.stall_timeout);

  SynthSource src = {.spec = {o.samples, o.test_samples, o.features, o.classes, (uint64_t)o.seed, o.noise},
                     .uint8 = o.dtype == 1};
  float sigma = sqrtf(1.0f + o.noise * o.noise);
  src.lo = -4.0f * sigma;
  src.step = 8.0f * sigma / 255.0f;
  char source[256];
  snprintf(source, sizeof source, "mpitrain synth: Gaussian clusters, seed %lld, noise %g%s", (long long)o.seed,
           (double)o.noise, src.uint8 ? ", quantised to uint8" : "");
  float *mean = NULL, *std = NULL;
  char(*written)[TOOL_PATH] = NULL;
  WriteSet ws = {.c = c, .cmd = "synth", .out = o.out, .shards = o.shards, .n = {o.samples, o.test_samples},
                 .fill = synth_fill,
                 .ctx = &src, .rank = c->rank, .size = c->size};
  ws.spec = (DataWriterSpec){.d = o.features, .n_classes = o.classes, .store_uint8 = src.uint8, .scale = 1.0f,
                             .source = source, .gzip = o.gzip};
  comm_stop_catch(); /* SIGTERM / SIGINT: the set is given up and its temporaries removed (write_set) */
  if (c->rank < o.shards) { /* ranks beyond the shard count have nothing to write */
    src.centres = mt_alloc(sizeof(float) * (size_t)o.classes * (size_t)o.features, "class centres", &err);
    written = src.centres ? calloc((size_t)o.shards, sizeof *written) : NULL;
    if (src.centres && written == NULL) mt_fail(&err, "out of memory");
    if (written && src.uint8) {
      /* stored q decodes as (q*scale - mean)/std = q*step + lo */
      size_t chunk = TOOL_CHUNK_BYTES / (size_t)o.features;
      src.tmp = mt_alloc(sizeof(float) * (chunk ? chunk : 1) * (size_t)o.features, "quantisation buffer", &err);
      mean = mt_alloc(sizeof(float) * (size_t)o.features, "mean", &err);
      std = mean ? mt_alloc(sizeof(float) * (size_t)o.features, "std", &err) : NULL;
      for (int j = 0; std && j < o.features; j++) {
        mean[j] = -src.lo;
        std[j] = 1.0f;
      }
      ws.spec.scale = src.step;
      ws.spec.mean = mean;
      ws.spec.std = std;
    }
    if (!err.failed) {
      synth_centres(&src.spec, src.centres);
      ws.written = written;
      if (write_set(&ws, &err) != 0) write_set_undo(&ws);
    }
  }
  wait_for_all(c);
  comm_stop_release();
  int rc = 0;
  if (comm_agree(c, &err) != 0) {
    write_set_undo(&ws); /* another rank failed: the set is incomplete */
    rc = comm_fail_exit(c, &err);
  } else if (c->rank == 0) {
    int writers = c->size < o.shards ? c->size : o.shards;
    printf("synth: wrote %s%s: %lld train + %lld test rows x %d features (%s), %d classes, by %d rank%s in %.1f s\n",
           o.out, o.shards > 1 ? " as shards" : "", (long long)o.samples, (long long)o.test_samples, o.features,
           src.uint8 ? "uint8" : "float32", o.classes, writers, writers > 1 ? "s" : "", mt_now() - t0);
    if (o.shards > 1) {
      char first[TOOL_PATH];
      data_shard_name(o.out, 0, o.shards, first, sizeof first);
      printf("synth: %d files, %s ...\n", o.shards, first);
    }
    fflush(stdout);
  }
  mt_free(std);
  mt_free(mean);
  mt_free(src.tmp);
  free(written);
  mt_free(src.centres);
  return rc;
}

/* ==== info ==== */

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

#define INFO_SCAN_ROWS 4096

static void print_range(const char *what, const float *v /* [n] */, int n) {
  float lo = v[0], hi = v[0];
  for (int j = 1; j < n; j++) {
    if (v[j] < lo) lo = v[j];
    if (v[j] > hi) hi = v[j];
  }
  printf("%s in [%g, %g]", what, (double)lo, (double)hi);
}

/* Reads every row of split s (which data_read_range checks for NaN/Inf). */
static int info_scan(Dataset *ds, Split s, MtError *err) {
  const DataInfo *in = data_info(ds);
  float *x = mt_alloc(sizeof(float) * INFO_SCAN_ROWS * (size_t)in->d, "scan buffer", err);
  int32_t *y = x ? mt_alloc(sizeof(int32_t) * INFO_SCAN_ROWS, "scan labels", err) : NULL;
  int rc = y ? 0 : -1;
  for (int64_t r = 0; rc == 0 && r < in->n[s]; r += INFO_SCAN_ROWS) {
    int n = (int)(in->n[s] - r < INFO_SCAN_ROWS ? in->n[s] - r : INFO_SCAN_ROWS);
    rc = data_read_range(ds, s, r, n, x, y, err);
  }
  mt_free(y);
  mt_free(x);
  return rc;
}

static int info_dataset(const char *path, const InfoOptions *o, MtError *err) {
  DataOptions dopt = {.memory = o->memory_limit_mb > 0 ? MEMORY_AUTO : MEMORY_NO,
                      .memory_limit = o->memory_limit_mb << 20, .max_rows = INFO_SCAN_ROWS, .allow_unlabeled = 1};
  Dataset *ds = NULL;
  if (data_open(&ds, path, &dopt, err) != 0) return -1;
  const DataInfo *in = data_info(ds);
  static const char *const split_names[2] = {"train", "test"};
  int scanned[2] = {in->in_memory[0], in->in_memory[1]};
  for (int s = 0; s < 2; s++)
    if (!scanned[s] && o->scan) {
      if (info_scan(ds, (Split)s, err) != 0) {
        data_close(ds);
        return -1;
      }
      scanned[s] = 1;
    }

  printf("dataset:     %s\n", path);
  char format[128];
  data_probe_format(data_shard_path(ds, 0), format, sizeof format);
  printf("format:      %s\n", format[0] ? format : "(no format attribute: read as mpitrain-dataset)");
  if (in->n_shards > 1)
    printf("files:       %d shards: %s .. %s\n", in->n_shards, data_shard_path(ds, 0),
           data_shard_path(ds, in->n_shards - 1));
  else
    printf("files:       1: %s\n", data_shard_path(ds, 0));
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
  if (data_class_name(ds, 0)) {
    printf(": ");
    for (int k = 0; k < in->n_classes; k++) printf("%s%s", k ? ", " : "", data_class_name(ds, k));
  }
  printf("\nscale:       %g (features = x * scale%s)\n", (double)in->scale, in->has_norm ? ", then normalised" : "");
  if (in->has_norm) {
    printf("normalised:  per feature, (x * scale - mean) / std; ");
    print_range("mean", data_mean(ds), in->d);
    printf(", ");
    print_range("std", data_std(ds), in->d);
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
             split_names[s]);
  printf("\n");

  if (!any_labels) {
    data_close(ds);
    return 0;
  }
  /* label counts per class and split */
  int64_t *count = calloc(2 * (size_t)in->n_classes, sizeof *count);
  if (count == NULL) {
    data_close(ds);
    return mt_fail(err, "out of memory counting labels");
  }
  for (int s = 0; s < 2; s++) {
    const int32_t *y = data_labels(ds, (Split)s);
    for (int64_t i = 0; y && i < in->n[s]; i++) count[(size_t)s * in->n_classes + y[i]]++;
  }
  int w = 5;
  for (int k = 0; k < in->n_classes; k++)
    if (data_class_name(ds, k) && (int)strlen(data_class_name(ds, k)) > w) w = (int)strlen(data_class_name(ds, k));
  if (w > 40) w = 40;
  printf("labels:\n  %6s  %-*s %10s %10s\n", "class", w, "name", "train", in->n[1] > 0 ? "test" : "");
  for (int k = 0; k < in->n_classes; k++) {
    printf("  %6d  %-*.*s", k, w, w, data_class_name(ds, k) ? data_class_name(ds, k) : "");
    for (int s = 0; s < 1 + (in->n[1] > 0); s++)
      if (in->labeled[s])
        printf(" %10lld", (long long)count[(size_t)s * in->n_classes + k]);
      else
        printf(" %10s", "-");
    printf("\n");
  }
  free(count);
  data_close(ds);
  return 0;
}

typedef int (*InfoFn)(const char *path, const InfoOptions *o, MtError *err);

static int info_checkpoint(const char *path, const InfoOptions *o, MtError *err) {
  (void)o;
  return checkpoint_describe(path, err);
}

/* What info can describe, by the root `format` attribute. Files without one are read as datasets (data_open then
 * says what is missing). Checkpoints join here with their own describer. */
static const struct {
  const char *format;
  InfoFn fn;
} info_kinds[] = {
    {"mpitrain-dataset", info_dataset},
    {CHECKPOINT_FORMAT, info_checkpoint},
    {"", info_dataset},
};

int tool_info(Comm *c, int argc, char **argv) {
  InfoOptions o;
  OptsResult res;
  MtError err = {0};
  if (tool_parse(c, info_options, &o, argc, argv, "mpitrain info FILE [--scan] [--memory-limit-mb MB]",
                 "Describes a dataset (one file, one shard of a set, or the set's base name): splits, shapes,\n"
                 "types, classes, scaling, source and label counts, after the validation `mpitrain train` does;\n"
                 "or a checkpoint: model, optimiser, progress, arrays, CRC check and the run's options.",
                 "  mpitrain info fmnist.h5\n", &res, &err) != 0)
    return 0;
  if (!err.failed && res.n_positional != 1)
    mt_fail(&err, "info: expected one FILE (a dataset, one shard of a set, the set's base name, or a checkpoint), got %d",
            res.n_positional);
  if (agree_and_report(c, &err) != 0) return EXIT_USAGE;
  comm_watchdog_timeout(c, o.stall_timeout);
  if (c->rank == 0) {
    const char *path = res.positional[0];
    char format[128];
    data_probe_format(path, format, sizeof format);
    InfoFn fn = NULL;
    for (size_t i = 0; i < sizeof info_kinds / sizeof info_kinds[0]; i++)
      if (strcmp(format, info_kinds[i].format) == 0) fn = info_kinds[i].fn;
    if (fn == NULL)
      mt_fail(&err, "%s: format is '%s'; expected 'mpitrain-dataset' or '" CHECKPOINT_FORMAT "'", path, format);
    else
      fn(path, &o, &err);
    fflush(stdout);
  }
  wait_for_all(c);
  return fail_exit(c, &err);
}
