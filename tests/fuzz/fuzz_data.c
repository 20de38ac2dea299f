/* fuzz_data.c — libFuzzer target: the dataset reader (mt_data_open, mt_data_read, mt_data_read_range).
 *
 * Structure-aware: the input does not become the bytes of an HDF5 file (HDF5's own parser is not ours to fuzz);
 * it describes a dataset — one file or a set of shards — which this target writes with the HDF5 API: the root
 * attributes (right, missing, or of a wrong type, shape or value), each split's x and y (present or not, their
 * rank, shape, element type, layout, and every value), and which name to open it by. So the fuzzer explores our
 * validation and reading code. The read options (in memory or streamed, the staging buffer's rows, whether splits
 * without labels are allowed) come from the input too.
 *
 * Invariants, beyond "no sanitizer report":
 *  - mt_data_open fails with a one-line message, or yields a dataset whose shape and labels are valid (at least one
 *    training row, 1 <= d, 2 <= classes, every label in [0, classes); with splits without labels allowed, those
 *    have no labels and read as -1, and the class count may be unknown (0) when no split has labels);
 *  - every way of reading a split gives the same bits: mt_data_read_range over all rows, mt_data_read of any sorted row
 *    list (with duplicates), and the same rows with the split held in memory versus streamed from the file.
 *
 * MT_FUZZ_CORRUPT=1 in the environment additionally overwrites a few bytes of the written file (at places the
 * input picks) before opening it: that fuzzes HDF5's parser as well, whose crashes are HDF5's (report them
 * separately); CI does not set it. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"
#include "fuzz_h5.h"
#include "mpitrain/config.h"
#include "mpitrain/data.h"

enum { MAX_ROWS = 24, MAX_D = 10, MAX_SHARDS = 3 };

/* What one file says about itself, apart from its rows. Shards copy shard 0's header unless the input varies it. */
typedef struct Header {
  int format;           /* 0 right (variable-length), 1 right (fixed-length), 2 missing, 3 a checkpoint's, 4 wrong */
  int format_version;   /* 0 missing, 1 = 1, 2 wrong */
  int classes_kind;     /* 0 missing, 1 int32 n_classes, 2 wrong */
  int n_classes;
  int scale_kind;       /* 0 missing, 1 float scale, 2 double scale, 3 wrong */
  float scale;
  int source_kind;      /* 0 missing, 1 a string, 2 wrong */
  char source[300];
  int names;            /* class_names: -1 missing, else how many */
  int norm;             /* 0 none, 1 mean and std [d], 2 only mean, 3 lengths d+1, 4 std of a wrong type */
  int d;
  int x_type[2];        /* 0 uint8, 1 float32, 2 int16, 3 float64 */
  int x_rank[2];        /* 2, or 1 / 3 */
  int y_type[2];        /* 0 int32, 1 uint8, 2 int64, 3 uint64, 4 int8, 5 float32 */
  int y_rank[2];
  int split[2];         /* 0 both x and y, 1 none (test only), 2 only x, 3 only y, 4 x is a group */
  int layout;           /* 0 contiguous, 1 chunked, 2 chunked + deflate */
  int chunk_rows;
  int values;           /* feature values: 0 small numbers, 1 raw bits (NaN, Inf, huge), 2 zeros */
  int labels;           /* label values: 0 in range, 1 a byte - 2, 2 raw 64-bit */
  int attr_extra;       /* a numeric attribute replaced by a wrong variant: 0 none, 1 format_version, ... */
} Header;

