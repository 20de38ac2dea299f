/* import.c — the dataset formats `mpitrain convert` reads (import.h): IDX files, gzip-compressed or not, read whole
 * into memory; CSV files, streamed line by line with a bounded line buffer; and the per-feature statistics stored
 * for --normalize. */
#include "mpitrain/import.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "mpitrain/comm.h"
#include "mpitrain/fileid.h"
#include "mpitrain/util.h"

#define FEATURE_STD_FLOOR 1e-3f /* a feature constant in training must not blow up 1e6x elsewhere */

/* ==== Feature statistics ==== */

void mt_feature_stats_from_sums(const double *sum, int64_t n, int d, float *mean, float *std) {
  for (int j = 0; j < d; j++) {
    double m = sum[j] / (double)n, var = sum[d + j] / (double)n - m * m;
    mean[j] = (float)m;
    std[j] = (float)sqrt(var > 0 ? var : 0);
    if (!(std[j] >= FEATURE_STD_FLOOR)) std[j] = FEATURE_STD_FLOOR;
  }
}

int mt_feature_stats(const void *x, int uint8, int64_t n, int d, float scale, float *mean, float *std, MtError *err) {
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
  mt_feature_stats_from_sums(sum, n, d, mean, std);
  mt_free(sum);
  return 0;
}

/* ==== IDX files (MNIST, Fashion-MNIST) ==== */

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
int mt_idx_read(const char *path, int labels, Idx *out, MtError *err) {
  memset(out, 0, sizeof *out);
  if (mt_fileid_regular(path, NULL, err) != 0) return -1; /* before gzopen: a FIFO would block it */
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
    if (out->d > DATA_MAX_FEATURES) break;
  }
  if (out->n < 1 || out->n > DATA_MAX_ROWS || out->d < 1 || out->d > DATA_MAX_FEATURES) {
    mt_fail(err, "%s: IDX header announces %lld items of %lld values; expected 1 .. %lld items of 1 .. %d", path,
            (long long)out->n, (long long)out->d, (long long)DATA_MAX_ROWS, DATA_MAX_FEATURES);
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

/* ==== CSV files ==== */

int mt_csv_open(Csv *c, const char *path, int label_col, int64_t classes, MtError *err) {
  memset(c, 0, sizeof *c);
  c->path = path;
  c->label_col = label_col;
  c->classes = classes;
  if (mt_fileid_regular(path, NULL, err) != 0) return -1; /* before fopen: a FIFO would block it */
  c->f = fopen(path, "r");
  if (c->f == NULL) return mt_fail(err, "cannot open '%s': %s", path, strerror(errno));
  return 0;
}

void mt_csv_close(Csv *c) {
  free(c->row);
  free(c->line);
  if (c->f) fclose(c->f);
  memset(c, 0, sizeof *c);
}

/* The next line into c->line: 1, 0 at the end of the file, -1 on error. At most CSV_MAX_LINE bytes:
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
    if (len == CSV_MAX_LINE + 1) /* one more than the limit: a '\r' before the '\n' is not counted */
      return mt_fail(err, "%s:%lld: line longer than %zu bytes; is this a CSV file?", c->path,
                     (long long)c->lineno + 1, CSV_MAX_LINE);
    if (len + 1 >= c->cap) {
      size_t cap = 2 * c->cap;
      if (cap > CSV_MAX_LINE + 2) cap = CSV_MAX_LINE + 2;
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
  if (len > CSV_MAX_LINE)
    return mt_fail(err, "%s:%lld: line longer than %zu bytes; is this a CSV file?", c->path, (long long)c->lineno + 1,
                   CSV_MAX_LINE);
  c->line[len] = '\0';
  c->lineno++;
  return 1;
}

/* The next row into c->row / c->label: 1 read, 0 end of file, -1 error (FILE:LINE in the message). Blank lines
 * are skipped, and so is the first line when it is not all numbers (a header). A UTF-8 byte-order mark (Excel's
 * "CSV UTF-8") before the first line is not part of it: it made the first row read as a header, and lost it. */
int mt_csv_next(Csv *c, MtError *err) {
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
    if (d > DATA_MAX_FEATURES)
      return mt_fail(err, "%s:%lld: %d features; at most %d are supported", c->path, (long long)c->lineno, d,
                     DATA_MAX_FEATURES);
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

/* Pass 1 over a CSV file (import.h). */
int mt_csv_scan(const char *path, int label_col, int64_t classes, int want_stats, CsvScan *sc, MtError *err) {
  memset(sc, 0, sizeof *sc);
  sc->max_label = -1;
  Csv c;
  if (mt_csv_open(&c, path, label_col, classes, err) != 0) return -1;
  int rc = -1, r;
  while ((r = mt_csv_next(&c, err)) == 1) {
    int sig = mt_comm_stop_signal();
    if (sig != 0) {
      mt_fail(err, "convert interrupted by %s while reading %s; nothing written", mt_comm_signal_name(sig), path);
      goto done;
    }
    if (sc->rows == 0) {
      sc->d = c.d;
      if (want_stats && (sc->sum = mt_alloc(2 * (size_t)sc->d * sizeof(double), "feature statistics", err)) == NULL)
        goto done;
    }
    if (sc->rows == DATA_MAX_ROWS) {
      mt_fail(err, "%s: more than %lld rows; at most that many per split are supported", path,
              (long long)DATA_MAX_ROWS);
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
  mt_csv_close(&c);
  if (rc != 0) {
    mt_free(sc->sum);
    sc->sum = NULL;
  }
  return rc;
}
