/* h5util.c — small HDF5 helpers shared by the dataset reader, the dataset writer and checkpoints: row ranges, a
 * check that a dataset stores what it declares, flushing and abandoning files on a full disk, and attributes (any
 * numeric type HDF5 can convert; strings fixed- or variable-length on read, variable-length UTF-8 on write, which is
 * what h5py writes for str). */
#define _GNU_SOURCE /* memfd_create */
#include "h5util.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* ==== Failures ==== */

static int noted_errno; /* the errno of the last failure mt_h5_rows saw, before its cleanup cleared HDF5's stack */

static herr_t find_errno(unsigned n, const H5E_error2_t *e, void *data) {
  (void)n;
  const char *p = e->desc ? strstr(e->desc, "errno = ") : NULL;
  if (p != NULL && *(int *)data == 0) *(int *)data = atoi(p + 8);
  return 0;
}

/* The errno HDF5's file driver put in its message ("file write failed: ..., errno = 28, ..."), 0 if none. */
static int stack_errno(void) {
  int e = 0;
  H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, find_errno, &e);
  return e;
}

const char *mt_h5_error_reason(void) {
  int e = stack_errno();
  if (e == 0) e = noted_errno;
  noted_errno = 0;
  return e > 0 ? strerror(e) : NULL;
}

static int flush_failed(void) {
  if (noted_errno > 0) errno = noted_errno;
  return -1;
}

int mt_h5_file_flush(hid_t file, const char *path) {
  /* Cached chunks first: writing them allocates their space, and a failure here is an ordinary failed write. */
  ssize_t n = H5Fget_obj_count(file, H5F_OBJ_DATASET | H5F_OBJ_LOCAL);
  if (n > 0) {
    hid_t *ids = malloc(sizeof *ids * (size_t)n);
    if (ids == NULL) return -1;
    n = H5Fget_obj_ids(file, H5F_OBJ_DATASET | H5F_OBJ_LOCAL, (size_t)n, ids);
    int bad = n < 0;
    for (ssize_t i = 0; i < n; i++)
      if (H5Dflush(ids[i]) < 0) bad = 1;
    if (bad) noted_errno = stack_errno();
    free(ids);
    if (bad) return flush_failed();
  }
  /* Then every byte the metadata can still go to: the file's address space (where the cached metadata already has its
   * place), and a page for the superblock's and the end's updates. */
  hsize_t size = 0;
  if (H5Fget_filesize(file, &size) < 0) return -1;
  int fd = open(path, O_WRONLY);
  if (fd < 0) {
    noted_errno = errno;
    return flush_failed();
  }
  int rc = fallocate(fd, FALLOC_FL_KEEP_SIZE, 0, (off_t)size + 4096) == 0 ? 0 : errno;
  close(fd);
  if (rc != 0 && rc != EOPNOTSUPP && rc != ENOSYS) { /* a file system without fallocate: go on, hoping */
    noted_errno = rc;
    return flush_failed();
  }
  if (H5Fflush(file, H5F_SCOPE_LOCAL) < 0) {
    noted_errno = stack_errno();
    return flush_failed();
  }
  return 0;
}

void mt_h5_file_abandon(hid_t file) {
  hid_t fapl = H5Fget_access_plist(file);
  void *handle = NULL;
  /* The POSIX driver's handle is its descriptor: point it at an anonymous in-memory file. */
  if (fapl >= 0 && H5Pget_driver(fapl) == H5FD_SEC2 && H5Fget_vfd_handle(file, fapl, &handle) >= 0 && handle) {
    int mem = memfd_create("mpitrain-abandoned", MFD_CLOEXEC);
    if (mem >= 0) {
      dup2(mem, *(int *)handle);
      close(mem);
    }
  }
  if (fapl >= 0) H5Pclose(fapl);
}

