/* gemm_dnnl.h — the oneDNN bf16 backend of gemm.h (private to mt_compute: only gemm.c calls it).
 *
 * Operands are already bf16 (gemm.c converts them into its buffers); the products accumulate and are written in
 * fp32. One matmul primitive per (dense layer, product, row count), each with its memory objects, created ahead by
 * mt_gemm_dnnl_prepare; a step only sets data handles and executes. Scratchpads are the caller's (user mode): one
 * buffer, as large as the largest primitive needs, allocated when primitives are created. */
#ifndef MPITRAIN_GEMM_DNNL_H
#define MPITRAIN_GEMM_DNNL_H

#include <stdint.h>

#include "mpitrain/gemm.h"

typedef struct GemmDnnl GemmDnnl;

/* The products of a dense layer, each one primitive per row count. */
typedef enum GemmOp { GEMM_FWD = 0, GEMM_DW, GEMM_DW_ACC, GEMM_DX, GEMM_OPS } GemmOp;

int mt_gemm_dnnl_create(GemmDnnl **out, const MtGemmDense *dense, int n_dense, MtError *err);
void mt_gemm_dnnl_free(GemmDnnl *e);
/* Creates the primitives of every layer and product for n rows (nothing when they exist). 0 or -1. */
int mt_gemm_dnnl_prepare(GemmDnnl *e, int n, MtError *err);
/* Executes product op of layer d over n rows. Operands as the product needs them: FWD (src X, wei W, bias b or
 * NULL, dst Y), DW/DW_ACC (src dY, wei X, dst dW), DX (src dY, wei W, dst dX). A row count not prepared is
 * prepared here and counted as late. Failure of oneDNN inside a step is a bug: it aborts with the call named. */
void mt_gemm_dnnl_run(GemmDnnl *e, GemmOp op, int d, int n, const void *src, const void *wei, const float *bias,
                   float *dst);
const char *mt_gemm_dnnl_kernel(const GemmDnnl *e);
long mt_gemm_dnnl_late(const GemmDnnl *e);

/* oneDNN's effective ISA: bf16 GEMMs at all, on AMX, its name. */
int mt_gemm_dnnl_isa_bf16(void);
int mt_gemm_dnnl_isa_amx(void);
const char *mt_gemm_dnnl_isa_name(void);
void mt_gemm_dnnl_set_threads(int n);

#endif
