/* config.h — the options of `mpitrain train` (and of bench, which trains): one struct, one table, validated
 * with messages that name the option and what was expected. */
#ifndef MPITRAIN_CONFIG_H
#define MPITRAIN_CONFIG_H

#include <stdint.h>

#include "mpitrain/data.h"
#include "mpitrain/error.h"
#include "mpitrain/log.h"
#include "mpitrain/opts.h"

/* --on-nonfinite: what the trainer does with a NaN/Inf loss or gradient. Its names, in enum order and
 * NULL-terminated, are the option table's choices. */
typedef enum NonfiniteMode { NONFINITE_STOP = 0, NONFINITE_SKIP, NONFINITE_COUNT } NonfiniteMode;
extern const char *const mt_nonfinite_names[NONFINITE_COUNT + 1];

typedef struct Config {
  /* data */
  char data[1024];        /* dataset file (or one shard of a set, or the set's base name) */
  int in_memory;          /* MemoryMode (data.h): load the training split into memory, or read each batch's rows */
  int64_t memory_limit_mb;/* auto mode loads a split when it is at most this large */
  /* model */
  IntList hidden;         /* hidden layer widths */
  int activation;         /* ActKind (model.h) */
  float leaky_slope;
  int init;               /* InitKind (init.h) */
  char init_from[1024];   /* "" = --init; else the weights of an mpitrain checkpoint or a PyTorch state dict */
  int batchnorm;          /* BnPlace (model.h) */
  float bn_momentum, bn_eps;
  float dropout;          /* inverted-dropout rate after every hidden block */
  /* optimisation */
  int optimizer;          /* OptKind (optim.h) */
  float lr;
  float beta1, beta2;     /* beta2 < 0: the optimiser's default (0.999 Adam, 0.9 RMSProp) */
  float eps;
  int64_t batch;          /* global batch; 0 = full batch */
  int micro_batch;        /* rows per forward/backward chunk on a rank; 0 = auto */
  int epochs;
  int64_t max_steps;      /* stop after this many steps in all (0 = no limit) */
  int64_t seed;
  /* regularisation and tuning */
  float l2;               /* L2 penalty λ: loss += λ/(2B)·ΣW², gradient += λ/B·W (weights only) */
  float weight_decay;     /* decoupled (AdamW) decay: W -= lr·wd·W each step, outside the gradient */
  int lr_schedule;        /* LrScheduleKind (optim.h) */
  float lr_gamma;         /* step / exp: factor (< 0: the schedule's default) */
  float lr_step;          /* step: epochs between decays */
  float lr_decay_rate;    /* inv: lr / (1 + rate·epoch) */
  float lr_min;           /* cosine: the floor */
  int64_t warmup_steps;   /* linear warm-up from lr/warmup to lr */
  int64_t lr_ref_batch;   /* linear scaling rule: lr × batch / ref (0 = off) */
  float clip_norm;        /* clip the global gradient norm to this (0 = off) */
  int on_nonfinite;       /* NonfiniteMode: what a NaN/Inf loss or gradient does */
  float val_fraction;     /* share of the training set held out for validation */
  int patience;           /* early stopping: epochs without a better validation loss (0 = off) */
  /* system */
  int threads;            /* OpenBLAS threads per rank; 0 = auto (cores / ranks on the node) */
  int precision;          /* MtPrecision (gemm.h): of the dense layers' GEMMs */
  int check_replicas;     /* every K steps, verify all replicas are bit-identical (0 = never) */
  float bucket_mb;        /* gradient buckets reduced while backward goes on (0 = one bucket) */
  int shard_optimizer;    /* ZeRO-1: reduce-scatter, update 1/N of the parameters, all-gather */
  int grad_comm;          /* MtGradComm: the gradients travel as fp32 or as bf16 (summed in fp32) */
  int allreduce;          /* MtAllreduce: flat, hierarchical (within nodes, then across) or auto */
  int deterministic;      /* the same bits on any number of ranks (det.h) */
  int det_group;          /* rows per group in deterministic mode */
  float stall_timeout;    /* seconds in one collective before the stall inspector reports and aborts (0 = off) */
  /* output */
  char log[1024];         /* metrics file ("" = none) */
  int log_format;         /* LogFormat (log.h) */
  int log_every;          /* steps between metric lines / plain progress lines (0 = auto) */
  int progress;           /* ProgressMode (log.h) */
  int eval;               /* evaluate on the test split after each epoch */
  int log_norms;          /* per-layer weight and gradient norms in the metrics log */
  /* checkpoints */
  char checkpoint_dir[1024]; /* "" = no checkpoints */
  int64_t checkpoint_every;  /* also every N steps (0 = only at epoch ends / on stop) */
  int checkpoint_epochs;     /* at the end of every epoch */
  int keep;                  /* newest checkpoints kept in the directory */
  char resume[1024];         /* "" = start fresh, "auto" = newest valid checkpoint in checkpoint_dir, or a file */
} Config;

extern const OptionSpec mt_config_train_options[];

/* Defaults + --config + command line (argv[first..)), then mt_config_validate, and --log must not be the --config file
 * (mt_fileid_check: by device and inode). Returns 0, 1 if --help was asked (nothing printed: the command prints its usage;
 * c holds the defaults), -1 on error (positional arguments included). */
int mt_config_parse(Config *c, int argc, char **argv, int first, MtError *err);

/* Cross-option checks that the table's ranges cannot express (mt_config_parse already calls it; call it again
 * after changing fields in code): --data non-empty, --log's format known, --log not the dataset. */
int mt_config_validate(const Config *c, MtError *err);

/* The effective beta2 for the configured optimiser. */
float mt_config_beta2(const Config *c);

#endif
