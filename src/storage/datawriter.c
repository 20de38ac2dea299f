/* datawriter.c — writes one dataset file (or one shard) in the layout of data.h, in appended chunks, atomically.
 *
 * The file is created as ".NAME.tmp.<host>.<pid>" next to its final name (same directory, so rename(2) is atomic), and
 * only a complete file — every split holding exactly the rows announced at open, flushed and fsynced — is renamed
 * into place. Plain HDF5 types (uint8 / float32 / int32, variable-length UTF-8 strings as h5py writes them) keep
 * the files readable by h5dump and h5py. */
#include "mpitrain/datawriter.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "h5util.h"
#include "mpitrain/atomicfile.h"
#include "mpitrain/dataformat.h"

#define DW_CHUNK_BYTES ((size_t)1 << 20) /* ~1 MiB of rows per chunk: big enough for sequential reads and
                                            compression, small enough that a random row costs little to decode */

struct DataWriter {
  char path[DATA_PATH_MAX];  /* final name */
  char tmp[DATA_PATH_MAX];   /* where it is written until mt_datawriter_close */
  int64_t n[2];            /* rows announced per split */
  int64_t done[2];         /* rows appended so far */
  int d, n_classes, store_uint8, no_labels;
  hid_t file;
  hid_t group[2];          /* /train, /test (test only when n[1] > 0) */
  hid_t x[2], y[2];
};

static const char *const split_group[2] = DATA_SPLIT_GROUPS;

/* ==== Datasets ==== */

/* A chunked dataset [rows, cols] (cols = 0: 1-D) of file type ftype. The row extent is unlimited so a split of
 * zero rows (a shard with no test rows) is still a valid chunked dataset. */
static hid_t dataset_create(hid_t group, const char *name, hid_t ftype, int64_t rows, int cols, size_t elem,
                            int gzip) {
  int rank = cols > 0 ? 2 : 1;
  hsize_t dims[2] = {(hsize_t)rows, (hsize_t)cols}, maxdims[2] = {H5S_UNLIMITED, (hsize_t)cols};
  size_t row_bytes = elem * (size_t)(cols > 0 ? cols : 1);
  hsize_t chunk_rows = DW_CHUNK_BYTES / row_bytes;
  if (chunk_rows < 1) chunk_rows = 1;
  if (rows > 0 && chunk_rows > (hsize_t)rows) chunk_rows = (hsize_t)rows;
  hsize_t chunk[2] = {chunk_rows, (hsize_t)cols};
  hid_t sp = -1, dcpl = -1, ds = -1;
  sp = H5Screate_simple(rank, dims, maxdims);
  if (sp < 0) goto done;
  dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0 || H5Pset_chunk(dcpl, rank, chunk) < 0) goto done;
  /* Shuffle groups the bytes of each float/int by significance, which is what makes them compress. */
  if (gzip > 0 && (H5Pset_shuffle(dcpl) < 0 || H5Pset_deflate(dcpl, (unsigned)gzip) < 0)) goto done;
  ds = H5Dcreate2(group, name, ftype, sp, H5P_DEFAULT, dcpl, H5P_DEFAULT);
done:
  if (dcpl >= 0) H5Pclose(dcpl);
  if (sp >= 0) H5Sclose(sp);
  return ds;
}

/* ==== Open / append / close ==== */

/* The reason of the HDF5 failure just seen, for a message. */
static const char *why(void) {
  const char *r = mt_h5_error_reason();
  return r ? r : "HDF5 error (disk full?)";
}

static void close_handles(DataWriter *w) {
  for (int s = 1; s >= 0; s--) {
    if (w->y[s] >= 0) H5Dclose(w->y[s]);
    if (w->x[s] >= 0) H5Dclose(w->x[s]);
    if (w->group[s] >= 0) H5Gclose(w->group[s]);
    w->x[s] = w->y[s] = w->group[s] = -1;
  }
  if (w->file >= 0) H5Fclose(w->file);
  w->file = -1;
}

static int spec_check(const char *path, const DataWriterSpec *sp, MtError *err) {
  if (sp->n[0] < 0 || sp->n[1] < 0 || sp->n[0] > DATA_MAX_ROWS || sp->n[1] > DATA_MAX_ROWS)
    return mt_fail(err, "%s: %lld train / %lld test rows; expected 0 .. %lld per split", path, (long long)sp->n[0],
                   (long long)sp->n[1], (long long)DATA_MAX_ROWS);
  if (sp->d < 1 || sp->d > DATA_MAX_FEATURES)
    return mt_fail(err, "%s: %d features; expected 1 .. %d", path, sp->d, DATA_MAX_FEATURES);
  if (sp->n_classes < 2 && !(sp->no_labels && sp->n_classes == 0))
    return mt_fail(err, "%s: %d classes; expected at least 2", path, sp->n_classes);
  if (sp->class_names && sp->n_classes == 0)
    return mt_fail(err, "%s: class names without a class count", path);
  if (sp->gzip < 0 || sp->gzip > 9) return mt_fail(err, "%s: gzip level %d; expected 0 .. 9", path, sp->gzip);
  if (mt_data_check_preprocess(path, sp->scale, sp->mean, sp->std, sp->d, err) != 0) return -1;
  if (sp->gzip > 0 && H5Zfilter_avail(H5Z_FILTER_DEFLATE) <= 0)
    return mt_fail(err, "%s: this HDF5 library has no gzip (deflate) filter; use --gzip 0", path);
  return 0;
}

