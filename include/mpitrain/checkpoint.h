/* checkpoint.h — HDF5 checkpoints: everything needed to resume exactly, written so a crash never leaves a
 * half-written file under a checkpoint's name, and readable without mpitrain (h5py, h5dump).
 *
 * Layout (README "Checkpoint files"):
 *   /model/<layer>/W [out, in], /model/<layer>/b [out]           float32, one group per dense layer
 *   /model/bn<k>/gamma, beta [out]; /model/bn<k>/running_mean, running_var [out]   batch normalisation
 *   /optimizer/m/<layer>/W ..., /optimizer/v/<layer>/W ...        the moments, same names (when the optimiser has them)
 *   /gradcomm/worker_residual [ranks, n_params], /gradcomm/server_residual [n_params]   float32, --grad-comm bf16's
 *     error-feedback residuals (comm.h): each rank's, and (replicated schedule) the owners' in buffer order; only
 *     when the run rounded (bf16 at more than one rank)
 *   /preprocess (group): attribute scale (float32), the training data's; datasets mean, std [n_inputs] float32
 *     only when that data was normalised. Features = x * scale, then (· - mean) / std. (Absent in checkpoints
 *     written before mpitrain stored it.)
 *   root attributes: format = "mpitrain-checkpoint", format_version, mpitrain_version, created, world_size,
 *     step, epoch, epoch_pos, seed, n_inputs, n_classes, hidden, activation, leaky_slope, batchnorm, bn_momentum,
 *     bn_eps, dropout, optimizer, optimizer_step, beta1, beta2, eps, epoch_loss_sum, epoch_correct, epoch_samples,
 *     best_val_loss, best_epoch, since_best, data, n_train, config, elapsed_s (training time so far; absent in
 *     checkpoints of older versions), det_max (deterministic runs only),
 *     class_names (string array [n_classes], only when the training data had names),
 *     crc32 (zlib CRC-32 of the parameter bytes, then the first moments, then the second moments, then the
 *     batch-norm running statistics, then /preprocess/mean, then /preprocess/std, then /gradcomm/worker_residual,
 *     then /gradcomm/server_residual, each in buffer order, as
 *     little-endian float32; what does not exist is skipped). The CRC covers every float32 dataset of the file and
 *     no attribute (scale and class_names included: attributes are range-checked on read instead).
 *
 * Nothing here talks to MPI but mt_checkpoint_meta_broadcast: the trainer decides which rank calls what (rank 0 writes
 * and reads, then broadcasts), and agrees on the outcome. */
#ifndef MPITRAIN_CHECKPOINT_H
#define MPITRAIN_CHECKPOINT_H

#include <stdint.h>

#include "mpitrain/comm.h"
#include "mpitrain/error.h"
#include "mpitrain/model.h"
#include "mpitrain/optim.h"

#define CHECKPOINT_FORMAT "mpitrain-checkpoint"
/* 3: /gradcomm (bf16 residuals, inside the CRC). 2: the training data's preprocessing (/preprocess; its mean/std
 * inside the CRC) and class names, elapsed_s. 1: before them. This version reads all three; an older reader refuses
 * a newer file by its version ("use a newer mpitrain") instead of failing its CRC over arrays it does not know. */
#define CHECKPOINT_VERSION 3
#define CHECKPOINT_MAX 4096 /* checkpoints considered in one directory */

/* Everything but the arrays. */
typedef struct CheckpointMeta {
  int format_version;
  ModelSpec spec;
  OptConfig opt;           /* kind, beta1, beta2, eps */
  int64_t opt_step;        /* the optimiser's t */
  int64_t step;            /* optimisation steps done */
  int64_t epoch;           /* current epoch, 0-based */
  int64_t epoch_pos;       /* rows of the current epoch's permutation already consumed */
  int64_t seed;
  int world_size;          /* ranks of the run that wrote it (information; any world size may resume) */
  double epoch_loss_sum;   /* the current epoch's running sums, so the epoch summary after a resume is whole */
  double epoch_correct;
  int64_t epoch_samples;
  double best_val_loss;    /* early stopping: the best validation loss so far (< 0: none) ... */
  int64_t best_epoch;      /* ... the epoch it was reached after (1-based) ... */
  int64_t since_best;      /* ... and the epochs since */
  int64_t n_train;         /* training rows of the dataset it was trained on */
  char data[1024];         /* that dataset's path, as given */
  char created[32];        /* UTC, ISO 8601 */
  char version[32];        /* mpitrain version that wrote it */
  int det_n;               /* --deterministic: the largest gradient value of any group at the last step, one per
                            * parameter tensor (det.h: the next step's fixed-point scales); 0 = none */
  float det_max[4 * MODEL_MAX_HIDDEN + 2];
  /* The training data's preprocessing, applied by eval / predict to the features they read: */
  int has_preprocess;      /* /preprocess is (to be) in the file; 0: written before mpitrain stored it */
  float scale;             /* features = x * scale ... */
  float *mean, *std;       /* ... then (· - mean) / std: [n_inputs] each (malloc'd), or NULL: not normalised */
  char **class_names;      /* [n_classes] (malloc'd strings), or NULL: the training data had none */
  uint32_t crc32;
  char *config;            /* the run's options as INI text (malloc'd; mt_checkpoint_meta_free) */
  double elapsed_s;        /* wall time spent training so far, over every part of the run, in seconds (< 0: not
                            * recorded — a checkpoint of an older mpitrain; such a value is not written) */
  /* --grad-comm bf16's residuals (/gradcomm): read with the attributes, like mean and std, but kept by the rank that
   * read them (mt_checkpoint_meta_broadcast sends the counts, not the arrays: the trainer scatters them). */
  int gc_ranks;            /* rows of gc_worker: the ranks of the run that wrote them; 0: no /gradcomm */
  int gc_has_server;       /* 1: gc_server is in the file */
  int64_t gc_n;            /* values per row (the model's parameters, checked by mt_checkpoint_check_fits) */
  float *gc_worker;        /* [gc_ranks][gc_n] each rank's residual (malloc'd), or NULL */
  float *gc_server;        /* [gc_n] the owners' residuals of the sums, in buffer order (malloc'd), or NULL */
} CheckpointMeta;

