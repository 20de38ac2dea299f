/* gemm.h — the one GEMM interface the dense layers call: the three products of a dense layer in fp32 (OpenBLAS) or
 * in bf16 mixed precision (oneDNN matmul, AMX where the CPU has it).
 *
 * A dense layer d with W [out, in] computes, on rows [r0, r0 + n) of its [max_rows, ·] buffers:
 *   forward   Y = X·Wᵀ (+ b)        mt_gemm_forward
 *   backward  dW = dYᵀ·X (+ dW)     mt_gemm_backward, beta 0 or 1 (micro-batches accumulate)
 *             dX = dY·W             the same call, unless dx is NULL
 * fp32 (a handle created for PRECISION_FP32): exactly the cblas_sgemm calls the model always
 * made. bf16 (mixed precision as PyTorch's autocast does it): X, W and dY are rounded to bf16 (8-bit mantissa) in
 * buffers allocated once, the products accumulate in fp32 and are written in fp32; the master weights, gradients,
 * optimiser state, loss and batch-norm statistics stay fp32. oneDNN primitives are created when the handle is:
 * one per (layer, product, row count) for the row counts the caller lists; a row count nobody listed gets its
 * primitive when first seen (counted by mt_gemm_late_creations: the trainer lists its row counts so that none is
 * created inside the step loop). No MPI, no files. */
#ifndef MPITRAIN_GEMM_H
#define MPITRAIN_GEMM_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"

typedef enum MtPrecision { PRECISION_FP32 = 0, PRECISION_BF16, PRECISION_AUTO, PRECISION_COUNT } MtPrecision;
/* "fp32", "bf16", "auto" in enum order, NULL-terminated (the option table's choices). */
extern const char *const mt_precision_names[PRECISION_COUNT + 1];
const char *mt_precision_name(MtPrecision p);

/* What oneDNN can run here (its effective ISA, which ONEDNN_MAX_CPU_ISA lowers): bf16 GEMMs at all (AVX512-BF16 or
 * AMX), and bf16 on the AMX matrix units (the only place where bf16 is faster than fp32). */
int mt_gemm_cpu_bf16(void);
int mt_gemm_cpu_amx(void);
/* oneDNN's effective ISA as a short name ("avx512_core_amx", "avx2", ...). */
const char *mt_gemm_isa_name(void);

/* The precision a run uses: auto (the default) is bf16 where oneDNN has AMX, else fp32 — unless the environment
 * variable MPITRAIN_AUTO_PRECISION says fp32 or bf16, which auto then means; an explicit bf16 where oneDNN has no
 * bf16 GEMM is an error naming the CPU capability and the way out. Not collective. 0 or -1. */
#define MT_AUTO_PRECISION_ENV "MPITRAIN_AUTO_PRECISION"
int mt_precision_resolve(MtPrecision requested, MtPrecision *out, MtError *err);
/* The value of MPITRAIN_AUTO_PRECISION when set and not empty, else NULL (the banner names it). */
const char *mt_precision_auto_override(void);

/* oneDNN's OpenMP threads for the calling thread (mt_blas_set_threads calls it: both libraries use the same count). */
void mt_gemm_set_threads(int n);

/* Round to nearest even, NaN stays NaN (quiet), ±Inf and overflow to ±Inf as IEEE rounding says. */
uint16_t mt_bf16_from_float(float f);
float mt_bf16_to_float(uint16_t b);
/* dst[i] = mt_bf16_from_float(src[i]) for i < n (vectorised where the CPU allows). */
void mt_bf16_convert(const float *src, uint16_t *dst, size_t n);
/* Error feedback (the bf16 gradient reduction, comm.h): dst[i] = bf16(src[i] + ef[i]) rounded as mt_bf16_convert,
 * and ef[i] = (src[i] + ef[i]) - mt_bf16_to_float(dst[i]), what the rounding dropped, for the next call to add back.
 * A residual that is not finite (an Inf or NaN value, or one that rounded to Inf) becomes 0: a step with a
 * non-finite gradient can be skipped (--on-nonfinite skip), and its residual must not poison the steps after it. */
void mt_bf16_convert_ef(const float *src, uint16_t *dst, float *ef, size_t n);

/* dst[i] = mt_bf16_to_float(src[i]) for i < n (exact). */
void mt_bf16_widen(const uint16_t *src, float *dst, size_t n);
/* The fp32 sum of rows bf16 vectors: dst[i] = Σ_r mt_bf16_to_float(src[r·stride + i]) for i < n, added in row order
 * (row 0 first) in fp32 — the bf16 gradient reduction's sum of every rank's part (comm.h). */
void mt_bf16_sum_rows(const uint16_t *src, int rows, size_t stride, float *dst, size_t n);

/* Both at once, for an output gradient [rows, w]: dst = its bf16 copy (as mt_bf16_convert) and sum[j] += Σ_r src[r][j]
 * (the bias gradient: rows added in order, in fp32, the same additions as a plain loop over rows). */
void mt_bf16_convert_sum(const float *src, uint16_t *dst, float *sum, int rows, int w);

