/* data.c — reading datasets (one HDF5 file or a set of shards), validated on open, rows served as scaled floats.
 *
 * Open: resolve the shard set, read and cross-check every file's metadata, refuse absurd sizes before allocating
 * anything, load the labels of every split that has them (int32, any stored integer type), then either hold a
 * split's x in memory as stored (uint8 stays uint8) or keep its datasets open and read requested rows with hyperslab
 * selections into a staging buffer sized at open. Both paths convert stored rows to features with the same
 * function, so they give bit-identical results.
 *
 * Each rank opens on its own: plain sec2 driver, no MPI-IO, no collectives; the caller agrees on errors. */
#include "mpitrain/data.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "h5util.h"
#include "mpitrain/dataformat.h"
#include "mpitrain/fileid.h"

const char *const mt_memory_names[MEMORY_NO + 2] = {"auto", "yes", "no", NULL};

void mt_data_library_init(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

#define DATA_DEFAULT_MAX_ROWS 1024
#define DATA_DEFAULT_MEMORY_LIMIT ((int64_t)2 << 30)
#define DATA_LOAD_BYTES ((size_t)64 << 20)  /* one H5Dread when loading a split or labels into memory */
#define DATA_STREAM_CACHE ((size_t)32 << 20) /* chunk cache of a compressed split read per batch */
#define DATA_UNLABELED_HINT " (features without labels serve `mpitrain predict` only)"

const char *const mt_data_split_names[3] = DATA_SPLIT_NAMES;
static const char *const x_path[2] = DATA_X_PATHS;
static const char *const y_path[2] = DATA_Y_PATHS;

/* One file of the set. */
typedef struct Shard {
  char path[DATA_PATH_MAX];
  hid_t file;        /* open while any split streams */
  hid_t x[2];        /* open only for a split read per batch */
  hid_t xspace[2];   /* its file dataspace, reused for every selection */
  int chunked[2];    /* its layout: chunked datasets are read block by block (see mt_data_read) */
  int64_t n[2];      /* rows of each split in this file */
  int64_t first[2];  /* global index of this file's first row of each split */
} Shard;

/* What one file says about itself; shard 0's is the dataset's, the others' must agree with it. */
typedef struct Meta {
  int64_t n[2];
  int has_y[2];       /* the split has labels */
  int d;
  int stored_uint8;
  int64_t n_classes;  /* -1: attribute missing */
  double scale;
  float *mean, *std;  /* [d] or NULL */
  char **names;       /* class_names [n_names] or NULL */
  int n_names;
  char source[256];
} Meta;

struct Dataset {
  DataInfo info;
  Shard *shards;        /* [n_shards] */
  int32_t *y[2];        /* labels [n[s]], always in memory */
  void *x[2];           /* [n[s], d] as stored, when the split is in memory */
  int x_shared[2];      /* x[s] is memory the caller provided (shared by a node's ranks): not ours to free */
  int x_pending[2];     /* in memory, but deferred: waiting for mt_data_load_features / mt_data_attach_features */
  float *mean, *std;    /* [d] when info.has_norm */
  char **names;         /* [n_classes] or NULL */
  int n_names;
  void *stage;          /* [max_rows, d] as stored: rows read per batch land here */
  hid_t stage_space;    /* dataspace [max_rows, d] of the staging buffer */
  int64_t *blocks;      /* [max_rows, 2]: (first row in the file, rows) of the runs of one read */
  int max_rows;
  size_t elem;          /* bytes per stored value (1 or 4) */
};

/* ==== Small helpers ==== */

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

static int64_t phys_memory(void) {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
  if (pages <= 0 || size <= 0) return (int64_t)16 << 30; /* unknown: assume a modest machine */
  return (int64_t)pages * size;
}

static void type_describe(hid_t t, char *buf, size_t n) {
  H5T_class_t c = H5Tget_class(t);
  size_t bits = H5Tget_size(t) * 8;
  if (c == H5T_INTEGER)
    snprintf(buf, n, "%zu-bit %s integer", bits, H5Tget_sign(t) == H5T_SGN_NONE ? "unsigned" : "signed");
  else if (c == H5T_FLOAT)
    snprintf(buf, n, "%zu-bit floating-point", bits);
  else if (c == H5T_STRING)
    snprintf(buf, n, "string");
  else if (c == H5T_COMPOUND)
    snprintf(buf, n, "compound");
  else
    snprintf(buf, n, "non-numeric (HDF5 class %d)", (int)c);
}


static void meta_free(Meta *m) {
  mt_h5_strings_free(m->names, m->n_names);
  free(m->std);
  free(m->mean);
  memset(m, 0, sizeof *m);
}


/* ==== Shard names ==== */

void mt_data_shard_name(const char *base, int shard, int n_shards, char *out, size_t n) {
  size_t len = strlen(base);
  if (len >= 3 && strcmp(base + len - 3, ".h5") == 0) len -= 3;
  snprintf(out, n, "%.*s-%05d-of-%05d.h5", (int)len, base, shard, n_shards);
}

/* "NAME-00003-of-00008.h5" -> base "NAME.h5", 8. Returns 1 if path is a shard name. */
static int shard_name_parse(const char *path, char *base, size_t n, int *n_shards) {
  size_t len = strlen(path);
  if (len < 3 || strcmp(path + len - 3, ".h5") != 0) return 0;
  const char *end = path + len - 3, *p = end;
  while (p > path && p[-1] >= '0' && p[-1] <= '9') p--;
  if (p == end || end - p > 9 || p - path < 4 || strncmp(p - 4, "-of-", 4) != 0) return 0;
  long k = strtol(p, NULL, 10);
  const char *q = p - 4, *idx_end = q;
  while (q > path && q[-1] >= '0' && q[-1] <= '9') q--;
  if (q == idx_end || q == path || q[-1] != '-') return 0;
  long idx = strtol(q, NULL, 10);
  if (k < 1 || idx >= k) return 0;
  snprintf(base, n, "%.*s.h5", (int)(q - 1 - path), path);
  *n_shards = (int)(k > DATA_MAX_SHARDS ? DATA_MAX_SHARDS + 1 : k);
  return 1;
}

/* NAME.h5 does not exist: look for NAME-00000-of-K.h5 beside it. 0 found (*k set), 1 none, -1 error. */
static int shard_set_find(const char *path, int *k, MtError *err) {
  size_t len = strlen(path);
  if (len < 3 || strcmp(path + len - 3, ".h5") != 0) return 1;
  const char *slash = strrchr(path, '/');
  char dir[DATA_PATH_MAX], prefix[DATA_PATH_MAX];
  snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) + (slash == path) : 1, slash ? path : ".");
  const char *name = slash ? slash + 1 : path;
  snprintf(prefix, sizeof prefix, "%.*s-00000-of-", (int)strlen(name) - 3, name);
  DIR *dh = opendir(dir);
  if (dh == NULL) return 1;
  int found = 0, first_k = 0, other_k = 0;
  size_t plen = strlen(prefix);
  for (struct dirent *e; (e = readdir(dh)) != NULL;) {
    if (strncmp(e->d_name, prefix, plen) != 0) continue;
    const char *digits = e->d_name + plen;
    char *stop;
    long kk = strtol(digits, &stop, 10);
    if (stop == digits || strcmp(stop, ".h5") != 0 || kk < 1 || kk > DATA_MAX_SHARDS) continue;
    if (found == 0) first_k = (int)kk;
    else if ((int)kk != first_k) other_k = (int)kk;
    found++;
  }
  closedir(dh);
  if (found == 0) return 1;
  if (other_k != 0)
    return mt_fail(err, "%s does not exist and there are shard sets of %d and %d files beside it; name one shard "
                   "of the set you mean", path, first_k, other_k);
  *k = first_k;
  return 0;
}