int mt_h5_rows(hid_t ds, hid_t mtype, int64_t first, int64_t n, int cols, void *buf, int write) {
  int rank = cols > 0 ? 2 : 1, rc = -1;
  hsize_t start[2] = {(hsize_t)first, 0}, count[2] = {(hsize_t)n, (hsize_t)cols};
  hid_t fs = H5Dget_space(ds), ms = -1;
  if (fs < 0) return -1;
  if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto done;
  ms = H5Screate_simple(rank, count, NULL);
  if (ms < 0) goto done;
  if ((write ? H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf) : H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, buf)) < 0) {
    noted_errno = stack_errno();
    goto done;
  }
  rc = 0;
done:
  if (ms >= 0) H5Sclose(ms);
  H5Sclose(fs);
  return rc;
}

/* "0 bytes", "1.0 KiB", "80.0 GiB". */
static void bytes_text(double b, char *out, size_t n) {
  static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
  if (b < 1024) {
    snprintf(out, n, "%.0f bytes", b);
    return;
  }
  int u = -1;
  while (b >= 1024 && u < 5) {
    b /= 1024;
    u++;
  }
  snprintf(out, n, "%.1f %s", b, unit[u]);
}

int mt_h5_check_stored(hid_t ds, const char *where, MtError *err) {
  hid_t sp = H5Dget_space(ds), t = H5Dget_type(ds), dcpl = H5Dget_create_plist(ds);
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp), rc = -1;
  hsize_t dims[H5S_MAX_RANK], chunk[H5S_MAX_RANK];
  size_t tsize = t < 0 ? 0 : H5Tget_size(t);
  H5D_layout_t layout = dcpl < 0 ? H5D_LAYOUT_ERROR : H5Pget_layout(dcpl);
  if (rank < 0 || tsize == 0 || layout == H5D_LAYOUT_ERROR || H5Sget_simple_extent_dims(sp, dims, NULL) < 0) {
    mt_fail(err, "%s: cannot read its shape and layout", where);
    goto done;
  }
  int external = layout == H5D_CONTIGUOUS ? H5Pget_external_count(dcpl) : 0;
  if (external < 0) {
    mt_fail(err, "%s: cannot read its layout", where);
    goto done;
  }
  rc = 0;
  if ((layout != H5D_CONTIGUOUS && layout != H5D_CHUNKED) || external > 0) goto done;
  double values = 1; /* in double: a damaged extent may not fit 64 bits */
  for (int i = 0; i < rank; i++) values *= (double)dims[i];
  double need = values * (double)tsize, have = (double)H5Dget_storage_size(ds);
  char chunks[96] = "";
  int short_of_data = 0;
  if (layout == H5D_CONTIGUOUS) {
    short_of_data = have < need;
  } else {
    hsize_t allocated = 0;
    /* (HDF5 1.10 refuses H5S_ALL here: the whole extent as a dataspace of its own) */
    if (H5Pget_chunk(dcpl, rank, chunk) != rank || H5Dget_num_chunks(ds, sp, &allocated) < 0) {
      rc = mt_fail(err, "%s: cannot read its chunk index (truncated or damaged?)", where);
      goto done;
    }
    double needed = 1;
    for (int i = 0; i < rank; i++) needed *= chunk[i] ? ceil((double)dims[i] / (double)chunk[i]) : 0;
    short_of_data = (double)allocated < needed;
    snprintf(chunks, sizeof chunks, " (%llu of %.0f chunks)", (unsigned long long)allocated, needed);
  }
  if (short_of_data) {
    char shape[96], need_t[32], have_t[32];
    if (rank == 1)
      snprintf(shape, sizeof shape, "%llu rows", (unsigned long long)dims[0]);
    else if (rank == 2)
      snprintf(shape, sizeof shape, "%llu rows x %llu", (unsigned long long)dims[0], (unsigned long long)dims[1]);
    else
      snprintf(shape, sizeof shape, "%.0f values", values);
    bytes_text(need, need_t, sizeof need_t);
    bytes_text(have, have_t, sizeof have_t);
    rc = mt_fail(err, "%s declares %s (%s) but the file stores only %s of it%s: truncated or damaged", where, shape,
                 need_t, have_t, chunks);
  }
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (t >= 0) H5Tclose(t);
  if (sp >= 0) H5Sclose(sp);
  return rc;
}

