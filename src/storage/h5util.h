/* h5util.h — internal to the HDF5 edge (data, datawriter, checkpoint): row ranges, stored-extent checks and
 * attributes. Not a public header: nothing outside the HDF5 modules includes hdf5.h. */
#ifndef MPITRAIN_H5UTIL_H
#define MPITRAIN_H5UTIL_H

#include <hdf5.h>
#include <stdint.h>

#include "mpitrain/error.h"

/* Reads (write = 0) or writes (write = 1) rows [first, first+n) of a dataset [rows, cols] (cols = 0: 1-D) from or
 * into buf [n, cols] as memory type mtype. Returns 0, or -1 with HDF5's error left for the caller to word. */
int mt_h5_rows(hid_t ds, hid_t mtype, int64_t first, int64_t n, int cols, void *buf, int write);

/* Why HDF5's last call failed, as the operating system said it ("No space left on device"): from the errno its file
 * driver recorded on the error stack (or that mt_h5_rows saw), NULL if none. Call right after the failure. */
const char *mt_h5_error_reason(void);

/* For a file that is being given up (its temporary will be deleted): from now on what HDF5 still writes into it
 * (dirty metadata, cached chunks) goes to an anonymous in-memory file, so closing its objects and the file cannot
 * fail. A failed H5Fclose leaves the file half-closed, and HDF5 1.10 closes it again at exit and crashes (after a
 * write failed on a full disk). Call before closing anything of it. */
void mt_h5_file_abandon(hid_t file);

/* Flushes a file written at path so that a full disk cannot break it: HDF5 1.10's metadata cache is left unusable
 * by a file flush that fails (no later flush or close can succeed, so the file cannot even be abandoned), so the
 * datasets are flushed first and the space the metadata will take is reserved (fallocate) before the file flush.
 * -1 (errno and mt_h5_error_reason say why) leaves the file intact for mt_h5_file_abandon. */
int mt_h5_file_flush(hid_t file, const char *path);

/* 0 if the file stores data for the whole declared extent of dataset ds; else -1 with the message "<where>
 * declares <shape> (<bytes>) but the file stores only <bytes> of it[ (<k> of <n> chunks)]: truncated or damaged",
 * so a small damaged file cannot make a reader allocate and read gigabytes of fill values. Contiguous: the bytes
 * allocated against extent x type size; chunked: the chunks allocated against the chunks the extent needs
 * (compressed chunks are smaller than raw ones, so their bytes say nothing). Compact, external and virtual
 * layouts are not checked. where: "FILE: /train/x", "checkpoint FILE: /model/dense0/W". */
int mt_h5_check_stored(hid_t ds, const char *where, MtError *err);

/* 0 if HDF5 can decode dataset ds (named name in file where), else -1 with a message naming the filter it lacks
 * (h5py's compression="lzf" and the Blosc family are plugins): reading it would fail as if the file were damaged. */
int mt_h5_filters_check(hid_t ds, const char *where, const char *name, MtError *err);

/* Attribute readers: 0 found, 1 missing, -1 error (message naming path and attribute set). */
int mt_h5_attr_find(hid_t loc, const char *name, H5T_class_t *cls, hssize_t *count);
int mt_h5_attr_read_raw(hid_t loc, const char *name, hid_t mtype, void *buf);
int mt_h5_attr_read_number(hid_t loc, const char *path, const char *name, int integer, double *v, MtError *err);
/* An integer attribute read exactly (int64: step counters, seeds). 0 found, 1 missing, -1 error. */
int mt_h5_attr_read_int64(hid_t loc, const char *path, const char *name, int64_t *v, MtError *err);
/* A string attribute (scalar or 1-D, at most max strings) as *n malloc'd strings (mt_h5_strings_free). */
int mt_h5_attr_read_strings(hid_t loc, const char *path, const char *name, int max, char ***out, int *n, MtError *err);
int mt_h5_attr_read_floats(hid_t loc, const char *path, const char *name, int d, float **out, MtError *err);
void mt_h5_strings_free(char **v, int n);

/* Attribute writers: 0 or -1. */
int mt_h5_attr_write(hid_t loc, const char *name, hid_t type, hid_t space, const void *buf);
int mt_h5_attr_write_scalar(hid_t loc, const char *name, hid_t type, const void *v);
int mt_h5_attr_write_strings(hid_t loc, const char *name, const char *const *v, hsize_t n, int scalar);
int mt_h5_attr_write_floats(hid_t loc, const char *name, const float *v /* [n] */, hsize_t n);

#endif
