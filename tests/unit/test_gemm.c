/* test_gemm.c — the GEMM interface (gemm.h): bf16 rounding (ties to even, NaN, Inf, overflow), the bf16 products of a
 * dense layer against a double-precision reference within the error bound of bf16 inputs, dW accumulation, NaN
 * propagation, a late row count, and a bf16 model against the fp32 model and against finite differences.
 * Without bf16 on this CPU (or under ONEDNN_MAX_CPU_ISA=AVX2) only the rounding tests run, and the test exits 77
 * (skipped). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mpitrain/gemm.h"
#include "mpitrain/init.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"

/* bf16 keeps 8 significant bits: rounding to nearest is off by at most u = 2^-8 relative. */
static const double U = 0x1p-8;

static uint32_t bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}
static float from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

static void test_rounding(void **state) {
  (void)state;
  assert_int_equal(mt_bf16_from_float(1.0f), 0x3f80);
  assert_int_equal(mt_bf16_from_float(-2.0f), 0xc000);
  assert_int_equal(mt_bf16_from_float(-0.0f), 0x8000);
  /* 1 + 2^-8 lies halfway between 1 (even) and 1 + 2^-7 (odd): ties to even go down ... */
  assert_int_equal(mt_bf16_from_float(1.0f + 0x1p-8f), 0x3f80);
  /* ... 1 + 3·2^-8 halfway between 1 + 2^-7 (odd) and 1 + 2^-6 (even): up. */
  assert_int_equal(mt_bf16_from_float(1.0f + 3 * 0x1p-8f), 0x3f82);
  /* Just above and below the half. */
  assert_int_equal(mt_bf16_from_float(from_bits(0x3f808001)), 0x3f81);
  assert_int_equal(mt_bf16_from_float(from_bits(0x3f807fff)), 0x3f80);
  /* Overflow of the largest float rounds to Inf; Inf stays Inf. */
  assert_int_equal(mt_bf16_from_float(from_bits(0x7f7fffff)), 0x7f80);
  assert_int_equal(mt_bf16_from_float(INFINITY), 0x7f80);
  assert_int_equal(mt_bf16_from_float(-INFINITY), 0xff80);
  /* NaN stays NaN, even one whose payload is only in the bits dropped (the carry would make it Inf). */
  const uint32_t nans[] = {0x7fc00000, 0x7f800001, 0x7fffffff, 0xff800001, 0x7f80ffff};
  for (size_t i = 0; i < sizeof nans / sizeof nans[0]; i++)
    assert_true(isnan(mt_bf16_to_float(mt_bf16_from_float(from_bits(nans[i])))));
  assert_true(mt_bf16_to_float(0x3f81) == 1.0f + 0x1p-7f);
  /* The array conversion is the scalar one, element by element (odd length: the vector loop's tail too). */
  float v[37];
  uint16_t out[37];
  for (int i = 0; i < 37; i++) v[i] = from_bits(0x3f800000u + (uint32_t)i * 0x4321u) * (i % 2 ? -1.0f : 1.0f);
  v[5] = NAN;
  mt_bf16_convert(v, out, 37);
  for (int i = 0; i < 37; i++) assert_int_equal(out[i], mt_bf16_from_float(v[i]));
  /* Within u of the value, for normal numbers. */
  for (int i = 0; i < 37; i++)
    if (i != 5) assert_true(fabs(mt_bf16_to_float(out[i]) - v[i]) <= U * fabs(v[i]));
  (void)bits;
}

/* The fused conversion of an output gradient: the same bits as mt_bf16_convert, and the bias gradient's sum the same
 * float additions as the plain loop over rows (so within Higham's bound of the double sum), added onto sum. */
