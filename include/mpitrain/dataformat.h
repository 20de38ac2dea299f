/* dataformat.h — the dataset file format's names and limits, in one place for its reader (data.c), its writer
 * (datawriter.c), the converters (mpitrain convert / synth) and the checkpoints that record a model's sizes.
 *
 * Layout (README "Dataset files"; data.h): root attributes format = DATA_FORMAT, format_version, num_classes,
 * scale, source, class_names, mean, std; per split (train, test) a group with x [rows, features] and y [rows].
 * A shard set is NAME-00001-of-00004.h5 ... (five digits). */
#ifndef MPITRAIN_DATAFORMAT_H
#define MPITRAIN_DATAFORMAT_H

#include <stdint.h>

#define DATA_FORMAT "mpitrain-dataset"
#define DATA_FORMAT_VERSION 1 /* written; a reader refuses newer ones */

/* Root attributes */
#define DATA_ATTR_FORMAT "format"
#define DATA_ATTR_FORMAT_VERSION "format_version"
#define DATA_ATTR_NUM_CLASSES "num_classes"
#define DATA_ATTR_SCALE "scale"
#define DATA_ATTR_SOURCE "source"
#define DATA_ATTR_CLASS_NAMES "class_names"
#define DATA_ATTR_MEAN "mean"
#define DATA_ATTR_STD "std"

/* The splits: index SPLIT_TRAIN (0) and SPLIT_TEST (1) of these (data.h); the names NULL-terminated, as option
 * tables take them (mt_data_split_names). */
#define DATA_SPLIT_NAMES {"train", "test", NULL}
#define DATA_SPLIT_GROUPS {"/train", "/test"}
#define DATA_X_PATHS {"/train/x", "/test/x"}
#define DATA_Y_PATHS {"/train/y", "/test/y"}

/* Limits. Every part accepts exactly these: a converter writes nothing its reader refuses, and a checkpoint's
 * n_inputs / n_classes are bounded as the data they were trained on. */
#define DATA_MAX_ROWS ((int64_t)INT32_MAX) /* rows per split: row indices and MPI counts stay in int */
#define DATA_MAX_FEATURES (1 << 24)        /* features per row */
#define DATA_MAX_CLASSES (1 << 24)         /* classes (num_classes, largest label + 1, class_names) */
#define DATA_MAX_SHARDS 99999              /* five digits in the shard names */
#define DATA_PATH_MAX 4096                 /* a dataset's (or shard's, or temporary's) path */

#endif
