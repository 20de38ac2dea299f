/* fuzz_csv.c — libFuzzer target: convert's CSV reader (mt_csv_scan, then mt_csv_open / mt_csv_next, as `convert --from csv`
 * reads a file: pass 1 counts, pass 2 reads the rows).
 *
 * Input: one byte of options (bits 0-1: --label-column first / last / none; bits 2-4: --classes, 0 = auto, else
 * that + 1), then the bytes of the CSV file, written as they are.
 *
 * Invariants, beyond "no sanitizer report":
 *  - the reader accepts exactly the texts an independent, simpler parse of the same bytes accepts (below: the whole
 *    text split into lines first, each field copied out and converted on its own), and then both passes give the
 *    rows, features (bit for bit) and labels of that parse;
 *  - a refusal is one line naming the file;
 *  - the line buffer never grows past the line limit (CSV_MAX_LINE + its end). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "mpitrain/error.h"
#include "mpitrain/import.h"

/* What the reference parse makes of the text: accepted (rows x d, x [rows, d], y [rows]) or not. */
typedef struct Ref {
  int ok;
  int64_t rows;
  int d;
  float *x;
  int32_t *y;
} Ref;

static int blank(char ch) { return ch == ' ' || ch == '\t'; }

/* One field on its own (NUL-terminated where its comma was): a finite number, in float32 too, with white space
 * around it only. */
static int field_value(const char *tok, double *v) {
  char *end;
  *v = strtod(tok, &end);
  if (end == tok) return 0;
  while (blank(*end)) end++;
  return *end == '\0' && isfinite(*v) && isfinite((float)*v);
}

/* The rules of README "Dataset files", applied to the text as a whole. */
static void ref_parse(const char *text, size_t n, int label_col, int64_t classes, Ref *r) {
  memset(r, 0, sizeof *r);
  if (memchr(text, '\0', n) != NULL) return; /* not a text file */
  const int labeled = label_col != CSV_LABEL_NONE;
  int fields = 0, seen = 0;
  size_t cap = 0;
  for (size_t start = 0, lineno = 1; start < n; lineno++) {
    const char *nl = memchr(text + start, '\n', n - start);
    size_t end = nl ? (size_t)(nl - text) : n, a = start, b = end;
    start = end + 1;
    if (lineno == 1 && b - a >= 3 && memcmp(text + a, "\xEF\xBB\xBF", 3) == 0) a += 3;
    while (b > a && text[b - 1] == '\r') b--;
    if (b - a > CSV_MAX_LINE) return;
    size_t lead = a;
    while (lead < b && blank(text[lead])) lead++;
    if (lead == b) continue; /* blank */
    const int first = !seen;
    seen = 1;
    /* the fields: a copy of the line, cut at every comma */
    char *copy = malloc(b - lead + 1);
    FZ_CHECK(copy != NULL, "out of memory");
    memcpy(copy, text + lead, b - lead);
    copy[b - lead] = '\0';
    int nf = 1;
    for (char *q = copy; *q; q++)
      if (*q == ',') {
        *q = '\0';
        nf++;
      }
    double *v = malloc(sizeof(double) * (size_t)nf);
    FZ_CHECK(v != NULL, "out of memory");
    int good = 1;
    for (int k = 0, at = 0; k < nf; at += (int)strlen(copy + at) + 1, k++) good &= field_value(copy + at, &v[k]);
    free(copy);
    if (!good && first) { /* a header */
      free(v);
      continue;
    }
    double lab = labeled && good ? v[label_col == CSV_LABEL_LAST ? nf - 1 : 0] : -1;
    if (!good || (fields != 0 && nf != fields) || (labeled && nf < 2) ||
        (labeled && (lab < 0 || lab != floor(lab) || lab > INT32_MAX || (classes > 0 && lab >= (double)classes)))) {
      free(v);
      return;
    }
    fields = nf;
    r->d = nf - labeled;
    if ((size_t)r->rows == cap) {
      cap = cap ? 2 * cap : 16;
      float *x = realloc(r->x, sizeof(float) * cap * (size_t)r->d);
      int32_t *y = realloc(r->y, sizeof(int32_t) * cap);
      FZ_CHECK(x && y, "out of memory");
      r->x = x;
      r->y = y;
    }
    for (int k = 0, j = 0; k < nf; k++)
      if (!labeled || k != (label_col == CSV_LABEL_LAST ? nf - 1 : 0)) r->x[(size_t)r->rows * r->d + j++] = (float)v[k];
    r->y[r->rows++] = labeled ? (int32_t)lab : -1;
    free(v);
  }
  r->ok = r->rows > 0;
}