static void header_read(FuzzIn *f, Header *h) {
  memset(h, 0, sizeof *h);
  int r = fz_u8(f);
  h->format = r < 220 ? (r & 1) : 2 + r % 3;
  h->format_version = fz_chance(f, 230) ? 1 : fz_pick(f, 3);
  h->classes_kind = fz_chance(f, 200) ? 1 : fz_pick(f, 3);
  h->n_classes = fz_chance(f, 230) ? 2 + fz_pick(f, 6) : (int)fz_u32(f);
  h->scale_kind = fz_chance(f, 200) ? 1 : fz_pick(f, 4);
  h->scale = fz_chance(f, 200) ? (float)(fz_u8(f) + 1) / 64.0f : fz_f32_raw(f);
  h->source_kind = fz_chance(f, 220) ? 1 : fz_pick(f, 3);
  fz_string(f, h->source, sizeof h->source);
  h->names = fz_chance(f, 180) ? -1 : fz_pick(f, 10);
  h->norm = fz_chance(f, 180) ? 0 : fz_pick(f, 5);
  h->d = 1 + fz_pick(f, MAX_D);
  for (int s = 0; s < 2; s++) {
    h->x_type[s] = fz_chance(f, 230) ? fz_pick(f, 2) : fz_pick(f, 4);
    h->x_rank[s] = fz_chance(f, 240) ? 2 : 1 + 2 * fz_pick(f, 2);
    h->y_type[s] = fz_chance(f, 200) ? 0 : fz_pick(f, 6);
    h->y_rank[s] = fz_chance(f, 245) ? 1 : 2;
    h->split[s] = fz_chance(f, s == 0 ? 240 : 160) ? 0 : fz_pick(f, 5);
  }
  h->layout = fz_pick(f, 3);
  h->chunk_rows = 1 + fz_pick(f, 8);
  h->values = fz_chance(f, 220) ? 0 : 1 + fz_pick(f, 2);
  h->labels = fz_chance(f, 220) ? 0 : 1 + fz_pick(f, 2);
  h->attr_extra = fz_chance(f, 230) ? 0 : 1 + fz_pick(f, 4);
}

/* x of one split: rows x d values as double, converted by HDF5 to the file type (uint8 clips). */
static void write_x(hid_t file, const char *path, const Header *h, int s, int rows, FuzzIn *f) {
  static double buf[MAX_ROWS * MAX_D * 2];
  int rank = h->x_rank[s], d = h->d;
  hsize_t dims[3] = {(hsize_t)rows, (hsize_t)d, 2};
  size_t n = (size_t)rows * (size_t)(rank >= 2 ? d : 1) * (rank == 3 ? 2 : 1);
  for (size_t i = 0; i < n; i++) {
    if (h->values == 0)
      buf[i] = h->x_type[s] == 0 ? fz_u8(f) : (double)((int)fz_u8(f) - 128) / 16.0;
    else if (h->values == 1)
      buf[i] = h->x_type[s] == 0 ? fz_u8(f) : (double)fz_f32_raw(f);
    else
      buf[i] = 0;
  }
  /* Values are staged as double; HDF5 converts them to the file type. NaN/Inf survive into float types. */
  hid_t ft[4] = {H5T_STD_U8LE, H5T_IEEE_F32LE, H5T_STD_I16LE, H5T_IEEE_F64LE};
  fh5_dataset(file, path, ft[h->x_type[s]], H5T_NATIVE_DOUBLE, rank, dims, buf, h->layout, (hsize_t)h->chunk_rows);
}

static void write_y(hid_t file, const char *path, const Header *h, int s, int rows, FuzzIn *f) {
  static long long buf[MAX_ROWS * 2];
  hid_t ft[6] = {H5T_STD_I32LE, H5T_STD_U8LE, H5T_STD_I64LE, H5T_STD_U64LE, H5T_STD_I8LE, H5T_IEEE_F32LE};
  int rank = h->y_rank[s];
  hsize_t dims[2] = {(hsize_t)rows, 2};
  size_t n = (size_t)rows * (rank == 2 ? 2 : 1);
  int classes = h->n_classes >= 2 && h->n_classes < 64 ? h->n_classes : 4;
  for (size_t i = 0; i < n; i++) {
    if (h->labels == 0)
      buf[i] = fz_u8(f) % classes;
    else if (h->labels == 1)
      buf[i] = (long long)fz_u8(f) - 2;
    else
      buf[i] = (long long)fz_u64(f);
  }
  fh5_dataset(file, path, ft[h->y_type[s]], H5T_NATIVE_LLONG, rank, dims, buf, h->layout, (hsize_t)h->chunk_rows);
}

