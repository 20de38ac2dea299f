/* import.h — dataset formats read by `mpitrain convert`: IDX files (MNIST, Fashion-MNIST; gzip or not) and CSV
 * files (a label and numeric features per line), and the per-feature statistics stored for normalisation. */
#ifndef MPITRAIN_IMPORT_H
#define MPITRAIN_IMPORT_H

#include <stdint.h>
#include <stdio.h>

#include "mpitrain/dataformat.h"
#include "mpitrain/error.h"

#define CSV_MAX_LINE ((size_t)1 << 20) /* bytes of one CSV line, its end not counted (README "Dataset files") */

/* ---- IDX files ---- */

typedef struct Idx {
  uint8_t *data;  /* [n, d] (mt_free) */
  int64_t n, d;
} Idx;

/* An IDX file of unsigned bytes, gzip-compressed or not: labels (1 dimension) or images (2 or more). 0 or -1. */
int mt_idx_read(const char *path, int labels, Idx *out, MtError *err);

/* ---- CSV files (convert --from csv reads each file twice: mt_csv_scan, then mt_csv_next row by row; its fuzz target,
 * tests/fuzz/fuzz_csv.c, does the same) ---- */

enum { CSV_LABEL_FIRST = 0, CSV_LABEL_LAST = 1, CSV_LABEL_NONE = 2 }; /* --label-column, in the order of its choices */

typedef struct Csv {
  const char *path;
  FILE *f;
  char *line;          /* the line just read, NUL-terminated, its end (\n, \r\n) removed */
  size_t cap;
  int64_t lineno;
  int seen_line;       /* a non-blank line was read (only the first may be a header) */
  int fields;          /* fields per line, fixed by the first data line (0 until then) */
  int64_t first_line;  /* that line's number */
  int label_col;       /* CSV_LABEL_FIRST, _LAST or _NONE (every field is a feature) */
  int64_t classes;     /* labels must be below this (0: any) */
  int d;               /* features per line (fields less the label), fixed with fields */
  float *row;          /* [d] features of the row just read */
  int row_cap;
  int32_t label;       /* its label (-1 with CSV_LABEL_NONE) */
} Csv;

/* Opens path (a regular file only) for mt_csv_next; labels must be below classes (0: any). 0 or -1. */
int mt_csv_open(Csv *c, const char *path, int label_col, int64_t classes, MtError *err);
/* The next row into c->row / c->label: 1 read, 0 end of file, -1 error (FILE:LINE in the message). */
int mt_csv_next(Csv *c, MtError *err);
void mt_csv_close(Csv *c);

/* Pass 1 over a CSV file: rows, features, largest label, and (want_stats) sums for normalisation. */
typedef struct CsvScan {
  int64_t rows;
  int d;
  int64_t max_label;
  double *sum;  /* [2, d]: sums and sums of squares of x, when asked for (mt_free) */
} CsvScan;
int mt_csv_scan(const char *path, int label_col, int64_t classes, int want_stats, CsvScan *sc, MtError *err);

/* ---- Feature statistics ---- */

/* Per-feature mean and std of x*scale over n rows (stored type: uint8 or float), std floored (a feature constant in
 * training must not blow up a million times elsewhere). 0 or -1. */
int mt_feature_stats(const void *x /* [n, d] */, int uint8, int64_t n, int d, float scale, float *mean /* [d] */,
                  float *std /* [d] */, MtError *err);
/* The same from sums and sums of squares over n rows (sum [2, d], as mt_csv_scan gives them). */
void mt_feature_stats_from_sums(const double *sum /* [2, d] */, int64_t n, int d, float *mean /* [d] */,
                             float *std /* [d] */);

#endif
