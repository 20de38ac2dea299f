/* model.c — dense, activation, batch-norm and dropout layers over flat buffers; forward and backward.
 *
 * Row-major throughout: a batch is X [n, in], a dense layer computes Y = X·Wᵀ + b with W [out, in] (PyTorch's
 * layout, so checkpoints read naturally), and backward computes dW = dYᵀ·X, db = Σ_rows dY, dX = dY·W. */
#include "mpitrain/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mpitrain/gemm.h"
#include "mpitrain/rng.h"
#include "mpitrain/util.h"

const char *const mt_act_names[ACT_COUNT + 1] = {"relu", "leaky_relu", "tanh", "sigmoid", NULL};
const char *const mt_bn_place_names[BN_COUNT + 1] = {"none", "before", "after", NULL};

const char *mt_act_name(ActKind a) { return mt_enum_name(mt_act_names, ACT_COUNT, a); }
int mt_act_from_name(const char *s) { return mt_enum_from_name(mt_act_names, s); }
const char *mt_bn_place_name(BnPlace b) { return mt_enum_name(mt_bn_place_names, BN_COUNT, b); }
int mt_bn_place_from_name(const char *s) { return mt_enum_from_name(mt_bn_place_names, s); }

/* ==== Building ==== */

static Layer *add_layer(Model *m, LayerKind kind, int block, int width, const char *name) {
  Layer *l = &m->layers[m->n_layers++];
  memset(l, 0, sizeof *l);
  l->kind = kind;
  l->block = block;
  l->in = l->out = width;
  snprintf(l->name, sizeof l->name, "%s%d", name, block);
  return l;
}

