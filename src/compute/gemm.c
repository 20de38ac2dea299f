/* gemm.c — the GEMM interface of the dense layers (gemm.h): its fp32 backend (OpenBLAS, the calls the model has
 * always made) and the bf16 side that does not need oneDNN itself: rounding to bf16 and the bf16 buffers. */
#include "mpitrain/gemm.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bf16.h"
#include "gemm_dnnl.h"
#include "vector.h"
#include "mpitrain/util.h"

const char *const mt_precision_names[PRECISION_COUNT + 1] = {"fp32", "bf16", "auto", NULL};
const char *mt_precision_name(MtPrecision p) { return mt_enum_name(mt_precision_names, PRECISION_COUNT, p); }

int mt_gemm_cpu_bf16(void) { return mt_gemm_dnnl_isa_bf16(); }
int mt_gemm_cpu_amx(void) { return mt_gemm_dnnl_isa_amx(); }
const char *mt_gemm_isa_name(void) { return mt_gemm_dnnl_isa_name(); }

const char *mt_precision_auto_override(void) {
  const char *e = getenv(MT_AUTO_PRECISION_ENV);
  return e != NULL && *e != '\0' ? e : NULL;
}

int mt_precision_resolve(MtPrecision requested, MtPrecision *out, MtError *err) {
  /* The environment's choice for auto, as NVIDIA_TF32_OVERRIDE is for TF32: a site or a job script turns the
   * default's bf16 off (or on) for every run without editing command lines; the test suite pins fp32 with it. */
  const char *env = requested == PRECISION_AUTO ? mt_precision_auto_override() : NULL;
  if (env != NULL) {
    const int p = mt_enum_from_name(mt_precision_names, env);
    if (p != PRECISION_FP32 && p != PRECISION_BF16)
      return mt_fail(err, "%s=%s: expected fp32 or bf16 (what --precision auto picks), or unset",
                     MT_AUTO_PRECISION_ENV, env);
    requested = (MtPrecision)p;
  }
  if (requested == PRECISION_AUTO) {
    /* Without AMX, bf16 runs on AVX512-BF16 at best, which is slower than fp32 sgemm here: not worth it. */
    *out = mt_gemm_cpu_amx() ? PRECISION_BF16 : PRECISION_FP32;
    return 0;
  }
  if (requested == PRECISION_BF16 && !mt_gemm_cpu_bf16())
    return mt_fail(err, "%s: this CPU has no bf16 instructions (AVX512-BF16 or AMX; oneDNN runs %s here); use %s",
                   env ? MT_AUTO_PRECISION_ENV "=bf16" : "--precision bf16", mt_gemm_isa_name(),
                   env ? "fp32 there, or unset it" : "--precision fp32 (or auto)");
  *out = requested;
  return 0;
}

/* ==== bf16 rounding ==== */

uint16_t mt_bf16_from_float(float f) { return bf16_round(f); }

float mt_bf16_to_float(uint16_t b) { return bf16_widen_bits(b); }

MT_VECTOR_CLONES void mt_bf16_convert(const float *src, uint16_t *dst, size_t n) {
  const uint32_t *s = (const uint32_t *)(const void *)src; /* float and uint32_t: same size, reinterpreted bits */
  for (size_t i = 0; i < n; i++) dst[i] = bf16_round_bits(s[i]);
}

MT_VECTOR_CLONES void mt_bf16_widen(const uint16_t *src, float *dst, size_t n) {
  uint32_t *d = (uint32_t *)(void *)dst; /* the bf16 bits are the float's upper half, the rest zero: exact */
  for (size_t i = 0; i < n; i++) d[i] = (uint32_t)src[i] << 16;
}

/* v - bf16(v) is exact (Sterbenz: v and its rounding are within a factor 2 of each other, or the rounding is 0),
 * so the residual is all that the rounding dropped. r - r is 0 exactly for a finite r and NaN otherwise: the finite
 * test without a branch, so the loop vectorises (no -ffast-math here, CMakeLists.txt). */
MT_VECTOR_CLONES void mt_bf16_convert_ef(const float *src, uint16_t *dst, float *ef, size_t n) {
  for (size_t i = 0; i < n; i++) {
    const float v = src[i] + ef[i];
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    const uint16_t b = bf16_round_bits(u);
    dst[i] = b;
    const float r = v - bf16_widen_bits(b);
    ef[i] = r - r == 0.0f ? r : 0.0f;
  }
}

/* Row 0 widened, then rows 1, 2, ... added in that order: one float addition per row and element, so every clone
 * (and any caller's plain loop in the same order) gives the same bits. */
MT_VECTOR_CLONES void mt_bf16_sum_rows(const uint16_t *src, int rows, size_t stride, float *dst, size_t n) {
  mt_bf16_widen(src, dst, n);
  for (int r = 1; r < rows; r++) {
    const uint16_t *s = src + (size_t)r * stride;
    for (size_t i = 0; i < n; i++) dst[i] += bf16_widen_bits(s[i]);
  }
}

/* Row by row, as the model's bias-gradient loop adds (the same float additions in the same order), with the
 * conversion of the same elements while they are in registers. */
