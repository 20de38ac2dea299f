/* writeset.h — writing a dataset as one file or a set of shards from a row source (`mpitrain convert` and
 * `mpitrain synth`): each shard's rows are the even split of every split's rows, appended in chunks of bounded
 * memory through datawriter, and a set that fails anywhere is taken back. */
#ifndef MPITRAIN_WRITESET_H
#define MPITRAIN_WRITESET_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/comm.h"
#include "mpitrain/datawriter.h"
#include "mpitrain/error.h"

#define WRITE_SET_PATH 1024                      /* bytes of a file name of the set */
#define WRITE_SET_CHUNK_BYTES ((size_t)4 << 20) /* rows handed to one mt_datawriter_append */

/* Fills rows [first, first+n) of split s into x [n, d] (stored type) and y [n]. Called in increasing row order
 * within each split for the shards one rank writes. */
typedef int (*RowFill)(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                       MtError *err);

typedef struct WriteSet {
  Comm *c;                /* for the stall inspector's progress */
  const char *cmd;        /* "synth", "convert": in the message of an interruption */
  const char *out;        /* the set's name: written as is when shards = 1 */
  int shards;
  int64_t n[2];           /* rows of the whole set */
  DataWriterSpec spec;    /* everything but n */
  RowFill fill;
  void *ctx;
  int rank, size;         /* shard k is written by rank k % size */
  char (*written)[WRITE_SET_PATH]; /* [shards]: files this rank completed, removed again if the set fails */
  int n_written;
} WriteSet;

/* Writes this rank's shards (k = rank, rank + size, ...). A stop signal (mt_comm_stop_catch) gives the set up. 0 or -1;
 * after -1 (here or on another rank) call mt_write_set_undo. */
int mt_write_set(WriteSet *ws, MtError *err);
/* After a failure anywhere: a partial set would open as a broken dataset, so take back what this rank wrote. */
void mt_write_set_undo(WriteSet *ws);
/* File k of the set named out: out itself when there is one file, else its shard names. */
void mt_write_set_file_name(const char *out, int k, int shards, char *path, size_t n);

#endif
