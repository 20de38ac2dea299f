/* init.c — weight initialisation from the counter-based generator (see init.h). */
#include "mpitrain/init.h"

#include <math.h>
#include <string.h>

#include "mpitrain/rng.h"
#include "mpitrain/util.h"

const char *const mt_init_names[INIT_COUNT + 1] = {"auto", "small", "xavier", "he", "zero", NULL};

const char *mt_init_name(InitKind k) { return mt_enum_name(mt_init_names, INIT_COUNT, k); }
int mt_init_from_name(const char *s) { return mt_enum_from_name(mt_init_names, s); }

InitKind mt_init_resolve(InitKind k, ActKind act) {
  if (k != INIT_AUTO) return k;
  /* He keeps the variance of ReLU outputs constant across layers (half the units are zero); Xavier does the
   * same for activations that are linear around 0. */
  return act == ACT_RELU || act == ACT_LEAKY_RELU ? INIT_HE : INIT_XAVIER;
}

void mt_init_params(Model *m, InitKind kind, uint64_t seed) {
  kind = mt_init_resolve(kind, m->spec.act);
  int tensor = 0;
  for (int i = 0; i < m->n_layers; i++) {
    Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    float *W = m->params + l->w_off;
    size_t nw = (size_t)l->out * (size_t)l->in;
    double std = 0;
    switch (kind) {
      case INIT_SMALL: std = 0.01; break;
      case INIT_XAVIER: std = sqrt(2.0 / (l->in + l->out)); break;
      case INIT_HE: std = sqrt(2.0 / l->in); break;
      default: std = 0; break;
    }
    for (size_t e = 0; e < nw; e++) W[e] = std == 0 ? 0.0f : (float)(std * mt_rng_normal(seed, RNG_STREAM_INIT, (uint64_t)tensor, e));
    if (l->has_bias) memset(m->params + l->b_off, 0, sizeof(float) * (size_t)l->out);
    tensor++;
  }
  mt_gemm_stage_weights(m->gemm, m->params); /* the bf16 GEMMs' copy of the new weights (gemm.h) */
}
