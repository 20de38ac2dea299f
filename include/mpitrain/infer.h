/* infer.h — using a trained model on a dataset (`mpitrain eval` and `mpitrain predict`), on any number of ranks.
 *
 * Rank 0 reads the checkpoint (one reader, whatever the rank count) and broadcasts the architecture and the model's
 * whole state (mt_model_replicate: parameters and batch-norm statistics); the checkpoint's preprocessing is applied to
 * the data's stored features; every rank then evaluates a contiguous slice of the split, a micro-batch at a time. */
#ifndef MPITRAIN_INFER_H
#define MPITRAIN_INFER_H

#include <stdint.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/comm.h"
#include "mpitrain/data.h"
#include "mpitrain/error.h"
#include "mpitrain/model.h"


typedef struct InferOptions {
  char checkpoint[1024];
  char data[1024];
  int split;         /* Split */
  int micro_batch;
  int threads;       /* OpenBLAS threads per rank; 0 = auto (mt_blas_threads_choose) */
  int precision;     /* MtPrecision (gemm.h) of the GEMMs */
  int in_memory;     /* MemoryMode */
  int64_t memory_limit_mb;
} InferOptions;

/* A checkpoint's model, a dataset checked against it, and the batch buffers. */
typedef struct Infer {
  Model model;
  CheckpointMeta meta;  /* every rank: spec and preprocessing; rank 0: everything, class names included */
  Dataset *ds;
  float *x;        /* [micro, d] */
  int32_t *y;      /* [micro] */
  int micro;
  int split;       /* Split */
  int64_t lo, hi;  /* this rank's rows of the split */
} Infer;

/* Collective: model, dataset and buffers, all checked against each other (need_labels: the split must have labels),
 * and the BLAS threads set. The same verdict on every rank; 0, or -1 with nothing left to free. */
int mt_infer_open(Comm *c, const InferOptions *o, int need_labels, Infer *in, MtError *err);
/* Logits [cn, C] of the rows [r, r+cn) of this rank's slice (cn = up to a micro-batch); labels in in->y. NULL on a
 * read error. */
const float *mt_infer_chunk(Infer *in, int64_t r, int *cn, MtError *err);
void mt_infer_free(Infer *in);

#endif
