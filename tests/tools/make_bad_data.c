/* make_bad_data.c — writes a directory of broken dataset files (and one good one) for the command-line tests.
 *
 * usage: make_bad_data DIR      (creates DIR; existing files of the same names are replaced)
 *
 * Every file is made with the raw HDF5 API, so the files are broken the way a foreign writer might break them,
 * not the way our own writer could. Unless said otherwise a file has num_classes = 10, 10 features and 8 training
 * rows (float32, labels int32 0..7), so `mpirun -np 2..4 mpitrain train --data DIR/FILE` reaches the data check.
 * The phrase is part of the message mt_data_open gives (and `mpitrain info` / `train` print after "mpitrain: error: ").
 *
 *   file                          what is wrong                                  phrase in the message
 *   good.h5                       nothing: 200 train + 50 test rows, 10 classes  (opens; easy to learn)
 *   not_hdf5.h5                   a text file                                    not an HDF5 file
 *   no_train_y.h5                 /train/y missing                               no dataset /train/y
 *   y_rows_mismatch.h5            8 rows of x, 7 labels                          expected one label per row
 *   x_3d.h5                       /train/x is [8, 5, 2]                          is 3-D; expected a 2-D array
 *   float_labels.h5               /train/y is float32                            expected integer class ids
 *   label_too_big.h5              label 10 at /train/y[7]                        is outside [0, 10)
 *   label_negative.h5             label -1 at /train/y[3]                        label -1 at /train/y[3] is outside
 *   test_label_too_big.h5         label 12 at /test/y[1]                         at /test/y[1] is outside [0, 10)
 *   test_d_mismatch.h5            /test/x has 12 features, /train/x 10           /test/x has 12 features but
 *   test_x_only.h5                /test/x without /test/y                        has /test/x but no /test/y
 *   zero_rows.h5                  /train/x is [0, 10]                            expected at least one training row
 *   nan_features.h5               NaN at /train/x[5][2]                          /train/x[5] holds NaN
 *   x_int16.h5                    /train/x is int16                              expected uint8 or float32
 *   huge_rows_claim.h5            header claims 2^40 rows (unlimited, no data)   claims 1099511627776 rows
 *   declared_rows_chunked.h5      2^31-1 rows declared, no chunk written         declares 2147483647 rows x 10
 *   declared_rows_contiguous.h5   the same, contiguous: nothing allocated        declares 2147483647 rows x 10
 *   declared_rows_partial.h5      1000 rows declared, the first 256-row chunk    (1 of 4 chunks)
 *                                 written (a file cut short by its writer)
 *   num_classes_one.h5            num_classes = 1                                num_classes = 1; expected 2
 *   wrong_format.h5               format = "some-other-format"                   expected 'mpitrain-dataset'
 *   label_huge_no_classes.h5      no num_classes, a label of 5e9 (int64)          the largest label is 2147483647
 *   bad_shards-0000{0,1}-of-00002.h5   shard 1 has 12 features, shard 0 has 10   all shards must agree
 *   gap-0000{0,2}-of-00003.h5     shard 1 of 3 missing                           cannot open shard 1 of 3
 *   idx_bad_magic/                train-{images,labels} IDX, images magic wrong  bad IDX magic
 *   idx_truncated/                train-{images,labels} IDX, images cut short    truncated
 *   ragged.csv                    line 3 has one field less                      ragged.csv:3: 3 fields but line
 *   good.csv                      nothing: header, label last, 4 rows x 3 features, 3 classes, a CRLF and a blank line
 *   nobom.csv, bom.csv            the same 3 rows (label first, no header), bom.csv after a UTF-8 byte-order mark
 *   bom_header.csv                a byte-order mark, a header, 3 rows
 *   scale_tiny.h5                 scale = 1e-50 (float64)                        scale = 1e-50 is 0 in float32
 *   scale_huge.h5                 scale = 1e300 (float64)                        scale = 1e+300 is infinite in float32
 *   scale_nan.h5                  scale = NaN                                    scale = nan. expected a positive
 *   scale_negative.h5             scale = -1                                     scale = -1. expected a positive
 *   scale_zero.h5                 scale = 0                                      scale = 0. expected a positive
 *   std_zero.h5                   std[3] = 0                                     std of feature 3 = 0. expected a
 *   mean_nan.h5                   mean[2] = NaN                                  mean of feature 2 = nan. expected
 *   std_short.h5                  std has 9 values for 10 features               attribute std has 9 values
 *   lzf.h5                        /train/x compressed with filter 32000 "lzf",   is compressed with filter 32000
 *                                 which the reader does not have
 */
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fake_filter.h"

