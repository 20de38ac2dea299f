/* replicate.h — one model on every rank: what a rank that read a checkpoint (or holds the only copy) sends to the
 * others before they compute with it. The trainer's resume and early stopping's best model, and eval / predict,
 * all go through it, so a buffer the model gains is replicated everywhere by adding it here once. */
#ifndef MPITRAIN_REPLICATE_H
#define MPITRAIN_REPLICATE_H

#include "mpitrain/comm.h"
#include "mpitrain/model.h"

/* Collective. Copies root's whole model state to every rank: the parameters and every non-trainable buffer (the
 * batch-norm running statistics). Every rank's m must already have root's architecture (the same n_params and
 * n_state); gradients and activations are not state and are left alone. */
void mt_model_replicate(Comm *c, Model *m, int root);

#endif
