/* model.c — dense layers and activations over flat buffers; forward and backward with cblas_sgemm.
 *
 * Row-major throughout: a batch is X [n, in], a dense layer computes Y = X·Wᵀ + b with W [out, in] (PyTorch's
 * layout, so checkpoints read naturally), and backward computes dW = dYᵀ·X, db = Σ_rows dY, dX = dY·W. */
#include "mpitrain/model.h"

#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

static const char *const act_names[ACT_COUNT] = {"relu", "leaky_relu", "tanh", "sigmoid"};

const char *act_name(ActKind a) { return a >= 0 && a < ACT_COUNT ? act_names[a] : "?"; }

int act_from_name(const char *s) {
  for (int i = 0; i < ACT_COUNT; i++)
    if (strcmp(s, act_names[i]) == 0) return i;
  return -1;
}

int model_create(Model *m, const ModelSpec *spec, int max_batch, MtError *err) {
  memset(m, 0, sizeof *m);
  m->spec = *spec;
  if (spec->n_inputs < 1 || spec->n_classes < 2 || spec->n_hidden < 0 || spec->n_hidden > MODEL_MAX_HIDDEN ||
      max_batch < 1)
    return mt_fail(err, "invalid model: %d inputs, %d classes, %d hidden layers, batch %d", spec->n_inputs,
                   spec->n_classes, spec->n_hidden, max_batch);
  m->n_layers = 2 * spec->n_hidden + 1;
  m->max_batch = max_batch;
  m->layers = mt_alloc(sizeof(Layer) * (size_t)m->n_layers, "the layer list", err);
  if (m->layers == NULL) return -1;

  /* Lay out parameters (W then b per dense layer) and activation storage (one [max_batch, out] block per dense
   * layer; activations work in place on it: every derivative we need is a function of the output). */
  size_t off = 0, act_floats = 0;
  int in = spec->n_inputs, li = 0;
  m->max_width = 0;
  for (int k = 0; k <= spec->n_hidden; k++) {
    int out = k < spec->n_hidden ? spec->hidden[k] : spec->n_classes;
    if (out < 1) {
      mt_fail(err, "invalid model: hidden layer %d has width %d", k, out);
      goto fail;
    }
    Layer *d = &m->layers[li++];
    d->kind = LAYER_DENSE;
    snprintf(d->name, sizeof d->name, "dense%d", k);
    d->in = in;
    d->out = out;
    d->w_off = off;
    off += (size_t)out * (size_t)in;
    d->b_off = off;
    off += (size_t)out;
    act_floats += (size_t)max_batch * (size_t)out;
    if (out > m->max_width) m->max_width = out;
    if (k < spec->n_hidden) {
      Layer *a = &m->layers[li++];
      a->kind = LAYER_ACT;
      a->act = spec->act;
      a->slope = spec->leaky_slope;
      snprintf(a->name, sizeof a->name, "%s%d", act_name(spec->act), k);
      a->in = a->out = out;
    }
    in = out;
  }
  m->n_params = off;
  m->params = mt_alloc(sizeof(float) * m->n_params, "the parameters", err);
  m->grads = mt_alloc(sizeof(float) * (m->n_params + MODEL_GRAD_TAIL), "the gradients", err);
  m->act_mem = mt_alloc(sizeof(float) * act_floats, "the activations", err);
  m->dbuf[0] = mt_alloc(sizeof(float) * (size_t)max_batch * (size_t)m->max_width, "backward buffers", err);
  m->dbuf[1] = mt_alloc(sizeof(float) * (size_t)max_batch * (size_t)m->max_width, "backward buffers", err);
  if (err->failed) goto fail;

  float *p = m->act_mem;
  for (int i = 0; i < m->n_layers; i++) {
    Layer *l = &m->layers[i];
    if (l->kind == LAYER_DENSE) {
      l->y = p;
      p += (size_t)max_batch * (size_t)l->out;
    } else {
      l->y = m->layers[i - 1].y;
    }
  }
  return 0;
fail:
  model_free(m);
  return -1;
}

void model_free(Model *m) {
  mt_free(m->dbuf[1]);
  mt_free(m->dbuf[0]);
  mt_free(m->act_mem);
  mt_free(m->grads);
  mt_free(m->params);
  mt_free(m->layers);
  memset(m, 0, sizeof *m);
}

int model_tensors(const Model *m, ModelTensor *out, int max) {
  int n = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    if (n < max) {
      ModelTensor *t = &out[n];
      snprintf(t->name, sizeof t->name, "%s/W", l->name);
      t->offset = l->w_off;
      t->count = (size_t)l->out * (size_t)l->in;
      t->rank = 2;
      t->dims[0] = l->out;
      t->dims[1] = l->in;
    }
    n++;
    if (n < max) {
      ModelTensor *t = &out[n];
      snprintf(t->name, sizeof t->name, "%s/b", l->name);
      t->offset = l->b_off;
      t->count = (size_t)l->out;
      t->rank = 1;
      t->dims[0] = l->out;
      t->dims[1] = 0;
    }
    n++;
  }
  return n;
}

float *model_weight(Model *m, const Layer *l) { return m->params + l->w_off; }
float *model_bias(Model *m, const Layer *l) { return m->params + l->b_off; }

/* Comparisons are written so that NaN passes through (NaN < 0 is false): a diverging run must show NaN in
 * the loss, not be silently clamped to 0 by ReLU. */
