/* test_data.c — datasets end to end: datawriter -> mt_data_open/mt_data_read round trips, shards, streaming vs memory
 * (bit-identical), synthetic data determinism, and every validation error mt_data_open promises (bad files are made
 * here with the raw HDF5 API). Runs in a fresh directory under the current one, removed at the end. */
#define _GNU_SOURCE /* mkdtemp, nftw, M_PI */
#include <ftw.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mpitrain/atomicfile.h"
#include "mpitrain/config.h"
#include "mpitrain/data.h"
#include "mpitrain/datawriter.h"
#include "mpitrain/rng.h"
#include "mpitrain/synth.h"

static char dir[256]; /* the test's scratch directory */

static const char *tpath(const char *name) {
  static char buf[8][512];
  static int next;
  char *p = buf[next++ % 8];
  snprintf(p, 512, "%s/%s", dir, name);
  return p;
}

/* ==== Reference data: stored value of (split, row, feature) is a formula, so any reader can be checked ==== */

typedef struct Gen {
  int64_t n[2];
  int d, classes, uint8, norm, gzip;
} Gen;

static uint8_t gen_u8(int s, int64_t i, int j) { return (uint8_t)((i * 31 + j * 7 + s * 101) % 256); }
static float gen_f32(int s, int64_t i, int j) { return sinf((float)i * 0.37f + (float)j * 1.3f + (float)s) * 5.0f; }
static int32_t gen_label(const Gen *g, int s, int64_t i) { return (int32_t)((i * 7 + s * 3) % g->classes); }
static float gen_scale(const Gen *g) { return g->uint8 ? 1.0f / 255.0f : 0.5f; }
static float gen_mean(int j) { return 0.1f * (float)j; }
static float gen_std(int j) { return 0.5f + 0.25f * (float)j; }

/* What mt_data_read must return for a row (same formula as the reader, written independently). */
static void expect_row(const Gen *g, int s, int64_t i, float *x) {
  for (int j = 0; j < g->d; j++) {
    float v = g->uint8 ? (float)gen_u8(s, i, j) * gen_scale(g) : gen_f32(s, i, j) * gen_scale(g);
    x[j] = g->norm ? (v - gen_mean(j)) / gen_std(j) : v;
  }
}

/* Writes the dataset g as one file (k = 1) or k shards named after base, in appends of 7 rows. */
static void gen_write(const Gen *g, const char *base, int k) {
  float *mean = malloc(sizeof(float) * (size_t)g->d), *std = malloc(sizeof(float) * (size_t)g->d);
  assert_non_null(mean);
  assert_non_null(std);
  for (int j = 0; j < g->d; j++) {
    mean[j] = gen_mean(j);
    std[j] = gen_std(j);
  }
  const char *names[64];
  char namebuf[64][16];
  for (int c = 0; c < g->classes && c < 64; c++) {
    snprintf(namebuf[c], sizeof namebuf[c], "class%d", c);
    names[c] = namebuf[c];
  }
  for (int sh = 0; sh < k; sh++) {
    int64_t lo[2], hi[2];
    for (int s = 0; s < 2; s++) {
      /* first shards take one more row, as the tools do */
      int64_t q = g->n[s] / k, r = g->n[s] % k;
      lo[s] = sh * q + (sh < r ? sh : r);
      hi[s] = lo[s] + q + (sh < r ? 1 : 0);
    }
    DataWriterSpec spec = {{hi[0] - lo[0], hi[1] - lo[1]}, g->d, g->classes, g->uint8, gen_scale(g),
                           g->norm ? mean : NULL, g->norm ? std : NULL, "unit test", g->classes <= 64 ? names : NULL,
                           g->gzip, 0};
    char path[512];
    if (k == 1)
      snprintf(path, sizeof path, "%s", base);
    else
      mt_data_shard_name(base, sh, k, path, sizeof path);
    DataWriter *w = NULL;
    MtError err = {0};
    assert_int_equal(mt_datawriter_open(&w, path, &spec, &err), 0);
    for (int s = 0; s < 2; s++) {
      for (int64_t i = lo[s]; i < hi[s]; i += 7) {
        int64_t cnt = hi[s] - i < 7 ? hi[s] - i : 7;
        uint8_t xu[7 * 64];
        float xf[7 * 64];
        int32_t y[7];
        assert_true(g->d <= 64);
        for (int64_t r = 0; r < cnt; r++) {
          y[r] = gen_label(g, s, i + r);
          for (int j = 0; j < g->d; j++) {
            xu[r * g->d + j] = gen_u8(s, i + r, j);
            xf[r * g->d + j] = gen_f32(s, i + r, j);
          }
        }
        if (mt_datawriter_append(w, (Split)s, g->uint8 ? (const void *)xu : (const void *)xf, y, cnt, &err) != 0)
          fail_msg("append: %s", err.msg);
      }
    }
    if (mt_datawriter_close(w, &err) != 0) fail_msg("close: %s", err.msg);
  }
  free(std);
  free(mean);
}

static Dataset *open_ok(const char *path, int memory, int max_rows) {
  DataOptions o = {.memory = memory, .max_rows = max_rows};
  Dataset *ds = NULL;
  MtError err = {0};
  if (mt_data_open(&ds, path, &o, &err) != 0) fail_msg("mt_data_open %s: %s", path, err.msg);
  return ds;
}

/* Every row of split s through mt_data_read_range equals the reference. */
static void check_all_rows(Dataset *ds, const Gen *g, int s) {
  int64_t n = g->n[s];
  float *x = malloc(sizeof(float) * (size_t)(n * g->d)), *want = malloc(sizeof(float) * (size_t)g->d);
  int32_t *y = malloc(sizeof(int32_t) * (size_t)n);
  MtError err = {0};
  if (mt_data_read_range(ds, (Split)s, 0, (int)n, x, y, &err) != 0) fail_msg("read_range: %s", err.msg);
  for (int64_t i = 0; i < n; i++) {
    expect_row(g, s, i, want);
    assert_int_equal(y[i], gen_label(g, s, i));
    assert_memory_equal(x + i * g->d, want, sizeof(float) * (size_t)g->d);
  }
  free(y);
  free(want);
  free(x);
}

/* ==== Round trips ==== */