int mt_h5_filters_check(hid_t ds, const char *where, const char *name, MtError *err) {
  /* Names for files that do not store one (a filter's name in the file is optional); ids from HDF Group's registry */
  static const struct {
    H5Z_filter_t id;
    const char *name;
  } known[] = {{32000, "lzf"}, {32001, "blosc"}, {32004, "lz4"}, {32008, "bitshuffle"}, {32015, "zstd"}};
  hid_t dcpl = H5Dget_create_plist(ds);
  if (dcpl < 0) return mt_fail(err, "%s: cannot read how %s is stored", where, name);
  int n = H5Pget_nfilters(dcpl), rc = n < 0 ? mt_fail(err, "%s: cannot read how %s is stored", where, name) : 0;
  for (int i = 0; rc == 0 && i < n; i++) {
    unsigned flags = 0, conf = 0;
    size_t nv = 0;
    char fname[64] = "";
    H5Z_filter_t id = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nv, NULL, sizeof fname, fname, &conf);
    if (id < 0) {
      rc = mt_fail(err, "%s: cannot read how %s is stored", where, name);
    } else if (H5Zfilter_avail(id) <= 0) {
      fname[sizeof fname - 1] = '\0';
      for (size_t k = 0; fname[0] == '\0' && k < sizeof known / sizeof known[0]; k++)
        if (known[k].id == id) snprintf(fname, sizeof fname, "%s", known[k].name);
      rc = mt_fail(err, "%s: %s is compressed with filter %d%s%s%s, which this HDF5 lacks; re-save it with gzip or no "
                   "compression (h5repack -f NONE)", where, name, (int)id, fname[0] ? " (" : "", fname,
                   fname[0] ? ")" : "");
    }
  }
  H5Pclose(dcpl);
  return rc;
}

void mt_h5_strings_free(char **v, int n) {
  if (v == NULL) return;
  for (int i = 0; i < n; i++) free(v[i]);
  free(v);
}

/* 1 and the attribute's class and element count if it exists, 0 if not, -1 on error. */
int mt_h5_attr_find(hid_t loc, const char *name, H5T_class_t *cls, hssize_t *count) {
  htri_t e = H5Aexists(loc, name);
  if (e <= 0) return e < 0 ? -1 : 0;
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
  int rc = (t < 0 || sp < 0) ? -1 : 1;
  if (rc == 1) {
    *cls = H5Tget_class(t);
    *count = H5Sget_simple_extent_npoints(sp);
    if (*count < 0) rc = -1;
  }
  if (sp >= 0) H5Sclose(sp);
  if (t >= 0) H5Tclose(t);
  H5Aclose(a);
  return rc;
}

int mt_h5_attr_read_raw(hid_t loc, const char *name, hid_t mtype, void *buf) {
  hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t rc = H5Aread(a, mtype, buf);
  H5Aclose(a);
  return rc < 0 ? -1 : 0;
}

/* A one-value attribute read as mtype into buf; stored as an integer (integer) or as any number. 0 found, 1 missing,
 * -1 error (message set). */
static int attr_read_one(hid_t loc, const char *path, const char *name, int integer, hid_t mtype, void *buf,
                         MtError *err) {
  H5T_class_t cls;
  hssize_t count;
  int f = mt_h5_attr_find(loc, name, &cls, &count);
  if (f < 0) return mt_fail(err, "%s: cannot read attribute %s", path, name);
  if (f == 0) return 1;
  if (count != 1) return mt_fail(err, "%s: attribute %s has %lld values; expected one", path, name, (long long)count);
  if (cls != H5T_INTEGER && (integer || cls != H5T_FLOAT))
    return mt_fail(err, "%s: attribute %s is not %s", path, name, integer ? "an integer" : "a number");
  if (mt_h5_attr_read_raw(loc, name, mtype, buf) < 0) return mt_fail(err, "%s: cannot read attribute %s", path, name);
  return 0;
}

