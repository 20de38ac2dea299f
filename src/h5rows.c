/* h5rows.c — row-range I/O on HDF5 datasets, shared by the dataset reader, writer and checkpoints. */
#include "h5rows.h"

int h5_rows(hid_t ds, hid_t mtype, int64_t first, int64_t n, int cols, void *buf, int write) {
  int rank = cols > 0 ? 2 : 1, rc = -1;
  hsize_t start[2] = {(hsize_t)first, 0}, count[2] = {(hsize_t)n, (hsize_t)cols};
  hid_t fs = H5Dget_space(ds), ms = -1;
  if (fs < 0) return -1;
  if (H5Sselect_hyperslab(fs, H5S_SELECT_SET, start, NULL, count, NULL) < 0) goto done;
  ms = H5Screate_simple(rank, count, NULL);
  if (ms < 0) goto done;
  if ((write ? H5Dwrite(ds, mtype, ms, fs, H5P_DEFAULT, buf) : H5Dread(ds, mtype, ms, fs, H5P_DEFAULT, buf)) < 0)
    goto done;
  rc = 0;
done:
  if (ms >= 0) H5Sclose(ms);
  H5Sclose(fs);
  return rc;
}