static void roundtrip(const Gen *g, const char *name) {
  gen_write(g, tpath(name), 1);
  for (int memory = MEMORY_YES; memory <= MEMORY_NO; memory++) {
    Dataset *ds = open_ok(tpath(name), memory, 5);
    const DataInfo *in = mt_data_info(ds);
    assert_int_equal(in->n[0], g->n[0]);
    assert_int_equal(in->n[1], g->n[1]);
    assert_int_equal(in->d, g->d);
    assert_int_equal(in->n_classes, g->classes);
    assert_int_equal(in->stored_uint8, g->uint8);
    assert_int_equal(in->has_norm, g->norm);
    assert_int_equal(in->n_shards, 1);
    assert_int_equal(in->n_classes_inferred, 0);
    assert_int_equal(in->in_memory[0], memory == MEMORY_YES);
    assert_true(in->scale == gen_scale(g));
    assert_string_equal(in->source, "unit test");
    assert_string_equal(mt_data_class_name(ds, 1), "class1");
    assert_null(mt_data_class_name(ds, g->classes));
    for (int s = 0; s < 2; s++)
      if (g->n[s] > 0) check_all_rows(ds, g, s);
    if (g->n[1] == 0) {
      float x[64];
      int32_t y;
      int64_t row = 0;
      MtError err = {0};
      assert_int_equal(mt_data_read(ds, SPLIT_TEST, &row, 1, x, &y, &err), -1);
      assert_non_null(strstr(err.msg, "no test split"));
    }
    mt_data_close(ds);
  }
}

static void test_roundtrip_uint8(void **state) {
  (void)state;
  Gen g = {{100, 30}, 7, 5, 1, 0, 0};
  roundtrip(&g, "rt_u8.h5");
}

static void test_roundtrip_float_no_test(void **state) {
  (void)state;
  Gen g = {{53, 0}, 9, 3, 0, 0, 0};
  roundtrip(&g, "rt_f32.h5");
}

static void test_roundtrip_norm_gzip(void **state) {
  (void)state;
  Gen g = {{77, 12}, 6, 4, 1, 1, 4};
  roundtrip(&g, "rt_norm_u8.h5");
  Gen f = {{40, 9}, 5, 2, 0, 1, 6};
  roundtrip(&f, "rt_norm_f32.h5");
}

/* ==== Shards, streaming vs memory ==== */

/* Random sorted rows with duplicates. */
static void random_rows(uint64_t seed, int64_t n_rows, int n, int64_t *rows) {
  for (int i = 0; i < n; i++) {
    uint32_t r[4];
    mt_rng_block(seed, RNG_STREAM_SHUFFLE, 99, (uint64_t)i, r);
    rows[i] = (int64_t)(r[0] % (uint32_t)n_rows);
    if (i > 0 && r[1] % 5 == 0) rows[i] = rows[i - 1]; /* plenty of duplicates */
  }
  for (int i = 1; i < n; i++) /* insertion sort: small n */
    for (int j = i; j > 0 && rows[j] < rows[j - 1]; j--) {
      int64_t t = rows[j];
      rows[j] = rows[j - 1];
      rows[j - 1] = t;
    }
}

static void compare_reads(Dataset *a, Dataset *b, int s, int64_t n_rows, int d, uint64_t seed) {
  enum { N = 60 };
  int64_t rows[N];
  float xa[N * 16], xb[N * 16];
  int32_t ya[N], yb[N];
  assert_true(d <= 16);
  for (int trial = 0; trial < 20; trial++) {
    int n = 1 + trial * 3 % N;
    random_rows(seed + (uint64_t)trial, n_rows, n, rows);
    MtError err = {0};
    if (mt_data_read(a, (Split)s, rows, n, xa, ya, &err) != 0) fail_msg("read a: %s", err.msg);
    if (mt_data_read(b, (Split)s, rows, n, xb, yb, &err) != 0) fail_msg("read b: %s", err.msg);
    assert_memory_equal(xa, xb, sizeof(float) * (size_t)(n * d));
    assert_memory_equal(ya, yb, sizeof(int32_t) * (size_t)n);
  }
  /* ranges crossing shard boundaries */
  for (int64_t first = 0; first < n_rows; first += 13) {
    int n = (int)(n_rows - first < N ? n_rows - first : N);
    MtError err = {0};
    if (mt_data_read_range(a, (Split)s, first, n, xa, ya, &err) != 0) fail_msg("range a: %s", err.msg);
    if (mt_data_read_range(b, (Split)s, first, n, xb, yb, &err) != 0) fail_msg("range b: %s", err.msg);
    assert_memory_equal(xa, xb, sizeof(float) * (size_t)(n * d));
    assert_memory_equal(ya, yb, sizeof(int32_t) * (size_t)n);
  }
}

static void test_shards_match_single_file(void **state) {
  (void)state;
  Gen g = {{101, 23}, 11, 7, 1, 1, 0};
  gen_write(&g, tpath("one.h5"), 1);
  gen_write(&g, tpath("three.h5"), 3);
  Dataset *one = open_ok(tpath("one.h5"), MEMORY_YES, 0);
  /* the set opens from its base name and from any shard's name, in memory and streaming */
  const char *names[] = {"three.h5", "three-00000-of-00003.h5", "three-00002-of-00003.h5"};
  for (int i = 0; i < 3; i++)
    for (int memory = MEMORY_YES; memory <= MEMORY_NO; memory++) {
      Dataset *three = open_ok(tpath(names[i]), memory, 8);
      assert_int_equal(mt_data_info(three)->n_shards, 3);
      assert_int_equal(mt_data_info(three)->n[0], 101);
      assert_int_equal(mt_data_info(three)->n[1], 23);
      assert_string_equal(mt_data_shard_path(three, 1), tpath("three-00001-of-00003.h5"));
      for (int s = 0; s < 2; s++) compare_reads(one, three, s, g.n[s], g.d, 1000 + (uint64_t)(i * 10 + memory));
      check_all_rows(three, &g, 0);
      mt_data_close(three);
    }
  mt_data_close(one);
}