int mt_model_create(Model *m, const ModelSpec *spec, int max_batch, MtError *err) {
  memset(m, 0, sizeof *m);
  m->spec = *spec;
  if (spec->n_inputs < 1 || spec->n_classes < 2 || spec->n_hidden < 0 || spec->n_hidden > MODEL_MAX_HIDDEN ||
      max_batch < 1 || spec->bn < 0 || spec->bn >= BN_COUNT)
    return mt_fail(err, "invalid model: %d inputs, %d classes, %d hidden layers, batch %d", spec->n_inputs,
                   spec->n_classes, spec->n_hidden, max_batch);
  for (int k = 0; k < spec->n_hidden; k++)
    if (spec->hidden[k] < 1 || !(spec->dropout[k] >= 0 && spec->dropout[k] < 1))
      return mt_fail(err, "invalid model: hidden layer %d has width %d and dropout %g", k, spec->hidden[k],
                     (double)spec->dropout[k]);
  m->max_batch = max_batch;
  m->layers = mt_alloc(sizeof(Layer) * (size_t)(4 * spec->n_hidden + 1), "the layer list", err);
  if (m->layers == NULL) return -1;

  /* The layer list, with parameter and state offsets. */
  size_t off = 0, soff = 0;
  int in = spec->n_inputs;
  for (int k = 0; k <= spec->n_hidden; k++) {
    int out = k < spec->n_hidden ? spec->hidden[k] : spec->n_classes;
    Layer *d = add_layer(m, LAYER_DENSE, k, out, "dense");
    d->in = in;
    d->w_off = off;
    off += (size_t)out * (size_t)in;
    d->has_bias = !(k < spec->n_hidden && spec->bn == BN_BEFORE);
    d->b_off = off;
    if (d->has_bias) off += (size_t)out;
    if (out > m->max_width) m->max_width = out;
    in = out;
    if (k == spec->n_hidden) break;
    for (int part = 0; part < 2; part++) {
      int is_bn = (part == 0 && spec->bn == BN_BEFORE) || (part == 1 && spec->bn == BN_AFTER);
      if (is_bn) {
        Layer *b = add_layer(m, LAYER_BN, k, out, "bn");
        b->w_off = off; /* gamma */
        off += (size_t)out;
        b->b_off = off; /* beta */
        off += (size_t)out;
        b->s_off = soff;
        soff += 2 * (size_t)out;
      }
      if (part == 0) {
        Layer *a = add_layer(m, LAYER_ACT, k, out, mt_act_name(spec->act));
        a->act = spec->act;
        a->slope = spec->leaky_slope;
      }
    }
    if (spec->dropout[k] > 0) add_layer(m, LAYER_DROPOUT, k, out, "dropout")->p = spec->dropout[k];
  }
  m->n_params = off;
  m->n_state = soff;

  /* Storage: every layer but an activation has its own output (activations work in place: the derivatives
   * need only their output); BN also keeps x̂ and 1/σ, dropout its mask. */
  size_t floats = 0, rows = (size_t)max_batch;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_ACT) floats += rows * (size_t)l->out;
    if (l->kind == LAYER_BN || l->kind == LAYER_DROPOUT) floats += rows * (size_t)l->out;
    if (l->kind == LAYER_BN) floats += (size_t)l->out;
  }
  m->params = mt_alloc(sizeof(float) * (m->n_params ? m->n_params : 1), "the parameters", err);
  m->grads = mt_alloc(sizeof(float) * (m->n_params + MODEL_GRAD_TAIL), "the gradients", err);
  m->state = mt_alloc(sizeof(float) * (m->n_state ? m->n_state : 1), "the batch-norm statistics", err);
  m->act_mem = mt_alloc(sizeof(float) * floats, "the activations", err);
  m->dbuf[0] = mt_alloc(sizeof(float) * rows * (size_t)m->max_width, "backward buffers", err);
  m->dbuf[1] = mt_alloc(sizeof(float) * rows * (size_t)m->max_width, "backward buffers", err);
  m->red = mt_alloc(sizeof(double) * 2 * (size_t)m->max_width, "batch-norm scratch", err);
  if (!err->failed) mt_model_set_precision(m, PRECISION_FP32, NULL, 0, err);
  if (err->failed) {
    mt_model_free(m);
    return -1;
  }
  float *p = m->act_mem;
  for (int i = 0; i < m->n_layers; i++) {
    Layer *l = &m->layers[i];
    if (l->kind == LAYER_ACT) {
      l->y = m->layers[i - 1].y;
      continue;
    }
    l->y = p;
    p += rows * (size_t)l->out;
    if (l->kind == LAYER_BN || l->kind == LAYER_DROPOUT) {
      l->aux = p;
      p += rows * (size_t)l->out;
    }
    if (l->kind == LAYER_BN) {
      l->stat = p;
      p += (size_t)l->out;
      for (int j = 0; j < l->out; j++) {
        m->params[l->w_off + j] = 1.0f;                 /* gamma */
        m->state[l->s_off + (size_t)l->out + j] = 1.0f; /* running variance */
      }
    }
  }
  return 0;
}

double mt_model_plan_bytes(const ModelSpec *spec, int max_batch) {
  double params = 0, acts = 0, in = spec->n_inputs, widest = spec->n_classes;
  for (int k = 0; k <= spec->n_hidden && k <= MODEL_MAX_HIDDEN; k++) {
    double out = k < spec->n_hidden ? spec->hidden[k] : spec->n_classes;
    params += out * in + out + (k < spec->n_hidden && spec->bn != BN_NONE ? 2 * out : 0);
    acts += (double)max_batch * out * (k < spec->n_hidden ? 4 : 1); /* output, BN x̂ and y, dropout mask */
    if (out > widest) widest = out;
    in = out;
  }
  return 4.0 * (2 * params + acts + 2.0 * max_batch * widest);
}

int mt_model_dense_shapes(const Model *m, MtGemmDense *dense) {
  int n = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind == LAYER_DENSE) dense[n++] = (MtGemmDense){l->in, l->out, l->has_bias, l->w_off};
  }
  return n;
}