MT_VECTOR_CLONES void mt_bf16_convert_sum(const float *src, uint16_t *dst, float *sum, int rows, int w) {
  const uint32_t *s = (const uint32_t *)(const void *)src;
  for (int r = 0; r < rows; r++) {
    const size_t o = (size_t)r * (size_t)w;
    for (int j = 0; j < w; j++) {
      sum[j] += src[o + j];
      dst[o + j] = bf16_round_bits(s[o + j]);
    }
  }
}

/* ==== The handle ==== */

struct MtGemm {
  MtPrecision prec;
  int n_dense, max_rows;
  MtGemmDense *dense;
  uint16_t *wb;          /* bf16 weights, params' offsets */
  uint16_t **xb, **dyb;  /* [n_dense] each layer's input [max_rows, in] and output gradient [max_rows, out] */
  long conversions;      /* operands the products converted themselves (not staged by the caller) */
  GemmDnnl *dnnl;
  int check;             /* MPITRAIN_CHECK_BF16_COPY=1: every forward verifies the weights' copy first */
};

void mt_gemm_free(MtGemm *g) {
  if (g == NULL) return;
  mt_gemm_dnnl_free(g->dnnl);
  for (int d = 0; d < g->n_dense; d++) {
    if (g->xb) mt_free(g->xb[d]);
    if (g->dyb) mt_free(g->dyb[d]);
  }
  mt_free(g->xb);
  mt_free(g->dyb);
  mt_free(g->wb);
  mt_free(g->dense);
  free(g);
}

int mt_gemm_create(MtGemm **out, MtPrecision p, const MtGemmDense *dense, int n_dense, size_t n_params, int max_rows,
                   const int *rows, int n_rows, MtError *err) {
  *out = NULL;
  if (p != PRECISION_FP32 && p != PRECISION_BF16)
    return mt_fail(err, "GEMM precision %s: resolve it first", mt_precision_name(p));
  MtGemm *g = calloc(1, sizeof *g);
  if (g == NULL) return mt_fail(err, "out of memory for the GEMM handle");
  g->prec = p;
  g->max_rows = max_rows;
  const char *check = getenv("MPITRAIN_CHECK_BF16_COPY");
  g->check = check != NULL && strcmp(check, "0") != 0;
  g->dense = mt_alloc(sizeof *dense * (size_t)(n_dense ? n_dense : 1), "the GEMM shapes", err);
  if (g->dense) memcpy(g->dense, dense, sizeof *dense * (size_t)n_dense);
  g->n_dense = g->dense ? n_dense : 0;
  if (p == PRECISION_BF16 && g->dense) {
    g->wb = mt_alloc(sizeof(uint16_t) * (n_params ? n_params : 1), "the bf16 weights", err);
    g->xb = mt_alloc(sizeof(uint16_t *) * (size_t)(n_dense ? n_dense : 1), "the bf16 activations", err);
    g->dyb = mt_alloc(sizeof(uint16_t *) * (size_t)(n_dense ? n_dense : 1), "the bf16 gradients", err);
    if (g->xb) memset(g->xb, 0, sizeof(uint16_t *) * (size_t)n_dense);
    if (g->dyb) memset(g->dyb, 0, sizeof(uint16_t *) * (size_t)n_dense);
    for (int d = 0; d < n_dense && g->xb && g->dyb; d++) {
      g->xb[d] = mt_alloc(sizeof(uint16_t) * (size_t)max_rows * (size_t)dense[d].in, "the bf16 activations", err);
      g->dyb[d] = mt_alloc(sizeof(uint16_t) * (size_t)max_rows * (size_t)dense[d].out, "the bf16 gradients", err);
    }
    if (!err->failed && mt_gemm_dnnl_create(&g->dnnl, dense, n_dense, err) == 0 &&
        mt_gemm_dnnl_prepare(g->dnnl, max_rows, err) == 0)
      mt_gemm_prepare_rows(g, rows, n_rows, err);
  }
  if (err->failed) {
    mt_gemm_free(g);
    return -1;
  }
  *out = g;
  return 0;
}

int mt_gemm_prepare_rows(MtGemm *g, const int *rows, int n_rows, MtError *err) {
  if (g == NULL || g->dnnl == NULL) return 0;
  for (int i = 0; i < n_rows; i++)
    if (rows[i] >= 1 && rows[i] <= g->max_rows && mt_gemm_dnnl_prepare(g->dnnl, rows[i], err) != 0) return -1;
  return 0;
}

MtPrecision mt_gemm_precision(const MtGemm *g) { return g ? g->prec : PRECISION_FP32; }
const char *mt_gemm_kernel(const MtGemm *g) { return g && g->dnnl ? mt_gemm_dnnl_kernel(g->dnnl) : "OpenBLAS sgemm"; }
long mt_gemm_late_creations(const MtGemm *g) { return g && g->dnnl ? mt_gemm_dnnl_late(g->dnnl) : 0; }
void mt_gemm_set_threads(int n) { mt_gemm_dnnl_set_threads(n); }