static void test_streaming_bit_identical(void **state) {
  (void)state;
  /* float with normalisation and gzip: every conversion step is exercised on both paths */
  Gen g = {{300, 40}, 13, 10, 0, 1, 3};
  gen_write(&g, tpath("stream.h5"), 1);
  gen_write(&g, tpath("stream4.h5"), 4);
  Dataset *mem = open_ok(tpath("stream.h5"), MEMORY_YES, 0);
  Dataset *str = open_ok(tpath("stream.h5"), MEMORY_NO, 16); /* calls of up to 60 rows: several reads each */
  Dataset *str4 = open_ok(tpath("stream4.h5"), MEMORY_NO, 1000);
  assert_int_equal(mt_data_info(str)->in_memory[0], 0);
  assert_int_equal(mt_data_info(str)->in_memory[1], 0);
  for (int s = 0; s < 2; s++) {
    compare_reads(mem, str, s, g.n[s], g.d, 7 + (uint64_t)s);
    compare_reads(mem, str4, s, g.n[s], g.d, 70 + (uint64_t)s);
  }
  /* auto: a tiny limit streams, a large one holds in memory */
  DataOptions o = {.memory = MEMORY_AUTO, .memory_limit = 100};
  Dataset *a = NULL;
  MtError err = {0};
  assert_int_equal(mt_data_open(&a, tpath("stream.h5"), &o, &err), 0);
  assert_int_equal(mt_data_info(a)->in_memory[0], 0);
  mt_data_close(a);
  o.memory_limit = 1 << 20;
  assert_int_equal(mt_data_open(&a, tpath("stream.h5"), &o, &err), 0);
  assert_int_equal(mt_data_info(a)->in_memory[0], 1);
  mt_data_close(a);
  mt_data_close(str4);
  mt_data_close(str);
  mt_data_close(mem);
}

static void test_read_arguments(void **state) {
  (void)state;
  Gen g = {{20, 0}, 3, 2, 1, 0, 0};
  gen_write(&g, tpath("args.h5"), 1);
  for (int memory = MEMORY_YES; memory <= MEMORY_NO; memory++) {
    Dataset *ds = open_ok(tpath("args.h5"), memory, 4);
    float x[3 * 3];
    int32_t y[3];
    int64_t unsorted[3] = {5, 2, 9}, outside[2] = {3, 20};
    MtError err = {0};
    assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, unsorted, 3, x, y, &err), -1);
    assert_non_null(strstr(err.msg, "sorted ascending"));
    mt_error_clear(&err);
    assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, outside, 2, x, y, &err), -1);
    assert_non_null(strstr(err.msg, "[0, 20)"));
    mt_error_clear(&err);
    assert_int_equal(mt_data_read_range(ds, SPLIT_TRAIN, 18, 3, x, y, &err), -1);
    assert_non_null(strstr(err.msg, "outside"));
    mt_data_close(ds);
  }
}

/* ==== Features without labels, and another preprocessing ==== */

/* n train (and nt test) rows of d = 3 float32 features gen_f32 * 0.5, without labels; classes 0 = unknown. */
static void write_unlabeled(const char *path, int64_t n, int64_t nt, int classes) {
  DataWriterSpec spec = {{n, nt}, 3, classes, 0, 0.5f, NULL, NULL, "unit test", NULL, 0, 1};
  DataWriter *w = NULL;
  MtError err = {0};
  if (mt_datawriter_open(&w, path, &spec, &err) != 0) fail_msg("open: %s", err.msg);
  for (int s = 0; s < 2; s++)
    for (int64_t i = 0; i < spec.n[s]; i++) {
      float x[3];
      for (int j = 0; j < 3; j++) x[j] = gen_f32(s, i, j);
      if (mt_datawriter_append(w, (Split)s, x, NULL, 1, &err) != 0) fail_msg("append: %s", err.msg);
    }
  if (mt_datawriter_close(w, &err) != 0) fail_msg("close: %s", err.msg);
}

static void test_unlabeled(void **state) {
  (void)state;
  write_unlabeled(tpath("nolab.h5"), 20, 5, 0);
  Dataset *ds = NULL;
  MtError err = {0};
  /* refused unless the caller allows it (training needs labels) */
  assert_int_equal(mt_data_open(&ds, tpath("nolab.h5"), NULL, &err), -1);
  assert_non_null(strstr(err.msg, "no dataset /train/y"));
  assert_non_null(strstr(err.msg, "mpitrain predict"));
  for (int memory = MEMORY_YES; memory <= MEMORY_NO; memory++) {
    DataOptions o = {.memory = memory, .max_rows = 4, .allow_unlabeled = 1};
    mt_error_clear(&err);
    if (mt_data_open(&ds, tpath("nolab.h5"), &o, &err) != 0) fail_msg("allow_unlabeled: %s", err.msg);
    const DataInfo *in = mt_data_info(ds);
    assert_int_equal(in->labeled[SPLIT_TRAIN], 0);
    assert_int_equal(in->labeled[SPLIT_TEST], 0);
    assert_int_equal(in->n_classes, 0);
    assert_int_equal(in->n[SPLIT_TEST], 5);
    assert_null(mt_data_labels(ds, SPLIT_TRAIN));
    float x[20 * 3];
    int32_t y[20];
    assert_int_equal(mt_data_read_range(ds, SPLIT_TRAIN, 0, 20, x, y, &err), 0);
    for (int i = 0; i < 20; i++) {
      assert_int_equal(y[i], -1);
      for (int j = 0; j < 3; j++) assert_true(x[i * 3 + j] == gen_f32(0, i, j) * 0.5f);
    }
    const int64_t rows[4] = {0, 3, 3, 19};
    assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, rows, 4, x, y, &err), 0);
    for (int k = 0; k < 4; k++) {
      assert_int_equal(y[k], -1);
      assert_true(x[k * 3 + 2] == gen_f32(0, rows[k], 2) * 0.5f);
    }
    mt_data_close(ds);
  }
  /* a class count given without labels is kept */
  write_unlabeled(tpath("nolab3.h5"), 4, 0, 3);
  DataOptions o = {.allow_unlabeled = 1};
  if (mt_data_open(&ds, tpath("nolab3.h5"), &o, &err) != 0) fail_msg("%s", err.msg);
  assert_int_equal(mt_data_info(ds)->n_classes, 3);
  mt_data_close(ds);
  /* shards must agree on which splits have labels */
  Gen g = {{6, 0}, 3, 2, 0, 0, 0};
  gen_write(&g, tpath("mixed-00000-of-00002.h5"), 1);
  write_unlabeled(tpath("mixed-00001-of-00002.h5"), 6, 0, 2);
  assert_int_equal(mt_data_open(&ds, tpath("mixed.h5"), &o, &err), -1);
  assert_non_null(strstr(err.msg, "has labels for its train rows but"));
  assert_non_null(strstr(err.msg, "mixed-00001-of-00002.h5 has none; all shards must agree"));
}