int mt_model_set_precision(Model *m, MtPrecision p, const int *rows, int n_rows, MtError *err) {
  MtGemmDense dense[MODEL_MAX_HIDDEN + 1];
  const int n = mt_model_dense_shapes(m, dense);
  MtGemm *g = NULL;
  if (mt_gemm_create(&g, p, dense, n, m->n_params, m->max_batch, rows, n_rows, err) != 0) return -1;
  mt_gemm_free(m->gemm);
  m->gemm = g;
  mt_gemm_stage_weights(g, m->params); /* the copy of the weights the model has now */
  return 0;
}

void mt_model_free(Model *m) {
  mt_gemm_free(m->gemm);
  mt_free(m->red);
  mt_free(m->dbuf[1]);
  mt_free(m->dbuf[0]);
  mt_free(m->act_mem);
  mt_free(m->state);
  mt_free(m->grads);
  mt_free(m->params);
  mt_free(m->layers);
  memset(m, 0, sizeof *m);
}

int mt_model_has_bn(const Model *m) { return m->spec.bn != BN_NONE && m->spec.n_hidden > 0; }

static void tensor(ModelTensor *t, const Layer *l, const char *what, size_t offset, int rows, int cols, int decay) {
  snprintf(t->name, sizeof t->name, "%s/%s", l->name, what);
  t->offset = offset;
  t->count = (size_t)rows * (size_t)(cols > 0 ? cols : 1);
  t->rank = cols > 0 ? 2 : 1;
  t->dims[0] = rows;
  t->dims[1] = cols;
  t->decay = decay;
}

int mt_model_tensors(const Model *m, ModelTensor *out, int max) {
  int n = 0;
  ModelTensor t;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    for (int part = 0; part < 2; part++) {
      if (l->kind == LAYER_DENSE && part == 1 && !l->has_bias)
        break;
      else if (l->kind == LAYER_DENSE)
        part == 0 ? tensor(&t, l, "W", l->w_off, l->out, l->in, 1) : tensor(&t, l, "b", l->b_off, l->out, 0, 0);
      else if (l->kind == LAYER_BN)
        part == 0 ? tensor(&t, l, "gamma", l->w_off, l->out, 0, 0) : tensor(&t, l, "beta", l->b_off, l->out, 0, 0);
      else
        break;
      if (n < max) out[n] = t;
      n++;
    }
  }
  return n;
}

int mt_model_state_tensors(const Model *m, ModelTensor *out, int max) {
  int n = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_BN) continue;
    if (n < max) tensor(&out[n], l, "running_mean", l->s_off, l->out, 0, 0);
    n++;
    if (n < max) tensor(&out[n], l, "running_var", l->s_off + (size_t)l->out, l->out, 0, 0);
    n++;
  }
  return n;
}

/* ==== Elementwise layers ==== */

/* Comparisons are written so that NaN passes through (NaN < 0 is false): a diverging run must show NaN in
 * the loss, not be silently clamped to 0 by ReLU. */
