/* ckpt_tamper.c — damages a checkpoint in one controlled way, for the tests that check it is refused or skipped.
 *   ckpt_tamper FILE flip         change one parameter value without updating the CRC (silent corruption)
 *   ckpt_tamper FILE version N    set format_version to N (a checkpoint from a newer mpitrain)
 *   ckpt_tamper FILE mean         change /preprocess/mean[0] without updating the CRC
 *   ckpt_tamper FILE old          remove /preprocess and class_names: a checkpoint as mpitrain wrote them before it
 *                                 stored the preprocessing (its CRC still matches only if there was no mean/std) */
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: ckpt_tamper FILE flip|mean|old | ckpt_tamper FILE version N\n");
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
  } else if (strcmp(argv[2], "old") == 0) {
    rc = H5Ldelete(f, "/preprocess", H5P_DEFAULT) < 0 ||
         (H5Aexists(f, "class_names") > 0 && H5Adelete(f, "class_names") < 0);
  }
  H5Fclose(f);
  return rc;
}