static void test_set_preprocess(void **state) {
  (void)state;
  Gen g = {{30, 0}, 4, 3, 1, 1, 0}; /* uint8, normalised */
  gen_write(&g, tpath("pre.h5"), 1);
  for (int memory = MEMORY_YES; memory <= MEMORY_NO; memory++) {
    Dataset *ds = open_ok(tpath("pre.h5"), memory, 8);
    MtError err = {0};
    float x[30 * 4];
    int32_t y[30];
    /* another scale, no normalisation: x * 2 of the stored bytes */
    assert_int_equal(mt_data_set_preprocess(ds, 2.0f, NULL, NULL, &err), 0);
    assert_int_equal(mt_data_info(ds)->has_norm, 0);
    assert_null(mt_data_mean(ds));
    assert_int_equal(mt_data_read_range(ds, SPLIT_TRAIN, 0, 30, x, y, &err), 0);
    for (int i = 0; i < 30; i++)
      for (int j = 0; j < 4; j++) assert_true(x[i * 4 + j] == (float)gen_u8(0, i, j) * 2.0f);
    /* and with mean/std: (x * scale - mean) / std */
    const float mean[4] = {1, 2, 3, 4}, std[4] = {2, 4, 8, 16};
    assert_int_equal(mt_data_set_preprocess(ds, 0.5f, mean, std, &err), 0);
    assert_int_equal(mt_data_info(ds)->has_norm, 1);
    assert_int_equal(mt_data_read_range(ds, SPLIT_TRAIN, 0, 30, x, y, &err), 0);
    for (int i = 0; i < 30; i++)
      for (int j = 0; j < 4; j++) assert_true(x[i * 4 + j] == ((float)gen_u8(0, i, j) * 0.5f - mean[j]) / std[j]);
    const float zero[4] = {1, 0, 1, 1};
    assert_int_equal(mt_data_set_preprocess(ds, 0.5f, mean, zero, &err), -1);
    assert_non_null(strstr(err.msg, "std of feature 1 = 0; expected a positive finite number"));
    mt_data_close(ds);
  }
}

