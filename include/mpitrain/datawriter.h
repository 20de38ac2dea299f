/* datawriter.h — writing datasets in the layout of data.h, for `convert` and `synth`.
 *
 * One writer writes one file (a whole dataset or one shard). Rows are appended in chunks, so a dataset of any size
 * is written with bounded memory. The file is written under a temporary name and renamed into place by
 * mt_datawriter_close, so a crash never leaves a half-written file under the final name. */
#ifndef MPITRAIN_DATAWRITER_H
#define MPITRAIN_DATAWRITER_H

#include <stdint.h>

#include "mpitrain/data.h"
#include "mpitrain/error.h"

typedef struct DataWriterSpec {
  int64_t n[2];                    /* rows this file will hold per split (test may be 0) */
  int d;
  int n_classes;                   /* 0 only with no_labels: unknown, no num_classes attribute */
  int store_uint8;                 /* x given and stored as uint8 (1) or float32 (0) */
  float scale;
  const float *mean, *std;         /* [d] each, or NULL */
  const char *source;
  const char *const *class_names;  /* [n_classes] or NULL */
  int gzip;                        /* deflate level 0..9 (0 = none) */
  int no_labels;                   /* features only: no /train/y, /test/y (data for predict) */
} DataWriterSpec;

typedef struct DataWriter DataWriter;

/* Creates ".NAME.tmp.<host>.<pid>" beside path and writes the root attributes (format = "mpitrain-dataset",
 * format_version = 1, num_classes (unless unknown), scale, source, and class_names / mean / std when given). */
int mt_datawriter_open(DataWriter **out, const char *path, const DataWriterSpec *spec, MtError *err);
/* Appends n rows to split s: x [n, d] as uint8 or float32 per spec, y [n] (ignored with no_labels). Labels must lie in [0, n_classes) and
 * float features must be finite (checked: a file mt_data_open would refuse is never written). */
int mt_datawriter_append(DataWriter *w, Split s, const void *x /* [n, d] */, const int32_t *y /* [n] */, int64_t n,
                      MtError *err);
/* Checks every split received exactly spec.n rows, flushes, closes, fsyncs and renames into place. Frees w whether
 * it succeeds or not (on failure the temporary is removed and the final name is left untouched). */
int mt_datawriter_close(DataWriter *w, MtError *err);
/* The temporary name the file is written under until mt_datawriter_close (for messages). */
const char *mt_datawriter_temp(const DataWriter *w);
/* Abandons the file (deletes the temporary) and frees w. NULL is ignored. */
void mt_datawriter_abort(DataWriter *w);

#endif
