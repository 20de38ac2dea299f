/* loss.c — fused, numerically stable softmax + cross-entropy (see loss.h). */
#include "mpitrain/loss.h"

#include <math.h>
#include <stddef.h>

void mt_loss_softmax_xent(const float *logits, const int32_t *labels, int n, int C, float grad_scale,
                       float *dlogits, LossSums *sums) {
  double loss = 0, correct = 0;
  for (int r = 0; r < n; r++) {
    const float *z = logits + (size_t)r * C;
    int label = labels[r];
    /* log Σ exp(z) = max + log Σ exp(z - max): every exponent is <= 0, so nothing overflows, and the largest
     * term is exactly 1, so the sum is >= 1 and its log is finite. */
    float mx = z[0];
    int arg = 0;
    for (int j = 1; j < C; j++)
      if (z[j] > mx) {
        mx = z[j];
        arg = j;
      }
    double sum = 0;
    for (int j = 0; j < C; j++) sum += exp((double)z[j] - mx);
    double lse = mx + log(sum);
    loss += lse - z[label];
    correct += arg == label;
    if (dlogits) {
      float *d = dlogits + (size_t)r * C;
      for (int j = 0; j < C; j++) d[j] = (float)(exp((double)z[j] - lse)) * grad_scale;
      d[label] -= grad_scale;
    }
  }
  sums->loss += loss;
  sums->correct += correct;
}

void mt_loss_softmax(const float *logits, int n, int C, float *probs) {
  for (int r = 0; r < n; r++) {
    const float *z = logits + (size_t)r * C;
    float *p = probs + (size_t)r * C;
    float mx = z[0];
    for (int j = 1; j < C; j++) mx = z[j] > mx ? z[j] : mx;
    double sum = 0;
    for (int j = 0; j < C; j++) sum += exp((double)z[j] - mx);
    for (int j = 0; j < C; j++) p[j] = (float)(exp((double)z[j] - mx) / sum);
  }
}
