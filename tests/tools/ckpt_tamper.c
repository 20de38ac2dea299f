/* ckpt_tamper.c — damages a checkpoint in one controlled way, for the tests that check it is refused or skipped.
 *   ckpt_tamper FILE flip         change one parameter value without updating the CRC (silent corruption)
 *   ckpt_tamper FILE version N    set format_version to N (a checkpoint from a newer mpitrain)
 *   ckpt_tamper FILE mean         change /preprocess/mean[0] without updating the CRC
 *   ckpt_tamper FILE old          remove /preprocess and class_names: a checkpoint as mpitrain wrote them before it
 *                                 stored the preprocessing (its CRC still matches only if there was no mean/std)
 *   ckpt_tamper FILE lzf          rewrite /model/dense0/W, values unchanged (the CRC matches), compressed with a
 *                                 filter mpitrain's HDF5 lacks (fake_filter.h) */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_filter.h"

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ckpt_tamper FILE flip|mean|old|lzf | ckpt_tamper FILE version N\n");
    return 2;
  }
  hid_t f = H5Fopen(argv[1], H5F_ACC_RDWR, H5P_DEFAULT);
  if (f < 0) return 1;
  int rc = 1;
  if (strcmp(argv[2], "flip") == 0 || strcmp(argv[2], "mean") == 0) {
    int flip = strcmp(argv[2], "flip") == 0, rank = flip ? 2 : 1;
    hid_t ds = H5Dopen2(f, flip ? "/model/dense0/W" : "/preprocess/mean", H5P_DEFAULT);
    float v[1];
    hsize_t start[2] = {0, 0}, count[2] = {1, 1};
    hid_t fs = H5Dget_space(ds), ms = H5Screate_simple(rank, count, NULL);
    H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL);
    if (H5Dread(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) >= 0) {
      v[0] += 0.125f;
      rc = H5Dwrite(ds, H5T_NATIVE_FLOAT, ms, fs, H5P_DEFAULT, v) < 0;
    }
    H5Sclose(ms);
    H5Sclose(fs);
    H5Dclose(ds);
  } else if (strcmp(argv[2], "version") == 0 && argc > 3) {
    int v = atoi(argv[3]);
    hid_t a = H5Aopen(f, "format_version", H5P_DEFAULT);
    rc = H5Awrite(a, H5T_NATIVE_INT, &v) < 0;
    H5Aclose(a);
  } else if (strcmp(argv[2], "lzf") == 0) {
    const char *name = "/model/dense0/W";
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp = ds < 0 ? -1 : H5Dget_space(ds);
    hsize_t dims[2] = {0, 0};
    float *v = NULL;
    if (sp >= 0 && H5Sget_simple_extent_ndims(sp) == 2 && H5Sget_simple_extent_dims(sp, dims, NULL) == 2 &&
        (v = malloc(sizeof(float) * dims[0] * dims[1])) != NULL &&
        H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) >= 0 && H5Dclose(ds) >= 0 &&
        H5Ldelete(f, name, H5P_DEFAULT) >= 0 && fake_filter_register() == 0) {
      ds = -1;
      hid_t dcpl = fake_filter_dcpl(2, dims), nd = dcpl < 0 ? -1 : H5Dcreate2(f, name, H5T_IEEE_F32LE, sp,
                                                                              H5P_DEFAULT, dcpl, H5P_DEFAULT);
      rc = nd < 0 || H5Dwrite(nd, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0;
      if (nd >= 0) H5Dclose(nd);
      if (dcpl >= 0) H5Pclose(dcpl);
    }
    free(v);
    if (sp >= 0) H5Sclose(sp);
    if (ds >= 0) H5Dclose(ds);
  } else if (strcmp(argv[2], "old") == 0) {
    rc = H5Ldelete(f, "/preprocess", H5P_DEFAULT) < 0 ||
         (H5Aexists(f, "class_names") > 0 && H5Adelete(f, "class_names") < 0);
  }
  H5Fclose(f);
  return rc;
}