/* The shape of a dense layer: W at params + w_off, [out, in]. */
typedef struct MtGemmDense {
  int in, out;
  int has_bias;
  size_t w_off;
} MtGemmDense;

typedef struct MtGemm MtGemm;

/* A handle for the dense layers of one model (copied), up to max_rows rows per call. PRECISION_BF16: allocates the
 * bf16 copies (weights with params' offsets, each layer's input [max_rows, in] and output gradient [max_rows, out])
 * and creates the primitives for every row count of rows[0..n_rows) (and max_rows). PRECISION_FP32: nothing to
 * allocate. 0, or -1 with err set (and *out NULL). */
int mt_gemm_create(MtGemm **out, MtPrecision p, const MtGemmDense *dense, int n_dense, size_t n_params, int max_rows,
                   const int *rows, int n_rows, MtError *err);
void mt_gemm_free(MtGemm *g);
/* Creates the primitives of more row counts (the trainer's, once it has planned them). 0 or -1. */
int mt_gemm_prepare_rows(MtGemm *g, const int *rows, int n_rows, MtError *err);
MtPrecision mt_gemm_precision(const MtGemm *g);
/* The kernel that runs: "OpenBLAS sgemm", or oneDNN's implementation string ("brg:avx512_core_amx_bf16"). */
const char *mt_gemm_kernel(const MtGemm *g);
/* Primitives created after mt_gemm_create / mt_gemm_prepare_rows, for a row count nobody listed. */
long mt_gemm_late_creations(const MtGemm *g);

/* The bf16 copy of the weights that the bf16 GEMMs read, at params' offsets (n_params of them; the GEMMs read the
 * slices of W): it must equal bf16(params) whenever a forward runs. The optimiser keeps it so: mt_optim_update
 * writes it in the same pass as the fp32 update (NULL here: fp32, nothing to write). Everything else that changes
 * the parameters (initialisation, loading, broadcasting, restoring) calls mt_gemm_stage_weights afterwards: the
 * one conversion of every W (a NULL handle or fp32: nothing). MPITRAIN_CHECK_BF16_COPY=1 makes every bf16 forward
 * verify the copy first (a debugging aid; test precision.copy). */
uint16_t *mt_gemm_weights_bf16(MtGemm *g);
void mt_gemm_stage_weights(MtGemm *g, const float *params);
/* bf16: the handle's bf16 copy of layer d's input rows (mt_gemm_input_bf16, [max_rows, in]) and of its output
 * gradient rows (mt_gemm_dy_bf16, [max_rows, out]), from row r0: a caller that produces X or dY in a pass of its own
 * (an activation's forward or backward) writes the bf16 copy in that pass, and then hands mt_gemm_forward a NULL x
 * or mt_gemm_backward a NULL dy, so that no separate conversion pass runs. NULL in fp32 (fp32 always needs x, dy). */
uint16_t *mt_gemm_input_bf16(MtGemm *g, int d, int r0);
uint16_t *mt_gemm_dy_bf16(MtGemm *g, int d, int r0);
/* The operands mt_gemm_forward and mt_gemm_backward converted to bf16 themselves (x or dy not NULL), counted. */
long mt_gemm_conversions(const MtGemm *g);

/* Y[r0..r0+n) = X·Wᵀ (+ b broadcast when b is not NULL). x and y point at row r0; w = params + w_off. bf16 keeps
 * its rounded copy of these rows of X for the backward pass (x NULL: already written, mt_gemm_input_bf16). */
void mt_gemm_forward(MtGemm *g, int d, const float *x, const float *w, const float *b, float *y, int r0, int n);
/* dW = dYᵀ·X + beta·dW unless dw is NULL and, unless dx is NULL, dX = dY·W, over rows [r0, r0 + n): x (the
 * forward's input: bf16 uses its own copy of it from the forward over the same rows), dy and dx point at row r0. bf16
 * with dy NULL: the bf16 dY is already written (mt_gemm_dy_bf16). */
void mt_gemm_backward(MtGemm *g, int d, const float *x, const float *dy, const float *w, float *dw, float beta,
                      float *dx, int r0, int n);
/* fp32 only (the weight-gradient blocks, model.h: not built for bf16, where this aborts): rows [j0, j1) of dW (output
 * units j0..j1-1), dW[j0:j1] = dY[:, j0:j1]ᵀ·X + beta·dW[j0:j1], over n rows of x and dy; dw points at dW's row 0. */
void mt_gemm_backward_rows(MtGemm *g, int d, const float *x, const float *dy, float *dw, float beta, int j0, int j1,
                           int n);

/* The bf16 roofline (gemm_ref.c, for `mpitrain bench`): the mean seconds of one forward + backward pass over `rows`
 * rows of bare oneDNN bf16 matmuls on these layers' shapes (forward with the layer's bias, dW, and dX except for the
 * first layer), on operands already in bf16 with fp32 outputs, over a window of at least `window` seconds, on the
 * calling thread's oneDNN thread count. Primitives and operands are made and freed inside the call, outside the
 * timed loop. 0, or -1 with err set. */
int mt_gemm_ref_bf16_seconds(const MtGemmDense *dense, int n_dense, int rows, double window, double *seconds,
                             MtError *err);

#endif
