/* consumer.c — a program built against an INSTALLED mpitrain (tests/install/install.sh): it builds a small model
 * through the public API, runs a forward pass and checks the softmax of its logits, so a missing header, symbol or
 * dependency in the package fails the build or the run. Exit 0 only if every check holds. */
#include <math.h>
#include <stdio.h>

#include "mpitrain/init.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"

int main(void) {
  ModelSpec spec = {.n_inputs = 6, .n_classes = 3, .n_hidden = 1, .hidden = {5}, .act = ACT_RELU};
  Model m;
  MtError err = {0};
  if (mt_model_create(&m, &spec, 4, &err) != 0) {
    fprintf(stderr, "consumer: mt_model_create failed: %s\n", err.msg);
    return 1;
  }
  mt_init_params(&m, INIT_HE, 7);
  float x[4 * 6];
  for (int i = 0; i < 4 * 6; i++) x[i] = (float)((i * 37) % 11) / 11.0f;
  const float *z = mt_model_forward(&m, x, 4);
  float p[4 * 3];
  mt_loss_softmax(z, 4, 3, p);
  int bad = 0;
  for (int r = 0; r < 4; r++) {
    double sum = 0;
    for (int k = 0; k < 3; k++) sum += p[r * 3 + k];
    if (fabs(sum - 1.0) > 1e-5) bad++;
  }
  printf("consumer: %zu parameters, softmax rows summing to 1: %d of 4\n", m.n_params, 4 - bad);
  const int params_ok = m.n_params == (size_t)(6 * 5 + 5 + 5 * 3 + 3);
  mt_model_free(&m);
  return bad == 0 && params_ok ? 0 : 1;
}
