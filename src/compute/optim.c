/* optim.c — gradient descent, momentum, RMSProp and Adam as single loops over flat buffers.
 *
 * Where we differ from the lecture notes, on purpose:
 *  - Adam: the notes correct the second moment with 1 - β1^t; the correct factor is 1 - β2^t (Kingma & Ba,
 *    Algorithm 1). They also update b with W's moments; here every parameter, biases included, uses its own
 *    moments — which the flat buffers give for free.
 *  - RMSProp: the notes divide by sqrt(s + ε); we divide by sqrt(s) + ε, like Adam and the common libraries, so
 *    ε means the same thing in both optimisers. Momentum keeps the notes' form v = βv + (1-β)g. */
#include "mpitrain/optim.h"

#include <math.h>
#include <string.h>

#include "bf16.h"
#include "vector.h"
#include "mpitrain/util.h"

const char *const mt_optim_names[OPT_COUNT + 1] = {"sgd", "momentum", "rmsprop", "adam", NULL};
const char *const mt_lr_schedule_names[LR_COUNT + 1] = {"constant", "step", "exp", "inv", "cosine", NULL};

const char *mt_optim_name(OptKind k) { return mt_enum_name(mt_optim_names, OPT_COUNT, k); }
int mt_optim_from_name(const char *s) { return mt_enum_from_name(mt_optim_names, s); }
const char *mt_lr_schedule_name(LrScheduleKind k) { return mt_enum_name(mt_lr_schedule_names, LR_COUNT, k); }

int mt_optim_create(Optimizer *o, const OptConfig *cfg, size_t n, MtError *err) {
  memset(o, 0, sizeof *o);
  o->cfg = *cfg;
  o->n = n;
  if (cfg->kind == OPT_MOMENTUM || cfg->kind == OPT_ADAM) {
    o->m = mt_alloc(sizeof(float) * n, "the optimiser's first moments", err);
    if (o->m == NULL) return -1;
  }
  if (cfg->kind == OPT_RMSPROP || cfg->kind == OPT_ADAM) {
    o->v = mt_alloc(sizeof(float) * n, "the optimiser's second moments", err);
    if (o->v == NULL) {
      mt_optim_free(o);
      return -1;
    }
  }
  return 0;
}

void mt_optim_free(Optimizer *o) {
  mt_free(o->v);
  mt_free(o->m);
  o->m = o->v = NULL;
}

void mt_optim_begin(Optimizer *o, float lr) {
  o->t++;
  o->lr = lr;
  if (o->cfg.kind == OPT_ADAM) {
    /* m̂ = m / (1-β1^t), v̂ = v / (1-β2^t), p -= lr·m̂ / (sqrt(v̂) + ε). The corrections are folded into two
     * per-step constants (computed in double: β2^t for t ~ 1e6 needs it), leaving one sqrt and one divide per
     * parameter: sqrt(v̂) = sqrt(v) · (1/sqrt(1-β2^t)). */
    const double bc1 = 1.0 - pow((double)o->cfg.beta1, (double)o->t);
    const double bc2 = 1.0 - pow((double)o->cfg.beta2, (double)o->t);
    o->step_size = (float)(lr / bc1);
    o->rs = (float)(1.0 / sqrt(bc2));
  }
}

/* Each optimiser's loop over [0, n), written once in OPTIM_LOOP: BODY updates element i of p (and its moments) and,
 * when the caller passes b, the new p[i] rounded to bf16 goes to b[i] in the same pass (the bf16 GEMMs' copy of the
 * weights: no separate conversion pass over them). Two loops rather than a test inside one, so that both vectorise.
 * Compiled for every vector width (vector.h): sqrt and divide round correctly at every width, so the bits are the
 * same on every path; no FMA (a fused a·b + c rounds once where the scalar code rounds twice). */

#define OPTIM_LOOP(BODY)                          \
  if (b == NULL) {                                \
    for (size_t i = 0; i < n; i++) {              \
      BODY;                                       \
    }                                             \
  } else {                                        \
    for (size_t i = 0; i < n; i++) {              \
      BODY;                                       \
      b[i] = bf16_round(p[i]);                    \
    }                                             \
  }

MT_VECTOR_CLONES static void sgd(float *restrict p, const float *restrict g, uint16_t *restrict b, size_t n, float lr) {
  OPTIM_LOOP(p[i] -= lr * g[i])
}

MT_VECTOR_CLONES static void momentum(float *restrict p, const float *restrict g, float *restrict m, uint16_t *restrict b,
                                  size_t n, float lr, float b1) {
  OPTIM_LOOP(m[i] = b1 * m[i] + (1.0f - b1) * g[i]; p[i] -= lr * m[i])
}