/* The files of the dataset named by path, in order, into a new ds->shards. */
static int shards_resolve(Dataset *ds, const char *path, MtError *err) {
  char base[DATA_PATH_MAX];
  int k = 1, sharded = shard_name_parse(path, base, sizeof base, &k);
  if (!sharded) {
    struct stat st;
    if (stat(path, &st) != 0) {
      int e = errno;
      if (e != ENOENT) return mt_fail(err, "cannot open '%s': %s", path, strerror(e));
      int f = shard_set_find(path, &k, err);
      if (f < 0) return -1;
      if (f > 0) return mt_fail(err, "cannot open '%s': %s", path, strerror(e));
      snprintf(base, sizeof base, "%s", path);
      sharded = 1;
    }
  }
  if (k > DATA_MAX_SHARDS) return mt_fail(err, "%s: more than %d shards are not supported", path, DATA_MAX_SHARDS);
  ds->shards = calloc((size_t)k, sizeof *ds->shards);
  if (ds->shards == NULL) return mt_fail(err, "out of memory opening %s (%d shards)", path, k);
  ds->info.n_shards = k;
  for (int i = 0; i < k; i++) {
    Shard *sh = &ds->shards[i];
    sh->file = sh->x[0] = sh->x[1] = sh->xspace[0] = sh->xspace[1] = -1;
    if (sharded)
      mt_data_shard_name(base, i, k, sh->path, sizeof sh->path);
    else
      snprintf(sh->path, sizeof sh->path, "%s", path);
  }
  return 0;
}

/* ==== One file: open, shapes, types, attributes ==== */