int mt_datawriter_open(DataWriter **out, const char *path, const DataWriterSpec *sp, MtError *err) {
  *out = NULL;
  if (spec_check(path, sp, err) != 0) return -1;
  DataWriter *w = calloc(1, sizeof *w);
  if (w == NULL) return mt_fail(err, "out of memory opening %s for writing", path);
  w->file = -1;
  for (int s = 0; s < 2; s++) w->group[s] = w->x[s] = w->y[s] = -1;
  w->n[0] = sp->n[0];
  w->n[1] = sp->n[1];
  w->d = sp->d;
  w->n_classes = sp->n_classes;
  w->store_uint8 = sp->store_uint8 ? 1 : 0;
  w->no_labels = sp->no_labels ? 1 : 0;
  hid_t fapl = -1;
  if (strlen(path) >= sizeof w->path || mt_atomic_temp_name(path, w->tmp, sizeof w->tmp) != 0) {
    mt_fail(err, "output path too long: %s", path);
    goto fail;
  }
  strcpy(w->path, path);

  /* Create the file with open(2) first: HDF5 does not say why a create failed, errno does. */
  int fd = open(w->tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    mt_fail(err, "cannot create '%s': %s", path, strerror(errno));
    w->tmp[0] = '\0'; /* nothing to remove */
    goto fail;
  }
  close(fd);
  fapl = H5Pcreate(H5P_FILE_ACCESS);
  /* No file locking: it fails on some Lustre/NFS mounts, and no one else opens a temporary name. */
  if (fapl < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) {
    mt_fail(err, "%s: cannot set up the HDF5 file access properties", path);
    goto fail;
  }
  w->file = H5Fcreate(w->tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (w->file < 0) {
    mt_fail(err, "cannot create HDF5 file '%s' (temporary for '%s'): %s", w->tmp, path, why());
    goto fail;
  }

  const char *format = DATA_FORMAT;
  const char *source = sp->source ? sp->source : "";
  int32_t version = DATA_FORMAT_VERSION, n_classes = sp->n_classes;
  float scale = sp->scale;
  if (mt_h5_attr_write_strings(w->file, DATA_ATTR_FORMAT, &format, 1, 1) < 0 ||
      mt_h5_attr_write_scalar(w->file, DATA_ATTR_FORMAT_VERSION, H5T_STD_I32LE, &version) < 0 ||
      (n_classes > 0 && mt_h5_attr_write_scalar(w->file, DATA_ATTR_NUM_CLASSES, H5T_STD_I32LE, &n_classes) < 0) ||
      mt_h5_attr_write_scalar(w->file, DATA_ATTR_SCALE, H5T_IEEE_F32LE, &scale) < 0 ||
      mt_h5_attr_write_strings(w->file, DATA_ATTR_SOURCE, &source, 1, 1) < 0 ||
      (sp->class_names && mt_h5_attr_write_strings(w->file, DATA_ATTR_CLASS_NAMES, sp->class_names, (hsize_t)sp->n_classes, 0) < 0) ||
      (sp->mean && (mt_h5_attr_write_floats(w->file, DATA_ATTR_MEAN, sp->mean, (hsize_t)sp->d) < 0 ||
                    mt_h5_attr_write_floats(w->file, DATA_ATTR_STD, sp->std, (hsize_t)sp->d) < 0))) {
    mt_fail(err, "%s: cannot write the dataset attributes: %s", path, why());
    goto fail;
  }

  for (int s = 0; s < 2; s++) {
    if (s == 1 && sp->n[1] == 0) break; /* no test split */
    w->group[s] = H5Gcreate2(w->file, split_group[s], H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (w->group[s] < 0) {
      mt_fail(err, "%s: cannot create group %s: %s", path, split_group[s], why());
      goto fail;
    }
    w->x[s] = dataset_create(w->group[s], "x", w->store_uint8 ? H5T_STD_U8LE : H5T_IEEE_F32LE, sp->n[s], sp->d,
                             w->store_uint8 ? 1 : 4, sp->gzip);
    if (!w->no_labels)
      w->y[s] = w->x[s] < 0 ? -1 : dataset_create(w->group[s], "y", H5T_STD_I32LE, sp->n[s], 0, 4, sp->gzip);
    if (w->x[s] < 0 || (!w->no_labels && w->y[s] < 0)) {
      mt_fail(err, "%s: cannot create %s/x and %s/y: %s", path, split_group[s], split_group[s], why());
      goto fail;
    }
  }
  H5Pclose(fapl);
  *out = w;
  return 0;
fail:
  if (fapl >= 0) H5Pclose(fapl);
  mt_datawriter_abort(w);
  return -1;
}

int mt_datawriter_append(DataWriter *w, Split s, const void *x /* [n, d] */, const int32_t *y /* [n] */, int64_t n,
                      MtError *err) {
  if ((s != SPLIT_TRAIN && s != SPLIT_TEST) || n < 0)
    return mt_fail(err, "%s: bad append (split %d, %lld rows)", w->path, (int)s, (long long)n);
  if (n == 0) return 0;
  const char *g = split_group[s];
  if (w->done[s] + n > w->n[s])
    return mt_fail(err, "%s: appending %lld rows to %s would make %lld; the file was opened for %lld", w->path,
                   (long long)n, g, (long long)(w->done[s] + n), (long long)w->n[s]);
  /* Check what we are given rather than write a file mt_data_open will refuse. */
  for (int64_t i = 0; !w->no_labels && i < n; i++)
    if (y[i] < 0 || y[i] >= w->n_classes)
      return mt_fail(err, "%s: label %d of row %lld of %s is outside [0, %d)", w->path, (int)y[i],
                     (long long)(w->done[s] + i), g, w->n_classes);
  if (!w->store_uint8) {
    const float *xf = x;
    for (int64_t i = 0; i < n * w->d; i++)
      if (!isfinite(xf[i]))
        return mt_fail(err, "%s: row %lld of %s holds %g (feature %d); expected finite features", w->path,
                       (long long)(w->done[s] + i / w->d), g, (double)xf[i], (int)(i % w->d));
  }
  if (mt_h5_rows(w->x[s], w->store_uint8 ? H5T_NATIVE_UINT8 : H5T_NATIVE_FLOAT, w->done[s], n, w->d, (void *)x, 1) < 0 ||
      (!w->no_labels && mt_h5_rows(w->y[s], H5T_NATIVE_INT32, w->done[s], n, 0, (void *)y, 1) < 0))
    return mt_fail(err, "%s: writing rows %lld .. %lld of %s failed: %s", w->path, (long long)w->done[s],
                   (long long)(w->done[s] + n - 1), g, why());
  w->done[s] += n;
  return 0;
}

int mt_datawriter_close(DataWriter *w, MtError *err) {
  for (int s = 0; s < 2; s++)
    if (w->done[s] != w->n[s]) {
      mt_fail(err, "%s: %s received %lld rows but the file was opened for %lld", w->path, split_group[s],
              (long long)w->done[s], (long long)w->n[s]);
      mt_datawriter_abort(w);
      return -1;
    }
  if (mt_h5_file_flush(w->file, w->tmp) != 0) {
    mt_fail(err, "%s: flushing the file failed: %s", w->path, why());
    mt_datawriter_abort(w);
    return -1;
  }
  int bad = 0;
  for (int s = 1; s >= 0; s--) {
    if (w->y[s] >= 0 && H5Dclose(w->y[s]) < 0) bad = 1;
    if (w->x[s] >= 0 && H5Dclose(w->x[s]) < 0) bad = 1;
    if (w->group[s] >= 0 && H5Gclose(w->group[s]) < 0) bad = 1;
    w->x[s] = w->y[s] = w->group[s] = -1;
  }
  /* Everything is flushed, so closing writes nothing more; if something still fails, the file is abandoned before it
   * is closed (mt_h5_file_abandon, via mt_datawriter_abort). */
  if (!bad) {
    bad = H5Fclose(w->file) < 0;
    w->file = -1;
  }
  if (bad) {
    mt_fail(err, "%s: closing the file failed: %s", w->path, why());
    mt_datawriter_abort(w);
    return -1;
  }
  if (mt_atomic_commit(w->tmp, w->path) != 0) {
    mt_fail(err, "cannot move '%s' into place as '%s': %s", w->tmp, w->path, strerror(errno));
    mt_datawriter_abort(w);
    return -1;
  }
  free(w);
  return 0;
}

const char *mt_datawriter_temp(const DataWriter *w) { return w->tmp; }

void mt_datawriter_abort(DataWriter *w) {
  if (w == NULL) return;
  if (w->file >= 0) mt_h5_file_abandon(w->file); /* the closes below must not fail (h5util.h) */
  close_handles(w);
  if (w->tmp[0] != '\0') unlink(w->tmp);
  free(w);
}