/* Frees config, mean, std, class_names, gc_worker and gc_server. */
void mt_checkpoint_meta_free(CheckpointMeta *meta);

/* Collective: every rank's meta becomes a copy of root's, every field (the heap ones too: config, mean, std,
 * class_names). Other ranks' meta must be zeroed or hold what they own (it is freed first). 0 everywhere, or -1
 * everywhere (out of memory on some rank: err agreed, other ranks' meta left empty). */
int mt_checkpoint_meta_broadcast(Comm *c, CheckpointMeta *meta, int root, MtError *err);

/* Writes dir/ckpt-<step>.h5 (or dir/name when name is not NULL) atomically: to a temporary name in dir, flushed,
 * fsync'ed, renamed, and the directory fsync'ed. o may be NULL (no optimiser state). On success the final path is
 * copied into path_out [n]. */
int mt_checkpoint_write(const char *dir, const char *name, const CheckpointMeta *meta, const Model *m,
                     const Optimizer *o, char *path_out, size_t n, MtError *err);

/* Deletes the oldest ckpt-*.h5 in dir beyond the newest keep (keep <= 0: none). */
int mt_checkpoint_prune(const char *dir, int keep, MtError *err);

/* Removes temporaries (".ckpt-*.tmp*") left in dir by writers that are gone. all = 1 (the caller holds dir's lock,
 * so no live run writes there): every one. all = 0 (no lock to prove it): only those whose name says they were
 * written on this host by a process that no longer exists. Returns how many. */
int mt_checkpoint_clean_temporaries(const char *dir, int all);

/* One run per checkpoint directory: takes an advisory lock on dir/.mpitrain.lock (fcntl, which NFS supports, and
 * which the kernel releases when the process ends, however it ends) and writes the holder into it ("pid P on
 * HOST, started T UTC: COMMAND"). Returns 0 with *fd the lock (held until mt_checkpoint_dir_unlock or the end of the
 * process); if the file named a holder that ended without releasing it (killed), that line is copied into
 * stale [n], else stale is "". Returns 1 (*fd = -1, err says why) when the file system cannot lock (ENOLCK,
 * EOPNOTSUPP: the caller goes on with a warning); -1 when another process holds the lock (err names it) or the
 * file cannot be opened or written. */
int mt_checkpoint_dir_lock(const char *dir, int *fd, char *stale, size_t n, MtError *err);

/* Releases a lock of mt_checkpoint_dir_lock (fd < 0: nothing), emptying the file first: an empty lock file is one
 * released on purpose, a non-empty unlocked one was left by a run that died. */
void mt_checkpoint_dir_unlock(int fd);

/* Checkpoint files in dir, newest (highest step) first, into paths [max][1024]; returns how many (or -1). */
int mt_checkpoint_list(const char *dir, char (*paths)[1024], int max, MtError *err);

/* Reads the attributes (and /preprocess), checking the format and version (a newer version is refused with a
 * hint). mean/std are verified by the CRC only in mt_checkpoint_read_state. */
int mt_checkpoint_read_meta(const char *path, CheckpointMeta *meta, MtError *err);

/* 0 if a checkpoint with meta can be loaded into m (and o): same architecture, classes, inputs, and optimiser kind
 * (its moments must exist); else -1 with a message saying what differs and how to match it. */
int mt_checkpoint_check_fits(const char *path, const CheckpointMeta *meta, const Model *m, const Optimizer *o,
                          MtError *err);

/* Reads the arrays into m (and o, if not NULL) after checking that they fit: the architecture in meta must equal
 * m->spec, and o's kind must equal the checkpoint's (its moments must exist). Verifies the CRC-32 of everything
 * read. m and o keep their previous contents on failure only as far as the failure was detected before reading. */
int mt_checkpoint_read_state(const char *path, const CheckpointMeta *meta, Model *m, Optimizer *o, MtError *err);

/* Describes a checkpoint (attributes, architecture, arrays, whether the CRC matches) — `mpitrain info FILE`. */
int mt_checkpoint_describe(const char *path, MtError *err);

/* "784-512-256-10 relu" */
void mt_checkpoint_arch_string(const ModelSpec *spec, char *out, size_t n);

#endif
