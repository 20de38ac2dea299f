/* data.h — reading datasets: one HDF5 file or a set of shards with the layout below, validated on open.
 *
 * Layout (README "Dataset file"):
 *   /train/x [N, D] uint8 or float32      /train/y [N] integer class ids in [0, num_classes)
 *   /test/x  [M, D] (optional)            /test/y  [M]
 *   A split may lack y (features only, for predict) when the caller allows it (DataOptions.allow_unlabeled).
 *   root attributes: format = "mpitrain-dataset" (string), format_version = 1 (int), num_classes (int; if missing,
 *   largest label + 1; unknown (0) when no split has labels), scale (float; features are x*scale; missing = 1),
 *   source (string),
 *   class_names (string array, optional), mean / std (float [D], optional: features become (x*scale-mean)/std).
 *   Labels may be stored as any integer type (written as int32); strings fixed- or variable-length (h5py's str).
 * Shards: NAME-00000-of-00004.h5 ... hold consecutive row ranges of each split (rows are concatenated in shard
 * order) and must agree on D, x type, num_classes, scale, mean/std and which splits have labels; naming any one shard or NAME.h5 (when it does
 * not exist itself) opens the whole set.
 * Limits: at most 2^31-1 rows per split, 2^24 features. A split whose x is in memory is kept as stored (uint8 stays
 * uint8); float features are checked finite (in memory at open, streamed rows as they are read).
 *
 * Each rank opens the dataset on its own (no collective calls here); the trainer agrees on errors. */
#ifndef MPITRAIN_DATA_H
#define MPITRAIN_DATA_H

#include <stdint.h>

#include "mpitrain/error.h"
#include "mpitrain/synth.h"

typedef enum Split { SPLIT_TRAIN = 0, SPLIT_TEST = 1 } Split;
/* Where a split's features live: auto (in memory up to DataOptions.memory_limit), always in memory, or read from
 * the file(s) per batch. */
typedef enum MemoryMode { MEMORY_AUTO = 0, MEMORY_YES, MEMORY_NO } MemoryMode;
extern const char *const mt_data_split_names[3]; /* by Split, NULL-terminated: "train", "test" */
extern const char *const mt_memory_names[MEMORY_NO + 2]; /* in enum order, NULL-terminated: option tables' choices */

typedef struct DataInfo {
  int64_t n[2];          /* rows per split (n[SPLIT_TEST] = 0 when there is no test split) */
  int d;                 /* features per row */
  int n_classes;         /* 0: unknown (no split has labels and there is no num_classes attribute) */
  int labeled[2];        /* split s has labels (0 only for a split with rows and no y, under allow_unlabeled) */
  int stored_uint8;      /* x stored as uint8 (1) or float32 (0) */
  float scale;           /* features = x * scale ... */
  int has_norm;          /* ... then (· - mean) / std */
  int n_shards;          /* 1 for a single file, 0 for mt_data_open_synthetic */
  int in_memory[2];      /* split held in memory (1) or read from the file(s) per batch (0) */
  char source[256];
  char path[1024];       /* the path as given */
  int n_classes_inferred;/* the files have no num_classes attribute: n_classes = largest label + 1 */
} DataInfo;

typedef struct DataOptions {
  int memory;            /* MemoryMode */
  int64_t memory_limit;  /* auto: hold a split in memory if its stored x is at most this many bytes (<= 0: 2 GiB;
                            auto never takes more than half the machine's memory) */
  int max_rows;          /* the most rows one mt_data_read / mt_data_read_range call will ask for (sizes the staging
                            buffer; <= 0: 1024). Larger calls still work, with one read per max_rows rows. */
  int defer_features;    /* 1: leave the features of the in-memory splits unloaded; the caller provides the memory
                            (shared by a node's ranks) and loads them with mt_data_load_features */
  int allow_unlabeled;   /* 1: a split may hold x without y (predict, info); its rows read with label -1 */
} DataOptions;

/* Once per process, before any file is opened: HDF5 failures are worded by us, in one line (error.h); HDF5's own
 * error stack, printed before it by default, would bury it under ten lines of library internals. */
void mt_data_library_init(void);

typedef struct Dataset Dataset;

/* Opens and validates: the file(s) exist and are HDF5, the datasets exist with the right rank, shapes agree
 * (x rows = y rows, test D = train D, shards agree), x is uint8 or float32, labels are integers within
 * [0, num_classes), at least one training row, every split has labels (unless opt->allow_unlabeled). Every message
 * names the file and what was expected. */