/* A numeric scalar (or one-element array) attribute. 0 found, 1 missing, -1 error (message set). */
int mt_h5_attr_read_number(hid_t loc, const char *path, const char *name, int integer, double *v, MtError *err) {
  if (integer) { /* the same checks and messages as an exact integer, then as a double */
    int64_t i;
    int f = mt_h5_attr_read_int64(loc, path, name, &i, err);
    if (f == 0) *v = (double)i;
    return f;
  }
  return attr_read_one(loc, path, name, 0, H5T_NATIVE_DOUBLE, v, err);
}

/* An integer scalar (or one-element array) attribute, exactly: 64-bit counters and seeds do not survive a trip
 * through double. 0 found, 1 missing, -1 error (message set). */
int mt_h5_attr_read_int64(hid_t loc, const char *path, const char *name, int64_t *v, MtError *err) {
  /* HDF5 clips an unsigned value beyond INT64_MAX to INT64_MAX: the callers' range checks then refuse it. */
  return attr_read_one(loc, path, name, 1, H5T_NATIVE_INT64, v, err);
}

/* A string attribute (scalar or 1-D) as *n malloc'd strings. 0 found, 1 missing, -1 error. */
int mt_h5_attr_read_strings(hid_t loc, const char *path, const char *name, int max, char ***out, int *n, MtError *err) {
  *out = NULL;
  *n = 0;
  H5T_class_t cls;
  hssize_t count;
  int f = mt_h5_attr_find(loc, name, &cls, &count);
  if (f < 0) return mt_fail(err, "%s: cannot read attribute %s", path, name);
  if (f == 0) return 1;
  if (cls != H5T_STRING) return mt_fail(err, "%s: attribute %s is not a string", path, name);
  if (count > max)
    return mt_fail(err, "%s: attribute %s has %lld strings; expected at most %d", path, name, (long long)count, max);
  int rc = -1;
  hid_t a = -1, ft = -1, mt = -1, sp = -1;
  char **v = NULL, **raw = NULL;
  char *fixed = NULL;
  size_t width = 0;
  v = calloc((size_t)count + 1, sizeof *v);
  a = H5Aopen(loc, name, H5P_DEFAULT);
  ft = a < 0 ? -1 : H5Aget_type(a);
  sp = a < 0 ? -1 : H5Aget_space(a);
  mt = H5Tcopy(H5T_C_S1);
  if (v == NULL || a < 0 || ft < 0 || sp < 0 || mt < 0) goto done;
  htri_t var = H5Tis_variable_str(ft);
  if (var < 0) goto done;
  if (var) {
    /* h5py's str attributes. HDF5 allocates each string; H5Dvlen_reclaim gives them back. */
    if (H5Tset_size(mt, H5T_VARIABLE) < 0 || H5Tset_cset(mt, H5Tget_cset(ft)) < 0) goto done;
    raw = calloc((size_t)count + 1, sizeof *raw);
    if (raw == NULL || H5Aread(a, mt, raw) < 0) goto done;
    for (hssize_t i = 0; i < count; i++) {
      v[i] = strdup(raw[i] ? raw[i] : "");
      if (v[i] == NULL) break;
    }
    H5Dvlen_reclaim(mt, sp, H5P_DEFAULT, raw);
  } else {
    /* Fixed-length (numpy 'S' arrays): read one byte wider, null-terminated, so every string ends. */
    width = H5Tget_size(ft) + 1;
    if (H5Tset_size(mt, width) < 0 || H5Tset_strpad(mt, H5T_STR_NULLTERM) < 0 ||
        H5Tset_cset(mt, H5Tget_cset(ft)) < 0)
      goto done;
    fixed = calloc((size_t)count, width);
    if (fixed == NULL || H5Aread(a, mt, fixed) < 0) goto done;
    for (hssize_t i = 0; i < count; i++) {
      char *s = fixed + (size_t)i * width;
      s[width - 1] = '\0';
      size_t len = strlen(s);
      while (len > 0 && s[len - 1] == ' ') s[--len] = '\0'; /* space-padded strings */
      v[i] = strdup(s);
      if (v[i] == NULL) break;
    }
  }
  for (hssize_t i = 0; i < count; i++)
    if (v[i] == NULL) goto done;
  rc = 0;
done:
  free(fixed);
  free(raw);
  if (mt >= 0) H5Tclose(mt);
  if (sp >= 0) H5Sclose(sp);
  if (ft >= 0) H5Tclose(ft);
  if (a >= 0) H5Aclose(a);
  if (rc != 0) {
    mt_h5_strings_free(v, (int)count);
    return mt_fail(err, "%s: cannot read string attribute %s", path, name);
  }
  *out = v;
  *n = (int)count;
  return 0;
}