static int file_open(Shard *sh, int k, int n_shards, MtError *err) {
  /* stat before open: a FIFO would block the open (and HDF5's) until a writer came */
  if (mt_fileid_regular(sh->path, NULL, err) != 0) return -1;
  int fd = open(sh->path, O_RDONLY);
  if (fd < 0) {
    if (n_shards > 1)
      return mt_fail(err, "cannot open shard %d of %d '%s': %s", k, n_shards, sh->path, strerror(errno));
    return mt_fail(err, "cannot open '%s': %s", sh->path, strerror(errno));
  }
  close(fd);
  htri_t is = H5Fis_hdf5(sh->path);
  if (is <= 0)
    return mt_fail(err, "%s: not an HDF5 file; expected a dataset written by `mpitrain convert` or `mpitrain synth`",
                   sh->path);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  /* File locking fails on some Lustre/NFS mounts and guards nothing for a reader. No sieve buffer: for random rows
   * of a contiguous dataset it reads 64 KiB around every row (3x slower for Fashion-MNIST batches); large reads
   * bypass it anyway. */
  if (fapl < 0 || H5Pset_file_locking(fapl, 0, 1) < 0 || H5Pset_sieve_buf_size(fapl, 0) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    return mt_fail(err, "%s: cannot set up HDF5 file access", sh->path);
  }
  sh->file = H5Fopen(sh->path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (sh->file < 0) return mt_fail(err, "%s: HDF5 cannot open the file (truncated or damaged?)", sh->path);
  return 0;
}

/* 1 if the link exists (and everything on its way), 0 if not. */
static int link_exists(hid_t file, const char *path) {
  char part[64];
  for (const char *p = strchr(path + 1, '/');; p = strchr(p + 1, '/')) {
    snprintf(part, sizeof part, "%.*s", p ? (int)(p - path) : (int)strlen(path), path);
    if (H5Lexists(file, part, H5P_DEFAULT) <= 0) return 0;
    if (p == NULL) return 1;
  }
}

/* Shape and type of split s of one file into m (its labels too when has_y). */
static int meta_split(hid_t file, const char *path, int s, int has_y, Meta *m, MtError *err) {
  int rc = -1;
  hid_t x = -1, y = -1, xs = -1, ys = -1, xt = -1, yt = -1;
  char desc[64];
  x = H5Dopen2(file, x_path[s], H5P_DEFAULT);
  if (x < 0) {
    mt_fail(err, "%s: %s is not a dataset", path, x_path[s]);
    goto done;
  }
  if (mt_h5_filters_check(x, path, x_path[s], err) != 0) goto done;
  if (has_y) {
    y = H5Dopen2(file, y_path[s], H5P_DEFAULT);
    if (y < 0) {
      mt_fail(err, "%s: %s is not a dataset", path, y_path[s]);
      goto done;
    }
    if (mt_h5_filters_check(y, path, y_path[s], err) != 0) goto done;
    ys = H5Dget_space(y);
    yt = H5Dget_type(y);
  }
  xs = H5Dget_space(x);
  xt = H5Dget_type(x);
  if (xs < 0 || xt < 0 || (has_y && (ys < 0 || yt < 0))) {
    mt_fail(err, "%s: cannot read the shapes of %s and %s", path, x_path[s], y_path[s]);
    goto done;
  }
  int xr = H5Sget_simple_extent_ndims(xs), yr = has_y ? H5Sget_simple_extent_ndims(ys) : 1;
  if (xr != 2) {
    mt_fail(err, "%s: %s is %d-D; expected a 2-D array [rows, features]", path, x_path[s], xr);
    goto done;
  }
  if (yr != 1) {
    mt_fail(err, "%s: %s is %d-D; expected a 1-D array of labels [rows]", path, y_path[s], yr);
    goto done;
  }
  hsize_t xd[2], yd[1] = {0};
  if (H5Sget_simple_extent_dims(xs, xd, NULL) < 0 || (has_y && H5Sget_simple_extent_dims(ys, yd, NULL) < 0)) {
    mt_fail(err, "%s: cannot read the shapes of %s and %s", path, x_path[s], y_path[s]);
    goto done;
  }
  H5T_class_t xc = H5Tget_class(xt);
  int is_u8 = xc == H5T_INTEGER && H5Tget_size(xt) == 1 && H5Tget_sign(xt) == H5T_SGN_NONE;
  int is_f32 = xc == H5T_FLOAT && H5Tget_size(xt) == 4;
  if (!is_u8 && !is_f32) {
    type_describe(xt, desc, sizeof desc);
    mt_fail(err, "%s: %s is %s; expected uint8 or float32 (e.g. x.astype('float32') in numpy)", path, x_path[s],
            desc);
    goto done;
  }
  if (has_y && H5Tget_class(yt) != H5T_INTEGER) {
    type_describe(yt, desc, sizeof desc);
    mt_fail(err, "%s: %s holds %s values; expected integer class ids", path, y_path[s], desc);
    goto done;
  }
  if (has_y && yd[0] != xd[0]) {
    mt_fail(err, "%s: %s has %llu rows but %s has %llu; expected one label per row", path, y_path[s],
            (unsigned long long)yd[0], x_path[s], (unsigned long long)xd[0]);
    goto done;
  }
  if (xd[0] > (hsize_t)DATA_MAX_ROWS) {
    mt_fail(err, "%s: %s claims %llu rows; at most %lld rows per split are supported", path, x_path[s],
            (unsigned long long)xd[0], (long long)DATA_MAX_ROWS);
    goto done;
  }
  if (xd[1] < 1 || xd[1] > (hsize_t)DATA_MAX_FEATURES) {
    mt_fail(err, "%s: %s has %llu features; expected 1 .. %d", path, x_path[s], (unsigned long long)xd[1],
            DATA_MAX_FEATURES);
    goto done;
  }
  /* Before anything reads it: a small damaged file may declare far more rows than it stores (reads would return
   * gigabytes of fill values). */
  char where[DATA_PATH_MAX + 16];
  snprintf(where, sizeof where, "%s: %s", path, x_path[s]);
  if (mt_h5_check_stored(x, where, err) != 0) goto done;
  snprintf(where, sizeof where, "%s: %s", path, y_path[s]);
  if (has_y && mt_h5_check_stored(y, where, err) != 0) goto done;
  if (s == SPLIT_TRAIN) {
    m->d = (int)xd[1];
    m->stored_uint8 = is_u8;
  } else if ((int)xd[1] != m->d) {
    mt_fail(err, "%s: /test/x has %d features but /train/x has %d; expected the same features in both splits", path,
            (int)xd[1], m->d);
    goto done;
  } else if (is_u8 != m->stored_uint8) {
    mt_fail(err, "%s: /test/x is %s but /train/x is %s; expected the same type in both splits", path,
            is_u8 ? "uint8" : "float32", m->stored_uint8 ? "uint8" : "float32");
    goto done;
  }
  m->n[s] = (int64_t)xd[0];
  m->has_y[s] = has_y;
  rc = 0;
done:
  if (yt >= 0) H5Tclose(yt);
  if (xt >= 0) H5Tclose(xt);
  if (ys >= 0) H5Sclose(ys);
  if (xs >= 0) H5Sclose(xs);
  if (y >= 0) H5Dclose(y);
  if (x >= 0) H5Dclose(x);
  return rc;
}

static int meta_read(hid_t file, const char *path, int allow_unlabeled, Meta *m, MtError *err) {
  memset(m, 0, sizeof *m);
  m->n_classes = -1;
  m->scale = 1.0;

  /* Root attributes first: a checkpoint passed as data is named as such, not as "no /train/x". */
  char **sv = NULL;
  int ns = 0, f = mt_h5_attr_read_strings(file, path, DATA_ATTR_FORMAT, 1, &sv, &ns, err);
  if (f < 0) return -1;
  if (f == 0) {
    int ok = ns == 1 && strcmp(sv[0], DATA_FORMAT) == 0;
    if (!ok)
      mt_fail(err, "%s: format is '%s'; expected '" DATA_FORMAT "'%s", path, ns > 0 ? sv[0] : "",
              ns > 0 && strstr(sv[0], "checkpoint") ? " (this is a checkpoint, not a dataset)" : "");
    mt_h5_strings_free(sv, ns);
    if (!ok) return -1;
  }
  double v;
  f = mt_h5_attr_read_number(file, path, DATA_ATTR_FORMAT_VERSION, 1, &v, err);
  if (f < 0) return -1;
  if (f == 0 && v > DATA_FORMAT_VERSION)
    return mt_fail(err, "%s: format_version %.0f is newer than this mpitrain reads (%d); upgrade mpitrain", path, v,
                   DATA_FORMAT_VERSION);

  if (!link_exists(file, "/train/x"))
    return mt_fail(err, "%s: no dataset /train/x; expected features [rows, features]", path);
  int ry = link_exists(file, "/train/y");
  if (!ry && !allow_unlabeled)
    return mt_fail(err, "%s: no dataset /train/y; expected labels [rows]" DATA_UNLABELED_HINT, path);
  if (meta_split(file, path, SPLIT_TRAIN, ry, m, err) != 0) return -1;
  int tx = link_exists(file, "/test/x"), ty = link_exists(file, "/test/y");
  if (ty && !tx) return mt_fail(err, "%s: has /test/y but no /test/x; a test split needs features", path);
  if (tx && !ty && !allow_unlabeled)
    return mt_fail(err, "%s: has /test/x but no /test/y; labels are needed here" DATA_UNLABELED_HINT, path);
  if (tx && meta_split(file, path, SPLIT_TEST, ty, m, err) != 0) return -1;

  f = mt_h5_attr_read_number(file, path, DATA_ATTR_NUM_CLASSES, 1, &v, err);
  if (f < 0) return -1;
  if (f == 0) {
    if (v < 2 || v > DATA_MAX_CLASSES)
      return mt_fail(err, "%s: num_classes = %.0f; expected 2 .. %d", path, v, DATA_MAX_CLASSES);
    m->n_classes = (int64_t)v;
  }
  f = mt_h5_attr_read_number(file, path, DATA_ATTR_SCALE, 0, &m->scale, err);
  if (f < 0) return -1;
  f = mt_h5_attr_read_strings(file, path, DATA_ATTR_SOURCE, 1, &sv, &ns, err);
  if (f < 0) return -1;
  if (f == 0) {
    snprintf(m->source, sizeof m->source, "%s", ns > 0 ? sv[0] : "");
    mt_h5_strings_free(sv, ns);
  }
  if (mt_h5_attr_read_strings(file, path, DATA_ATTR_CLASS_NAMES, DATA_MAX_CLASSES, &m->names, &m->n_names, err) < 0) return -1;
  if (m->names && m->n_classes > 0 && m->n_names != m->n_classes)
    return mt_fail(err, "%s: class_names has %d entries but num_classes = %lld; expected one name per class", path,
                   m->n_names, (long long)m->n_classes);
  int fm = mt_h5_attr_read_floats(file, path, DATA_ATTR_MEAN, m->d, &m->mean, err);
  if (fm < 0) return -1;
  int fs = mt_h5_attr_read_floats(file, path, DATA_ATTR_STD, m->d, &m->std, err);
  if (fs < 0) return -1;
  return mt_data_check_preprocess(path, m->scale, m->mean, m->std, m->d, err);
}

/* Shard b must describe the same data as shard 0 (a): same features, type, classes and feature transform. */
static int meta_agree(const Meta *a, const char *pa, const Meta *b, const char *pb, MtError *err) {
  if (a->d != b->d)
    return mt_fail(err, "shard %s has %d features but %s has %d; all shards must agree", pb, b->d, pa, a->d);
  if (a->stored_uint8 != b->stored_uint8)
    return mt_fail(err, "shard %s stores x as %s but %s as %s; all shards must agree", pb,
                   b->stored_uint8 ? "uint8" : "float32", pa, a->stored_uint8 ? "uint8" : "float32");
  if (a->n_classes != b->n_classes)
    return mt_fail(err, "shard %s has num_classes %lld but %s has %lld; all shards must agree", pb,
                   (long long)b->n_classes, pa, (long long)a->n_classes);
  if ((float)a->scale != (float)b->scale)
    return mt_fail(err, "shard %s has scale %g but %s has %g; all shards must agree", pb, b->scale, pa, a->scale);
  if ((a->mean == NULL) != (b->mean == NULL) ||
      (a->mean && (memcmp(a->mean, b->mean, (size_t)a->d * sizeof(float)) != 0 ||
                   memcmp(a->std, b->std, (size_t)a->d * sizeof(float)) != 0)))
    return mt_fail(err, "shard %s has a different mean/std normalisation than %s; all shards must agree", pb, pa);
  return 0;
}

/* ==== Loading labels and features ==== */

/* Dataset path of split s in a file, opened with a chunk cache suited to how it will be read. */
static hid_t x_open(const Shard *sh, int s, int streaming) {
  hid_t dapl = H5Pcreate(H5P_DATASET_ACCESS);
  if (dapl < 0) return -1;
  if (streaming) {
    /* Uncompressed chunks: no cache, so HDF5 reads just the requested rows instead of a whole ~1 MiB chunk per
     * row. Compressed chunks must be decoded whole: cache enough of them that a batch reuses what it decoded. */
    hid_t probe = H5Dopen2(sh->file, x_path[s], H5P_DEFAULT), dcpl = -1;
    int filtered = 0;
    if (probe >= 0) {
      dcpl = H5Dget_create_plist(probe);
      if (dcpl >= 0) filtered = H5Pget_nfilters(dcpl) > 0;
      if (dcpl >= 0) H5Pclose(dcpl);
      H5Dclose(probe);
    }
    if (H5Pset_chunk_cache(dapl, filtered ? 12421 : 0, filtered ? DATA_STREAM_CACHE : 0, 0.75) < 0) {
      H5Pclose(dapl);
      return -1;
    }
  }
  hid_t x = H5Dopen2(sh->file, x_path[s], dapl);
  H5Pclose(dapl);
  return x;
}

/* Rows per read when loading: about DATA_LOAD_BYTES, a whole number of chunks so no chunk is decoded twice. */
static int64_t load_rows(hid_t ds, size_t row_bytes) {
  int64_t rows = (int64_t)(DATA_LOAD_BYTES / row_bytes);
  if (rows < 1) rows = 1;
  hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl >= 0) {
    hsize_t chunk[2] = {0, 0};
    if (H5Pget_layout(dcpl) == H5D_CHUNKED && H5Pget_chunk(dcpl, 2, chunk) >= 1 && chunk[0] > 0)
      rows = rows < (int64_t)chunk[0] ? (int64_t)chunk[0] : rows / (int64_t)chunk[0] * (int64_t)chunk[0];
    H5Pclose(dcpl);
  }
  return rows;
}

