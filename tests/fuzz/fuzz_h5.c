/* fuzz_h5.c — HDF5 writers for the fuzz targets (fuzz_h5.h). */
#include "fuzz_h5.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

void fh5_attr_string(hid_t loc, const char *name, const char *value, int fixed) {
  hid_t t = H5Tcopy(H5T_C_S1), sp = H5Screate(H5S_SCALAR), a;
  FH5_OK(t);
  FH5_OK(sp);
  if (fixed) {
    FH5_OK(H5Tset_size(t, strlen(value) > 0 ? strlen(value) : 1));
    FH5_OK(H5Tset_strpad(t, H5T_STR_NULLPAD));
    FH5_OK(a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT));
    char buf[1024] = "";
    snprintf(buf, sizeof buf, "%s", value);
    FH5_OK(H5Awrite(a, t, buf));
  } else {
    FH5_OK(H5Tset_size(t, H5T_VARIABLE));
    FH5_OK(H5Tset_cset(t, H5T_CSET_UTF8));
    FH5_OK(a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT));
    FH5_OK(H5Awrite(a, t, &value));
  }
  FH5_OK(H5Aclose(a));
  FH5_OK(H5Sclose(sp));
  FH5_OK(H5Tclose(t));
}

void fh5_attr_strings(hid_t loc, const char *name, const char *const *v, int n) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t t = H5Tcopy(H5T_C_S1), sp = n > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL), a;
  FH5_OK(t);
  FH5_OK(sp);
  FH5_OK(H5Tset_size(t, H5T_VARIABLE));
  FH5_OK(a = H5Acreate2(loc, name, t, sp, H5P_DEFAULT, H5P_DEFAULT));
  if (n > 0) FH5_OK(H5Awrite(a, t, v));
  FH5_OK(H5Aclose(a));
  FH5_OK(H5Sclose(sp));
  FH5_OK(H5Tclose(t));
}

void fh5_attr_numbers(hid_t loc, const char *name, hid_t ftype, hid_t mtype, const void *v, int n, int scalar) {
  hsize_t dims[1] = {(hsize_t)n};
  hid_t sp = scalar ? H5Screate(H5S_SCALAR) : n > 0 ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL), a;
  FH5_OK(sp);
  FH5_OK(a = H5Acreate2(loc, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT));
  if (scalar || n > 0) FH5_OK(H5Awrite(a, mtype, v));
  FH5_OK(H5Aclose(a));
  FH5_OK(H5Sclose(sp));
}

void fh5_attr_wrong(hid_t loc, const char *name, FuzzIn *f) {
  htri_t e = H5Aexists(loc, name);
  FH5_OK(e);
  if (e > 0) FH5_OK(H5Adelete(loc, name));
  switch (fz_pick(f, 8)) {
    case 0:
      return;
    case 1: {
      long long v = (long long)fz_u64(f);
      fh5_attr_numbers(loc, name, H5T_STD_I64LE, H5T_NATIVE_LLONG, &v, 1, 1);
      return;
    }
    case 2: {
      double v = fz_f64_raw(f);
      fh5_attr_numbers(loc, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &v, 1, 1);
      return;
    }
    case 3: {
      char s[64];
      fz_string(f, s, sizeof s);
      fh5_attr_string(loc, name, s, fz_u8(f) & 1);
      return;
    }
    case 4: {
      int v[2] = {(int)fz_u32(f), (int)fz_u32(f)};
      fh5_attr_numbers(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, v, 2, 0);
      return;
    }
    case 5:
      fh5_attr_numbers(loc, name, H5T_STD_I32LE, H5T_NATIVE_INT, NULL, 0, 0);
      return;
    case 6: {
      unsigned long long v = fz_u64(f);
      fh5_attr_numbers(loc, name, H5T_STD_U64LE, H5T_NATIVE_ULLONG, &v, 1, 1);
      return;
    }
    default: {
      float v = fz_f32_raw(f);
      fh5_attr_numbers(loc, name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, &v, 1, 1);
      return;
    }
  }
}

void fh5_dataset(hid_t file, const char *path, hid_t ftype, hid_t mtype, int rank, const hsize_t *dims,
                 const void *buf, int layout, hsize_t chunk_rows) {
  hsize_t maxdims[3], chunk[3];
  for (int i = 0; i < rank; i++) {
    maxdims[i] = dims[i];
    chunk[i] = dims[i] > 0 ? dims[i] : 1;
  }
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE), lcpl = H5Pcreate(H5P_LINK_CREATE), sp, ds;
  FH5_OK(dcpl);
  FH5_OK(lcpl);
  FH5_OK(H5Pset_create_intermediate_group(lcpl, 1));
  if (layout > 0) {
    maxdims[0] = H5S_UNLIMITED; /* lets a chunk be taller than the data, and a dataset have 0 rows */
    chunk[0] = chunk_rows > 0 ? chunk_rows : 1;
    FH5_OK(H5Pset_chunk(dcpl, rank, chunk));
    if (layout > 1) FH5_OK(H5Pset_deflate(dcpl, 1));
  }
  FH5_OK(sp = H5Screate_simple(rank, dims, layout > 0 ? maxdims : NULL));
  FH5_OK(ds = H5Dcreate2(file, path, ftype, sp, lcpl, dcpl, H5P_DEFAULT));
  hssize_t n = H5Sget_simple_extent_npoints(sp);
  if (n > 0) FH5_OK(H5Dwrite(ds, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf));
  FH5_OK(H5Dclose(ds));
  FH5_OK(H5Sclose(sp));
  FH5_OK(H5Pclose(lcpl));
  FH5_OK(H5Pclose(dcpl));
}

void fh5_corrupt(const char *path, FuzzIn *f) {
  FILE *fp = fopen(path, "r+b");
  if (fp == NULL) return;
  fseek(fp, 0, SEEK_END);
  long size = ftell(fp);
  for (int k = 0, n = 1 + fz_pick(f, 4); k < n && size > 0; k++) {
    long at = (long)(fz_u32(f) % (uint32_t)size);
    uint8_t b = fz_u8(f);
    if (fseek(fp, at, SEEK_SET) == 0) fwrite(&b, 1, 1, fp);
  }
  fclose(fp);
}