void act_forward(ActKind a, float slope, float *y, size_t n) {
  switch (a) {
    case ACT_RELU:
      for (size_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? 0.0f : y[i];
      break;
    case ACT_LEAKY_RELU:
      for (size_t i = 0; i < n; i++) y[i] = y[i] < 0.0f ? slope * y[i] : y[i];
      break;
    case ACT_TANH:
      for (size_t i = 0; i < n; i++) y[i] = tanhf(y[i]);
      break;
    case ACT_SIGMOID:
      /* For z << 0, expf(-z) overflows to inf and 1/(1+inf) = 0: the right limit, no NaN. */
      for (size_t i = 0; i < n; i++) y[i] = 1.0f / (1.0f + expf(-y[i]));
      break;
    default:
      break;
  }
}

void act_backward(ActKind a, float slope, const float *y, float *dy, size_t n) {
  switch (a) {
    case ACT_RELU: /* y > 0 exactly when z > 0; the derivative at 0 is taken as 0 */
      for (size_t i = 0; i < n; i++) dy[i] = y[i] > 0.0f ? dy[i] : 0.0f;
      break;
    case ACT_LEAKY_RELU: /* slope > 0, so y < 0 exactly when z < 0 */
      for (size_t i = 0; i < n; i++) dy[i] = y[i] < 0.0f ? slope * dy[i] : dy[i];
      break;
    case ACT_TANH: /* tanh' = 1 - tanh² */
      for (size_t i = 0; i < n; i++) dy[i] *= 1.0f - y[i] * y[i];
      break;
    case ACT_SIGMOID: /* σ' = σ(1 - σ) */
      for (size_t i = 0; i < n; i++) dy[i] *= y[i] * (1.0f - y[i]);
      break;
    default:
      break;
  }
}

/* The GEMMs of a dense layer, shared by training and by the benchmark's roofline so both run exactly the same
 * calls. Forward: Y += X·Wᵀ (Y holds the broadcast bias). */
static void dense_forward_gemm(Model *m, const Layer *l, const float *in, int n) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, in, l->in, m->params + l->w_off,
              l->in, 1.0f, l->y, l->out);
}

/* Backward: dW (+)= dYᵀ·X, and dX = dY·W unless dx is NULL. */
static void dense_backward_gemms(Model *m, const Layer *l, const float *in, const float *dy, float *dx, int n,
                                 float beta) {
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, l->out, l->in, n, 1.0f, dy, l->out, in, l->in, beta,
              m->grads + l->w_off, l->in);
  if (dx)
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, l->out, 1.0f, dy, l->out, m->params + l->w_off,
                l->in, 0.0f, dx, l->in);
}

const float *model_forward(Model *m, const float *x, int n) {
  const float *in = x;
  for (int i = 0; i < m->n_layers; i++) {
    Layer *l = &m->layers[i];
    if (l->kind == LAYER_DENSE) {
      /* Y = b broadcast, then Y += X·Wᵀ: the bias costs one write pass and no extra read. */
      const float *b = m->params + l->b_off;
      for (int r = 0; r < n; r++) memcpy(l->y + (size_t)r * l->out, b, sizeof(float) * (size_t)l->out);
      dense_forward_gemm(m, l, in, n);
    } else {
      act_forward(l->act, l->slope, l->y, (size_t)n * (size_t)l->out);
    }
    in = l->y;
  }
  return in;
}

void model_backward(Model *m, const float *x, const float *dlogits, int n, int accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  const float *dy = dlogits; /* gradient w.r.t. the current layer's output */
  int cur = 0;
  for (int i = m->n_layers - 1; i >= 0; i--) {
    Layer *l = &m->layers[i];
    const float *input = i == 0 ? x : m->layers[i - 1].y;
    if (l->kind == LAYER_DENSE) {
      /* Nobody needs the gradient w.r.t. the input data: layer 0 computes no dX. */
      float *dx = i == 0 ? NULL : m->dbuf[cur];
      dense_backward_gemms(m, l, input, dy, dx, n, beta);
      float *db = m->grads + l->b_off;
      if (!accumulate) memset(db, 0, sizeof(float) * (size_t)l->out);
      for (int r = 0; r < n; r++) {
        const float *row = dy + (size_t)r * l->out;
        for (int j = 0; j < l->out; j++) db[j] += row[j];
      }
      dy = dx;
      cur ^= 1;
    } else {
      /* dy points into dbuf (the layer above an activation is always dense), so it is ours to overwrite. */
      act_backward(l->act, l->slope, l->y, (float *)dy, (size_t)n * (size_t)l->out);
    }
  }
}

void model_run_gemms(Model *m, const float *x, const float *dlogits, int n) {
  const float *in = x;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    dense_forward_gemm(m, l, in, n);
    in = l->y;
  }
  const float *dy = dlogits;
  int cur = 0;
  for (int i = m->n_layers - 1; i >= 0; i--) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    float *dx = i == 0 ? NULL : m->dbuf[cur];
    dense_backward_gemms(m, l, i == 0 ? x : m->layers[i - 1].y, dy, dx, n, 0.0f);
    dy = dx;
    cur ^= 1;
  }
}

double model_gemm_flops(const Model *m, int n) {
  double f = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    double one = 2.0 * n * (double)l->in * (double)l->out;
    f += one * (i == 0 ? 2 : 3); /* forward, dW, and dX except for the first layer */
  }
  return f;
}