/* Labels of split s of every shard into ds->y[s]; range-checked when num_classes is known, else the largest
 * label is returned in *max_label for inference. */
static int labels_load(Dataset *ds, int s, int64_t n_classes, int64_t *max_label, MtError *err) {
  for (int k = 0; k < ds->info.n_shards; k++) {
    Shard *sh = &ds->shards[k];
    if (sh->n[s] == 0) continue;
    hid_t y = H5Dopen2(sh->file, y_path[s], H5P_DEFAULT);
    if (y < 0) return mt_fail(err, "%s: cannot open %s", sh->path, y_path[s]);
    int32_t *dst = ds->y[s] + sh->first[s];
    int64_t step = load_rows(y, sizeof(int32_t));
    for (int64_t r = 0; r < sh->n[s]; r += step) {
      int64_t cnt = sh->n[s] - r < step ? sh->n[s] - r : step;
      /* HDF5 converts any stored integer type to int32 (clipping what does not fit, which the range check
       * below then reports). */
      if (mt_h5_rows(y, H5T_NATIVE_INT32, r, cnt, 0, dst + r, 0) < 0) {
        H5Dclose(y);
        return mt_fail(err, "%s: reading %s rows %lld .. %lld failed (truncated or damaged file?)", sh->path,
                       y_path[s], (long long)r, (long long)(r + cnt - 1));
      }
      for (int64_t i = r; i < r + cnt; i++) {
        int32_t l = dst[i];
        if (l < 0 || (n_classes > 0 && l >= n_classes)) {
          H5Dclose(y);
          if (n_classes > 0)
            return mt_fail(err, "%s: label %d at %s[%lld] is outside [0, %lld) (num_classes = %lld)", sh->path,
                           (int)l, y_path[s], (long long)i, (long long)n_classes, (long long)n_classes);
          return mt_fail(err, "%s: label %d at %s[%lld] is negative; expected class ids 0, 1, ...", sh->path, (int)l,
                         y_path[s], (long long)i);
        }
        if (l > *max_label) *max_label = l;
      }
    }
    H5Dclose(y);
  }
  return 0;
}

/* 0 if every stored float is finite, else names the first bad one (row within the file). */
static int check_finite(const char *path, int s, const float *v /* [n, d] */, int64_t n, int d, int64_t first_row,
                        MtError *err) {
  for (int64_t i = 0; i < n * (int64_t)d; i++)
    if (!isfinite(v[i]))
      return mt_fail(err, "%s: %s[%lld] holds %s (feature %d); expected finite features", path, x_path[s],
                     (long long)(first_row + i / d), isnan(v[i]) ? "NaN" : "Inf", (int)(i % d));
  return 0;
}

/* The whole split s, as stored, into ds->x[s]. */
static int features_load(Dataset *ds, int s, MtError *err) {
  size_t row_bytes = ds->elem * (size_t)ds->info.d;
  if (ds->x[s] == NULL) return mt_fail(err, "%s: no memory to load %s into", ds->info.path, x_path[s]);
  hid_t mtype = ds->info.stored_uint8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  for (int k = 0; k < ds->info.n_shards; k++) {
    Shard *sh = &ds->shards[k];
    if (sh->n[s] == 0) continue;
    hid_t x = x_open(sh, s, 0);
    if (x < 0) return mt_fail(err, "%s: cannot open %s", sh->path, x_path[s]);
    char *dst = (char *)ds->x[s] + (size_t)sh->first[s] * row_bytes;
    int64_t step = load_rows(x, row_bytes);
    for (int64_t r = 0; r < sh->n[s]; r += step) {
      int64_t cnt = sh->n[s] - r < step ? sh->n[s] - r : step;
      char *p = dst + (size_t)r * row_bytes;
      if (mt_h5_rows(x, mtype, r, cnt, ds->info.d, p, 0) < 0) {
        H5Dclose(x);
        return mt_fail(err, "%s: reading %s rows %lld .. %lld failed (truncated or damaged file?)", sh->path,
                       x_path[s], (long long)r, (long long)(r + cnt - 1));
      }
      if (!ds->info.stored_uint8 && check_finite(sh->path, s, (const float *)p, cnt, ds->info.d, r, err) != 0) {
        H5Dclose(x);
        return -1;
      }
    }
    H5Dclose(x);
  }
  return 0;
}

/* ==== Open / close ==== */

static Dataset *dataset_new(const char *path) {
  Dataset *ds = calloc(1, sizeof *ds);
  if (ds == NULL) return NULL;
  snprintf(ds->info.path, sizeof ds->info.path, "%s", path);
  ds->stage_space = -1;
  return ds;
}

/* Takes ownership of meta's arrays. */
static void dataset_adopt(Dataset *ds, Meta *m, int64_t total[2]) {
  DataInfo *in = &ds->info;
  in->n[0] = total[0];
  in->n[1] = total[1];
  in->d = m->d;
  in->stored_uint8 = m->stored_uint8;
  in->n_classes = (int)m->n_classes;
  in->scale = (float)m->scale;
  in->has_norm = m->mean != NULL;
  snprintf(in->source, sizeof in->source, "%s", m->source);
  ds->mean = m->mean;
  ds->std = m->std;
  ds->names = m->names;
  ds->n_names = m->n_names;
  ds->elem = m->stored_uint8 ? 1 : sizeof(float);
  m->mean = m->std = NULL;
  m->names = NULL;
  m->n_names = 0;
}