static int is_bf16(const MtGemm *g) { return g != NULL && g->prec == PRECISION_BF16; }

uint16_t *mt_gemm_weights_bf16(MtGemm *g) { return is_bf16(g) ? g->wb : NULL; }

void mt_gemm_stage_weights(MtGemm *g, const float *params) {
  if (!is_bf16(g)) return;
  for (int d = 0; d < g->n_dense; d++) {
    const MtGemmDense *l = &g->dense[d];
    mt_bf16_convert(params + l->w_off, g->wb + l->w_off, (size_t)l->out * (size_t)l->in);
  }
}

/* Whether layer d's copy equals bf16(w), w its fp32 W. */
static int layer_current(const MtGemm *g, int d, const float *w) {
  const MtGemmDense *l = &g->dense[d];
  const size_t n = (size_t)l->out * (size_t)l->in;
  for (size_t i = 0; i < n; i++)
    if (g->wb[l->w_off + i] != bf16_round(w[i])) return 0;
  return 1;
}

uint16_t *mt_gemm_input_bf16(MtGemm *g, int d, int r0) {
  return is_bf16(g) ? g->xb[d] + (size_t)r0 * (size_t)g->dense[d].in : NULL;
}
uint16_t *mt_gemm_dy_bf16(MtGemm *g, int d, int r0) {
  return is_bf16(g) ? g->dyb[d] + (size_t)r0 * (size_t)g->dense[d].out : NULL;
}
long mt_gemm_conversions(const MtGemm *g) { return g ? g->conversions : 0; }

void mt_gemm_forward(MtGemm *g, int d, const float *x, const float *w, const float *b, float *y, int r0, int n) {
  const MtGemmDense *l = &g->dense[d];
  if (!is_bf16(g)) {
    /* Y = b broadcast, then Y += X·Wᵀ: the bias costs one write pass and no extra read. */
    for (int r = 0; b && r < n; r++) memcpy(y + (size_t)r * l->out, b, sizeof(float) * (size_t)l->out);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, l->out, l->in, 1.0f, x, l->in, w, l->in, b ? 1.0f : 0.0f,
                y, l->out);
    return;
  }
  if (n == 0) return;
  if (g->check && r0 == 0 && !layer_current(g, d, w)) {
    /* A debugging aid (tests set it): some path changed the weights without mt_gemm_stage_weights. */
    fprintf(stderr, "mpitrain: fatal: the bf16 copy of layer %d's weights is not bf16 of its fp32 weights at a "
                    "forward pass (MPITRAIN_CHECK_BF16_COPY)\n", d);
    abort();
  }
  uint16_t *xb = g->xb[d] + (size_t)r0 * (size_t)l->in;
  if (x != NULL) {
    mt_bf16_convert(x, xb, (size_t)n * (size_t)l->in);
    g->conversions++;
  }
  mt_gemm_dnnl_run(g->dnnl, GEMM_FWD, d, n, xb, g->wb + l->w_off, b, y);
}

void mt_gemm_backward(MtGemm *g, int d, const float *x, const float *dy, const float *w, float *dw, float beta,
                      float *dx, int r0, int n) {
  const MtGemmDense *l = &g->dense[d];
  if (!is_bf16(g)) {
    if (dw) mt_gemm_backward_rows(g, d, x, dy, dw, beta, 0, l->out, n);
    if (dx)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, l->in, l->out, 1.0f, dy, l->out, w, l->in, 0.0f, dx,
                  l->in);
    return;
  }
  if (n == 0) { /* a rank without rows: dW = beta·dW, as sgemm with K = 0 gives */
    if (beta == 0.0f && dw) memset(dw, 0, sizeof(float) * (size_t)l->out * (size_t)l->in);
    return;
  }
  /* dY rounded once, for both products (or already, by the caller); X is the forward's copy of the same rows. */
  uint16_t *dyb = g->dyb[d] + (size_t)r0 * (size_t)l->out;
  const uint16_t *xb = g->xb[d] + (size_t)r0 * (size_t)l->in;
  if (dy != NULL) {
    mt_bf16_convert(dy, dyb, (size_t)n * (size_t)l->out);
    g->conversions++;
  }
  if (dw) mt_gemm_dnnl_run(g->dnnl, beta != 0.0f ? GEMM_DW_ACC : GEMM_DW, d, n, dyb, xb, NULL, dw);
  if (dx) mt_gemm_dnnl_run(g->dnnl, GEMM_DX, d, n, dyb, g->wb + l->w_off, NULL, dx);
}

void mt_gemm_backward_rows(MtGemm *g, int d, const float *x, const float *dy, float *dw, float beta, int j0, int j1,
                           int n) {
  const MtGemmDense *l = &g->dense[d];
  if (is_bf16(g)) {
    fprintf(stderr, "mpitrain: fatal: mt_gemm_backward_rows on bf16 GEMMs (model.h: blocks are fp32 only)\n");
    abort();
  }
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, j1 - j0, l->in, n, 1.0f, dy + j0, l->out, x, l->in, beta,
              dw + (size_t)j0 * (size_t)l->in, l->in);
}