void mt_act_forward(ActKind a, float slope, float *y, size_t n) {
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

void mt_act_backward(ActKind a, float slope, const float *y, float *dy, size_t n) {
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

float mt_model_dropout_factor(uint64_t seed, int64_t step, int block, int64_t sample, int unit, float p) {
  uint32_t r[4];
  mt_rng_block(seed, RNG_STREAM_DROPOUT, (uint64_t)step * 32 + (uint64_t)block,
            ((uint64_t)sample << 18) | ((uint64_t)unit >> 2), r);
  return mt_rng_u01(r[unit & 3]) < p ? 0.0f : 1.0f / (1.0f - p);
}

/* Inverted dropout: y = x · mask, mask = 0 with probability p, else 1/(1-p), so inference needs no rescaling. The
 * mask of (sample, unit) comes from the counter-based generator, four units per draw. */
static void dropout_forward(const Model *m, Layer *l, const float *x, int n) {
  const ModelContext *c = &m->ctx;
  const size_t w = (size_t)l->out;
  if (!c->train) {
    memcpy(l->y, x, sizeof(float) * (size_t)n * w);
    return;
  }
  const float keep = 1.0f / (1.0f - l->p);
  const uint64_t a = (uint64_t)c->step * 32 + (uint64_t)l->block;
  for (int r = 0; r < n; r++) {
    float *mask = l->aux + (size_t)r * w;
    uint64_t sample = c->sample_ids ? (uint64_t)c->sample_ids[r] : (uint64_t)r;
    /* The row's random bits first, in its mask's place (whole blocks; the last partial one apart), then each unit's
     * mask from its 32 bits. */
    const size_t whole = w / 4;
    mt_rng_blocks(c->seed, RNG_STREAM_DROPOUT, a, sample << 18, whole, (uint32_t *)(void *)mask);
    uint32_t tail[4];
    if (w % 4) mt_rng_block(c->seed, RNG_STREAM_DROPOUT, a, (sample << 18) | whole, tail);
    for (size_t u = 0; u < 4 * whole; u++) {
      uint32_t bits;
      memcpy(&bits, mask + u, sizeof bits);
      mask[u] = mt_rng_u01(bits) < l->p ? 0.0f : keep;
    }
    for (size_t u = 4 * whole; u < w; u++) mask[u] = mt_rng_u01(tail[u - 4 * whole]) < l->p ? 0.0f : keep;
    const float *xr = x + (size_t)r * w;
    float *yr = l->y + (size_t)r * w;
    for (size_t u = 0; u < w; u++) yr[u] = xr[u] * mask[u];
  }
}

/* ==== Batch normalisation ==== */

/* s[j] = Σ a[r][j] and p[j] = Σ a[r][j]·b[r][j] over rows r0 <= r < r1 of [rows, w] arrays, in double, rows in
 * order: batch normalisation's sums (of x and x², or of dy and dy·x̂). */
static void bn_row_sums(const float *a, const float *b, int r0, int r1, int w, double *s, double *p) {
  memset(s, 0, sizeof(double) * (size_t)w);
  memset(p, 0, sizeof(double) * (size_t)w);
  for (int r = r0; r < r1; r++) {
    const float *ar = a + (size_t)r * w, *br = b + (size_t)r * w;
    for (int j = 0; j < w; j++) {
      s[j] += ar[j];
      p[j] += (double)ar[j] * br[j];
    }
  }
}

/* Training: statistics of the whole global batch — the rows of every replica, summed through ctx->reduce — so
 * that any number of ranks normalise with the same mean and variance (synchronised BN). Inference: the running
 * statistics. y = gamma·x̂ + beta, x̂ = (x - mean) / sqrt(var + eps). */
static void bn_forward(Model *m, Layer *l, const float *x, int n) {
  const ModelContext *c = &m->ctx;
  const int w = l->out;
  const float *gamma = m->params + l->w_off, *beta = m->params + l->b_off;
  float *rmean = m->state + l->s_off, *rvar = rmean + w;
  if (!c->train) {
    for (int j = 0; j < w; j++) l->stat[j] = 1.0f / sqrtf(rvar[j] + m->spec.bn_eps);
    for (int r = 0; r < n; r++) {
      const float *xr = x + (size_t)r * w;
      float *yr = l->y + (size_t)r * w;
      for (int j = 0; j < w; j++) yr[j] = gamma[j] * (xr[j] - rmean[j]) * l->stat[j] + beta[j];
    }
    return;
  }
  double *sum = m->red, *sumsq = m->red + w;
  if (c->group > 0) {
    /* One partial vector per group, added over all groups in group order (det.h). */
    int gi = 0;
    for (int g0 = 0; g0 < n; g0 += c->group, gi++) {
      double *ps = c->group_parts + (size_t)gi * 2 * (size_t)w;
      bn_row_sums(x, x, g0, n - g0 < c->group ? n : g0 + c->group, w, ps, ps + w);
    }
    c->reduce_groups(c->group_arg, c->group_parts, 2 * (size_t)w, m->red);
  } else {
    bn_row_sums(x, x, 0, n, w, sum, sumsq);
    if (c->reduce) c->reduce(c->reduce_arg, m->red, 2 * (size_t)w);
  }
  const double B = (double)c->batch_rows, mom = m->spec.bn_momentum;
  for (int j = 0; j < w; j++) {
    double mean = B > 0 ? sum[j] / B : 0, var = B > 0 ? sumsq[j] / B - mean * mean : 0;
    if (var < 0) var = 0; /* rounding in E[x²] - E[x]² */
    l->stat[j] = (float)(1.0 / sqrt(var + m->spec.bn_eps));
    sum[j] = mean; /* kept for the loop below */
    /* PyTorch's convention: the running variance is the unbiased estimate. */
    double unbiased = B > 1 ? var * B / (B - 1) : var;
    rmean[j] = (float)((1 - mom) * rmean[j] + mom * mean);
    rvar[j] = (float)((1 - mom) * rvar[j] + mom * unbiased);
  }
  for (int r = 0; r < n; r++) {
    const float *xr = x + (size_t)r * w;
    float *xh = l->aux + (size_t)r * w, *yr = l->y + (size_t)r * w;
    for (int j = 0; j < w; j++) {
      xh[j] = (float)(xr[j] - sum[j]) * l->stat[j];
      yr[j] = gamma[j] * xh[j] + beta[j];
    }
  }
}

/* dgamma = Σ dy·x̂, dbeta = Σ dy (this rank's rows: the gradient allreduce sums them over ranks), and
 * dx = gamma/σ · (dy - Σ_B dy / B - x̂ · Σ_B dy·x̂ / B) with the sums over the whole global batch (reduced here). */
static void bn_backward(Model *m, const Layer *l, const float *dy, float *dx, int n, int accumulate) {
  const ModelContext *c = &m->ctx;
  const int w = l->out;
  const float *gamma = m->params + l->w_off;
  float *dgamma = m->grads + l->w_off, *dbeta = m->grads + l->b_off;
  double *sdy = m->red, *sdyx = m->red + w;
  if (c->group > 0) {
    /* Each group's dgamma and dbeta go to the fixed-point sum; its partial sums to the group-ordered one. */
    int gi = 0;
    for (int g0 = 0; g0 < n; g0 += c->group, gi++) {
      double *py = c->group_parts + (size_t)gi * 2 * (size_t)w, *pyx = py + w;
      bn_row_sums(dy, l->aux, g0, n - g0 < c->group ? n : g0 + c->group, w, py, pyx);
      for (int j = 0; j < w; j++) {
        dgamma[j] = (float)pyx[j];
        dbeta[j] = (float)py[j];
      }
      c->group_grads(c->group_arg, m->grads, l->w_off, 2 * (size_t)w); /* gamma, then beta */
    }
    c->reduce_groups(c->group_arg, c->group_parts, 2 * (size_t)w, m->red);
  } else {
    bn_row_sums(dy, l->aux, 0, n, w, sdy, sdyx);
    for (int j = 0; j < w; j++) {
      dgamma[j] = (accumulate ? dgamma[j] : 0.0f) + (float)sdyx[j];
      dbeta[j] = (accumulate ? dbeta[j] : 0.0f) + (float)sdy[j];
    }
    if (c->reduce) c->reduce(c->reduce_arg, m->red, 2 * (size_t)w);
  }
  const double B = (double)c->batch_rows;
  for (int j = 0; j < w; j++) {
    sdy[j] = B > 0 ? sdy[j] / B : 0;
    sdyx[j] = B > 0 ? sdyx[j] / B : 0;
  }
  for (int r = 0; r < n; r++) {
    const float *dr = dy + (size_t)r * w, *xh = l->aux + (size_t)r * w;
    float *out = dx + (size_t)r * w;
    for (int j = 0; j < w; j++)
      out[j] = gamma[j] * l->stat[j] * (float)(dr[j] - sdy[j] - xh[j] * sdyx[j]);
  }
}

/* ==== Dense layers ==== */

/* The GEMMs of a dense layer (gemm.h), shared by training and by the benchmark's roofline so both run exactly the
 * same calls. The dense layer of block k is the GEMM handle's layer k. Forward: Y = X·Wᵀ (+ b). */
static void dense_forward_gemm(Model *m, const Layer *l, const float *in, int n, int G /* rows per GEMM */) {
  for (int g0 = 0; g0 < n; g0 += G) {
    const int gn = n - g0 < G ? n - g0 : G;
    mt_gemm_forward(m->gemm, l->block, in ? in + (size_t)g0 * l->in : NULL, m->params + l->w_off,
                    l->has_bias ? m->params + l->b_off : NULL, l->y + (size_t)g0 * l->out, g0, gn);
  }
}

/* Backward over rows [r0, r0 + n): dW (+)= dYᵀ·X, and dX = dY·W unless dx is NULL (in, dy, dx point at row r0). */
static void dense_backward_gemms(Model *m, const Layer *l, const float *in, const float *dy, float *dx, int r0, int n,
                                 float beta) {
  mt_gemm_backward(m->gemm, l->block, in, dy, m->params + l->w_off, m->grads + l->w_off, beta, dx, r0, n);
}

/* bf16, an activation right before a dense layer: the activation's forward and the next GEMM's bf16 input in one
 * pass, row by row (a row is in L1 for the second loop), with the same float operations as mt_act_forward over the
 * whole buffer. Returns 1 when it wrote the bf16 input (the dense layer's GEMM is then handed NULL), 0 when this is
 * not such a place (fp32, or no dense layer next) and nothing was done. */
static int act_forward_staged(Model *m, int i, int n) {
  const Layer *l = &m->layers[i];
  uint16_t *xb = i + 1 < m->n_layers && m->layers[i + 1].kind == LAYER_DENSE
                     ? mt_gemm_input_bf16(m->gemm, m->layers[i + 1].block, 0)
                     : NULL;
  if (xb == NULL) return 0;
  const size_t w = (size_t)l->out;
  for (int r = 0; r < n; r++) {
    mt_act_forward(l->act, l->slope, l->y + (size_t)r * w, w);
    mt_bf16_convert(l->y + (size_t)r * w, xb + (size_t)r * w, w);
  }
  return 1;
}

/* ==== Passes ==== */

const float *mt_model_forward_ctx(Model *m, const float *x, int n, const ModelContext *ctx) {
  m->ctx = *ctx;
  if (m->ctx.batch_rows <= 0) m->ctx.batch_rows = n;
  /* bf16: the weights' bf16 copy is current already (gemm.h: the optimiser writes it as it updates the master
   * weights, whatever else changes them refreshes it): no conversion here. */
  const float *in = x;
  int staged = 0; /* the activation before wrote this dense layer's bf16 input */
  for (int i = 0; i < m->n_layers; i++) {
    Layer *l = &m->layers[i];
    switch (l->kind) {
      case LAYER_DENSE: /* group mode: fixed shapes */
        dense_forward_gemm(m, l, staged ? NULL : in, n, m->ctx.group > 0 ? m->ctx.group : n);
        staged = 0;
        break;
      case LAYER_ACT:
        staged = act_forward_staged(m, i, n);
        if (!staged) mt_act_forward(l->act, l->slope, l->y, (size_t)n * (size_t)l->out);
        break;
      case LAYER_BN: bn_forward(m, l, in, n); break;
      case LAYER_DROPOUT: dropout_forward(m, l, in, n); break;
    }
    in = l->y;
  }
  return in;
}

const float *mt_model_forward(Model *m, const float *x, int n) {
  const ModelContext inference = {.train = 0, .batch_rows = n};
  return mt_model_forward_ctx(m, x, n, &inference);
}

/* bf16: rows [g0, g0 + gn) of a dense layer's output gradient dy, in one pass, row by row (in L1 for the later loops):
 * the derivative of the activation act above it if its backward was left to this pass (in place, as
 * mt_act_backward), then the GEMMs' bf16 copy and the bias gradient (mt_bf16_convert_sum: the same additions, in
 * the same order, as the fp32 loop of dense_backward). */
static void dense_stage_dy(Model *m, const Layer *l, const Layer *act, float *dy, float *db, int g0, int gn) {
  const size_t w = (size_t)l->out;
  uint16_t *dyb = mt_gemm_dy_bf16(m->gemm, l->block, g0);
  for (int r = 0; r < gn; r++) {
    float *row = dy + ((size_t)g0 + (size_t)r) * w;
    if (act) mt_act_backward(act->act, act->slope, act->y + ((size_t)g0 + (size_t)r) * w, row, w);
    if (l->has_bias) mt_bf16_convert_sum(row, dyb + (size_t)r * w, db, 1, l->out);
    else mt_bf16_convert(row, dyb + (size_t)r * w, w);
  }
}

int mt_model_dw_block_rows(const Model *m, int out, int in, size_t floats) {
  if (floats == 0 || in < 1 || mt_gemm_precision(m->gemm) == PRECISION_BF16) return out;
  const size_t blocks = ((size_t)out * (size_t)in + floats - 1) / floats;
  const size_t rows = ((size_t)out + blocks - 1) / blocks, rows16 = (rows + 15) / 16 * 16;
  return rows16 < (size_t)out ? (int)rows16 : out;
}

/* fp32, ModelContext.dw_block: dW of dense layer l over n rows in blocks of `rows` rows of W, the last block first,
 * each handed to grad_ready when it is complete (everything after it, the bias gradient and the layers above, is
 * already), then dX. */
static void dense_backward_blocks(Model *m, const Layer *l, const float *input, const float *dy, float *dx, int n,
                                  float beta, int rows) {
  float *dw = m->grads + l->w_off;
  for (int j0 = (l->out - 1) / rows * rows; j0 >= 0; j0 -= rows) {
    mt_gemm_backward_rows(m->gemm, l->block, input, dy, dw, beta, j0, j0 + rows < l->out ? j0 + rows : l->out, n);
    m->ctx.grad_ready(m->ctx.grad_ready_arg, l->w_off + (size_t)j0 * (size_t)l->in);
  }
  if (dx) mt_gemm_backward(m->gemm, l->block, input, dy, m->params + l->w_off, NULL, beta, dx, 0, n);
}

/* The backward pass of dense layer l over n rows; act: the activation right above it whose backward is still to do
 * (bf16 only: dense_stage_dy does it), else NULL. dy is then ours to overwrite (it is in dbuf). */
static void dense_backward(Model *m, const Layer *l, const Layer *act, const float *input, const float *dy, float *dx,
                           int n, int accumulate) {
  const float beta = accumulate ? 1.0f : 0.0f;
  const int bf16 = mt_gemm_dy_bf16(m->gemm, l->block, 0) != NULL;
  float *db = m->grads + l->b_off;
  /* Group mode: each group's dW and db on their own, handed over before the next group overwrites them. */
  const int G = m->ctx.group > 0 ? m->ctx.group : (n > 0 ? n : 1);
  const int rows = m->ctx.grad_ready && m->ctx.group == 0 ? mt_model_dw_block_rows(m, l->out, l->in, m->ctx.dw_block)
                                                          : l->out;
  for (int g0 = 0; g0 < n || (g0 == 0 && m->ctx.group == 0); g0 += G) {
    const int gn = n - g0 < G ? n - g0 : G;
    const size_t ro = (size_t)g0;
    if (l->has_bias && (!accumulate || m->ctx.group > 0)) memset(db, 0, sizeof(float) * (size_t)l->out);
    if (bf16) dense_stage_dy(m, l, act, (float *)dy, db, g0, gn);
    /* fp32: the bias gradient before the GEMMs (which do not touch it), final before the first block. */
    for (int r = 0; !bf16 && l->has_bias && r < gn; r++) {
      const float *row = dy + (ro + (size_t)r) * l->out;
      for (int j = 0; j < l->out; j++) db[j] += row[j];
    }
    if (rows < l->out) /* never in group mode or bf16: g0 is 0, gn is n */
      dense_backward_blocks(m, l, input, dy, dx, n, beta, rows);
    else
      dense_backward_gemms(m, l, input + ro * l->in, bf16 ? NULL : dy + ro * l->out, dx ? dx + ro * l->in : NULL, g0,
                           gn, m->ctx.group > 0 ? 0.0f : beta);
    if (m->ctx.group > 0)
      m->ctx.group_grads(m->ctx.group_arg, m->grads, l->w_off,
                         (size_t)l->out * (size_t)l->in + (l->has_bias ? (size_t)l->out : 0));
  }
}

void mt_model_backward(Model *m, const float *x, const float *dlogits, int n, int accumulate) {
  const float *dy = dlogits; /* gradient w.r.t. the current layer's output */
  const Layer *act = NULL;   /* bf16: an activation whose backward the dense layer below does in its own pass */
  const int bf16 = mt_gemm_precision(m->gemm) == PRECISION_BF16;
  int cur = 0;
  for (int i = m->n_layers - 1; i >= 0; i--) {
    Layer *l = &m->layers[i];
    const float *input = i == 0 ? x : m->layers[i - 1].y;
    const size_t count = (size_t)n * (size_t)l->out;
    switch (l->kind) {
      case LAYER_DENSE: {
        /* Nobody needs the gradient w.r.t. the input data: layer 0 computes no dX. */
        float *dx = i == 0 ? NULL : m->dbuf[cur];
        dense_backward(m, l, act, input, dy, dx, n, accumulate);
        act = NULL;
        dy = dx;
        cur ^= 1;
        if (m->ctx.grad_ready) m->ctx.grad_ready(m->ctx.grad_ready_arg, l->w_off);
        break;
      }
      case LAYER_ACT:
        /* dy points into dbuf (the layer above an activation is never the loss), so it is ours to overwrite. */
        if (bf16 && i > 0 && m->layers[i - 1].kind == LAYER_DENSE)
          act = l;
        else
          mt_act_backward(l->act, l->slope, l->y, (float *)dy, count);
        break;
      case LAYER_BN: {
        float *dx = m->dbuf[cur];
        bn_backward(m, l, dy, dx, n, accumulate);
        dy = dx;
        cur ^= 1;
        if (m->ctx.grad_ready) m->ctx.grad_ready(m->ctx.grad_ready_arg, l->w_off);
        break;
      }
      case LAYER_DROPOUT:
        if (m->ctx.train)
          for (size_t e = 0; e < count; e++) ((float *)dy)[e] *= l->aux[e];
        break;
    }
  }
}

void mt_model_run_gemms(Model *m, const float *x, const float *dlogits, int n) {
  const float *in = x;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    dense_forward_gemm(m, l, in, n, n);
    in = l->y;
  }
  const float *dy = dlogits;
  int cur = 0;
  for (int i = m->n_layers - 1; i >= 0; i--) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    /* The dense layer's input as the GEMM sees it: the previous dense layer's output in this GEMM-only pass. */
    const float *input = x;
    for (int j = i - 1; j >= 0; j--)
      if (m->layers[j].kind == LAYER_DENSE) {
        input = m->layers[j].y;
        break;
      }
    float *dx = i == 0 ? NULL : m->dbuf[cur];
    dense_backward_gemms(m, l, input, dy, dx, 0, n, 0.0f);
    dy = dx;
    cur ^= 1;
  }
}

double mt_model_gemm_flops(const Model *m, int n) {
  double f = 0;
  for (int i = 0; i < m->n_layers; i++) {
    const Layer *l = &m->layers[i];
    if (l->kind != LAYER_DENSE) continue;
    double one = 2.0 * n * (double)l->in * (double)l->out;
    f += one * (i == 0 ? 2 : 3); /* forward, dW, and dX except for the first layer */
  }
  return f;
}