/* Opens every shard and reads its metadata (the first shard's into m0): sizes each shard's part of the splits
 * into total, and checks that the shards agree with the first (labels of a split in all or none). */
static int shards_read(Dataset *ds, int allow_unlabeled, Meta *m0, int64_t total[2], int labeled[2], MtError *err) {
  int labeled_by[2] = {0, 0}; /* set by the first shard with rows of the split */
  for (int k = 0; k < ds->info.n_shards; k++) {
    Shard *sh = &ds->shards[k];
    Meta mk = {0}, *m = k == 0 ? m0 : &mk;
    if (file_open(sh, k, ds->info.n_shards, err) != 0 || meta_read(sh->file, sh->path, allow_unlabeled, m, err) != 0) {
      meta_free(&mk);
      return -1;
    }
    for (int s = 0; s < 2; s++) {
      sh->n[s] = m->n[s];
      sh->first[s] = total[s];
      total[s] += m->n[s];
      if (m->n[s] == 0) continue;
      if (labeled[s] < 0) {
        labeled[s] = m->has_y[s];
        labeled_by[s] = k;
      } else if (labeled[s] != m->has_y[s]) {
        const int lk = labeled[s] ? labeled_by[s] : k;
        meta_free(&mk);
        return mt_fail(err, "shard %s has labels for its %s rows but %s has none; all shards must agree",
                       ds->shards[lk].path, mt_data_split_names[s], ds->shards[lk == k ? labeled_by[s] : k].path);
      }
    }
    if (k > 0) {
      int agree = meta_agree(m0, ds->shards[0].path, m, sh->path, err);
      meta_free(&mk);
      if (agree != 0) return -1;
    }
  }
  return 0;
}

/* The splits' sizes in all: within the limits, and at least one training row. */
static int totals_check(const Dataset *ds, const char *path, const int64_t total[2], MtError *err) {
  for (int s = 0; s < 2; s++)
    if (total[s] > DATA_MAX_ROWS)
      return mt_fail(err, "%s: the %s split has %lld rows in all; at most %lld rows per split are supported", path,
                     mt_data_split_names[s], (long long)total[s], (long long)DATA_MAX_ROWS);
  if (total[SPLIT_TRAIN] == 0)
    return mt_fail(err, "%s: /train/x has 0 rows; expected at least one training row",
                   ds->info.n_shards > 1 ? path : ds->shards[0].path);
  return 0;
}

/* Which splits are held in memory (o->memory, the limit, the machine), sizes checked before allocating anything
 * big: a header claiming absurd sizes must fail with a message, not an OOM. *streams: some split is read per batch. */
static int memory_decide(Dataset *ds, const char *path, const DataOptions *o, int *streams, MtError *err) {
  DataInfo *in = &ds->info;
  int64_t ram = phys_memory();
  double label_bytes = 4.0 * (double)(in->n[0] + in->n[1]);
  if (label_bytes > ram / 2)
    return mt_fail(err, "%s: the labels alone need %.1f GiB in memory but this machine has %.1f GiB", path,
                   gib(label_bytes), gib((double)ram));
  *streams = 0;
  for (int s = 0; s < 2; s++) {
    double bytes = (double)in->n[s] * in->d * (double)ds->elem;
    if (in->n[s] == 0) {
      in->in_memory[s] = 1; /* nothing to read */
      continue;
    }
    if (o->memory == MEMORY_YES) {
      if (bytes > 0.75 * (double)ram)
        return mt_fail(err, "%s: holding the %s split in memory needs %.1f GiB (%lld rows x %d features x %s) but "
                       "this machine has %.1f GiB; use --in-memory no to read each batch from the file", path,
                       mt_data_split_names[s], gib(bytes), (long long)in->n[s], in->d, in->stored_uint8 ? "uint8" : "float32",
                       gib((double)ram));
      in->in_memory[s] = 1;
    } else if (o->memory == MEMORY_NO) {
      in->in_memory[s] = 0;
    } else {
      /* auto never takes more than half of the machine, whatever the limit says */
      in->in_memory[s] = bytes <= (double)o->memory_limit && bytes <= 0.5 * (double)ram;
    }
    if (!in->in_memory[s]) *streams = 1;
  }
  double stage = (double)o->max_rows * in->d * (double)ds->elem;
  if (*streams && stage > 0.25 * (double)ram)
    return mt_fail(err, "%s: a read buffer of %d rows x %d features needs %.1f GiB; use smaller batches", path,
                   o->max_rows, in->d, gib(stage));
  return 0;
}

/* Labels of every split that has them, in memory; without a num_classes attribute the class count comes from the
 * class names or the labels. */
static int labels_load_all(Dataset *ds, const char *path, MtError *err) {
  DataInfo *in = &ds->info;
  int64_t max_label = -1;
  int any_labels = 0;
  for (int s = 0; s < 2; s++) {
    if (in->n[s] == 0 || !in->labeled[s]) continue;
    any_labels = 1;
    ds->y[s] = mt_alloc((size_t)in->n[s] * sizeof(int32_t), s == 0 ? "training labels" : "test labels", err);
    if (ds->y[s] == NULL || labels_load(ds, s, in->n_classes > 0 ? in->n_classes : 0, &max_label, err) != 0)
      return -1;
  }
  if (in->n_classes > 0) return 0;
  if (!any_labels) {
    /* Features only, no num_classes: the class names tell, else the model that reads them (predict). */
    in->n_classes = ds->names ? ds->n_names : 0;
    return 0;
  }
  /* No num_classes attribute: the labels tell. */
  if (max_label + 1 < 2)
    return mt_fail(err, "%s: no num_classes attribute and every label is 0; expected at least 2 classes", path);
  /* The bound num_classes has when it is given: a stray huge label must not size the model (or, past 2^31, wrap
   * the class count negative). Labels beyond int32 are read clipped to 2147483647. */
  if (max_label + 1 > DATA_MAX_CLASSES)
    return mt_fail(err, "%s: no num_classes attribute and the largest label is %lld; expected class ids below %d (a "
                   "damaged label? else set num_classes)", path, (long long)max_label, DATA_MAX_CLASSES);
  in->n_classes = (int)(max_label + 1);
  in->n_classes_inferred = 1;
  if (ds->names && ds->n_names != in->n_classes)
    return mt_fail(err, "%s: class_names has %d entries but the labels use %d classes; expected one name per class",
                   path, ds->n_names, in->n_classes);
  return 0;
}

/* Split s's features datasets of every shard kept open for per-batch reads. */
static int features_keep_open(Dataset *ds, int s, MtError *err) {
  for (int k = 0; k < ds->info.n_shards; k++) {
    Shard *sh = &ds->shards[k];
    if (sh->n[s] == 0) continue;
    sh->x[s] = x_open(sh, s, 1);
    sh->xspace[s] = sh->x[s] < 0 ? -1 : H5Dget_space(sh->x[s]);
    hid_t dcpl = sh->xspace[s] < 0 ? -1 : H5Dget_create_plist(sh->x[s]);
    if (dcpl < 0) return mt_fail(err, "%s: cannot open %s", sh->path, x_path[s]);
    sh->chunked[s] = H5Pget_layout(dcpl) == H5D_CHUNKED;
    H5Pclose(dcpl);
  }
  return 0;
}