/* The one check of a scale and mean/std, which the reader, the writer, mt_data_set_preprocess and checkpoints share. */
static void test_check_preprocess(void **state) {
  (void)state;
  const float mean[3] = {0, 1, 2}, std[3] = {1, 2, 3}, mean_nan[3] = {0, NAN, 2}, std_inf[3] = {1, 2, INFINITY},
              std_neg[3] = {1, -2, 3};
  const struct {
    double scale;
    const float *mean, *std;
    const char *msg; /* NULL: accepted */
  } cases[] = {
      {1.0, NULL, NULL, NULL},
      {1.0 / 255.0, mean, std, NULL},
      {-1.0, NULL, NULL, "f.h5: scale = -1; expected a positive finite number"},
      {0.0, NULL, NULL, "f.h5: scale = 0; expected a positive finite number"},
      {NAN, NULL, NULL, "f.h5: scale = nan; expected a positive finite number"},
      {INFINITY, NULL, NULL, "f.h5: scale = inf; expected a positive finite number"},
      {1e-50, NULL, NULL, "f.h5: scale = 1e-50 is 0 in float32; expected a positive finite number"},
      {1e300, NULL, NULL, "f.h5: scale = 1e+300 is infinite in float32; expected a positive finite number"},
      {1.0, mean, NULL, "f.h5: has mean but no std; normalisation needs both"},
      {1.0, NULL, std, "f.h5: has std but no mean; normalisation needs both"},
      {1.0, mean_nan, std, "f.h5: mean of feature 1 = nan; expected a finite number"},
      {1.0, mean, std_inf, "f.h5: std of feature 2 = inf; expected a positive finite number"},
      {1.0, mean, std_neg, "f.h5: std of feature 1 = -2; expected a positive finite number"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    MtError err = {0};
    int rc = mt_data_check_preprocess("f.h5", cases[i].scale, cases[i].mean, cases[i].std, 3, &err);
    if (cases[i].msg == NULL) {
      assert_int_equal(rc, 0);
    } else {
      assert_int_equal(rc, -1);
      assert_string_equal(err.msg, cases[i].msg);
    }
  }
}

/* ==== Writer ==== */

static void test_writer_checks(void **state) {
  (void)state;
  DataWriterSpec spec = {{3, 0}, 2, 2, 0, 1.0f, NULL, NULL, "w", NULL, 0, 0};
  DataWriter *w = NULL;
  MtError err = {0};
  float x[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  int32_t y[4] = {0, 1, 0, 1}, bad_y[1] = {2};
  const char *path = tpath("w.h5");
  char tmp[600];
  char host[256];
  mt_atomic_host_name(host, sizeof host);
  snprintf(tmp, sizeof tmp, "%s/.w.h5.tmp.%s.%ld", dir, host, (long)getpid()); /* atomicfile.h's name, spelt out */

  /* too few rows: close fails, nothing appears under the final name and the temporary is gone */
  assert_int_equal(mt_datawriter_open(&w, path, &spec, &err), 0);
  assert_int_equal(access(tmp, F_OK), 0);
  assert_int_equal(mt_datawriter_append(w, SPLIT_TRAIN, x, y, 2, &err), 0);
  assert_int_equal(mt_datawriter_close(w, &err), -1);
  assert_non_null(strstr(err.msg, "received 2 rows"));
  assert_int_equal(access(path, F_OK), -1);
  assert_int_equal(access(tmp, F_OK), -1);

  /* too many rows, bad label, NaN: refused; abort removes the temporary */
  mt_error_clear(&err);
  assert_int_equal(mt_datawriter_open(&w, path, &spec, &err), 0);
  assert_int_equal(mt_datawriter_append(w, SPLIT_TRAIN, x, y, 4, &err), -1);
  assert_non_null(strstr(err.msg, "opened for 3"));
  mt_error_clear(&err);
  assert_int_equal(mt_datawriter_append(w, SPLIT_TRAIN, x, bad_y, 1, &err), -1);
  assert_non_null(strstr(err.msg, "outside [0, 2)"));
  mt_error_clear(&err);
  x[1] = NAN;
  assert_int_equal(mt_datawriter_append(w, SPLIT_TRAIN, x, y, 1, &err), -1);
  assert_non_null(strstr(err.msg, "finite"));
  x[1] = 1;
  mt_datawriter_abort(w);
  assert_int_equal(access(tmp, F_OK), -1);
  assert_int_equal(access(path, F_OK), -1);

  /* a directory that does not exist: named in the message */
  mt_error_clear(&err);
  assert_int_equal(mt_datawriter_open(&w, tpath("nodir/x.h5"), &spec, &err), -1);
  assert_non_null(strstr(err.msg, "nodir/x.h5"));
  assert_non_null(strstr(err.msg, "No such file or directory"));
  mt_error_clear(&err);
  spec.n_classes = 1;
  assert_int_equal(mt_datawriter_open(&w, path, &spec, &err), -1);
  assert_non_null(strstr(err.msg, "at least 2"));
}

/* ==== Synthetic data ==== */

static void test_synth_deterministic(void **state) {
  (void)state;
  SynthSpec sp = {500, 100, 37, 6, 12345, 0.7f};
  float centres[6 * 37], rows[50 * 37], one[37];
  int32_t ys[50], y1;
  mt_synth_centres(&sp, centres);
  /* any order, any split of the range gives the same rows as mt_synth_sample */
  for (int s = 0; s < 2; s++)
    for (int64_t first = 0; first < 100; first += 50) {
      mt_synth_rows(&sp, centres, s, first, 50, rows, ys);
      for (int64_t r = 49; r >= 0; r--) {
        mt_synth_sample(&sp, s, first + r, one, &y1);
        assert_int_equal(y1, ys[r]);
        assert_memory_equal(one, rows + r * 37, sizeof one);
        assert_true(y1 >= 0 && y1 < 6);
      }
    }
  /* the noise is the documented Box–Muller on the row's blocks (checked against libm, to float accuracy) */
  SynthSpec unit = sp;
  unit.noise = 1.0f;
  mt_synth_sample(&unit, 1, 77, one, &y1);
  for (int j = 0; j < 37; j++) {
    uint32_t w[4];
    mt_rng_block(unit.seed, RNG_STREAM_SYNTH, ((uint64_t)4 << 52) | 77u, (uint64_t)j / 4, w);
    int pair = (j % 4) / 2;
    double u1 = ((double)(w[2 * pair] >> 8) + 1.0) / 16777216.0;
    uint32_t v = w[2 * pair + 1];
    double angle = (double)(v >> 30) * M_PI / 2 + ((double)((v >> 8) & 0x3fffff) / 4194304.0 - 0.5) * M_PI / 2;
    double z = sqrt(-2.0 * log(u1)) * (j % 2 ? sin(angle) : cos(angle));
    assert_true(fabs((double)(one[j] - centres[y1 * 37 + j]) - z) < 2e-5 * (1.0 + fabs(z)));
  }
  /* ... and standard normal: moments and tails over 200000 draws */
  {
    SynthSpec big = {200, 0, 1000, 2, 99, 1.0f};
    float *cb = malloc(sizeof(float) * 2 * 1000), *xb = malloc(sizeof(float) * 200 * 1000);
    int32_t *yb = malloc(sizeof(int32_t) * 200);
    assert_true(cb && xb && yb);
    mt_synth_centres(&big, cb);
    mt_synth_rows(&big, cb, 0, 0, 200, xb, yb);
    double m1 = 0, m2 = 0, m3 = 0, m4 = 0, tail = 0;
    for (int r = 0; r < 200; r++)
      for (int j = 0; j < 1000; j++) {
        double z = (double)xb[r * 1000 + j] - (double)cb[yb[r] * 1000 + j];
        m1 += z;
        m2 += z * z;
        m3 += z * z * z;
        m4 += z * z * z * z;
        tail += fabs(z) > 3.0;
      }
    const double n = 200000;
    /* standard errors: mean 0.0022, variance 0.0032, skew 0.0055, 4th moment 0.024, P(|z|>3) 0.00012 */
    assert_true(fabs(m1 / n) < 0.01);
    assert_true(fabs(m2 / n - 1.0) < 0.015);
    assert_true(fabs(m3 / n) < 0.03);
    assert_true(fabs(m4 / n - 3.0) < 0.12);
    assert_true(fabs(tail / n - 0.0027) < 0.0006);
    free(yb);
    free(xb);
    free(cb);
  }
  /* train and test rows differ; another seed differs */
  float a[37], b[37];
  int32_t ya, yb;
  mt_synth_sample(&sp, 0, 3, a, &ya);
  mt_synth_sample(&sp, 1, 3, b, &yb);
  assert_memory_not_equal(a, b, sizeof a);
  SynthSpec other = sp;
  other.seed = 12346;
  mt_synth_sample(&other, 0, 3, b, &yb);
  assert_memory_not_equal(a, b, sizeof a);
  /* labels are spread over every class; noise 0 puts every row on its centre */
  int count[6] = {0};
  for (int64_t i = 0; i < 600; i++) {
    mt_synth_sample(&sp, 0, i, a, &ya);
    count[ya]++;
  }
  for (int c = 0; c < 6; c++) assert_true(count[c] > 60 && count[c] < 140);
  other = sp;
  other.noise = 0.0f;
  mt_synth_sample(&other, 0, 8, a, &ya);
  assert_memory_equal(a, centres + ya * 37, sizeof a);

  /* mt_data_open_synthetic serves the same rows */
  Dataset *ds = NULL;
  MtError err = {0};
  assert_int_equal(mt_data_open_synthetic(&ds, &sp, &err), 0);
  assert_int_equal(mt_data_info(ds)->n[0], 500);
  assert_int_equal(mt_data_info(ds)->n[1], 100);
  int64_t pick[3] = {0, 250, 499};
  float got[3 * 37];
  int32_t gy[3];
  assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, pick, 3, got, gy, &err), 0);
  for (int k = 0; k < 3; k++) {
    mt_synth_sample(&sp, 0, pick[k], one, &y1);
    assert_int_equal(gy[k], y1);
    assert_memory_equal(got + k * 37, one, sizeof one);
  }
  mt_data_close(ds);
  SynthSpec bad = sp;
  bad.n_classes = 1;
  assert_int_equal(mt_data_open_synthetic(&ds, &bad, &err), -1);
  assert_non_null(strstr(err.msg, "classes"));
}

