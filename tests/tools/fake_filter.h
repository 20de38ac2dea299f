/* fake_filter.h — a pass-through HDF5 filter registered under LZF's id (32000), for the test tools that write files
 * compressed with a filter the reader lacks (make_bad_data, ckpt_tamper). Only the writing process registers it:
 * mpitrain, which does not, sees a dataset whose filter this HDF5 does not have, as it would an h5py file saved with
 * compression="lzf". (Where an LZF plugin is installed HDF5 would load it: the tests set HDF5_PLUGIN_PATH to an empty
 * directory.) */
#ifndef MPITRAIN_FAKE_FILTER_H
#define MPITRAIN_FAKE_FILTER_H

#include <hdf5.h>

#define FAKE_FILTER_ID 32000

static size_t fake_filter_pass(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                               size_t *buf_size, void **buf) {
  (void)flags, (void)cd_nelmts, (void)cd_values, (void)buf_size, (void)buf;
  return nbytes; /* the bytes unchanged, both ways */
}

/* Registers the filter (once per process); 0 or -1. */
static int fake_filter_register(void) {
  static const H5Z_class2_t cls = {H5Z_CLASS_T_VERS, (H5Z_filter_t)FAKE_FILTER_ID, 1, 1, "lzf", NULL, NULL,
                                   fake_filter_pass};
  return H5Zregister(&cls) < 0 ? -1 : 0;
}

/* A dataset creation property list: chunks of `chunk` (rank dims), the fake filter mandatory. -1 on failure. */
static hid_t fake_filter_dcpl(int rank, const hsize_t *chunk) {
  hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
  if (dcpl < 0) return -1;
  if (H5Pset_chunk(dcpl, rank, chunk) < 0 || H5Pset_filter(dcpl, FAKE_FILTER_ID, H5Z_FLAG_MANDATORY, 0, NULL) < 0) {
    H5Pclose(dcpl);
    return -1;
  }
  return dcpl;
}

#endif