/* A float [d] attribute (mean, std). 0 found, 1 missing, -1 error. */
int mt_h5_attr_read_floats(hid_t loc, const char *path, const char *name, int d, float **out, MtError *err) {
  *out = NULL;
  H5T_class_t cls;
  hssize_t count;
  int f = mt_h5_attr_find(loc, name, &cls, &count);
  if (f < 0) return mt_fail(err, "%s: cannot read attribute %s", path, name);
  if (f == 0) return 1;
  if (cls != H5T_FLOAT && cls != H5T_INTEGER) return mt_fail(err, "%s: attribute %s is not numeric", path, name);
  if (count != d)
    return mt_fail(err, "%s: attribute %s has %lld values but there are %d features; expected one per feature", path,
                   name, (long long)count, d);
  float *v = malloc((size_t)d * sizeof *v);
  if (v == NULL) return mt_fail(err, "%s: out of memory reading attribute %s", path, name);
  if (mt_h5_attr_read_raw(loc, name, H5T_NATIVE_FLOAT, v) < 0) {
    free(v);
    return mt_fail(err, "%s: cannot read attribute %s", path, name);
  }
  *out = v;
  return 0;
}

int mt_h5_attr_write(hid_t loc, const char *name, hid_t type, hid_t space, const void *buf) {
  hid_t a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
  if (a < 0) return -1;
  herr_t rc = H5Awrite(a, type, buf);
  if (H5Aclose(a) < 0 || rc < 0) return -1;
  return 0;
}

int mt_h5_attr_write_scalar(hid_t loc, const char *name, hid_t type, const void *v) {
  hid_t sp = H5Screate(H5S_SCALAR);
  if (sp < 0) return -1;
  int rc = mt_h5_attr_write(loc, name, type, sp, v);
  if (H5Sclose(sp) < 0) rc = -1;
  return rc;
}

/* Variable-length UTF-8 strings: what h5py writes for str, so h5py reads them back as str. */
int mt_h5_attr_write_strings(hid_t loc, const char *name, const char *const *v, hsize_t n, int scalar) {
  int rc = -1;
  hid_t t = H5Tcopy(H5T_C_S1), sp = -1;
  if (t < 0) return -1;
  if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) goto done;
  sp = scalar ? H5Screate(H5S_SCALAR) : H5Screate_simple(1, &n, NULL);
  if (sp < 0) goto done;
  rc = mt_h5_attr_write(loc, name, t, sp, v);
done:
  if (sp >= 0 && H5Sclose(sp) < 0) rc = -1;
  if (H5Tclose(t) < 0) rc = -1;
  return rc;
}

int mt_h5_attr_write_floats(hid_t loc, const char *name, const float *v /* [n] */, hsize_t n) {
  hid_t sp = H5Screate_simple(1, &n, NULL);
  if (sp < 0) return -1;
  int rc = mt_h5_attr_write(loc, name, H5T_IEEE_F32LE, sp, v);
  if (H5Sclose(sp) < 0) rc = -1;
  return rc;
}

