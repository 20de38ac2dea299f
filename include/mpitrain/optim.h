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
} Optimizer;

const char *optim_name(OptKind k);
int optim_from_name(const char *s);   /* -1 if unknown */

int optim_create(Optimizer *o, const OptConfig *cfg, size_t n, MtError *err);
void optim_free(Optimizer *o);

/* One step with learning rate lr: params[0..n) -= update(grads[0..n)). Increments t. */
void optim_step(Optimizer *o, float *params /* [n] */, const float *grads /* [n] */, float lr);

#endif
