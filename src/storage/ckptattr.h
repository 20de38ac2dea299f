/* ckptattr.h — a checkpoint's root attributes (internal to storage): one table of them (ckptattr.c), walked to
 * write, to read and to validate. */
#ifndef MPITRAIN_CKPTATTR_H
#define MPITRAIN_CKPTATTR_H

#include <hdf5.h>
#include <stdint.h>

#include "mpitrain/checkpoint.h"

/* Writes every root attribute of meta into f: format and format_version (this mpitrain's), mpitrain_version
 * (MPITRAIN_VERSION, not meta->version), crc32 = crc, the rest from meta's fields. 0, or -1 (HDF5 failed). */
int mt_ckpt_attrs_write(hid_t f, const CheckpointMeta *meta, uint32_t crc);

/* Reads every root attribute of the checkpoint f (at path, for messages) into meta (zeroed first), checking the
 * format, the version (a newer one is refused with a hint) and every value against what a run can write. */
int mt_ckpt_attrs_read(hid_t f, const char *path, CheckpointMeta *meta, MtError *err);

#endif
