/* data_equal.c — do two datasets (files or shard sets) hold the same rows? For the command-line tests: a sharded
 * write must equal a single-file write, a multi-rank synth must equal a one-rank synth, uint8 synth must decode
 * close to float32 synth.
 *
 * usage: data_equal A B [--tol X] [--outliers F]
 *   A is read in memory, B streamed from its file(s) (so the two read paths are compared too). Labels must be
 *   equal; features bit-identical (--tol 0, the default) or within X, except at most a fraction F of the values
 *   (uint8 quantisation clips the far tails). Exit 0 if equal, 1 with the first difference otherwise. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/config.h"
#include "mpitrain/data.h"

#define BLOCK 1024

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: data_equal A B [--tol X] [--outliers F]\n");
    return 2;
  }
  double tol = 0, outliers = 0;
  for (int i = 3; i + 1 < argc; i += 2) {
    if (strcmp(argv[i], "--tol") == 0)
      tol = atof(argv[i + 1]);
    else if (strcmp(argv[i], "--outliers") == 0)
      outliers = atof(argv[i + 1]);
    else {
      fprintf(stderr, "data_equal: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  MPI_Init(&argc, &argv); /* the HDF5 library is the parallel build */
  int rc = 1;
  Dataset *a = NULL, *b = NULL;
  float *xa = NULL, *xb = NULL;
  int32_t *ya = NULL, *yb = NULL;
  MtError err = {0};
  DataOptions oa = {.memory = MEMORY_YES, .max_rows = BLOCK}, ob = {.memory = MEMORY_NO, .max_rows = BLOCK};
  if (mt_data_open(&a, argv[1], &oa, &err) != 0 || mt_data_open(&b, argv[2], &ob, &err) != 0) {
    fprintf(stderr, "data_equal: %s\n", err.msg);
    goto done;
  }
  const DataInfo *ia = mt_data_info(a), *ib = mt_data_info(b);
  if (ia->n[0] != ib->n[0] || ia->n[1] != ib->n[1] || ia->d != ib->d || ia->n_classes != ib->n_classes) {
    fprintf(stderr, "data_equal: shapes differ: %lld+%lld x %d, %d classes vs %lld+%lld x %d, %d classes\n",
            (long long)ia->n[0], (long long)ia->n[1], ia->d, ia->n_classes, (long long)ib->n[0],
            (long long)ib->n[1], ib->d, ib->n_classes);
    goto done;
  }
  int d = ia->d;
  xa = malloc(sizeof(float) * BLOCK * (size_t)d);
  xb = malloc(sizeof(float) * BLOCK * (size_t)d);
  ya = malloc(sizeof(int32_t) * BLOCK);
  yb = malloc(sizeof(int32_t) * BLOCK);
  if (!xa || !xb || !ya || !yb) goto done;
  double max_diff = 0;
  long long far = 0, values = 0;
  for (int s = 0; s < 2; s++)
    for (int64_t r = 0; r < ia->n[s]; r += BLOCK) {
      int n = (int)(ia->n[s] - r < BLOCK ? ia->n[s] - r : BLOCK);
      if (mt_data_read_range(a, (Split)s, r, n, xa, ya, &err) != 0 || mt_data_read_range(b, (Split)s, r, n, xb, yb, &err)) {
        fprintf(stderr, "data_equal: %s\n", err.msg);
        goto done;
      }
      for (int i = 0; i < n; i++)
        if (ya[i] != yb[i]) {
          fprintf(stderr, "data_equal: split %d row %lld: label %d vs %d\n", s, (long long)(r + i), ya[i], yb[i]);
          goto done;
        }
      if (tol == 0) {
        if (memcmp(xa, xb, sizeof(float) * (size_t)n * (size_t)d) != 0) {
          for (int64_t k = 0; k < (int64_t)n * d; k++)
            if (memcmp(xa + k, xb + k, sizeof(float)) != 0) {
              fprintf(stderr, "data_equal: split %d row %lld feature %d: %.9g vs %.9g\n", s,
                      (long long)(r + k / d), (int)(k % d), (double)xa[k], (double)xb[k]);
              break;
            }
          goto done;
        }
      } else {
        for (int64_t k = 0; k < (int64_t)n * d; k++) {
          double diff = fabs((double)xa[k] - (double)xb[k]);
          if (diff > tol) far++;
          else if (diff > max_diff) max_diff = diff;
        }
      }
      values += (long long)n * d;
    }
  if (tol > 0 && (double)far > outliers * (double)values) {
    fprintf(stderr, "data_equal: %lld of %lld values differ by more than %g (allowed: %g)\n", far, values, tol,
            outliers * (double)values);
    goto done;
  }
  if (tol == 0)
    printf("data_equal: %s and %s hold the same %lld + %lld rows, bit-identical\n", argv[1], argv[2],
           (long long)ia->n[0], (long long)ia->n[1]);
  else
    printf("data_equal: %s and %s hold the same %lld + %lld rows within %g (largest difference %g; %lld of %lld "
           "values beyond)\n", argv[1], argv[2], (long long)ia->n[0], (long long)ia->n[1], tol, max_diff, far, values);
  rc = 0;
done:
  free(yb);
  free(ya);
  free(xb);
  free(xa);
  mt_data_close(b);
  mt_data_close(a);
  MPI_Finalize();
  return rc;
}