static void test_convert_sum(void **state) {
  (void)state;
  enum { R = 19, W = 37 };
  float src[R * W], sum[W], loop[W];
  uint16_t dst[R * W];
  for (int i = 0; i < R * W; i++) src[i] = from_bits(0x3f800000u + (uint32_t)i * 0x1234u) * (i % 3 ? -0.01f : 0.02f);
  for (int j = 0; j < W; j++) sum[j] = loop[j] = 0.5f * (float)j;
  mt_bf16_convert_sum(src, dst, sum, R, W);
  for (int i = 0; i < R * W; i++) assert_int_equal(dst[i], mt_bf16_from_float(src[i]));
  for (int r = 0; r < R; r++)
    for (int j = 0; j < W; j++) loop[j] += src[r * W + j];
  for (int j = 0; j < W; j++) {
    double ref = 0.5 * j, abs_ref = 0.5 * j;
    for (int r = 0; r < R; r++) ref += src[r * W + j], abs_ref += fabs(src[r * W + j]);
    assert_true(bits(sum[j]) == bits(loop[j]));
    if (fabs(sum[j] - ref) > (R + 1) * 0x1p-24 * abs_ref) fail_msg("sum[%d] = %g, reference %g", j, sum[j], ref);
  }
}

/* The bf16 gradient reduction's loops: widening is exact (the bits shifted up), and the sum of rows is the plain
 * fp32 loop in row order (the same bits), within Higham's bound of the double sum, with a stride between rows
 * longer than a row and a length no vector width divides. */
static void test_widen_sum_rows(void **state) {
  (void)state;
  enum { R = 5, W = 37, STRIDE = 41 };
  uint16_t src[R * STRIDE];
  float w[R * STRIDE], sum[W];
  for (int i = 0; i < R * STRIDE; i++)
    src[i] = mt_bf16_from_float(from_bits(0x3f800000u + (uint32_t)i * 0x2345u) * (i % 3 ? -0.01f : 0.02f));
  src[3] = 0x7f80; /* +Inf and a NaN widen to themselves */
  src[4] = 0xffc1;
  mt_bf16_widen(src, w, R * STRIDE);
  for (int i = 0; i < R * STRIDE; i++) assert_int_equal(bits(w[i]), (uint32_t)src[i] << 16);
  src[3] = src[4] = 0x3f80;
  mt_bf16_sum_rows(src, R, STRIDE, sum, W);
  for (int j = 0; j < W; j++) {
    float loop = mt_bf16_to_float(src[j]);
    double ref = 0, abs_ref = 0;
    for (int r = 1; r < R; r++) loop += mt_bf16_to_float(src[r * STRIDE + j]);
    for (int r = 0; r < R; r++) ref += mt_bf16_to_float(src[r * STRIDE + j]), abs_ref += fabs(mt_bf16_to_float(src[r * STRIDE + j]));
    assert_true(bits(sum[j]) == bits(loop));
    if (fabs(sum[j] - ref) > R * 0x1p-24 * abs_ref) fail_msg("sum[%d] = %g, reference %g", j, sum[j], ref);
  }
  mt_bf16_sum_rows(src, 1, STRIDE, sum, W); /* one row: just widened */
  for (int j = 0; j < W; j++) assert_int_equal(bits(sum[j]), (uint32_t)src[j] << 16);
}

/* Error feedback's conversion: the bits of mt_bf16_convert of src + ef, the residual exactly what that rounding
 * dropped (computed in double), and, carried over many calls, the sum of what was sent follows the sum of src within
 * one rounding; a value that is not finite (Inf, NaN, one that rounds to Inf) leaves a residual of 0. */
static void test_convert_ef(void **state) {
  (void)state;
  enum { W = 37, CALLS = 50 };
  float src[W], ef[W], v[W];
  uint16_t dst[W], ref[W];
  double sent[W], given[W];
  for (int j = 0; j < W; j++) ef[j] = 0, sent[j] = given[j] = 0;
  for (int c = 0; c < CALLS; c++) {
    for (int j = 0; j < W; j++) {
      src[j] = from_bits(0x3f800000u + (uint32_t)(j * 131 + c * 977) * 0x1234u) * (j % 3 ? -0.01f : 0.02f);
      v[j] = src[j] + ef[j];
    }
    mt_bf16_convert(v, ref, W);
    mt_bf16_convert_ef(src, dst, ef, W);
    for (int j = 0; j < W; j++) {
      assert_int_equal(dst[j], ref[j]);
      assert_true((double)ef[j] == (double)v[j] - (double)mt_bf16_to_float(dst[j]));
      sent[j] += mt_bf16_to_float(dst[j]);
      given[j] += src[j];
    }
  }
  for (int j = 0; j < W; j++) /* what is still owed is the last residual: at most half a bf16 step of the value */
    if (fabs(given[j] - sent[j]) > 0x1p-8 * fabs(mt_bf16_to_float(dst[j])) + 1e-6 * fabs(given[j]))
      fail_msg("value %d: sent %g of %g", j, sent[j], given[j]);
  src[0] = INFINITY, src[1] = NAN, src[2] = from_bits(0x7f7fffff), src[3] = -INFINITY;
  ef[0] = ef[1] = ef[2] = ef[3] = 0x1p-20f;
  mt_bf16_convert_ef(src, dst, ef, 4);
  for (int j = 0; j < 4; j++) assert_true(ef[j] == 0.0f);
  assert_int_equal(dst[0], 0x7f80);
  assert_int_equal(dst[2], 0x7f80); /* FLT_MAX rounds to Inf */
  assert_true(isnan(mt_bf16_to_float(dst[1])));
}

