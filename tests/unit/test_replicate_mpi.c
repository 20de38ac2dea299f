/* test_replicate_mpi.c — mt_model_replicate at 4 ranks: every rank ends with the root's parameters AND batch-norm
 * running statistics (not only the parameters), from any root, and gradients are left alone.
 *
 * Each rank builds the same batch-norm model and fills params, state and grads with values of its own; after
 * mt_model_replicate(root) every rank's params and state must have the root's bits, its grads its own. */
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include "mpitrain/comm.h"
#include "mpitrain/model.h"
#include "mpitrain/replicate.h"

#include "mpi_check.h"

static float value(int rank, int buffer, size_t i) { return (float)(1000 * rank + 100 * buffer) + 0.25f * (float)i; }

static void fill(Model *m, int rank) {
  for (size_t i = 0; i < m->n_params; i++) m->params[i] = value(rank, 0, i);
  for (size_t i = 0; i < m->n_state; i++) m->state[i] = value(rank, 1, i);
  for (size_t i = 0; i < m->n_params; i++) m->grads[i] = value(rank, 2, i);
}

static void check_from(Comm *c, BnPlace bn, int root) {
  ModelSpec spec = {.n_inputs = 5, .n_classes = 3, .n_hidden = 2, .hidden = {7, 4}, .act = ACT_RELU, .bn = bn,
                    .bn_momentum = 0.1f, .bn_eps = 1e-5f};
  Model m;
  MtError err = {0};
  CHECK(mt_model_create(&m, &spec, 2, &err) == 0, "mt_model_create: %s", err.msg);
  if (err.failed) return;
  CHECK(m.n_state == 2 * (7 + 4), "expected the running mean and variance of 11 units, got %zu floats", m.n_state);
  fill(&m, c->rank);
  mt_model_replicate(c, &m, root);
  size_t bad_params = 0, bad_state = 0, bad_grads = 0;
  for (size_t i = 0; i < m.n_params; i++) bad_params += m.params[i] != value(root, 0, i);
  for (size_t i = 0; i < m.n_state; i++) bad_state += m.state[i] != value(root, 1, i);
  for (size_t i = 0; i < m.n_params; i++) bad_grads += m.grads[i] != value(c->rank, 2, i);
  CHECK(bad_params == 0, "rank %d, root %d, bn %s: %zu of %zu parameters are not the root's", c->rank, root,
        mt_bn_place_name(bn), bad_params, m.n_params);
  CHECK(bad_state == 0, "rank %d, root %d, bn %s: %zu of %zu running statistics are not the root's", c->rank, root,
        mt_bn_place_name(bn), bad_state, m.n_state);
  CHECK(bad_grads == 0, "rank %d, root %d: mt_model_replicate changed %zu gradients", c->rank, root, bad_grads);
  mt_model_free(&m);
}

int main(int argc, char **argv) {
  Comm c;
  mpi_check_start(&argc, &argv, &c);
  for (int root = 0; root < c.size; root++) {
    check_from(&c, BN_BEFORE, root);
    check_from(&c, BN_AFTER, root);
  }
  return mpi_check_finish(&c);
}
