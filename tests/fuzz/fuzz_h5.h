/* fuzz_h5.h — writing the HDF5 objects the file-building fuzz targets need, with the plain HDF5 API (not the code
 * under test), and variants of them chosen by the fuzz input: attributes of the right or a wrong type, shape or
 * value; datasets contiguous, chunked or compressed. Every HDF5 call here is checked: a failure to build the case
 * is a harness bug and aborts. */
#ifndef MPITRAIN_FUZZ_H5_H
#define MPITRAIN_FUZZ_H5_H

#include <hdf5.h>

#include "fuzz.h"

#define FH5_OK(call)                                                                   \
  do {                                                                                  \
    if ((call) < 0) {                                                                   \
      fprintf(stderr, "fuzz harness: %s failed at %s:%d\n", #call, __FILE__, __LINE__); \
      abort();                                                                          \
    }                                                                                   \
  } while (0)

/* A string attribute: variable-length (as h5py and mpitrain write) or fixed-length of the string's width. */
void fh5_attr_string(hid_t loc, const char *name, const char *value, int fixed);
/* Strings [n] as a 1-D attribute (n = 0: a null dataspace). */
void fh5_attr_strings(hid_t loc, const char *name, const char *const *v, int n);
/* A numeric attribute of file type ftype holding v [n] of memory type mtype: scalar when scalar, else 1-D [n]
 * (n = 0: a null dataspace). */
void fh5_attr_numbers(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v, int n, int scalar);
/* Replaces attribute name on loc (deleting any old one) by a variant the input picks: 0 = deleted, 1 = a 64-bit
 * integer, 2 = a double, 3 = a string, 4 = two integers, 5 = an empty (null) dataspace, 6 = an unsigned 64-bit
 * integer, 7 = a float. Values come from the input. */
void fh5_attr_wrong(hid_t loc, const char *name, FuzzIn *f);
/* Creates dataset path (intermediate groups too) of file type ftype, dims [rank], from buf of memory type mtype.
 * layout: 0 contiguous, 1 chunked (first dimension unlimited), 2 chunked + deflate. */
void fh5_dataset(hid_t file, const char *path, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                 const void *buf, int layout, hsize_t chunk_rows);
/* Overwrites 1-4 bytes of the file at path at input-chosen offsets with input-chosen values (damage below the
 * HDF5 API: superblock, object headers, data). */
void fh5_corrupt(const char *path, FuzzIn *f);

#endif