/* ---- One dense layer ---- */

enum { IN = 96, OUT = 40, ROWS = 33 };

static float val(int i, double f) { return (float)(sin(f * i + 0.3) * (1 + (i % 3))); }

/* Σ a[k]·b[k] in double and Σ |a[k]·b[k]|, over k < K with strides. */
static void dot(const float *a, int sa, const float *b, int sb, int K, double *s, double *abs_s) {
  *s = *abs_s = 0;
  for (int k = 0; k < K; k++) {
    double p = (double)a[(size_t)k * sa] * b[(size_t)k * sb];
    *s += p;
    *abs_s += fabs(p);
  }
}

/* The error bound of a product of bf16-rounded inputs accumulated in fp32 over K terms: each input off by u
 * (product: 2u + u²), then the fp32 sum (K·2^-24 relative, Higham's bound), relative to Σ|a·b|. */
static double bound(int K, double abs_s) { return (2 * U + U * U + K * 0x1p-24) * abs_s * 1.0001 + 1e-30; }

static MtGemm *layer_gemm(int has_bias, int n_rows_listed) {
  MtGemmDense d = {IN, OUT, has_bias, 0};
  const int rows[1] = {ROWS};
  MtGemm *g = NULL;
  MtError err = {0};
  assert_int_equal(mt_gemm_create(&g, PRECISION_BF16, &d, 1, (size_t)IN * OUT, 64, rows, n_rows_listed, &err), 0);
  return g;
}