#define D 10
#define ROWS 8

static const char *dir;
static int failures;

static const char *path_of(const char *name) {
  static char buf[4096];
  snprintf(buf, sizeof buf, "%s/%s", dir, name);
  return buf;
}

#define CHECK(call)                                                                   \
  do {                                                                                \
    if ((call) < 0) {                                                                 \
      fprintf(stderr, "make_bad_data: %s failed at line %d\n", #call, __LINE__);      \
      failures++;                                                                     \
    }                                                                                 \
  } while (0)

static hid_t create(const char *name) {
  hid_t f = H5Fcreate(path_of(name), H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  if (f < 0) {
    fprintf(stderr, "make_bad_data: cannot create %s\n", path_of(name));
    exit(1);
  }
  return f;
}

/* A chunked dataset with an unlimited first axis (so a huge extent stores nothing); data NULL = unwritten. */
static void dataset(hid_t f, const char *path, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                    const void *data) {
  hsize_t maxdims[3], chunk[3];
  for (int i = 0; i < rank; i++) {
    maxdims[i] = i == 0 ? H5S_UNLIMITED : dims[i];
    chunk[i] = dims[i] == 0 ? 1 : dims[i] > 256 ? 256 : dims[i];
  }
  hid_t sp = H5Screate_simple(rank, dims, maxdims), lcpl = H5Pcreate(H5P_LINK_CREATE),
        dcpl = H5Pcreate(H5P_DATASET_CREATE);
  CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  CHECK(H5Pset_chunk(dcpl, rank, chunk));
  hid_t ds = H5Dcreate2(f, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT);
  CHECK(ds);
  if (data) CHECK(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, data));
  H5Dclose(ds);
  H5Pclose(dcpl);
  H5Pclose(lcpl);
  H5Sclose(sp);
}

static void attr_int(hid_t f, const char *name, int v) {
  hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, H5T_STD_I32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, H5T_NATIVE_INT, &v));
  H5Aclose(a);
  H5Sclose(sp);
}

static void attr_string(hid_t f, const char *name, const char *v) {
  hid_t t = H5Tcopy(H5T_C_S1);
  CHECK(H5Tset_size(t, H5T_VARIABLE));
  CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
  hid_t sp = H5Screate(H5S_SCALAR), a = H5Acreate2(f, name, t, sp, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, t, &v));
  H5Aclose(a);
  H5Sclose(sp);
  H5Tclose(t);
}