int mt_data_open(Dataset **out, const char *path, const DataOptions *opt, MtError *err);

/* A dataset generated in memory by mt_synth_sample (no file, n_shards = 0): for benchmarks and tests. */
int mt_data_open_synthetic(Dataset **out, const SynthSpec *spec, MtError *err);

const DataInfo *mt_data_info(const Dataset *ds);
/* Class name c, or NULL when the file has none. */
const char *mt_data_class_name(const Dataset *ds, int c);
/* All labels of split s [n[s]] (always in memory), or NULL for an empty split or one without labels. */
const int32_t *mt_data_labels(const Dataset *ds, Split s);
/* File k of the set (0 .. n_shards-1), or NULL. */
const char *mt_data_shard_path(const Dataset *ds, int k);
/* Per-feature normalisation [d], or NULL when the dataset has none. */
const float *mt_data_mean(const Dataset *ds);
const float *mt_data_std(const Dataset *ds);

/* How the file's own preprocessing differs from (scale, mean, std) — a model's; mean/std NULL: not normalised.
 * 0 if it does not; else DATA_PRE_SCALE when the scale differs, | DATA_PRE_NORM when the normalisation does. */
enum { DATA_PRE_SCALE = 1, DATA_PRE_NORM = 2 };
int mt_data_preprocess_differs(const Dataset *ds, float scale, const float *mean, const float *std);

/* The one check of a feature transform (x * scale - mean) / std, as the reader computes it (in float32): scale a
 * positive finite number also as a float32 (1e-50 would make every feature 0), mean finite and std positive and
 * finite, [d] each, or both NULL. Every reader and writer of a scale or mean/std calls it; where starts the
 * message ("FILE" or "checkpoint FILE: /preprocess"). 0, or -1 with err set. */
int mt_data_check_preprocess(const char *where, double scale, const float *mean, const float *std, int d, MtError *err);

/* Converts rows from now on with this transform instead of the file's: features = x * scale, then (· - mean) / std
 * when mean and std [d] are given (copied). A checkpoint's preprocessing applied to another file's stored x (eval,
 * predict); mt_data_info and mt_data_mean/mt_data_std report it afterwards. */
int mt_data_set_preprocess(Dataset *ds, float scale, const float *mean, const float *std, MtError *err);

/* Reads n rows of split s, rows[] sorted ascending (duplicates allowed), as features after scaling and
 * normalisation into x [n, d] and labels into y [n] (-1 for a split without labels). Never allocates in memory mode; in streaming mode reads only
 * the requested rows (hyperslab selections) through a buffer sized at open. */
int mt_data_read(Dataset *ds, Split s, const int64_t *rows /* [n] */, int n, float *x /* [n, d] */,
              int32_t *y /* [n] */, MtError *err);

/* Reads rows first .. first+n-1 of split s (contiguous; evaluation and predict). */
int mt_data_read_range(Dataset *ds, Split s, int64_t first, int n, float *x /* [n, d] */, int32_t *y /* [n] */,
                    MtError *err);

void mt_data_close(Dataset *ds);

/* With DataOptions.defer_features: the bytes the features of split s need in memory (0 when there is nothing to
 * load: the split is empty, read per batch, or already loaded). */
size_t mt_data_pending_bytes(const Dataset *ds, Split s);
/* Reads the features of split s into dst [n, d] (as stored), validating them like mt_data_open would. One rank per
 * node does this into memory the node's ranks share ... */
int mt_data_load_features(Dataset *ds, Split s, void *dst, MtError *err);
/* ... and then every rank uses it: ds reads split s from shared [n, d] (not freed by mt_data_close). */
void mt_data_attach_features(Dataset *ds, Split s, void *shared);

/* The root attribute `format` of path ("mpitrain-dataset", a checkpoint's, ...) into buf; "" when path is not an
 * existing HDF5 file or has no such attribute (mt_data_open then says what is wrong). For commands that accept several
 * kinds of file (info). Not collective. */
void mt_data_probe_format(const char *path, char *buf, size_t n);

/* Shard file name: base "dir/name.h5", shard 3 of 8 -> "dir/name-00003-of-00008.h5". */
void mt_data_shard_name(const char *base, int shard, int n_shards, char *out, size_t n);

#endif