static void test_dense_bf16(void **state) {
  (void)state;
  float *x = malloc(sizeof(float) * ROWS * IN), *w = malloc(sizeof(float) * OUT * IN), b[OUT];
  float *y = malloc(sizeof(float) * ROWS * OUT), *dy = malloc(sizeof(float) * ROWS * OUT);
  float *dw = malloc(sizeof(float) * OUT * IN), *dx = malloc(sizeof(float) * ROWS * IN);
  for (int i = 0; i < ROWS * IN; i++) x[i] = val(i, 0.37);
  for (int i = 0; i < OUT * IN; i++) w[i] = val(i, 0.71) * 0.1f;
  for (int i = 0; i < OUT; i++) b[i] = val(i, 1.3);
  for (int i = 0; i < ROWS * OUT; i++) dy[i] = val(i, 0.53) * 0.01f;
  MtGemm *g = layer_gemm(1, 1);
  mt_gemm_stage_weights(g, w);
  mt_gemm_forward(g, 0, x, w, b, y, 0, ROWS);
  mt_gemm_backward(g, 0, x, dy, w, dw, 0.0f, dx, 0, ROWS);
  double s, a, worst = 0;
  for (int r = 0; r < ROWS; r++)
    for (int o = 0; o < OUT; o++) {
      dot(x + (size_t)r * IN, 1, w + (size_t)o * IN, 1, IN, &s, &a);
      double e = fabs(y[r * OUT + o] - (s + b[o]));
      if (e > bound(IN, a) + 0x1p-24 * fabs(s + b[o])) fail_msg("Y[%d][%d] = %g, reference %g", r, o, y[r * OUT + o], s + b[o]);
      worst = fmax(worst, e / a);
    }
  /* It really ran in bf16: an fp32 GEMM would be ~100x closer. */
  assert_true(worst > 0x1p-16);
  for (int o = 0; o < OUT; o++)
    for (int k = 0; k < IN; k++) {
      dot(dy + o, OUT, x + k, IN, ROWS, &s, &a);
      if (fabs(dw[o * IN + k] - s) > bound(ROWS, a)) fail_msg("dW[%d][%d] = %g, reference %g", o, k, dw[o * IN + k], s);
    }
  for (int r = 0; r < ROWS; r++)
    for (int k = 0; k < IN; k++) {
      dot(dy + (size_t)r * OUT, 1, w + k, IN, OUT, &s, &a);
      if (fabs(dx[r * IN + k] - s) > bound(OUT, a)) fail_msg("dX[%d][%d] = %g, reference %g", r, k, dx[r * IN + k], s);
    }
  assert_int_equal(mt_gemm_late_creations(g), 0);
  /* dW accumulates with beta = 1: rows [0, 20) then [20, ROWS) add up to the whole (within the bound of each). */
  float *dw2 = malloc(sizeof(float) * OUT * IN);
  mt_gemm_forward(g, 0, x, w, b, y, 0, 20); /* row counts nobody listed: created late, and counted */
  mt_gemm_forward(g, 0, x + 20 * IN, w, b, y + 20 * OUT, 20, ROWS - 20);
  mt_gemm_backward(g, 0, x, dy, w, dw2, 0.0f, NULL, 0, 20);
  mt_gemm_backward(g, 0, x + 20 * IN, dy + 20 * OUT, w, dw2, 1.0f, NULL, 20, ROWS - 20);
  assert_true(mt_gemm_late_creations(g) > 0);
  for (int o = 0; o < OUT; o++)
    for (int k = 0; k < IN; k++) {
      dot(dy + o, OUT, x + k, IN, ROWS, &s, &a);
      if (fabs(dw2[o * IN + k] - s) > bound(ROWS, a) + 0x1p-23 * a)
        fail_msg("accumulated dW[%d][%d] = %g, reference %g", o, k, dw2[o * IN + k], s);
    }
  /* NaN in one input row: that row's outputs are NaN, the others not; NaN in dY reaches dW and dX. */
  x[3 * IN + 7] = NAN;
  dy[5 * OUT + 2] = NAN;
  mt_gemm_forward(g, 0, x, w, b, y, 0, ROWS);
  mt_gemm_backward(g, 0, x, dy, w, dw, 0.0f, dx, 0, ROWS);
  for (int o = 0; o < OUT; o++) assert_true(isnan(y[3 * OUT + o]) && !isnan(y[4 * OUT + o]));
  for (int k = 0; k < IN; k++) assert_true(isnan(dw[2 * IN + k]) && isnan(dx[5 * IN + k]) && !isnan(dx[6 * IN + k]));
  mt_gemm_free(g);
  free(x), free(w), free(y), free(dy), free(dw), free(dw2), free(dx);
}

/* ---- A small model ---- */

enum { N = 24, D = 40, H1 = 32, H2 = 20, C = 6 };

static const ModelSpec TANH = {.n_inputs = D, .n_classes = C, .n_hidden = 2, .hidden = {H1, H2}, .act = ACT_TANH};

static void make_spec(Model *m, MtPrecision p, const ModelSpec *spec) {
  MtError err = {0};
  assert_int_equal(mt_model_create(m, spec, N, &err), 0);
  assert_int_equal(mt_model_set_precision(m, p, NULL, 0, &err), 0);
  mt_init_params(m, INIT_XAVIER, 7);
  for (size_t i = 0; i < m->n_params; i++)
    if (m->params[i] == 0) m->params[i] = 0.05f * (float)sin((double)i); /* biases */
}
static void make(Model *m, MtPrecision p) { make_spec(m, p, &TANH); }

/* The gradient of the mean cross-entropy at (x, y); returns the loss; logits copied to out. */
static double grad(Model *m, const float *x, const int32_t *y, float *logits_out) {
  const ModelContext ctx = {.train = 1, .batch_rows = N};
  const float *logits = mt_model_forward_ctx(m, x, N, &ctx);
  memcpy(logits_out, logits, sizeof(float) * N * C);
  float dl[N * C];
  LossSums s = {0, 0};
  mt_loss_softmax_xent(logits, y, N, C, 1.0f / N, dl, &s);
  mt_model_backward(m, x, dl, N, 0);
  return s.loss / N;
}