/* Split `split` with rows x d float features (x[i][j] = i + j/10) and labels (NULL: i % 8). */
static void split(hid_t f, const char *name, int rows, int d, const int32_t *labels) {
  char p[32];
  float *x = calloc((size_t)rows * d + 1, sizeof *x);
  int32_t *y = calloc((size_t)rows + 1, sizeof *y);
  if (!x || !y) exit(1);
  for (int i = 0; i < rows; i++) {
    for (int j = 0; j < d; j++) x[i * d + j] = (float)i + 0.1f * (float)j;
    y[i] = labels ? labels[i] : i % 8;
  }
  hsize_t xd[2] = {(hsize_t)rows, (hsize_t)d}, yd[1] = {(hsize_t)rows};
  snprintf(p, sizeof p, "/%s/x", name);
  dataset(f, p, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
  snprintf(p, sizeof p, "/%s/y", name);
  dataset(f, p, H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
  free(y);
  free(x);
}

/* The usual header: format, version, 10 classes, scale 1. */
static hid_t create_dataset(const char *name) {
  hid_t f = create(name);
  attr_string(f, "format", "mpitrain-dataset");
  attr_int(f, "format_version", 1);
  attr_int(f, "num_classes", 10);
  attr_string(f, "source", "make_bad_data");
  return f;
}

static void attr_numbers(hid_t f, const char *name, hid_t ftype, hid_t mtype, const void *v, hsize_t n) {
  hid_t sp = n == 0 ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL),
        a = H5Acreate2(f, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
  CHECK(a);
  CHECK(H5Awrite(a, mtype, v));
  H5Aclose(a);
  H5Sclose(sp);
}

/* The usual file with a scale attribute of type ftype (value v as a double). */
static void scale_file(const char *name, hid_t ftype, double v) {
  hid_t f = create_dataset(name);
  attr_numbers(f, "scale", ftype, H5T_NATIVE_DOUBLE, &v, 0);
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);
}

/* The usual file with mean [n_mean] and std [n_std] (0, 1 except where bad_at >= 0: bad_mean / bad_std there). */
static void norm_file(const char *name, int n_mean, int n_std, int bad_at, float bad_mean, float bad_std) {
  float mean[D + 1], std[D + 1];
  for (int j = 0; j <= D; j++) {
    mean[j] = j == bad_at ? bad_mean : 0.0f;
    std[j] = j == bad_at ? bad_std : 1.0f;
  }
  hid_t f = create_dataset(name);
  attr_numbers(f, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, mean, (hsize_t)n_mean);
  attr_numbers(f, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, std, (hsize_t)n_std);
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);
}

static void write_text(const char *name, const void *data, size_t n) {
  FILE *fp = fopen(path_of(name), "wb");
  if (fp == NULL || fwrite(data, 1, n, fp) != n || fclose(fp) != 0) {
    fprintf(stderr, "make_bad_data: cannot write %s: %s\n", path_of(name), strerror(errno));
    exit(1);
  }
}