static void check_refusal(const MtError *err, const char *path) {
  FZ_CHECK(err->failed && err->msg[0] != '\0', "a refusal without a message");
  FZ_CHECK(strchr(err->msg, '\n') == NULL, "a message of more than one line: %s", err->msg);
  FZ_CHECK(strstr(err->msg, path) != NULL, "the message does not name the file: %s", err->msg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0) return 0;
  const int label_col = data[0] % 3;
  const int64_t classes = (data[0] >> 2 & 7) == 0 ? 0 : (data[0] >> 2 & 7) + 1;
  const char *text = (const char *)data + 1;
  const size_t n = size - 1;
  char path[600];
  snprintf(path, sizeof path, "%s/in.csv", fz_scratch_dir());
  FILE *f = fopen(path, "wb");
  FZ_CHECK(f != NULL && fwrite(text, 1, n, f) == n && fclose(f) == 0, "cannot write %s", path);

  Ref ref;
  ref_parse(text, n, label_col, classes, &ref);
  CsvScan scan;
  MtError err = {0};
  int rc = mt_csv_scan(path, label_col, classes, 1, &scan, &err);
  FZ_CHECK(rc == 0 || rc == -1, "mt_csv_scan returned %d", rc);
  if (rc != 0) {
    check_refusal(&err, path);
    FZ_CHECK(!ref.ok, "refused what the reference parse reads as %lld rows x %d: %s", (long long)ref.rows, ref.d,
             err.msg);
  } else {
    FZ_CHECK(ref.ok, "read %lld rows x %d of what the reference parse refuses", (long long)scan.rows, scan.d);
    FZ_CHECK(scan.rows == ref.rows && scan.d == ref.d, "pass 1: %lld rows x %d, the reference %lld x %d",
             (long long)scan.rows, scan.d, (long long)ref.rows, ref.d);
    int64_t max_label = -1;
    for (int64_t i = 0; i < ref.rows; i++)
      if (ref.y[i] > max_label) max_label = ref.y[i];
    FZ_CHECK(scan.max_label == max_label, "largest label %lld, the reference's %lld", (long long)scan.max_label,
             (long long)max_label);
    FZ_CHECK(scan.sum != NULL, "no statistics");
    mt_free(scan.sum);
    /* pass 2, as csv_fill reads it */
    Csv c;
    FZ_CHECK(mt_csv_open(&c, path, label_col, classes, &err) == 0, "mt_csv_open: %s", err.msg);
    for (int64_t i = 0; i < ref.rows; i++) {
      int r = mt_csv_next(&c, &err);
      FZ_CHECK(r == 1, "pass 2 ended at row %lld of %lld (%d): %s", (long long)i, (long long)ref.rows, r, err.msg);
      FZ_CHECK(c.d == ref.d, "row %lld has %d features; expected %d", (long long)i, c.d, ref.d);
      FZ_CHECK(c.label == ref.y[i], "row %lld: label %d, the reference's %d", (long long)i, c.label, ref.y[i]);
      FZ_CHECK(memcmp(c.row, ref.x + (size_t)i * ref.d, sizeof(float) * (size_t)ref.d) == 0,
               "row %lld: the features differ from the reference's", (long long)i);
    }
    FZ_CHECK(mt_csv_next(&c, &err) == 0, "pass 2 has more rows than pass 1: %s", err.msg);
    FZ_CHECK(c.cap <= CSV_MAX_LINE + 2, "the line buffer grew to %zu bytes", c.cap);
    mt_csv_close(&c);
  }
  free(ref.x);
  free(ref.y);
  return 0;
}
