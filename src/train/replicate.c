/* replicate.c — a model's whole state from one rank to all (see replicate.h). */
#include "mpitrain/replicate.h"

void mt_model_replicate(Comm *c, Model *m, int root) {
  mt_comm_bcast(c, m->params, sizeof(float) * m->n_params, root);
  /* Without them a batch-norm model evaluates with the freshly built statistics (mean 0, variance 1) on every rank
   * but root: each rank's slice of a split would get a different model. */
  if (m->n_state) mt_comm_bcast(c, m->state, sizeof(float) * m->n_state, root);
  /* Every load (resume, --init-from, eval and predict's checkpoint) ends here: the bf16 GEMMs' copy of the weights
   * that arrived (gemm.h). */
  mt_gemm_stage_weights(m->gemm, m->params);
}