/* An IDX pair: 4 images of 3x3 and 4 labels; magic and length of the images adjustable. */
static void idx_pair(const char *sub, uint32_t image_magic, size_t image_cut) {
  char name[256];
  unsigned char img[16 + 36], lab[8 + 4];
  const uint32_t ih[4] = {image_magic, 4, 3, 3}, lh[2] = {0x00000801, 4};
  for (int i = 0; i < 4; i++)
    for (int b = 0; b < 4; b++) img[4 * i + b] = (unsigned char)(ih[i] >> (24 - 8 * b));
  for (int i = 0; i < 2; i++)
    for (int b = 0; b < 4; b++) lab[4 * i + b] = (unsigned char)(lh[i] >> (24 - 8 * b));
  for (int i = 0; i < 36; i++) img[16 + i] = (unsigned char)(i * 7);
  for (int i = 0; i < 4; i++) lab[8 + i] = (unsigned char)(i % 2);
  snprintf(name, sizeof name, "%s", sub);
  if (mkdir(path_of(name), 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "make_bad_data: cannot create %s: %s\n", path_of(name), strerror(errno));
    exit(1);
  }
  snprintf(name, sizeof name, "%s/train-images-idx3-ubyte", sub);
  write_text(name, img, sizeof img - image_cut);
  snprintf(name, sizeof name, "%s/train-labels-idx1-ubyte", sub);
  write_text(name, lab, sizeof lab);
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: make_bad_data DIR\n");
    return 2;
  }
  MPI_Init(&argc, &argv); /* the HDF5 library is the parallel build */
  dir = argv[1];
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) {
    fprintf(stderr, "make_bad_data: cannot create %s: %s\n", dir, strerror(errno));
    return 1;
  }
  hid_t f;

  /* good.h5: class c lights feature c, plus a little deterministic noise: trains to ~100% in a few steps */
  {
    enum { NTR = 200, NTE = 50 };
    static float x[NTR * D];
    static int32_t y[NTR];
    f = create_dataset("good.h5");
    const char *names[10] = {"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"};
    hid_t t = H5Tcopy(H5T_C_S1);
    CHECK(H5Tset_size(t, H5T_VARIABLE));
    CHECK(H5Tset_cset(t, H5T_CSET_UTF8));
    hsize_t nd[1] = {10};
    hid_t sp = H5Screate_simple(1, nd, NULL), a = H5Acreate2(f, "class_names", t, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Awrite(a, t, names));
    H5Aclose(a);
    H5Sclose(sp);
    H5Tclose(t);
    float scale = 1.0f;
    sp = H5Screate(H5S_SCALAR);
    a = H5Acreate2(f, "scale", H5T_IEEE_F32LE, sp, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(H5Awrite(a, H5T_NATIVE_FLOAT, &scale));
    H5Aclose(a);
    H5Sclose(sp);
    for (int s = 0; s < 2; s++) {
      int n = s == 0 ? NTR : NTE;
      for (int i = 0; i < n; i++) {
        y[i] = (i * 7 + s) % 10;
        for (int j = 0; j < D; j++) x[i * D + j] = (j == y[i] ? 3.0f : 0.0f) + 0.2f * sinf((float)(i * D + j));
      }
      hsize_t xd[2] = {(hsize_t)n, D}, yd[1] = {(hsize_t)n};
      dataset(f, s == 0 ? "/train/x" : "/test/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x);
      dataset(f, s == 0 ? "/train/y" : "/test/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y);
    }
    H5Fclose(f);
  }

  const char text[] = "this is a text file, not HDF5\n";
  write_text("not_hdf5.h5", text, sizeof text - 1);

  hsize_t xd[2] = {ROWS, D}, yd[1] = {ROWS}, yd7[1] = {ROWS - 1};
  float x0[ROWS * D] = {0};
  int32_t y0[ROWS] = {0, 1, 2, 3, 4, 5, 6, 7};

  f = create_dataset("no_train_y.h5");
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x0);
  H5Fclose(f);

  f = create_dataset("y_rows_mismatch.h5");
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x0);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd7, y0);
  H5Fclose(f);

  f = create_dataset("x_3d.h5");
  hsize_t x3[3] = {ROWS, 5, 2};
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 3, x3, x0);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y0);
  H5Fclose(f);

  f = create_dataset("float_labels.h5");
  float yf[ROWS] = {0, 1, 2, 3, 4, 5, 6, 7};
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x0);
  dataset(f, "/train/y", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, yd, yf);
  H5Fclose(f);

  int32_t big[ROWS] = {0, 1, 2, 3, 4, 5, 6, 10}, neg[ROWS] = {0, 1, 2, -1, 4, 5, 6, 7};
  f = create_dataset("label_too_big.h5");
  split(f, "train", ROWS, D, big);
  H5Fclose(f);
  f = create_dataset("label_negative.h5");
  split(f, "train", ROWS, D, neg);
  H5Fclose(f);
  f = create_dataset("test_label_too_big.h5");
  split(f, "train", ROWS, D, NULL);
  split(f, "test", 2, D, (const int32_t[]){3, 12});
  H5Fclose(f);

  f = create_dataset("test_d_mismatch.h5");
  split(f, "train", ROWS, D, NULL);
  split(f, "test", 2, 12, NULL);
  H5Fclose(f);

  f = create_dataset("test_x_only.h5");
  split(f, "train", ROWS, D, NULL);
  hsize_t xt[2] = {2, D};
  dataset(f, "/test/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xt, x0);
  H5Fclose(f);

  f = create_dataset("zero_rows.h5");
  split(f, "train", 0, D, NULL);
  H5Fclose(f);

  f = create_dataset("nan_features.h5");
  float xn[ROWS * D] = {0};
  xn[5 * D + 2] = NAN;
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, xn);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y0);
  H5Fclose(f);

  f = create_dataset("x_int16.h5");
  int16_t xi[ROWS * D] = {0};
  dataset(f, "/train/x", H5T_STD_I16LE, H5T_NATIVE_INT16, 2, xd, xi);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y0);
  H5Fclose(f);

  f = create_dataset("huge_rows_claim.h5");
  hsize_t hx[2] = {(hsize_t)1 << 40, D}, hy[1] = {(hsize_t)1 << 40};
  dataset(f, "/train/x", H5T_STD_U8LE, H5T_NATIVE_UINT8, 2, hx, NULL);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, hy, NULL);
  H5Fclose(f);

  /* A few kB that declare 80 GiB: without a check against what is stored, info read 8 GiB of fill values. */
  f = create_dataset("declared_rows_chunked.h5");
  hsize_t dx[2] = {INT32_MAX, D}, dy[1] = {INT32_MAX};
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, dx, NULL);
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, dy, NULL);
  H5Fclose(f);
  f = create_dataset("declared_rows_contiguous.h5");
  hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
  CHECK(H5Pset_create_intermediate_group(lcpl, 1));
  const char *const cpath[2] = {"/train/x", "/train/y"};
  for (int k = 0; k < 2; k++) {
    hid_t sp = H5Screate_simple(k == 0 ? 2 : 1, k == 0 ? dx : dy, NULL);
    hid_t ds = H5Dcreate2(f, cpath[k], k == 0 ? H5T_IEEE_F32LE : H5T_STD_I32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
    CHECK(ds);
    H5Dclose(ds);
    H5Sclose(sp);
  }
  H5Pclose(lcpl);
  H5Fclose(f);
  f = create_dataset("declared_rows_partial.h5");
  {
    enum { PR = 1000, WRITTEN = 256 }; /* make_bad_data's chunks are 256 rows */
    hsize_t px[2] = {PR, D}, py[1] = {PR}, start[2] = {0, 0}, cx[2] = {WRITTEN, D}, cy[1] = {WRITTEN};
    static float xs[WRITTEN * D];
    static int32_t ys[WRITTEN];
    dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, px, NULL);
    dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, py, NULL);
    for (int k = 0; k < 2; k++) {
      hid_t ds = H5Dopen2(f, cpath[k], H5P_DEFAULT), fs = H5Dget_space(ds);
      hid_t ms = H5Screate_simple(k == 0 ? 2 : 1, k == 0 ? cx : cy, NULL);
      CHECK(H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, k == 0 ? cx : cy, NULL));
      CHECK(H5Dwrite(ds, k == 0 ? H5T_NATIVE_FLOAT : H5T_NATIVE_INT32, ms, fs, H5P_DEFAULT,
                     k == 0 ? (const void *)xs : (const void *)ys));
      H5Sclose(ms);
      H5Sclose(fs);
      H5Dclose(ds);
    }
  }
  H5Fclose(f);

  f = create(("num_classes_one.h5"));
  attr_string(f, "format", "mpitrain-dataset");
  attr_int(f, "num_classes", 1);
  split(f, "train", ROWS, D, (const int32_t[ROWS]){0});
  H5Fclose(f);

  f = create("wrong_format.h5");
  attr_string(f, "format", "some-other-format");
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);

  /* fuzz_data: without num_classes the class count came from the largest label, unbounded; 5e9 (read clipped to
   * 2^31-1) wrapped it to -2147483648. */
  f = create("label_huge_no_classes.h5");
  attr_string(f, "format", "mpitrain-dataset");
  long long yh[ROWS] = {0, 1, 2, 3, 4, 5, 6, 5000000000LL};
  dataset(f, "/train/x", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, xd, x0);
  dataset(f, "/train/y", H5T_STD_I64LE, H5T_NATIVE_LLONG, 1, yd, yh);
  H5Fclose(f);

  f = create_dataset("bad_shards-00000-of-00002.h5");
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);
  f = create_dataset("bad_shards-00001-of-00002.h5");
  split(f, "train", ROWS, 12, NULL);
  H5Fclose(f);

  f = create_dataset("gap-00000-of-00003.h5");
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);
  f = create_dataset("gap-00002-of-00003.h5");
  split(f, "train", ROWS, D, NULL);
  H5Fclose(f);
  remove(path_of("gap-00001-of-00003.h5"));

  idx_pair("idx_bad_magic", 0x03080000, 0); /* little-endian by mistake */
  idx_pair("idx_truncated", 0x00000803, 10);

  const char ragged[] = "label,a,b,c\n1,0.5,0.25,1\n0,1,2\n";
  write_text("ragged.csv", ragged, sizeof ragged - 1);
  const char good_csv[] = "a,b,c,label\n0.5,0.25,1,1\n1, 2, 3e0 ,0\r\n\n-1,0,2,2\n4,4,4,1\n";
  write_text("good.csv", good_csv, sizeof good_csv - 1);

  /* A UTF-8 byte-order mark (Excel's "CSV UTF-8") before the first line, which is a data row or a header. */
  const char nobom[] = "1,0.5,0.25\n0,1,2\n2,3,4\n";
  write_text("nobom.csv", nobom, sizeof nobom - 1);
  const char bom[] = "\xEF\xBB\xBF" "1,0.5,0.25\n0,1,2\n2,3,4\n";
  write_text("bom.csv", bom, sizeof bom - 1);
  const char bom_header[] = "\xEF\xBB\xBF" "label,a,b\n1,0.5,0.25\n0,1,2\n2,3,4\n";
  write_text("bom_header.csv", bom_header, sizeof bom_header - 1);

  /* A scale or a normalisation that is no feature transform (float32 is what the reader computes in). */
  scale_file("scale_tiny.h5", H5T_IEEE_F64LE, 1e-50);
  scale_file("scale_huge.h5", H5T_IEEE_F64LE, 1e300);
  scale_file("scale_nan.h5", H5T_IEEE_F32LE, NAN);
  scale_file("scale_negative.h5", H5T_IEEE_F32LE, -1.0);
  scale_file("scale_zero.h5", H5T_IEEE_F32LE, 0.0);
  norm_file("std_zero.h5", D, D, 3, 0.0f, 0.0f);
  norm_file("mean_nan.h5", D, D, 2, NAN, 1.0f);
  norm_file("std_short.h5", D, D - 1, -1, 0, 0);

  /* A filter this process registers and mpitrain does not have, as h5py's compression="lzf" is to a plain HDF5. */
  if (fake_filter_register() != 0) {
    fprintf(stderr, "make_bad_data: cannot register the stand-in filter\n");
    failures++;
  }
  f = create_dataset("lzf.h5");
  {
    hsize_t chunk[2] = {4, D};
    hid_t dcpl = fake_filter_dcpl(2, chunk), sp = H5Screate_simple(2, xd, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE);
    CHECK(dcpl);
    CHECK(H5Pset_create_intermediate_group(lcpl, 1));
    hid_t ds = H5Dcreate2(f, "/train/x", H5T_IEEE_F32LE, sp, lcpl, dcpl, H5P_DEFAULT);
    CHECK(ds);
    CHECK(H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, x0));
    H5Dclose(ds);
    H5Sclose(sp);
    H5Pclose(lcpl);
    H5Pclose(dcpl);
  }
  dataset(f, "/train/y", H5T_STD_I32LE, H5T_NATIVE_INT32, 1, yd, y0);
  H5Fclose(f);

  MPI_Finalize();
  if (failures) return 1;
  printf("make_bad_data: wrote the test files into %s\n", dir);
  return 0;
}