/* Features: in memory as stored (or later: defer_features), or datasets kept open for per-batch reads with their
 * read buffer; when everything is in memory, the files are let go (another job may rewrite them). */
static int features_prepare(Dataset *ds, const char *path, const DataOptions *o, int streams, MtError *err) {
  DataInfo *in = &ds->info;
  for (int s = 0; s < 2; s++) {
    if (in->n[s] == 0) continue;
    if (in->in_memory[s] && o->defer_features) {
      ds->x_pending[s] = 1;
    } else if (in->in_memory[s]) {
      ds->x[s] = mt_alloc((size_t)in->n[s] * (size_t)in->d * ds->elem, s == 0 ? "training features" : "test features",
                          err);
      if (ds->x[s] == NULL || features_load(ds, s, err) != 0) return -1;
    } else if (features_keep_open(ds, s, err) != 0) {
      return -1;
    }
  }
  if (streams) {
    ds->max_rows = o->max_rows;
    ds->stage = mt_alloc((size_t)o->max_rows * (size_t)in->d * ds->elem, "read buffer", err);
    ds->blocks = ds->stage ? mt_alloc((size_t)o->max_rows * 2 * sizeof(int64_t), "read block list", err) : NULL;
    if (ds->blocks == NULL) return -1;
    hsize_t dims[2] = {(hsize_t)o->max_rows, (hsize_t)in->d};
    ds->stage_space = H5Screate_simple(2, dims, NULL);
    if (ds->stage_space < 0) return mt_fail(err, "%s: cannot create the HDF5 dataspace of the read buffer", path);
  } else if (!ds->x_pending[0] && !ds->x_pending[1]) {
    for (int k = in->n_shards - 1; k >= 0; k--) {
      H5Fclose(ds->shards[k].file);
      ds->shards[k].file = -1;
    }
  }
  return 0;
}

int mt_data_open(Dataset **out, const char *path, const DataOptions *opt, MtError *err) {
  *out = NULL;
  DataOptions o = {MEMORY_AUTO, DATA_DEFAULT_MEMORY_LIMIT, DATA_DEFAULT_MAX_ROWS, 0, 0};
  if (opt) o = *opt;
  if (o.memory_limit <= 0) o.memory_limit = DATA_DEFAULT_MEMORY_LIMIT;
  if (o.max_rows <= 0) o.max_rows = DATA_DEFAULT_MAX_ROWS;
  Meta m0 = {0};
  Dataset *ds = dataset_new(path);
  if (ds == NULL) return mt_fail(err, "out of memory opening %s", path);
  int64_t total[2] = {0, 0};
  int labeled[2] = {-1, -1}, streams = 0;
  if (shards_resolve(ds, path, err) != 0 || shards_read(ds, o.allow_unlabeled, &m0, total, labeled, err) != 0 ||
      totals_check(ds, path, total, err) != 0)
    goto fail;
  dataset_adopt(ds, &m0, total);
  for (int s = 0; s < 2; s++) ds->info.labeled[s] = labeled[s] != 0;
  if (memory_decide(ds, path, &o, &streams, err) != 0 || labels_load_all(ds, path, err) != 0 ||
      features_prepare(ds, path, &o, streams, err) != 0)
    goto fail;
  *out = ds;
  return 0;
fail:
  meta_free(&m0);
  mt_data_close(ds);
  return -1;
}

int mt_data_open_synthetic(Dataset **out, const SynthSpec *spec, MtError *err) {
  *out = NULL;
  if (spec->n_train < 1 || spec->n_train > DATA_MAX_ROWS || spec->n_test < 0 || spec->n_test > DATA_MAX_ROWS)
    return mt_fail(err, "synthetic data: %lld train / %lld test rows; expected 1 .. %lld train and 0 .. %lld test",
                   (long long)spec->n_train, (long long)spec->n_test, (long long)DATA_MAX_ROWS,
                   (long long)DATA_MAX_ROWS);
  if (spec->d < 1 || spec->d > DATA_MAX_FEATURES)
    return mt_fail(err, "synthetic data: %d features; expected 1 .. %d", spec->d, DATA_MAX_FEATURES);
  if (spec->n_classes < 2 || spec->n_classes > DATA_MAX_CLASSES)
    return mt_fail(err, "synthetic data: %d classes; expected 2 .. %d", spec->n_classes, DATA_MAX_CLASSES);
  if (!isfinite(spec->noise) || spec->noise < 0)
    return mt_fail(err, "synthetic data: noise %g; expected a finite number >= 0", (double)spec->noise);
  double bytes = 4.0 * (double)(spec->n_train + spec->n_test) * (spec->d + 1) + 4.0 * spec->n_classes * spec->d;
  int64_t ram = phys_memory();
  if (bytes > 0.75 * (double)ram)
    return mt_fail(err, "synthetic data of %lld rows x %d features needs %.1f GiB in memory but this machine has "
                   "%.1f GiB; write it with `mpitrain synth` and read it from the file instead",
                   (long long)(spec->n_train + spec->n_test), spec->d, gib(bytes), gib((double)ram));
  Dataset *ds = dataset_new("(synthetic)");
  float *centres = NULL;
  if (ds == NULL) return mt_fail(err, "out of memory creating synthetic data");
  DataInfo *in = &ds->info;
  in->n[0] = spec->n_train;
  in->n[1] = spec->n_test;
  in->d = spec->d;
  in->n_classes = spec->n_classes;
  in->scale = 1.0f;
  in->n_shards = 0;
  in->in_memory[0] = in->in_memory[1] = 1;
  in->labeled[0] = in->labeled[1] = 1;
  ds->elem = sizeof(float);
  snprintf(in->source, sizeof in->source, "synthetic: Gaussian clusters, seed %llu, noise %g",
           (unsigned long long)spec->seed, (double)spec->noise);
  centres = mt_alloc((size_t)spec->n_classes * (size_t)spec->d * sizeof(float), "synthetic class centres", err);
  if (centres == NULL) goto fail;
  mt_synth_centres(spec, centres);
  for (int s = 0; s < 2; s++) {
    if (in->n[s] == 0) continue;
    ds->x[s] = mt_alloc((size_t)in->n[s] * (size_t)in->d * sizeof(float), "synthetic features", err);
    ds->y[s] = ds->x[s] ? mt_alloc((size_t)in->n[s] * sizeof(int32_t), "synthetic labels", err) : NULL;
    if (ds->y[s] == NULL) goto fail;
    mt_synth_rows(spec, centres, s, 0, in->n[s], ds->x[s], ds->y[s]);
  }
  mt_free(centres);
  *out = ds;
  return 0;
fail:
  mt_free(centres);
  mt_data_close(ds);
  return -1;
}