static double rel_norm(const float *a, const float *ref, size_t n) {
  double d = 0, r = 0;
  for (size_t i = 0; i < n; i++) {
    d += ((double)a[i] - ref[i]) * ((double)a[i] - ref[i]);
    r += (double)ref[i] * ref[i];
  }
  return sqrt(d / r);
}

static void data(float *x, int32_t *y) {
  for (int i = 0; i < N * D; i++) x[i] = val(i, 0.77);
  for (int r = 0; r < N; r++) y[r] = (r * 5) % C;
}

/* bf16 against fp32: the same model and batch; each of the 3 dense layers adds at most ~2u (normwise) to the logits,
 * backward twice that: ‖Δ‖/‖ref‖ <= 2·L·2u for the logits and 4·L·2u for the gradients. */
static void model_vs_fp32(const ModelSpec *spec) {
  Model f, b;
  make_spec(&f, PRECISION_FP32, spec);
  make_spec(&b, PRECISION_BF16, spec);
  float x[N * D], lf[N * C], lb[N * C];
  int32_t y[N];
  data(x, y);
  grad(&f, x, y, lf);
  grad(&b, x, y, lb);
  const double L = 3;
  double el = rel_norm(lb, lf, N * C), eg = rel_norm(b.grads, f.grads, f.n_params);
  if (el > 2 * L * 2 * U) fail_msg("logits: relative error %g", el);
  if (eg > 4 * L * 2 * U) fail_msg("gradients: relative error %g", eg);
  assert_true(el > 0 && eg > 0); /* the bf16 model did not run in fp32 */
  mt_model_free(&f);
  mt_model_free(&b);
}

/* tanh; and ReLU with batch norm before it (dense layers without bias, the fused forward after BN) or after it with
 * dropout (the activation's backward fused into the dense layer's pass, its forward not: dropout is next). */
static void test_model_vs_fp32(void **state) {
  (void)state;
  model_vs_fp32(&TANH);
  ModelSpec bn = TANH;
  bn.act = ACT_RELU;
  bn.bn = BN_BEFORE;
  bn.bn_momentum = 0.1f;
  bn.bn_eps = 1e-5f;
  model_vs_fp32(&bn);
  bn.bn = BN_AFTER;
  bn.dropout[0] = bn.dropout[1] = 0.25f;
  model_vs_fp32(&bn);
}

/* The bf16 model's gradient against central differences of the fp32 model's loss (in double, h = 1e-3: the bf16
 * loss itself is a staircase in the weights), relaxed to a few u of the largest gradient. */
static void test_gradcheck_bf16(void **state) {
  (void)state;
  Model f, b;
  make(&f, PRECISION_FP32);
  make(&b, PRECISION_BF16);
  float x[N * D], lg[N * C];
  int32_t y[N];
  data(x, y);
  grad(&b, x, y, lg);
  double gmax = 0;
  for (size_t i = 0; i < b.n_params; i++) gmax = fmax(gmax, fabs(b.grads[i]));
  int checked = 0;
  for (size_t i = 0; i < f.n_params; i += 7, checked++) {
    const float keep = f.params[i];
    const float h = 1e-3f;
    f.params[i] = keep + h;
    double lp = grad(&f, x, y, lg);
    f.params[i] = keep - h;
    double lm = grad(&f, x, y, lg);
    f.params[i] = keep;
    double fd = (lp - lm) / (2.0 * h);
    if (fabs(b.grads[i] - fd) > 8 * U * gmax + 1e-3 * fabs(fd))
      fail_msg("parameter %zu: bf16 gradient %g, finite difference %g (largest gradient %g)", i, b.grads[i], fd, gmax);
  }
  assert_true(checked > 100);
  mt_model_free(&f);
  mt_model_free(&b);
}

/* The model's bf16 step, whose activations write the next GEMM's bf16 input in their own pass and whose output
 * gradients are converted in the pass that applies the activation's derivative and sums the bias gradient, against
 * the unfused composition of the same operations through the GEMM interface (each product converting its own
 * operand, the activation and Σ dY as passes of their own, Σ dY in double): the same logits and dW bits, db within
 * fp32 rounding of Σ dY, and only the input data converted by a product (the other 5 operands were staged). */
