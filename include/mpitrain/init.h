/* init.h — weight initialisation. Biases always start at zero (no symmetry to break there).
 * Weights are drawn from the counter-based generator keyed by (seed, tensor index, element), so every rank
 * and every rank count starts from the same bits. */
#ifndef MPITRAIN_INIT_H
#define MPITRAIN_INIT_H

#include <stdint.h>

#include "mpitrain/model.h"

typedef enum InitKind {
  INIT_AUTO = 0,  /* He for (leaky) ReLU, Xavier for tanh / sigmoid */
  INIT_SMALL,     /* N(0,1) × 0.01, the lecture notes' choice */
  INIT_XAVIER,    /* N(0, 2/(fan_in+fan_out)), Glorot & Bengio 2010 */
  INIT_HE,        /* N(0, 2/fan_in), He et al. 2015 */
  INIT_ZERO,      /* all zero: only to demonstrate the symmetry problem */
  INIT_COUNT
} InitKind;
/* Their names, in enum order and NULL-terminated (the option table's choices too). */
extern const char *const mt_init_names[INIT_COUNT + 1];

const char *mt_init_name(InitKind k);
int mt_init_from_name(const char *s);       /* -1 if unknown */
InitKind mt_init_resolve(InitKind k, ActKind act);  /* AUTO -> the concrete kind */

void mt_init_params(Model *m, InitKind kind, uint64_t seed);

#endif