void mt_data_close(Dataset *ds) {
  if (ds == NULL) return;
  if (ds->stage_space >= 0) H5Sclose(ds->stage_space);
  mt_free(ds->blocks);
  mt_free(ds->stage);
  for (int s = 1; s >= 0; s--) {
    if (!ds->x_shared[s]) mt_free(ds->x[s]);
    mt_free(ds->y[s]);
  }
  for (int k = ds->info.n_shards - 1; ds->shards && k >= 0; k--) {
    Shard *sh = &ds->shards[k];
    for (int s = 1; s >= 0; s--) {
      if (sh->xspace[s] >= 0) H5Sclose(sh->xspace[s]);
      if (sh->x[s] >= 0) H5Dclose(sh->x[s]);
    }
    if (sh->file >= 0) H5Fclose(sh->file);
  }
  free(ds->shards);
  mt_h5_strings_free(ds->names, ds->n_names);
  free(ds->std);
  free(ds->mean);
  free(ds);
}

size_t mt_data_pending_bytes(const Dataset *ds, Split s) {
  if (s != SPLIT_TRAIN && s != SPLIT_TEST) return 0;
  return ds->x_pending[s] ? (size_t)ds->info.n[s] * (size_t)ds->info.d * ds->elem : 0;
}

int mt_data_load_features(Dataset *ds, Split s, void *dst, MtError *err) {
  if (mt_data_pending_bytes(ds, s) == 0) return 0;
  ds->x[s] = dst;
  int rc = features_load(ds, (int)s, err);
  ds->x[s] = NULL;
  return rc;
}

void mt_data_attach_features(Dataset *ds, Split s, void *shared) {
  if (mt_data_pending_bytes(ds, s) == 0) return;
  ds->x[s] = shared;
  ds->x_shared[s] = 1;
  ds->x_pending[s] = 0;
}

void mt_data_probe_format(const char *path, char *buf, size_t n) {
  if (n > 0) buf[0] = '\0';
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode) || H5Fis_hdf5(path) <= 0) return;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0) return;
  hid_t f = H5Pset_file_locking(fapl, 0, 1) < 0 ? -1 : H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0) return;
  char **v = NULL;
  int nv = 0;
  MtError ignored = {0};
  if (mt_h5_attr_read_strings(f, path, DATA_ATTR_FORMAT, 1, &v, &nv, &ignored) == 0 && nv == 1) snprintf(buf, n, "%s", v[0]);
  mt_h5_strings_free(v, nv);
  H5Fclose(f);
}

/* ==== Accessors ==== */

const DataInfo *mt_data_info(const Dataset *ds) { return &ds->info; }

const char *mt_data_class_name(const Dataset *ds, int c) {
  return ds->names && c >= 0 && c < ds->n_names ? ds->names[c] : NULL;
}

const int32_t *mt_data_labels(const Dataset *ds, Split s) { return ds->y[s]; }

const char *mt_data_shard_path(const Dataset *ds, int k) {
  return k >= 0 && k < ds->info.n_shards ? ds->shards[k].path : NULL;
}

const float *mt_data_mean(const Dataset *ds) { return ds->mean; }
const float *mt_data_std(const Dataset *ds) { return ds->std; }

static int same_floats(const float *a, const float *b, int n) {
  return (a == NULL) == (b == NULL) && (a == NULL || memcmp(a, b, sizeof(float) * (size_t)n) == 0);
}

int mt_data_preprocess_differs(const Dataset *ds, float scale, const float *mean, const float *std) {
  const int d = ds->info.d;
  return (ds->info.scale != scale ? DATA_PRE_SCALE : 0) |
         (!same_floats(ds->mean, mean, d) || !same_floats(ds->std, std, d) ? DATA_PRE_NORM : 0);
}

int mt_data_check_preprocess(const char *where, double scale, const float *mean, const float *std, int d, MtError *err) {
  const float s = (float)scale;
  if (!(scale > 0) || !isfinite(scale))
    return mt_fail(err, "%s: scale = %g; expected a positive finite number", where, scale);
  if (s == 0.0f || !isfinite(s))
    return mt_fail(err, "%s: scale = %g is %s in float32; expected a positive finite number", where, scale,
                   s == 0.0f ? "0" : "infinite");
  if ((mean == NULL) != (std == NULL))
    return mt_fail(err, "%s: has %s but no %s; normalisation needs both", where, mean ? "mean" : "std",
                   mean ? "std" : "mean");
  for (int j = 0; mean && j < d; j++) {
    if (!isfinite(mean[j]))
      return mt_fail(err, "%s: mean of feature %d = %g; expected a finite number", where, j, (double)mean[j]);
    if (!(std[j] > 0.0f) || !isfinite(std[j]))
      return mt_fail(err, "%s: std of feature %d = %g; expected a positive finite number", where, j, (double)std[j]);
  }
  return 0;
}

int mt_data_set_preprocess(Dataset *ds, float scale, const float *mean, const float *std, MtError *err) {
  const int d = ds->info.d;
  if (mt_data_check_preprocess(ds->info.path, scale, mean, std, d, err) != 0) return -1;
  float *m = NULL, *sd = NULL;
  if (mean) {
    m = malloc(sizeof(float) * (size_t)d);
    sd = m ? malloc(sizeof(float) * (size_t)d) : NULL;
    if (sd == NULL) {
      free(m);
      return mt_fail(err, "out of memory setting the preprocessing of %s", ds->info.path);
    }
    memcpy(m, mean, sizeof(float) * (size_t)d);
    memcpy(sd, std, sizeof(float) * (size_t)d);
  }
  free(ds->std);
  free(ds->mean);
  ds->mean = m;
  ds->std = sd;
  ds->info.scale = scale;
  ds->info.has_norm = m != NULL;
  return 0;
}

/* ==== Reading rows ==== */

/* One stored row to features: x * scale, then (· - mean) / std. The only conversion, so memory and streaming
 * agree to the bit. */
static void row_convert(const Dataset *ds, const void *src, float *dst /* [d] */) {
  const int d = ds->info.d;
  const float scale = ds->info.scale;
  if (ds->info.stored_uint8) {
    const uint8_t *u = src;
    for (int j = 0; j < d; j++) dst[j] = (float)u[j] * scale;
  } else {
    const float *f = src;
    for (int j = 0; j < d; j++) dst[j] = f[j] * scale;
  }
  if (ds->info.has_norm) {
    const float *mean = ds->mean, *std = ds->std;
    for (int j = 0; j < d; j++) dst[j] = (dst[j] - mean[j]) / std[j];
  }
}

/* Index of the shard holding global row r of split s (rows are in shard order). */
static int shard_of(const Dataset *ds, int s, int64_t r) {
  int lo = 0, hi = ds->info.n_shards - 1;
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (ds->shards[mid].first[s] <= r)
      lo = mid;
    else
      hi = mid - 1;
  }
  /* shards with no rows of this split share first[] with the next one: step over them */
  while (ds->shards[lo].n[s] == 0 || r >= ds->shards[lo].first[s] + ds->shards[lo].n[s]) lo++;
  return lo;
}

static int split_check(const Dataset *ds, Split s, MtError *err) {
  if (s != SPLIT_TRAIN && s != SPLIT_TEST) return mt_fail(err, "%s: no split %d", ds->info.path, (int)s);
  if (ds->info.n[s] == 0) return mt_fail(err, "%s: has no %s split", ds->info.path, mt_data_split_names[s]);
  return 0;
}

/* Reads the runs ds->blocks[0..nb) (rows of shard sh's split s, u rows in all) into the staging buffer, in order.
 * HDF5 1.10 maps an irregular selection (an OR of runs) onto the chunks of a chunked dataset element by element:
 * 5.8 ms for 128 random Fashion-MNIST rows, against 0.25 ms for one H5Dread per run. Contiguous datasets take the
 * OR-ed selection in one H5Dread, which is the faster way there (0.24 ms). */
