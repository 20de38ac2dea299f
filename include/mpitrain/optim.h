/* optim.h — optimisers on flat buffers: one loop over every parameter, whatever the layer.
 *
 * Because the caller passes (params, grads, n), the same code updates the whole model or, with a sharded
 * optimiser, one rank's slice. */
#ifndef MPITRAIN_OPTIM_H
#define MPITRAIN_OPTIM_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"

typedef enum OptKind { OPT_SGD = 0, OPT_MOMENTUM, OPT_RMSPROP, OPT_ADAM, OPT_COUNT } OptKind;
/* Its names, in enum order and NULL-terminated (the option table's choices too); mt_optim_name / mt_optim_from_name. */
extern const char *const mt_optim_names[OPT_COUNT + 1];

typedef struct OptConfig {
  OptKind kind;
  float beta1;   /* momentum / Adam first-moment decay */
  float beta2;   /* RMSProp / Adam second-moment decay */
  float eps;     /* added to the root of the second moment */
} OptConfig;

typedef struct Optimizer {
  OptConfig cfg;
  size_t n;      /* parameters updated */
  float *m;      /* [n] first moment (momentum, Adam) or NULL */
  float *v;      /* [n] second moment (RMSProp, Adam) or NULL */
  int64_t t;     /* steps taken; Adam's bias correction uses it */
  float lr;      /* of the current step (mt_optim_begin) */
  float step_size, rs; /* Adam: lr/(1-β1^t) and 1/sqrt(1-β2^t) of the current step */
} Optimizer;

const char *mt_optim_name(OptKind k);
int mt_optim_from_name(const char *s);   /* -1 if unknown */

int mt_optim_create(Optimizer *o, const OptConfig *cfg, size_t n, MtError *err);
void mt_optim_free(Optimizer *o);

/* One step with learning rate lr: params[0..n) -= update(grads[0..n)). Increments t. */
void mt_optim_step(Optimizer *o, float *params /* [n] */, const float *grads /* [n] */, float lr);

/* The same step in pieces, for a sharded optimiser (each rank updates the ranges it owns) or per gradient bucket:
 * mt_optim_begin once per step (increments t, fixes the rate and Adam's corrections), then mt_optim_update for each
 * range: params [count] and grads [count] use the moments at moff .. moff+count. bf16: NULL, or [count] that
 * receives mt_bf16_from_float of each updated parameter in the same pass (the bf16 GEMMs' copy of the weights). The
 * loop is vectorised (AVX-512 / AVX2 where the CPU has them) with the bits of the plain scalar loop. */
void mt_optim_begin(Optimizer *o, float lr);
void mt_optim_update(Optimizer *o, float *params, const float *grads, size_t moff, size_t count, uint16_t *bf16);

/* ==== Learning-rate schedules, clipping, decay ==== */

typedef enum LrScheduleKind { LR_CONSTANT = 0, LR_STEP, LR_EXP, LR_INV, LR_COSINE, LR_COUNT } LrScheduleKind;
/* Its names, as mt_optim_names; mt_lr_schedule_name. */
extern const char *const mt_lr_schedule_names[LR_COUNT + 1];
const char *mt_lr_schedule_name(LrScheduleKind k); /* "?" if not a kind */

typedef struct LrSchedule {
  LrScheduleKind kind;
  double lr;            /* base rate (after the linear scaling rule, if any) */
  double gamma;         /* step, exp: factor */
  double step_epochs;   /* step: epochs between decays */
  double decay_rate;    /* inv */
  double lr_min;        /* cosine floor */
  double epochs;        /* cosine: the length of the run, in epochs */
  int64_t warmup_steps; /* linear warm-up over the first steps */
} LrSchedule;

/* The rate of 1-based step `step` (the step about to be taken) when an epoch has steps_per_epoch steps: the
 * schedule at e = (step - 1) / steps_per_epoch epochs done, times min(1, step / warmup_steps). */
double mt_lr_at(const LrSchedule *s, int64_t step, int64_t steps_per_epoch);

/* Gradient clipping, for a gradient held in pieces (slices, shards) whose global L2 norm the caller computed:
 * the factor that brings the norm down to max_norm — 1 when max_norm <= 0 (off), when the norm is within it, or
 * when it is not a number — and g [n] *= s for each piece. */
float mt_optim_clip_scale(double norm, double max_norm);
void mt_optim_scale(float *g, size_t n, float s);

/* Sum of squares of p [n] (in double). */
double mt_optim_sumsq(const float *p, size_t n);
/* The same sequential sum continued from s: chained over consecutive pieces it has the bits of one pass over all of
 * them (adding per-piece sums instead would round differently). */
double mt_optim_sumsq_add(double s, const float *p, size_t n);

/* A range of the flat buffers (a weight matrix): what L2 and weight decay apply to. */
typedef struct ParamRange {
  size_t offset, count;
} ParamRange;

/* L2 regularisation for a global batch of B rows (lambda <= 0 or B <= 0: off): the loss term lambda/(2B)·Σw² over
 * the ranges of params, and the gradient term g [n] += lambda/B·w [n] for one piece of a decaying tensor (the
 * pieces this rank holds may be shards of the ranges). */
double mt_optim_l2_loss(const ParamRange *r, int n, const float *params, double lambda, int64_t B);
void mt_optim_l2_grad(float *g, const float *w, size_t n, double lambda, int64_t B);

/* Decoupled weight decay: w *= 1 - lr·wd over the ranges. */
void mt_optim_weight_decay(const ParamRange *r, int n, float *params, double lr, double wd);

#endif