static void write_attrs(hid_t file, const Header *h, FuzzIn *f) {
  if (h->format <= 1) fh5_attr_string(file, "format", "mpitrain-dataset", h->format);
  if (h->format == 3) fh5_attr_string(file, "format", "mpitrain-checkpoint", 0);
  if (h->format == 4) fh5_attr_wrong(file, "format", f);
  if (h->format_version == 1) {
    int one = 1;
    fh5_attr_numbers(file, "format_version", H5T_STD_I32LE, H5T_NATIVE_INT, &one, 1, 1);
  } else if (h->format_version == 2) {
    fh5_attr_wrong(file, "format_version", f);
  }
  if (h->classes_kind == 1)
    fh5_attr_numbers(file, "num_classes", H5T_STD_I32LE, H5T_NATIVE_INT, &h->n_classes, 1, 1);
  else if (h->classes_kind == 2)
    fh5_attr_wrong(file, "num_classes", f);
  if (h->scale_kind == 1) {
    fh5_attr_numbers(file, "scale", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &h->scale, 1, 1);
  } else if (h->scale_kind == 2) {
    double v = h->scale;
    fh5_attr_numbers(file, "scale", H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, 1, 1);
  } else if (h->scale_kind == 3) {
    fh5_attr_wrong(file, "scale", f);
  }
  if (h->source_kind == 1) fh5_attr_string(file, "source", h->source, 0);
  if (h->source_kind == 2) fh5_attr_wrong(file, "source", f);
  if (h->names >= 0) {
    const char *names[16];
    char store[16][16];
    for (int i = 0; i < h->names; i++) {
      snprintf(store[i], sizeof store[i], "c%d", i);
      names[i] = store[i];
    }
    fh5_attr_strings(file, "class_names", names, h->names);
  }
  if (h->norm > 0) {
    float mean[MAX_D + 1], std[MAX_D + 1];
    int n = h->norm == 3 ? h->d + 1 : h->d;
    for (int j = 0; j < n; j++) {
      mean[j] = (float)((int)fz_u8(f) - 128) / 32.0f;
      int r = fz_u8(f);
      std[j] = r < 250 ? (float)(r + 1) / 64.0f : r == 250 ? 0.0f : r == 251 ? -1.0f : r == 252 ? 1e-40f : NAN;
    }
    fh5_attr_numbers(file, "mean", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, mean, n, 0);
    if (h->norm != 2 && h->norm != 4) fh5_attr_numbers(file, "std", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, std, n, 0);
    if (h->norm == 4) fh5_attr_wrong(file, "std", f);
  }
  static const char *const extra[] = {"format_version", "num_classes", "scale", "class_names"};
  if (h->attr_extra > 0) fh5_attr_wrong(file, extra[h->attr_extra - 1], f);
}

static void write_file(const char *path, const Header *h, FuzzIn *f) {
  hid_t file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
  FH5_OK(file);
  write_attrs(file, h, f);
  static const char *const xp[2] = {"/train/x", "/test/x"}, *const yp[2] = {"/train/y", "/test/y"};
  for (int s = 0; s < 2; s++) {
    int rows = fz_chance(f, 230) ? (s == 0) + fz_pick(f, MAX_ROWS) : fz_pick(f, 2);
    int y_rows = fz_chance(f, 245) ? rows : fz_pick(f, MAX_ROWS);
    int sp = h->split[s];
    if (sp == 1) continue;
    if (sp == 0 || sp == 2) write_x(file, xp[s], h, s, rows, f);
    if (sp == 4) {
      hid_t lcpl = H5Pcreate(H5P_LINK_CREATE), g;
      FH5_OK(lcpl);
      FH5_OK(H5Pset_create_intermediate_group(lcpl, 1));
      FH5_OK(g = H5Gcreate2(file, xp[s], lcpl, H5P_DEFAULT, H5P_DEFAULT));
      FH5_OK(H5Gclose(g));
      FH5_OK(H5Pclose(lcpl));
    }
    if (sp != 2) write_y(file, yp[s], h, s, y_rows, f);
  }
  FH5_OK(H5Fclose(file));
}