/* ==== Bad files, made with the raw HDF5 API ==== */

typedef struct Bad {
  const char *name;
  const char *phrase;  /* mt_data_open's message must contain it (and the file name) */
} Bad;

static hid_t h5_create(const char *name) {
  hid_t f = H5Fcreate(tpath(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(f >= 0);
  return f;
}

/* A dataset at path (groups created on the way), dims[rank], of file type ftype from mtype data (NULL: unwritten).
 * maxdims unlimited on the first axis (chunked), so a huge extent costs nothing. */
static void h5_dataset(hid_t f, const char *path, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                       const void *data) {
  hsize_t maxdims[3], chunk[3];
  for (int i = 0; i < rank; i++) {
    maxdims[i] = i == 0 ? H5S_UNLIMITED : dims[i];
    chunk[i] = dims[i] == 0 ? 1 : dims[i] > 64 ? 64 : dims[i];
  }
  hid_t sp = H5Screate_simple(rank, dims, maxdims), lcpl = H5Pcreate(H5P_LINK_CREATE),
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
  assert_true(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
  assert_true(H5Pset_chunk(dcpl, rank, chunk) >= 0);
  hid_t ds = H5Dcreate2(f, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
  assert_true(ds >= 0);
  if (data) assert_true(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data) >= 0);
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(sp);
}

static void h5_attr_int(hid_t f, const char *name, int v) {
  hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I64LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Awrite(a, H5T_NATIVE_INT, &v) >= 0);
  H5Aclose(a);
  H5Sclose(sp);
}

/* Fixed-length strings (numpy 'S'), the other kind mt_data_open must read. */
static void h5_attr_fixed_strings(hid_t f, const char *name, const char *const *v, int n, size_t width) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t t = H5Tcopy(H5T_C_S1);
  H5Tset_size(t, width);
  H5Tset_strpad(t, H5T_STR_NULLPAD);
  char *buf = calloc((size_t)n, width);
  for (int i = 0; i < n; i++) strncpy(buf + (size_t)i * width, v[i], width);
  hid_t sp = H5Screate_simple(1, dims, NULL), a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(a >= 0);
  assert_true(H5Awrite(a, t, buf) >= 0);
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
  free(buf);
}

/* A small valid layout: train [rows, d] float, labels 0..classes-1 as int32 unless overridden. */
static void h5_split(hid_t f, const char *split, int rows, int d, const int32_t *labels) {
  char p[32];
  float *x = calloc((size_t)(rows * d) + 1, sizeof *x);
  int32_t *y = calloc((size_t)rows + 1, sizeof *y);
  for (int i = 0; i < rows * d; i++) x[i] = (float)i;
  for (int i = 0; i < rows; i++) y[i] = labels ? labels[i] : i % 3;
  hsize_t xd[2] = {(hsize_t)rows, (hsize_t)d}, yd[1] = {(hsize_t)rows};
  snprintf(p, sizeof p, "/%s/x", split);
  h5_dataset(f, p, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
  snprintf(p, sizeof p, "/%s/y", split);
  h5_dataset(f, p, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
  free(y);
  free(x);
}

static void make_bad_files(void) {
  hid_t f;
  FILE *t = fopen(tpath("not_hdf5.h5"), "w");
  assert_non_null(t);
  fputs("this is text, not HDF5\n", t);
  fclose(t);

  f = h5_create("no_train_y.h5");
  h5_attr_int(f, "num_classes", 3);
  hsize_t xd[2] = {4, 2};
  float x8[8] = {0};
  h5_dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x8);
  H5Fclose(f);

  f = h5_create("y_rows_mismatch.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 5, 2, NULL);
  H5Ldelete(f, "/train/y", H5P_DEFAULT);
  hsize_t yd4[1] = {4};
  int32_t y4[4] = {0, 1, 2, 0};
  h5_dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd4, y4);
  H5Fclose(f);

  f = h5_create("x_3d.h5");
  h5_attr_int(f, "num_classes", 3);
  hsize_t x3[3] = {4, 2, 2};
  float x16[16] = {0};
  h5_dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, x3, x16);
  h5_dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd4, y4);
  H5Fclose(f);

  f = h5_create("float_labels.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x8);
  float yf[4] = {0, 1, 2, 0};
  h5_dataset(f, "/train/y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, yd4, yf);
  H5Fclose(f);

  int32_t big[4] = {0, 1, 3, 2}, neg[4] = {0, -1, 1, 2};
  f = h5_create("label_too_big.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, big);
  H5Fclose(f);
  f = h5_create("label_negative.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, neg);
  H5Fclose(f);
  f = h5_create("test_label_too_big.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  h5_split(f, "test", 4, 2, big);
  H5Fclose(f);

  f = h5_create("test_d_mismatch.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  h5_split(f, "test", 4, 3, NULL);
  H5Fclose(f);

  f = h5_create("zero_rows.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 0, 2, NULL);
  H5Fclose(f);

  f = h5_create("nan_features.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  H5Ldelete(f, "/train/x", H5P_DEFAULT);
  float xn[8] = {0, 1, 2, 3, 4, NAN, 6, 7};
  h5_dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, xn);
  H5Fclose(f);

  f = h5_create("x_int16.h5");
  h5_attr_int(f, "num_classes", 3);
  int16_t x16i[8] = {0};
  h5_dataset(f, "/train/x", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, xd, x16i);
  h5_dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd4, y4);
  H5Fclose(f);

  f = h5_create("huge_rows_claim.h5");
  h5_attr_int(f, "num_classes", 3);
  hsize_t hx[2] = {(hsize_t)1 << 40, 10}, hy[1] = {(hsize_t)1 << 40};
  h5_dataset(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, hx, NULL);
  h5_dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, hy, NULL);
  H5Fclose(f);

  f = h5_create("num_classes_one.h5");
  h5_attr_int(f, "num_classes", 1);
  h5_split(f, "train", 4, 2, (const int32_t[]){0, 0, 0, 0});
  H5Fclose(f);

  f = h5_create("wrong_format.h5");
  const char *fmt[1] = {"mpitrain-checkpoint"};
  h5_attr_fixed_strings(f, "format", fmt, 1, 32);
  h5_split(f, "train", 4, 2, NULL);
  H5Fclose(f);

  f = h5_create("names_count.h5");
  h5_attr_int(f, "num_classes", 3);
  const char *two[2] = {"a", "b"};
  h5_attr_fixed_strings(f, "class_names", two, 2, 4);
  h5_split(f, "train", 4, 2, NULL);
  H5Fclose(f);

  f = h5_create("test_x_only.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  h5_dataset(f, "/test/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x8);
  H5Fclose(f);

  /* shards that disagree on D, and a set with a shard missing */
  f = h5_create("bad_shards-00000-of-00002.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  H5Fclose(f);
  f = h5_create("bad_shards-00001-of-00002.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 3, NULL);
  H5Fclose(f);
  f = h5_create("gap-00000-of-00003.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  H5Fclose(f);
  f = h5_create("gap-00002-of-00003.h5");
  h5_attr_int(f, "num_classes", 3);
  h5_split(f, "train", 4, 2, NULL);
  H5Fclose(f);
}

static void test_bad_files(void **state) {
  (void)state;
  make_bad_files();
  static const Bad bad[] = {
      {"missing.h5", "cannot open '"},
      {"not_hdf5.h5", "not an HDF5 file"},
      {"no_train_y.h5", "no dataset /train/y"},
      {"y_rows_mismatch.h5", "/train/y has 4 rows but /train/x has 5; expected one label per row"},
      {"x_3d.h5", "/train/x is 3-D; expected a 2-D array"},
      {"float_labels.h5", "expected integer class ids"},
      {"label_too_big.h5", "label 3 at /train/y[2] is outside [0, 3) (num_classes = 3)"},
      {"label_negative.h5", "label -1 at /train/y[1] is outside [0, 3)"},
      {"test_label_too_big.h5", "label 3 at /test/y[2] is outside [0, 3)"},
      {"test_d_mismatch.h5", "/test/x has 3 features but /train/x has 2"},
      {"zero_rows.h5", "expected at least one training row"},
      {"nan_features.h5", "/train/x[2] holds NaN (feature 1)"},
      {"x_int16.h5", "is 16-bit signed integer; expected uint8 or float32"},
      {"huge_rows_claim.h5", "claims 1099511627776 rows"},
      {"num_classes_one.h5", "num_classes = 1; expected 2"},
      {"wrong_format.h5", "format is 'mpitrain-checkpoint'; expected 'mpitrain-dataset'"},
      {"names_count.h5", "class_names has 2 entries but num_classes = 3"},
      {"test_x_only.h5", "has /test/x but no /test/y"},
      {"bad_shards.h5", "has 3 features but"},
      {"bad_shards-00001-of-00002.h5", "all shards must agree"},
      {"gap-00000-of-00003.h5", "gap-00001-of-00003.h5"},
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    Dataset *ds = NULL;
    MtError err = {0};
    DataOptions o = {.memory = MEMORY_AUTO};
    int rc = mt_data_open(&ds, tpath(bad[i].name), &o, &err);
    if (rc == 0) fail_msg("%s: mt_data_open succeeded", bad[i].name);
    assert_null(ds);
    if (strstr(err.msg, bad[i].phrase) == NULL) fail_msg("%s: message '%s' lacks '%s'", bad[i].name, err.msg,
                                                        bad[i].phrase);
    /* the file named is the one at fault (shard sets: a file of the set) */
    const char *stem = bad[i].name;
    char want[64];
    snprintf(want, sizeof want, "%.*s", (int)(strcspn(stem, ".-")), stem);
    if (strstr(err.msg, want) == NULL) fail_msg("%s: message '%s' does not name the file", bad[i].name, err.msg);
  }
  /* a NaN in a streamed split is caught when its row is read, naming the row */
  DataOptions o = {.memory = MEMORY_NO};
  Dataset *ds = NULL;
  MtError err = {0};
  assert_int_equal(mt_data_open(&ds, tpath("nan_features.h5"), &o, &err), 0);
  float x[4 * 2];
  int32_t y[4];
  int64_t rows[2] = {1, 2};
  assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, rows, 1, x, y, &err), 0);
  assert_int_equal(mt_data_read(ds, SPLIT_TRAIN, rows, 2, x, y, &err), -1);
  assert_non_null(strstr(err.msg, "/train/x[2] holds NaN"));
  mt_data_close(ds);
  /* a claim of too much memory is refused before anything is allocated, with the size and the way out. The data
   * is declared to live in external raw files (which nothing reads before that check): a small file whose own
   * datasets declare 64 TiB is refused sooner, as damaged (below). */
  hid_t f = h5_create("too_big_for_memory.h5");
  hsize_t hx[2] = {(hsize_t)1 << 30, (hsize_t)1 << 16}, hy[1] = {(hsize_t)1 << 30};
  const char *const ext_path[2] = {"/train/x", "/train/y"};
  for (int k = 0; k < 2; k++) {
    hid_t sp = H5Screate_simple(k == 0 ? 2 : 1, k == 0 ? hx : hy, NULL), dcpl = H5Pcreate(H5P_DATASET_CREATE),
          lcpl = H5Pcreate(H5P_LINK_CREATE);
    assert_true(H5Pset_create_intermediate_group(lcpl, 1) >= 0);
    assert_true(H5Pset_external(dcpl, k == 0 ? "too_big.x.raw" : "too_big.y.raw", 0, H5F_UNLIMITED) >= 0);
    hid_t ds = H5Dcreate2(f, ext_path[k], k == 0 ? H5T_STD_U8LE : H5T_STD_I32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    assert_true(ds >= 0);
    H5Dclose(ds);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
    H5Sclose(sp);
  }
  H5Fclose(f);
  o.memory = MEMORY_YES;
  mt_error_clear(&err);
  assert_int_equal(mt_data_open(&ds, tpath("too_big_for_memory.h5"), &o, &err), -1);
  assert_non_null(strstr(err.msg, "65536.0 GiB"));
  assert_non_null(strstr(err.msg, "--in-memory no"));
  /* the same sizes declared by the file's own datasets, of which it stores nothing */
  f = h5_create("declares_64tib.h5");
  h5_dataset(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, hx, NULL);
  h5_dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, hy, NULL);
  H5Fclose(f);
  mt_error_clear(&err);
  assert_int_equal(mt_data_open(&ds, tpath("declares_64tib.h5"), &o, &err), -1);
  if (strstr(err.msg, "/train/x declares 1073741824 rows x 65536 (64.0 TiB) but the file stores only 0 bytes of it "
                      "(0 of 17179869184 chunks): truncated or damaged") == NULL)
    fail_msg("%s", err.msg);
}

/* Files others write: labels as int64 / uint8, no num_classes (inferred), no scale, fixed-length class names. */
static void test_foreign_files(void **state) {
  (void)state;
  hid_t f = h5_create("foreign.h5");
  hsize_t xd[2] = {5, 2}, yd[1] = {5};
  uint8_t x[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 250};
  int64_t y[5] = {0, 3, 1, 2, 3};
  h5_dataset(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, xd, x);
  h5_dataset(f, "/train/y", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, yd, y);
  const char *names[4] = {"zero", "one", "two", "three"};
  h5_attr_fixed_strings(f, "class_names", names, 4, 5);
  H5Fclose(f);
  Dataset *ds = open_ok(tpath("foreign.h5"), MEMORY_AUTO, 0);
  const DataInfo *in = mt_data_info(ds);
  assert_int_equal(in->n_classes, 4);
  assert_int_equal(in->n_classes_inferred, 1);
  assert_true(in->scale == 1.0f);
  assert_string_equal(mt_data_class_name(ds, 3), "three");
  assert_string_equal(mt_data_class_name(ds, 0), "zero");
  const int32_t *labels = mt_data_labels(ds, SPLIT_TRAIN);
  for (int i = 0; i < 5; i++) assert_int_equal(labels[i], (int32_t)y[i]);
  float out[10];
  int32_t yo[5];
  MtError err = {0};
  assert_int_equal(mt_data_read_range(ds, SPLIT_TRAIN, 0, 5, out, yo, &err), 0);
  assert_true(out[9] == 250.0f);
  mt_data_close(ds);
}

/* Files written without chunking (h5py's default) are streamed by the other read path (one OR-ed selection):
 * it must agree with memory to the bit too. */
static void test_streaming_contiguous(void **state) {
  (void)state;
  enum { N = 500, DD = 9 };
  static float x[N * DD];
  static int32_t y[N];
  for (int i = 0; i < N * DD; i++) x[i] = sinf((float)i);
  for (int i = 0; i < N; i++) y[i] = i % 4;
  hid_t f = h5_create("contiguous.h5");
  hsize_t xd[2] = {N, DD}, yd[1] = {N};
  hid_t sx = H5Screate_simple(2, xd, NULL), sy = H5Screate_simple(1, yd, NULL);
  hid_t dx = H5Dcreate2(f, "x", H5T_IEEE_F32BE, sx, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT); /* big-endian too */
  hid_t g = H5Gcreate2(f, "train", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  H5Dclose(dx);
  assert_true(H5Lmove(f, "x", g, "x", H5P_DEFAULT, H5P_DEFAULT) >= 0);
  dx = H5Dopen2(f, "/train/x", H5P_DEFAULT);
  hid_t dy = H5Dcreate2(f, "/train/y", H5T_STD_U8LE, sy, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
  assert_true(H5Dwrite(dx, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x) >= 0);
  assert_true(H5Dwrite(dy, H5T_NATIVE_INT32, H5S_ALL, H5S_ALL, H5P_DEFAULT, y) >= 0);
  H5Dclose(dy);
  H5Dclose(dx);
  H5Gclose(g);
  H5Sclose(sy);
  H5Sclose(sx);
  H5Fclose(f);
  Dataset *mem = open_ok(tpath("contiguous.h5"), MEMORY_YES, 0), *str = open_ok(tpath("contiguous.h5"), MEMORY_NO, 16);
  compare_reads(mem, str, 0, N, DD, 4242);
  float row[DD];
  int32_t label;
  MtError err = {0};
  assert_int_equal(mt_data_read_range(str, SPLIT_TRAIN, 123, 1, row, &label, &err), 0);
  assert_memory_equal(row, x + 123 * DD, sizeof row);
  assert_int_equal(label, 3);
  mt_data_close(str);
  mt_data_close(mem);
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(p);
}

int main(int argc, char **argv) {
  /* The HDF5 library is the parallel build: MPI must be initialised before it is used. */
  MPI_Init(&argc, &argv);
  snprintf(dir, sizeof dir, "unit_data_XXXXXX");
  if (mkdtemp(dir) == NULL) {
    perror("mkdtemp");
    return 1;
  }
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_roundtrip_uint8),          cmocka_unit_test(test_roundtrip_float_no_test),
      cmocka_unit_test(test_roundtrip_norm_gzip),      cmocka_unit_test(test_shards_match_single_file),
      cmocka_unit_test(test_streaming_bit_identical),  cmocka_unit_test(test_read_arguments),
      cmocka_unit_test(test_writer_checks),            cmocka_unit_test(test_synth_deterministic),
      cmocka_unit_test(test_bad_files),                cmocka_unit_test(test_foreign_files),
      cmocka_unit_test(test_streaming_contiguous),     cmocka_unit_test(test_unlabeled),
      cmocka_unit_test(test_set_preprocess),           cmocka_unit_test(test_check_preprocess),
  };
  int rc = cmocka_run_group_tests(tests, NULL, NULL);
  if (rc == 0) nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS); /* keep the files of a failed run to look at */
  MPI_Finalize();
  return rc;
}