MT_VECTOR_CLONES static void rmsprop(float *restrict p, const float *restrict g, float *restrict v, uint16_t *restrict b,
                                 size_t n, float lr, float b2, float eps) {
  OPTIM_LOOP(v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i]; p[i] -= lr * g[i] / (sqrtf(v[i]) + eps))
}

MT_VECTOR_CLONES static void adam(float *restrict p, const float *restrict g, float *restrict m, float *restrict v,
                              uint16_t *restrict b, size_t n, float step, float rs, float b1, float b2, float eps) {
  OPTIM_LOOP(m[i] = b1 * m[i] + (1.0f - b1) * g[i]; v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
             p[i] -= step * m[i] / (sqrtf(v[i]) * rs + eps))
}

void mt_optim_update(Optimizer *o, float *p, const float *g, size_t moff, size_t n, uint16_t *bf16) {
  const float b1 = o->cfg.beta1, b2 = o->cfg.beta2, eps = o->cfg.eps, lr = o->lr;
  float *m = o->m ? o->m + moff : NULL, *v = o->v ? o->v + moff : NULL;
  switch (o->cfg.kind) {
    case OPT_SGD: sgd(p, g, bf16, n, lr); break;
    case OPT_MOMENTUM: momentum(p, g, m, bf16, n, lr, b1); break;
    case OPT_RMSPROP: rmsprop(p, g, v, bf16, n, lr, b2, eps); break;
    case OPT_ADAM: adam(p, g, m, v, bf16, n, o->step_size, o->rs, b1, b2, eps); break;
    default: break;
  }
}

void mt_optim_step(Optimizer *o, float *p, const float *g, float lr) {
  mt_optim_begin(o, lr);
  mt_optim_update(o, p, g, 0, o->n, NULL);
}

/* ==== Learning-rate schedules, clipping ==== */

double mt_lr_at(const LrSchedule *s, int64_t step, int64_t steps_per_epoch) {
  double e = steps_per_epoch > 0 ? (double)(step - 1) / (double)steps_per_epoch : 0, lr = s->lr;
  switch (s->kind) {
    case LR_STEP: lr = s->lr * pow(s->gamma, floor(e / s->step_epochs)); break;
    case LR_EXP: lr = s->lr * pow(s->gamma, e); break;
    case LR_INV: lr = s->lr / (1.0 + s->decay_rate * e); break;
    case LR_COSINE: {
      double f = s->epochs > 0 ? e / s->epochs : 1;
      if (f > 1) f = 1;
      lr = s->lr_min + (s->lr - s->lr_min) * 0.5 * (1.0 + cos(3.141592653589793 * f));
      break;
    }
    default: break;
  }
  if (s->warmup_steps > 0 && step < s->warmup_steps) lr *= (double)step / (double)s->warmup_steps;
  return lr;
}

double mt_optim_sumsq_add(double s, const float *p, size_t n) {
  for (size_t i = 0; i < n; i++) s += (double)p[i] * p[i];
  return s;
}

double mt_optim_sumsq(const float *p, size_t n) { return mt_optim_sumsq_add(0, p, n); }

float mt_optim_clip_scale(double norm, double max_norm) {
  return max_norm > 0 && norm > max_norm ? (float)(max_norm / norm) : 1.0f;
}

void mt_optim_scale(float *g, size_t n, float s) {
  for (size_t i = 0; i < n; i++) g[i] *= s;
}

double mt_optim_l2_loss(const ParamRange *r, int n, const float *params, double lambda, int64_t B) {
  if (lambda <= 0 || B <= 0) return 0;
  double sumsq = 0;
  for (int i = 0; i < n; i++) sumsq += mt_optim_sumsq(params + r[i].offset, r[i].count);
  return lambda / (2.0 * (double)B) * sumsq;
}

void mt_optim_l2_grad(float *g, const float *w, size_t n, double lambda, int64_t B) {
  if (lambda <= 0 || B <= 0) return;
  const float k = (float)(lambda / (double)B);
  for (size_t e = 0; e < n; e++) g[e] += k * w[e];
}

void mt_optim_weight_decay(const ParamRange *r, int n, float *params, double lr, double wd) {
  if (wd <= 0) return;
  const float keep = (float)(1.0 - lr * wd);
  for (int i = 0; i < n; i++) {
    float *w = params + r[i].offset;
    for (size_t e = 0; e < r[i].count; e++) w[e] *= keep;
  }
}
