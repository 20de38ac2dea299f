/* data.h — reading datasets: one HDF5 file or a set of shards with the layout below, validated on open.
 *
 * Layout (README "Dataset file"):
 *   /train/x [N, D] uint8 or float32      /train/y [N] integer class ids in [0, num_classes)
 *   /test/x  [M, D] (optional)            /test/y  [M]
 *   root attributes: num_classes (int), scale (float; features are x*scale), source (string),
 *   class_names (string array, optional), mean / std (float [D], optional: features become (x*scale-mean)/std).
 * Shards: NAME-00000-of-00004.h5 ... hold consecutive row ranges of each split; naming any one shard or NAME.h5
 * (when it does not exist itself) opens the whole set.
 *
 * Each rank opens the dataset on its own (no collective calls here); the trainer agrees on errors. */
#ifndef MPITRAIN_DATA_H
#define MPITRAIN_DATA_H

#include <stdint.h>

#include "mpitrain/error.h"
#include "mpitrain/synth.h"

typedef enum Split { SPLIT_TRAIN = 0, SPLIT_TEST = 1 } Split;

typedef struct DataInfo {
  int64_t n[2];          /* rows per split (n[SPLIT_TEST] = 0 when there is no test split) */
  int d;                 /* features per row */
  int n_classes;
  int stored_uint8;      /* x stored as uint8 (1) or float32 (0) */
  float scale;           /* features = x * scale ... */
  int has_norm;          /* ... then (· - mean) / std */
  int n_shards;          /* 1 for a single file */
  int in_memory[2];      /* split held in memory (1) or read from the file(s) per batch (0) */
  char source[256];
  char path[1024];       /* the path as given */
} DataInfo;

typedef struct DataOptions {
  int memory;            /* MemoryMode of config.h: 0 auto, 1 always in memory, 2 read per batch */
  int64_t memory_limit;  /* auto: hold a split in memory if its stored x is at most this many bytes */
  int max_rows;          /* the most rows one data_read / data_read_range call will ask for (sizes buffers) */
} DataOptions;

typedef struct Dataset Dataset;

/* Opens and validates: the file(s) exist and are HDF5, the datasets exist with the right rank, shapes agree
 * (x rows = y rows, test D = train D, shards agree), x is uint8 or float32, labels are integers within
 * [0, num_classes), at least one training row. Every message names the file and what was expected. */
int data_open(Dataset **out, const char *path, const DataOptions *opt, MtError *err);

/* A dataset generated in memory by synth_sample (no file): for benchmarks and tests. */
int data_open_synthetic(Dataset **out, const SynthSpec *spec, MtError *err);

const DataInfo *data_info(const Dataset *ds);
/* Class name c, or NULL when the file has none. */
const char *data_class_name(const Dataset *ds, int c);

/* Reads n rows of split s, rows[] sorted ascending (duplicates allowed), as features after scaling and
 * normalisation into x [n, d] and labels into y [n]. Never allocates in memory mode; in streaming mode reads only
 * the requested rows (hyperslab selections) through a buffer sized at open. */
int data_read(Dataset *ds, Split s, const int64_t *rows /* [n] */, int n, float *x /* [n, d] */,
              int32_t *y /* [n] */, MtError *err);

/* Reads rows first .. first+n-1 of split s (contiguous; evaluation and predict). */
int data_read_range(Dataset *ds, Split s, int64_t first, int n, float *x /* [n, d] */, int32_t *y /* [n] */,
                    MtError *err);

void data_close(Dataset *ds);

/* Shard file name: base "dir/name.h5", shard 3 of 8 -> "dir/name-00003-of-00008.h5". */
void data_shard_name(const char *base, int shard, int n_shards, char *out, size_t n);

#endif