static int open_checked(Dataset **ds, const char *path, int memory, int64_t limit, int max_rows, int unlabeled) {
  DataOptions o = {.memory = memory, .memory_limit = limit, .max_rows = max_rows, .allow_unlabeled = unlabeled};
  MtError err = {0};
  int rc = mt_data_open(ds, path, &o, &err);
  FZ_CHECK(rc == 0 || rc == -1, "mt_data_open returned %d", rc);
  FZ_CHECK((rc == 0) == !err.failed && (rc == 0) == (*ds != NULL), "rc %d, failed %d, ds %p", rc, err.failed,
           (void *)*ds);
  if (rc != 0) {
    FZ_CHECK(err.msg[0] != '\0' && strchr(err.msg, '\n') == NULL, "bad message '%s'", err.msg);
    return -1;
  }
  const DataInfo *in = mt_data_info(*ds);
  const int any_labels = (in->n[0] > 0 && in->labeled[0]) || (in->n[1] > 0 && in->labeled[1]);
  FZ_CHECK(in->n[SPLIT_TRAIN] >= 1 && in->n[SPLIT_TEST] >= 0 && in->d >= 1 &&
               (in->n_classes >= 2 || (!any_labels && in->n_classes == 0)) && in->n_classes <= (1 << 24),
           "opened with %lld/%lld rows, d %d, %d classes", (long long)in->n[0], (long long)in->n[1], in->d,
           in->n_classes);
  for (int s = 0; s < 2; s++) {
    const int32_t *y = mt_data_labels(*ds, (Split)s);
    FZ_CHECK(unlabeled || in->labeled[s], "split %d without labels opened without allow_unlabeled", s);
    FZ_CHECK((y != NULL) == (in->n[s] > 0 && in->labeled[s]), "labels of split %d: %p for %lld rows", s,
             (const void *)y, (long long)in->n[s]);
    if (y == NULL) continue;
    for (int64_t i = 0; i < in->n[s]; i++)
      FZ_CHECK(y[i] >= 0 && y[i] < in->n_classes, "label %d at [%lld] with %d classes", y[i], (long long)i,
               in->n_classes);
  }
  for (int c = 0; c < in->n_classes && c < 64; c++) {
    const char *name = mt_data_class_name(*ds, c);
    if (name) FZ_CHECK(strlen(name) < 1 << 20, "class name");
  }
  for (int k = 0; k < in->n_shards; k++) FZ_CHECK(mt_data_shard_path(*ds, k) != NULL, "shard %d has no path", k);
  return 0;
}

/* All of split s, through mt_data_read_range in pieces of `piece` rows, into x [n, d] and y [n]. -1 if a read fails
 * (a streamed NaN is found only when read). */
static int read_all(Dataset *ds, Split s, int piece, float *x, int32_t *y) {
  const DataInfo *in = mt_data_info(ds);
  MtError err = {0};
  for (int64_t r = 0; r < in->n[s]; r += piece) {
    int n = (int)(in->n[s] - r < piece ? in->n[s] - r : piece);
    if (mt_data_read_range(ds, s, r, n, x + (size_t)r * (size_t)in->d, y + r, &err) != 0) {
      FZ_CHECK(err.msg[0] != '\0' && strchr(err.msg, '\n') == NULL, "bad message '%s'", err.msg);
      return -1;
    }
  }
  return 0;
}

