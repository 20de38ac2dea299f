/* loss.h — fused softmax + cross-entropy on integer class labels.
 *
 * Integer labels are the one-hot formulation without the one-hot matrix: with y one-hot,
 * L = -Σ_j y_j log p_j = -log p_label, and ∂L/∂z_j = p_j - y_j. */
#ifndef MPITRAIN_LOSS_H
#define MPITRAIN_LOSS_H

#include <stdint.h>

typedef struct LossSums {
  double loss;      /* Σ over rows of -log p_label */
  double correct;   /* rows whose argmax equals the label (a double so it can ride in a float/double reduction) */
} LossSums;

/* For n rows of logits [n, C]: adds each row's loss and correctness to *sums. If dlogits [n, C] is not NULL it
 * receives (softmax - onehot) * grad_scale, where grad_scale = 1 / global batch size so that summing gradients over
 * ranks yields the mean. Stable for any finite logits (log-sum-exp with the row maximum subtracted). */
void mt_loss_softmax_xent(const float *logits, const int32_t *labels, int n, int C, float grad_scale,
                       float *dlogits, LossSums *sums);

/* Class probabilities: probs [n, C] = softmax(logits [n, C]) per row, stable for any finite logits. */
void mt_loss_softmax(const float *logits, int n, int C, float *probs);

#endif
