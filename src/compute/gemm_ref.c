/* gemm_ref.c — the bf16 roofline of `mpitrain bench`: bare oneDNN bf16 matmuls on the GEMM shapes of a step.
 *
 * The same primitives the bf16 backend runs (gemm_dnnl.c creates them: same M/N/K, transposed views, bias on the
 * forward as the layer has it, fp32 output, user scratchpad, the calling thread's OpenMP thread count), executed
 * back to back on operands that are already bf16 — no rounding of activations or weights, no bias broadcast, no
 * element-wise pass: nothing but the matmuls. Each layer has its own operands, laid out like a model's (separate
 * buffers), so the roofline sees a step's cache footprint, not one matrix kept hot. */
#include <stdint.h>
#include <stdlib.h>

#include "gemm_dnnl.h"
#include "mpitrain/gemm.h"
#include "mpitrain/util.h"

/* One dense layer's operands: bf16 inputs, fp32 outputs. */
typedef struct RefLayer {
  uint16_t *x, *w, *dy; /* [rows, in], [out, in], [rows, out] */
  float *b, *y, *dw, *dx; /* [out], [rows, out], [out, in], [rows, in] */
} RefLayer;

static void *filled_bf16(size_t n, float scale, MtError *err) {
  uint16_t *p = mt_alloc(sizeof(uint16_t) * (n ? n : 1), "the bf16 roofline's operands", err);
  for (size_t i = 0; p && i < n; i++) p[i] = mt_bf16_from_float(scale * (float)((int)(i % 7) - 3));
  return p;
}

static float *filled_f32(size_t n, MtError *err) {
  float *p = mt_alloc(sizeof(float) * (n ? n : 1), "the bf16 roofline's outputs", err);
  for (size_t i = 0; p && i < n; i++) p[i] = 0.01f * (float)(i % 5);
  return p;
}

static int ref_alloc(RefLayer *L, const MtGemmDense *dense, int n_dense, int rows, MtError *err) {
  for (int d = 0; d < n_dense && !err->failed; d++) {
    const size_t in = (size_t)dense[d].in, out = (size_t)dense[d].out, n = (size_t)rows;
    L[d].x = filled_bf16(n * in, 0.1f, err);
    L[d].w = filled_bf16(out * in, 0.02f, err);
    L[d].dy = filled_bf16(n * out, 0.01f, err);
    L[d].b = filled_f32(out, err);
    L[d].y = filled_f32(n * out, err);
    L[d].dw = filled_f32(out * in, err);
    L[d].dx = filled_f32(n * in, err);
  }
  return err->failed ? -1 : 0;
}

static void ref_free(RefLayer *L, int n_dense) {
  for (int d = 0; L && d < n_dense; d++) {
    void *bufs[] = {L[d].x, L[d].w, L[d].dy, L[d].b, L[d].y, L[d].dw, L[d].dx};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) mt_free(bufs[i]);
  }
  mt_free(L);
}

/* One forward + backward pass: Y = X·Wᵀ (+ b) per layer, then from the last layer dW = dYᵀ·X and, except for the
 * first layer (whose input gradient nobody needs), dX = dY·W — the products a training step's GEMMs issue. */
static void ref_pass(GemmDnnl *e, const MtGemmDense *dense, const RefLayer *L, int n_dense, int rows) {
  for (int d = 0; d < n_dense; d++)
    mt_gemm_dnnl_run(e, GEMM_FWD, d, rows, L[d].x, L[d].w, dense[d].has_bias ? L[d].b : NULL, L[d].y);
  for (int d = n_dense - 1; d >= 0; d--) {
    mt_gemm_dnnl_run(e, GEMM_DW, d, rows, L[d].dy, L[d].x, NULL, L[d].dw);
    if (d > 0) mt_gemm_dnnl_run(e, GEMM_DX, d, rows, L[d].dy, L[d].w, NULL, L[d].dx);
  }
}

int mt_gemm_ref_bf16_seconds(const MtGemmDense *dense, int n_dense, int rows, double window, double *seconds,
                             MtError *err) {
  *seconds = 0;
  if (rows < 1 || n_dense < 1) return 0;
  GemmDnnl *e = NULL;
  RefLayer *L = mt_alloc(sizeof *L * (size_t)n_dense, "the bf16 roofline's layers", err);
  if (L == NULL) return -1;
  for (int d = 0; d < n_dense; d++) L[d] = (RefLayer){0};
  if (ref_alloc(L, dense, n_dense, rows, err) == 0 && mt_gemm_dnnl_create(&e, dense, n_dense, err) == 0 &&
      mt_gemm_dnnl_prepare(e, rows, err) == 0) {
    ref_pass(e, dense, L, n_dense, rows); /* untimed: page in the buffers, load the kernels */
    int iters = 0;
    double t0 = mt_now(), t1 = t0;
    do {
      ref_pass(e, dense, L, n_dense, rows);
      iters++;
      t1 = mt_now();
    } while (t1 - t0 < window);
    *seconds = (t1 - t0) / iters;
  }
  mt_gemm_dnnl_free(e);
  ref_free(L, n_dense);
  return err->failed ? -1 : 0;
}
