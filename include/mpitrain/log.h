/* log.h — what the user sees while training and what is kept afterwards.
 *
 * Only rank 0 writes. On a terminal: a progress bar redrawn in place (loss, accuracy, samples/s, ETA); otherwise
 * (a batch job's output file) plain lines at a steady cadence. --log FILE adds machine-readable metrics, CSV or
 * JSONL by extension or --log-format.
 *
 * Metrics file: CSV columns (JSONL keys, with non-applicable ones left out)
 *   kind,epoch,step,samples,loss,acc,lr,samples_per_s,elapsed_s,test_loss,test_acc,val_loss,val_acc,grad_norm,
 *   layer,weight_norm
 * kind "step": epoch is 1-based, step global, samples = this step's global batch, loss/acc of that batch
 *   (acc a fraction), grad_norm the global gradient norm when computed. Written every `every` global steps, or with
 *   every = 0 for each step of an epoch of up to 1000 steps (about 1000 records per epoch beyond that).
 * kind "epoch": loss/acc over the epoch's batches, lr and elapsed_s of its last step, samples empty, test_* and
 *   val_* when evaluated. Always written, and flushed at once.
 * kind "layer": one parameter tensor's weight_norm and grad_norm at a step that has a step record (--log-norms).
 * Numbers are printed with %.9g; a non-finite value is nan/inf in CSV and null in JSONL.
 * A resumed run continues the file: elapsed_s counts on from the checkpoint's, and the records of steps after the
 * checkpoint (done by the earlier run after its last checkpoint) are dropped, so every step appears once. */
#ifndef MPITRAIN_LOG_H
#define MPITRAIN_LOG_H

#include <stdint.h>

#include "mpitrain/error.h"

/* --log-format and --progress (LogOptions). Their names, in enum order and NULL-terminated, are also the option
 * table's choices. */
typedef enum LogFormat { LOGFMT_AUTO = 0, LOGFMT_CSV, LOGFMT_JSONL, LOGFMT_COUNT } LogFormat;
typedef enum ProgressMode {
  PROGRESS_AUTO = 0,
  PROGRESS_BAR,
  PROGRESS_PLAIN,
  PROGRESS_OFF,
  PROGRESS_COUNT
} ProgressMode;
extern const char *const mt_log_format_names[LOGFMT_COUNT + 1];
extern const char *const mt_progress_names[PROGRESS_COUNT + 1];
/* The format --log-format auto takes from a file name: .csv, or .jsonl / .json (any case); LOGFMT_AUTO if neither. */
LogFormat mt_log_format_from_path(const char *path);

typedef struct StepStats {
  int epoch;              /* 0-based */
  int epochs;
  int64_t step;           /* global step, 1-based after the step */
  int64_t step_in_epoch;  /* 1-based */
  int64_t steps_per_epoch;
  int64_t samples;        /* in this step's global batch */
  double loss;            /* mean loss of this step's global batch */
  double acc;             /* fraction correct in this step's global batch */
  double lr;
  double samples_per_s;   /* training throughput averaged over the recent steps */
  double elapsed_s;       /* since training started */
  double eta_s;           /* estimated time to finish all epochs */
  double grad_norm;       /* global L2 norm of the gradient before clipping (-1 if not computed) */
} StepStats;

typedef struct EpochStats {
  int epoch, epochs;              /* epoch is 0-based, as in StepStats (printed 1-based) */
  int64_t step;
  double train_loss, train_acc;   /* over the epoch's batches */
  double test_loss, test_acc;     /* -1 if not evaluated */
  double val_loss, val_acc;       /* -1 without a validation split */
  double epoch_s;                 /* wall time of the epoch's training steps */
  double samples_per_s;
  int partial;                    /* 1: --max-steps ended the run inside this epoch — the record's kind is "end"
                                   * (not "epoch", which a resumed run writes when the epoch is whole) */
} EpochStats;

typedef struct Log Log;

typedef struct LogOptions {
  int is_root;            /* only rank 0 prints or writes */
  int progress;           /* ProgressMode */
  const char *path;       /* metrics file or NULL/"" */
  int format;             /* LogFormat */
  int every;              /* steps between plain lines / metric lines (counted in global steps); 0 = auto: about
                           * 10 plain lines per epoch, and every step in the file (see above) */
  int defer_file;         /* leave the metrics file to mt_log_open_file (a run that may resume: it continues it) */
} LogOptions;

/* Collective-free; on rank 0 opens the metrics file. Failure (cannot create the file) is reported in err and
 * must be agreed on by the caller. On other ranks it only allocates, and every call below is a cheap no-op;
 * all of them also accept l == NULL. */
int mt_log_open(Log **out, const LogOptions *o, MtError *err);
/* Rank 0 with --log and defer_file: opens the metrics file. resumed_step < 0: a new file (emptied if it exists);
 * else the run resumed from a checkpoint of that step and continues the file — its records up to that step are
 * kept, later ones dropped (rewritten atomically), a line torn by a crash dropped; the file is created if missing.
 * A file that is not a metrics log of this format (CSV header, records) is refused and left alone. Elsewhere, and
 * when the file is already open, a no-op. */
int mt_log_open_file(Log *l, int64_t resumed_step, MtError *err);
void mt_log_step(Log *l, const StepStats *s);
void mt_log_epoch(Log *l, const EpochStats *s);
/* Whether step s gets a record in the metrics file (rank 0 with --log only): the trainer computes the per-layer
 * norms only for those steps. */
int mt_log_step_due(const Log *l, const StepStats *s);
/* A "layer" record for step s: one tensor's weight and gradient L2 norms. */
void mt_log_layer(Log *l, const StepStats *s, const char *layer, double weight_norm, double grad_norm);
/* Flushes the metrics file (the trainer does after each checkpoint: a run killed later has every record up to the
 * checkpoint's step on disk, so the resumed run's file has no gap). */
void mt_log_flush(Log *l);
/* A line of text for the user (rank 0 only; clears the progress bar first). */
void mt_log_info(Log *l, const char *fmt, ...) MT_PRINTF(2, 3);
/* Flushes and closes; reports a write error (e.g. disk full) in err. A progress bar still on screen is left
 * there and its line ended. */
int mt_log_close(Log *l, MtError *err);

#endif