static int stage_read(const Dataset *ds, const Shard *sh, int s, int nb, int u, MtError *err) {
  hid_t fs = sh->xspace[s], ms = ds->stage_space, mtype = ds->info.stored_uint8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT;
  const hsize_t d = (hsize_t)ds->info.d;
  const int64_t *b = ds->blocks;
  int rc = 0;
  if (sh->chunked[s]) {
    int64_t at = 0;
    for (int i = 0; rc == 0 && i < nb; i++) {
      hsize_t fst[2] = {(hsize_t)b[2 * i], 0}, mst[2] = {(hsize_t)at, 0}, cnt[2] = {(hsize_t)b[2 * i + 1], d};
      if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, fst, NULL, cnt, NULL) < 0 ||
          H5Sselect_hyperslab(ms, H5S_SELECT_SET, mst, NULL, cnt, NULL) < 0 ||
          H5Dread(sh->x[s], mtype, ms, fs, H5P_DEFAULT, ds->stage) < 0)
        rc = -1;
      at += b[2 * i + 1];
    }
  } else {
    hsize_t mst[2] = {0, 0}, mcnt[2] = {(hsize_t)u, d};
    for (int i = 0; rc == 0 && i < nb; i++) {
      hsize_t fst[2] = {(hsize_t)b[2 * i], 0}, cnt[2] = {(hsize_t)b[2 * i + 1], d};
      if (H5Sselect_hyperslab(fs, i == 0 ? H5S_SELECT_SET : H5S_SELECT_OR, fst, NULL, cnt, NULL) < 0) rc = -1;
    }
    if (rc == 0 && (H5Sselect_hyperslab(ms, H5S_SELECT_SET, mst, NULL, mcnt, NULL) < 0 ||
                    H5Dread(sh->x[s], mtype, ms, fs, H5P_DEFAULT, ds->stage) < 0))
      rc = -1;
  }
  if (rc != 0)
    return mt_fail(err, "%s: reading rows %lld .. %lld of %s failed (file changed, truncated or damaged?)", sh->path,
                   (long long)b[0], (long long)(b[2 * (nb - 1)] + b[2 * nb - 1] - 1), x_path[s]);
  return 0;
}

/* Labels of rows first .. first+n-1 of split s into y [n]; -1 each for a split without labels. */
static void labels_copy(const Dataset *ds, Split s, int64_t first, int n, int32_t *y) {
  if (ds->y[s])
    memcpy(y, ds->y[s] + first, (size_t)n * sizeof *y);
  else
    for (int i = 0; i < n; i++) y[i] = -1;
}

int mt_data_read(Dataset *ds, Split s, const int64_t *rows /* [n] */, int n, float *x /* [n, d] */,
              int32_t *y /* [n] */, MtError *err) {
  if (split_check(ds, s, err) != 0) return -1;
  const int d = ds->info.d;
  const int64_t N = ds->info.n[s];
  for (int k = 0; k < n; k++)
    if (rows[k] < 0 || rows[k] >= N || (k > 0 && rows[k] < rows[k - 1]))
      return mt_fail(err, "%s: mt_data_read: row %lld at position %d; expected rows sorted ascending in [0, %lld) of "
                     "the %s split", ds->info.path, (long long)rows[k], k, (long long)N, mt_data_split_names[s]);
  const size_t row_bytes = ds->elem * (size_t)d;
  if (ds->info.in_memory[s]) {
    const char *base = ds->x[s];
    for (int k = 0; k < n; k++) {
      row_convert(ds, base + (size_t)rows[k] * row_bytes, x + (size_t)k * d);
      y[k] = ds->y[s] ? ds->y[s][rows[k]] : -1;
    }
    return 0;
  }
  /* Streaming: per shard touched, consecutive rows merge into runs that are read into the staging buffer
   * (stage_read; again for every max_rows distinct rows); duplicates are read once and copied out again. */
  int k = 0;
  while (k < n) {
    const Shard *sh = &ds->shards[shard_of(ds, s, rows[k])];
    const int64_t off = sh->first[s], end = off + sh->n[s];
    int64_t *b = ds->blocks;
    int u = 0, j = k, nb = 0;
    for (; j < n && rows[j] < end; j++) {
      if (j > k && rows[j] == rows[j - 1]) continue;
      if (u == ds->max_rows) break;
      int64_t local = rows[j] - off;
      if (nb > 0 && local == b[2 * (nb - 1)] + b[2 * nb - 1]) {
        b[2 * nb - 1]++;
      } else {
        b[2 * nb] = local;
        b[2 * nb + 1] = 1;
        nb++;
      }
      u++;
    }
    if (stage_read(ds, sh, s, nb, u, err) != 0) return -1;
    const char *stage = ds->stage;
    int idx = -1;
    for (int t = k; t < j; t++) {
      if (t == k || rows[t] != rows[t - 1]) {
        idx++;
        /* Rows read per batch are checked as they arrive: a NaN must stop training with the row's name. */
        if (!ds->info.stored_uint8 &&
            check_finite(sh->path, s, (const float *)(stage + (size_t)idx * row_bytes), 1, d, rows[t] - off, err))
          return -1;
      }
      row_convert(ds, stage + (size_t)idx * row_bytes, x + (size_t)t * d);
      y[t] = ds->y[s] ? ds->y[s][rows[t]] : -1;
    }
    k = j;
  }
  return 0;
}

int mt_data_read_range(Dataset *ds, Split s, int64_t first, int n, float *x /* [n, d] */, int32_t *y /* [n] */,
                    MtError *err) {
  if (split_check(ds, s, err) != 0) return -1;
  const int d = ds->info.d;
  if (first < 0 || n < 0 || first + n > ds->info.n[s])
    return mt_fail(err, "%s: mt_data_read_range: rows %lld .. %lld are outside [0, %lld) of the %s split", ds->info.path,
                   (long long)first, (long long)(first + n - 1), (long long)ds->info.n[s], mt_data_split_names[s]);
  const size_t row_bytes = ds->elem * (size_t)d;
  if (ds->info.in_memory[s]) {
    const char *base = ds->x[s];
    for (int k = 0; k < n; k++) row_convert(ds, base + (size_t)(first + k) * row_bytes, x + (size_t)k * d);
    labels_copy(ds, s, first, n, y);
    return 0;
  }
  int k = 0;
  while (k < n) {
    int64_t r = first + k;
    const Shard *sh = &ds->shards[shard_of(ds, s, r)];
    int64_t local = r - sh->first[s], avail = sh->n[s] - local;
    int cnt = n - k < ds->max_rows ? n - k : ds->max_rows;
    if (cnt > avail) cnt = (int)avail;
    ds->blocks[0] = local;
    ds->blocks[1] = cnt;
    if (stage_read(ds, sh, s, 1, cnt, err) != 0) return -1;
    if (!ds->info.stored_uint8 && check_finite(sh->path, s, ds->stage, cnt, d, local, err) != 0) return -1;
    for (int t = 0; t < cnt; t++)
      row_convert(ds, (const char *)ds->stage + (size_t)t * row_bytes, x + (size_t)(k + t) * d);
    labels_copy(ds, s, r, cnt, y + k);
    k += cnt;
  }
  return 0;
}