static void check_dataset(const char *path, Dataset *ds, int memory, int64_t limit, int max_rows, int unlabeled,
                          FuzzIn *f) {
  const DataInfo *in = mt_data_info(ds);
  const int d = in->d;
  for (int s = 0; s < 2; s++) {
    int64_t n = in->n[s];
    if (n == 0) continue;
    enum { MAX_LIST = 64 };
    size_t n2 = (size_t)(n > MAX_LIST ? n : MAX_LIST); /* x2, y2 hold a whole split or a row list */
    float *x = malloc(sizeof(float) * (size_t)n * (size_t)d), *x2 = malloc(sizeof(float) * n2 * (size_t)d);
    int32_t *y = malloc(sizeof(int32_t) * (size_t)n), *y2 = malloc(sizeof(int32_t) * n2);
    int64_t rows[MAX_LIST];
    FZ_CHECK(x && x2 && y && y2, "out of memory");
    int ok = read_all(ds, (Split)s, 1 + fz_pick(f, 7), x, y) == 0;
    if (ok) {
      const int32_t *labels = mt_data_labels(ds, (Split)s);
      for (int64_t i = 0; i < n; i++) FZ_CHECK(y[i] == (labels ? labels[i] : -1), "row %lld label", (long long)i);
      /* A sorted row list with duplicates, read with mt_data_read: the same bits as the range reads. */
      int k = 1 + fz_pick(f, 40);
      int64_t at = 0;
      for (int i = 0; i < k; i++) {
        at += fz_pick(f, 3) == 0 ? 0 : fz_pick(f, 4);
        rows[i] = at < n ? at : n - 1;
      }
      MtError err = {0};
      int rc = mt_data_read(ds, (Split)s, rows, k, x2, y2, &err);
      FZ_CHECK(rc == 0, "mt_data_read failed after the range reads succeeded: %s", err.msg);
      for (int i = 0; i < k; i++) {
        FZ_CHECK(y2[i] == y[rows[i]], "mt_data_read label of row %lld", (long long)rows[i]);
        FZ_CHECK(memcmp(x2 + (size_t)i * d, x + (size_t)rows[i] * d, sizeof(float) * (size_t)d) == 0,
                 "mt_data_read and mt_data_read_range differ at row %lld", (long long)rows[i]);
      }
      /* Rows out of order or out of range are refused, not read. */
      int64_t bad[2] = {n - 1, fz_pick(f, 2) ? n : 0};
      mt_error_clear(&err);
      if (bad[1] < bad[0] || bad[1] >= n)
        FZ_CHECK(mt_data_read(ds, (Split)s, bad, 2, x2, y2, &err) == -1, "a bad row list was read");
    }
    /* The same split the other way (memory <-> streamed): the same bits, or for a streamed split whose file holds
     * a NaN, the same refusal. */
    Dataset *other = NULL;
    int other_memory = in->in_memory[s] ? MEMORY_NO : MEMORY_YES;
    (void)memory;
    if (open_checked(&other, path, other_memory, limit, max_rows, unlabeled) == 0) {
      int ok2 = read_all(other, (Split)s, 1 + fz_pick(f, 7), x2, y2) == 0;
      FZ_CHECK(ok == ok2, "split %d reads %s in memory but %s streamed", s, (in->in_memory[s] ? ok : ok2) ? "ok" : "fails",
               (in->in_memory[s] ? ok2 : ok) ? "ok" : "fails");
      if (ok && ok2) {
        FZ_CHECK(memcmp(y, y2, sizeof(int32_t) * (size_t)n) == 0, "labels differ between memory and streaming");
        FZ_CHECK(memcmp(x, x2, sizeof(float) * (size_t)n * (size_t)d) == 0,
                 "features differ between memory and streaming");
      }
      mt_data_close(other);
    } else {
      /* Opening in memory can fail where streaming opened (a NaN is found at open, not at read). */
      FZ_CHECK(other_memory == MEMORY_YES, "streaming open failed where the in-memory open succeeded");
    }
    free(y2);
    free(y);
    free(x2);
    free(x);
  }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  static int corrupt_files = -1;
  if (corrupt_files < 0) {
    const char *e = getenv("MT_FUZZ_CORRUPT");
    corrupt_files = e != NULL && strcmp(e, "1") == 0;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
  }
  FuzzIn in = {data, size, 0}, *f = &in;
  const char *dir = fz_scratch_dir();
  char base[600], files[MAX_SHARDS][640];
  snprintf(base, sizeof base, "%s/d.h5", dir);

  int n_shards = fz_chance(f, 200) ? 1 : 1 + fz_pick(f, MAX_SHARDS);
  Header h0, hk;
  header_read(f, &h0);
  for (int k = 0; k < n_shards; k++) {
    if (n_shards == 1)
      snprintf(files[k], sizeof files[k], "%s", base);
    else
      mt_data_shard_name(base, k, n_shards, files[k], sizeof files[k]);
    const Header *h = &h0;
    if (k > 0 && fz_chance(f, 30)) {
      header_read(f, &hk);
      h = &hk;
    }
    write_file(files[k], h, f);
    if (corrupt_files) fh5_corrupt(files[k], f);
  }
  /* Open by the file's name, a shard's, or the set's base name; now and then with a shard missing. */
  const char *open_path = n_shards == 1 ? base : fz_pick(f, 2) ? base : files[fz_pick(f, n_shards)];
  int gap = n_shards > 1 && fz_chance(f, 20) ? fz_pick(f, n_shards) : -1;
  if (gap >= 0) unlink(files[gap]);

  int memory = fz_pick(f, 3);
  int64_t limit = fz_chance(f, 128) ? 0 : 1 + fz_pick(f, 200);
  int max_rows = fz_chance(f, 64) ? 0 : 1 + fz_pick(f, 8);
  int unlabeled = fz_pick(f, 2);
  char fmt[64];
  mt_data_probe_format(open_path, fmt, sizeof fmt);
  Dataset *ds = NULL;
  if (open_checked(&ds, open_path, memory, limit, max_rows, unlabeled) == 0) {
    check_dataset(open_path, ds, memory, limit, max_rows, unlabeled, f);
    mt_data_close(ds);
  }
  for (int k = 0; k < n_shards; k++) unlink(files[k]);
  return 0;
}