static void test_fused_step(void **state) {
  (void)state;
  ModelSpec spec = {.n_inputs = D, .n_classes = C, .n_hidden = 2, .hidden = {H1, H2}, .act = ACT_RELU};
  Model m;
  MtError err = {0};
  assert_int_equal(mt_model_create(&m, &spec, N, &err), 0);
  assert_int_equal(mt_model_set_precision(&m, PRECISION_BF16, NULL, 0, &err), 0);
  mt_init_params(&m, INIT_HE, 3);
  for (size_t i = 0; i < m.n_params; i++)
    if (m.params[i] == 0) m.params[i] = 0.05f * (float)sin((double)i);
  float x[N * D], lm[N * C];
  int32_t y[N];
  data(x, y);
  const long before = mt_gemm_conversions(m.gemm);
  grad(&m, x, y, lm);
  assert_int_equal(mt_gemm_conversions(m.gemm) - before, 1);
  /* The composition, on a second handle (its own bf16 buffers). */
  MtGemmDense dense[3];
  const Layer *dl[3];
  for (int i = 0, k = 0; i < m.n_layers; i++)
    if (m.layers[i].kind == LAYER_DENSE) {
      dl[k] = &m.layers[i];
      dense[k] = (MtGemmDense){dl[k]->in, dl[k]->out, 1, dl[k]->w_off};
      k++;
    }
  MtGemm *g = NULL;
  assert_int_equal(mt_gemm_create(&g, PRECISION_BF16, dense, 3, m.n_params, N, NULL, 0, &err), 0);
  mt_gemm_stage_weights(g, m.params);
  static float act[3][N * H1], dys[3][N * H1], dw[N * H1 * D];
  const float *in = x;
  for (int k = 0; k < 3; k++) {
    mt_gemm_forward(g, k, in, m.params + dl[k]->w_off, m.params + dl[k]->b_off, act[k], 0, N);
    if (k < 2) mt_act_forward(ACT_RELU, 0, act[k], (size_t)N * dense[k].out);
    in = act[k];
  }
  for (int i = 0; i < N * C; i++) assert_true(bits(act[2][i]) == bits(lm[i]));
  LossSums ls = {0, 0};
  mt_loss_softmax_xent(act[2], y, N, C, 1.0f / N, dys[2], &ls);
  for (int k = 2; k >= 0; k--) {
    mt_gemm_backward(g, k, k ? act[k - 1] : x, dys[k], m.params + dl[k]->w_off, dw, 0.0f, k ? dys[k - 1] : NULL, 0, N);
    if (k) mt_act_backward(ACT_RELU, 0, act[k - 1], dys[k - 1], (size_t)N * dense[k - 1].out);
    for (size_t i = 0; i < (size_t)dense[k].out * dense[k].in; i++)
      if (bits(dw[i]) != bits(m.grads[dl[k]->w_off + i])) fail_msg("dense%d dW[%zu]: %g, unfused %g", k, i, m.grads[dl[k]->w_off + i], dw[i]);
    for (int j = 0; j < dense[k].out; j++) {
      double s = 0, a = 0;
      for (int r = 0; r < N; r++) s += dys[k][r * dense[k].out + j], a += fabs(dys[k][r * dense[k].out + j]);
      const float db = m.grads[dl[k]->b_off + j];
      if (fabs(db - s) > N * 0x1p-24 * a) fail_msg("dense%d db[%d] = %g, Σ dY %g", k, j, db, s);
    }
  }
  mt_gemm_free(g);
  mt_model_free(&m);
}

int main(void) {
  const struct CMUnitTest conv[] = {cmocka_unit_test(test_rounding), cmocka_unit_test(test_convert_sum),
                                    cmocka_unit_test(test_widen_sum_rows), cmocka_unit_test(test_convert_ef)};
  const struct CMUnitTest bf16[] = {cmocka_unit_test(test_dense_bf16), cmocka_unit_test(test_model_vs_fp32),
                                    cmocka_unit_test(test_gradcheck_bf16), cmocka_unit_test(test_fused_step)};
  int rc = cmocka_run_group_tests(conv, NULL, NULL);
  if (!mt_gemm_cpu_bf16()) {
    print_message("oneDNN has no bf16 here (ISA %s): bf16 GEMM tests skipped\n", mt_gemm_isa_name());
    return rc ? rc : 77;
  }
  return rc + cmocka_run_group_tests(bf16, NULL, NULL);
}
