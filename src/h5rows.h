/* h5rows.h — internal to the HDF5 edge (data, datawriter, checkpoint): moving whole rows in and out of a 1-D or
 * 2-D dataset with one hyperslab. Not a public header: nothing outside the HDF5 modules includes hdf5.h. */
#ifndef MPITRAIN_H5ROWS_H
#define MPITRAIN_H5ROWS_H

#include <hdf5.h>
#include <stdint.h>

/* Reads (write = 0) or writes (write = 1) rows [first, first+n) of a dataset [rows, cols] (cols = 0: 1-D) from or
 * into buf [n, cols] as memory type mtype. Returns 0, or -1 with HDF5's error left for the caller to word. */
int h5_rows(hid_t ds, hid_t mtype, int64_t first, int64_t n, int cols, void *buf, int write);

#endif
