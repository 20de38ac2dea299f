/* gemm_dnnl.c — the oneDNN bf16 backend of the GEMM interface: matmul primitives created ahead, executed in the step.
 *
 * Why one primitive per row count and not one with a runtime M (DNNL_RUNTIME_DIM_VAL): measured here (oneDNN
 * 2.6.3, 1 thread), a runtime-M matmul gets the generic "gemm:jit" implementation instead of the AMX brgemm one,
 * half as fast on some of the shapes of this model (512×128·128×784: 238 against 523 GFLOP/s); and a runtime-M
 * primitive needs a memory object of the actual shape per call, i.e. one created in the step. */
#include "gemm_dnnl.h"

#include <oneapi/dnnl/dnnl.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/util.h"

#define MAX_SHAPES 24 /* row counts per layer and product: micro-batch, last chunk, last batch, groups, eval chunks */

typedef struct Shape {
  int n;                 /* rows */
  dnnl_primitive_t prim;
  dnnl_memory_t src, wei, bias, dst, pad;
} Shape;

typedef struct Layer {
  MtGemmDense dim;
  int n_shapes[GEMM_OPS];
  Shape shapes[GEMM_OPS][MAX_SHAPES];
} Layer;

struct GemmDnnl {
  dnnl_engine_t eng;
  dnnl_stream_t stream;
  int n_dense;
  Layer *layers;
  void *pad;        /* the scratchpad every primitive shares (they run one at a time) */
  size_t pad_bytes;
  long late;
  char kernel[160];
};

static int ok(dnnl_status_t s, const char *what, MtError *err) {
  if (s == dnnl_success) return 0;
  return mt_fail(err, "oneDNN: %s failed (status %d)", what, (int)s);
}
#define CK(call) ok((call), #call, err)

static int md(dnnl_memory_desc_t *d, int64_t rows, int64_t cols, dnnl_data_type_t t, int transposed, MtError *err) {
  dnnl_dims_t dims = {rows, cols};
  if (!transposed) return CK(dnnl_memory_desc_init_by_tag(d, 2, dims, t, dnnl_ab));
  /* A [rows, cols] view of a row-major [cols, rows] array. */
  dnnl_dims_t strides = {1, rows};
  return CK(dnnl_memory_desc_init_by_strides(d, 2, dims, t, strides));
}

/* The descriptors of product op of a layer over n rows. */
static int op_descs(const MtGemmDense *l, GemmOp op, int n, dnnl_memory_desc_t *src, dnnl_memory_desc_t *wei,
                    dnnl_memory_desc_t *bias, dnnl_memory_desc_t *dst, MtError *err) {
  memset(bias, 0, sizeof *bias); /* zero md: no bias */
  switch (op) {
    case GEMM_FWD: /* Y [n, out] = X [n, in] · Wᵀ [in, out] (+ b [1, out]) */
      if (md(src, n, l->in, dnnl_bf16, 0, err) || md(wei, l->in, l->out, dnnl_bf16, 1, err) ||
          md(dst, n, l->out, dnnl_f32, 0, err))
        return -1;
      return l->has_bias ? md(bias, 1, l->out, dnnl_f32, 0, err) : 0;
    case GEMM_DW:
    case GEMM_DW_ACC: /* dW [out, in] = dYᵀ [out, n] · X [n, in] */
      return md(src, l->out, n, dnnl_bf16, 1, err) || md(wei, n, l->in, dnnl_bf16, 0, err) ||
                     md(dst, l->out, l->in, dnnl_f32, 0, err)
                 ? -1
                 : 0;
    default: /* dX [n, in] = dY [n, out] · W [out, in] */
      return md(src, n, l->out, dnnl_bf16, 0, err) || md(wei, l->out, l->in, dnnl_bf16, 0, err) ||
                     md(dst, n, l->in, dnnl_f32, 0, err)
                 ? -1
                 : 0;
  }
}

/* The primitive descriptor of a product: user scratchpad; DW_ACC adds into dW (a sum post-op: beta = 1). */
static int make_pd(GemmDnnl *e, const MtGemmDense *l, GemmOp op, int n, dnnl_primitive_desc_t *pd, MtError *err) {
  dnnl_memory_desc_t src, wei, bias, dst;
  if (op_descs(l, op, n, &src, &wei, &bias, &dst, err) != 0) return -1;
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t po = NULL;
  int rc = CK(dnnl_matmul_desc_init(&desc, &src, &wei, op == GEMM_FWD && l->has_bias ? &bias : NULL, &dst));
  if (rc == 0) rc = CK(dnnl_primitive_attr_create(&attr));
  if (rc == 0) rc = CK(dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
  if (rc == 0 && op == GEMM_DW_ACC) {
    rc = CK(dnnl_post_ops_create(&po));
    if (rc == 0) rc = CK(dnnl_post_ops_append_sum(po, 1.0f));
    if (rc == 0) rc = CK(dnnl_primitive_attr_set_post_ops(attr, po));
  }
  if (rc == 0) rc = CK(dnnl_primitive_desc_create(pd, &desc, attr, e->eng, NULL));
  if (po) dnnl_post_ops_destroy(po);
  if (attr) dnnl_primitive_attr_destroy(attr);
  return rc;
}

static void shape_free(Shape *s) {
  dnnl_memory_t *mems[] = {&s->src, &s->wei, &s->bias, &s->dst, &s->pad};
  for (size_t i = 0; i < sizeof mems / sizeof mems[0]; i++)
    if (*mems[i]) dnnl_memory_destroy(*mems[i]);
  if (s->prim) dnnl_primitive_destroy(s->prim);
  memset(s, 0, sizeof *s);
}

/* Grows the shared scratchpad to bytes and points every primitive's scratchpad memory at it. Start-up only. */
static int grow_pad(GemmDnnl *e, size_t bytes, MtError *err) {
  if (bytes <= e->pad_bytes) return 0;
  void *p = NULL;
  if (posix_memalign(&p, 64, bytes) != 0) return mt_fail(err, "out of memory for oneDNN's scratchpad (%zu bytes)", bytes);
  free(e->pad);
  e->pad = p;
  e->pad_bytes = bytes;
  for (int d = 0; d < e->n_dense; d++)
    for (int op = 0; op < GEMM_OPS; op++)
      for (int k = 0; k < e->layers[d].n_shapes[op]; k++)
        if (e->layers[d].shapes[op][k].pad && CK(dnnl_memory_set_data_handle(e->layers[d].shapes[op][k].pad, p)))
          return -1;
  return 0;
}

/* The primitive of product op of layer d over n rows, and its memory objects (without buffers: set per call). */
static int shape_create(GemmDnnl *e, int d, GemmOp op, int n, MtError *err) {
  Layer *L = &e->layers[d];
  if (L->n_shapes[op] == MAX_SHAPES)
    return mt_fail(err, "oneDNN: more than %d row counts for one layer", MAX_SHAPES);
  Shape *s = &L->shapes[op][L->n_shapes[op]];
  memset(s, 0, sizeof *s);
  s->n = n;
  dnnl_primitive_desc_t pd = NULL;
  if (make_pd(e, &L->dim, op, n, &pd, err) != 0) return -1;
  const dnnl_memory_desc_t *q[] = {dnnl_primitive_desc_query_md(pd, dnnl_query_src_md, 0),
                                   dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0),
                                   dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 1),
                                   dnnl_primitive_desc_query_md(pd, dnnl_query_dst_md, 0),
                                   dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0)};
  dnnl_memory_t *mems[] = {&s->src, &s->wei, &s->bias, &s->dst, &s->pad};
  int rc = CK(dnnl_primitive_create(&s->prim, pd));
  for (int i = 0; i < 5 && rc == 0; i++)
    if (q[i] != NULL && q[i]->ndims > 0) rc = CK(dnnl_memory_create(mems[i], q[i], e->eng, DNNL_MEMORY_NONE));
  size_t pad = q[4] != NULL && q[4]->ndims > 0 ? dnnl_memory_desc_get_size(q[4]) : 0;
  if (rc == 0 && d == 0 && e->kernel[0] == '\0' && op == GEMM_FWD) {
    const char *impl = NULL;
    if (CK(dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl)) == 0)
      snprintf(e->kernel, sizeof e->kernel, "oneDNN %s", impl);
  }
  dnnl_primitive_desc_destroy(pd);
  L->n_shapes[op]++; /* counted now, so that shape_free and grow_pad see it */
  if (rc == 0) rc = grow_pad(e, pad, err);
  if (rc == 0 && s->pad) rc = CK(dnnl_memory_set_data_handle(s->pad, e->pad));
  if (rc != 0) {
    shape_free(s);
    L->n_shapes[op]--;
  }
  return rc;
}

int mt_gemm_dnnl_create(GemmDnnl **out, const MtGemmDense *dense, int n_dense, MtError *err) {
  *out = NULL;
  GemmDnnl *e = calloc(1, sizeof *e);
  if (e == NULL || (e->layers = calloc((size_t)n_dense, sizeof *e->layers)) == NULL) {
    free(e);
    return mt_fail(err, "out of memory for the oneDNN primitives");
  }
  e->n_dense = n_dense;
  for (int d = 0; d < n_dense; d++) e->layers[d].dim = dense[d];
  if (CK(dnnl_engine_create(&e->eng, dnnl_cpu, 0)) || CK(dnnl_stream_create(&e->stream, e->eng, dnnl_stream_default_flags))) {
    mt_gemm_dnnl_free(e);
    return -1;
  }
  *out = e;
  return 0;
}

void mt_gemm_dnnl_free(GemmDnnl *e) {
  if (e == NULL) return;
  for (int d = 0; e->layers && d < e->n_dense; d++)
    for (int op = 0; op < GEMM_OPS; op++)
      for (int k = 0; k < e->layers[d].n_shapes[op]; k++) shape_free(&e->layers[d].shapes[op][k]);
  if (e->stream) dnnl_stream_destroy(e->stream);
  if (e->eng) dnnl_engine_destroy(e->eng);
  free(e->pad);
  free(e->layers);
  free(e);
}

static Shape *find(GemmDnnl *e, int d, GemmOp op, int n) {
  Layer *L = &e->layers[d];
  for (int k = 0; k < L->n_shapes[op]; k++)
    if (L->shapes[op][k].n == n) return &L->shapes[op][k];
  return NULL;
}

int mt_gemm_dnnl_prepare(GemmDnnl *e, int n, MtError *err) {
  for (int d = 0; d < e->n_dense; d++)
    for (int op = 0; op < GEMM_OPS; op++)
      if (find(e, d, (GemmOp)op, n) == NULL && shape_create(e, d, (GemmOp)op, n, err) != 0) return -1;
  return 0;
}

static void die(const char *what, const MtError *err) {
  fprintf(stderr, "mpitrain: fatal: oneDNN matmul %s: %s\n", what, err->msg);
  abort();
}

void mt_gemm_dnnl_run(GemmDnnl *e, GemmOp op, int d, int n, const void *src, const void *wei, const float *bias,
                   float *dst) {
  MtError err = {0};
  Shape *s = find(e, d, op, n);
  if (s == NULL) {
    if (shape_create(e, d, op, n, &err) != 0) die("creation", &err);
    e->late++;
    s = find(e, d, op, n);
  }
  dnnl_exec_arg_t args[5];
  int na = 0;
  const struct {
    int arg;
    dnnl_memory_t mem;
    const void *ptr;
  } a[] = {{DNNL_ARG_SRC, s->src, src}, {DNNL_ARG_WEIGHTS, s->wei, wei}, {DNNL_ARG_BIAS, s->bias, bias},
           {DNNL_ARG_DST, s->dst, dst}, {DNNL_ARG_SCRATCHPAD, s->pad, NULL}};
  for (size_t i = 0; i < sizeof a / sizeof a[0]; i++) {
    if (a[i].mem == NULL) continue;
    if (a[i].ptr != NULL && ok(dnnl_memory_set_data_handle(a[i].mem, (void *)a[i].ptr), "set_data_handle", &err))
      die("arguments", &err);
    args[na++] = (dnnl_exec_arg_t){a[i].arg, a[i].mem};
  }
  if (ok(dnnl_primitive_execute(s->prim, e->stream, na, args), "execute", &err) ||
      ok(dnnl_stream_wait(e->stream), "stream wait", &err))
    die("execution", &err);
}

const char *mt_gemm_dnnl_kernel(const GemmDnnl *e) { return e->kernel[0] ? e->kernel : "oneDNN"; }
long mt_gemm_dnnl_late(const GemmDnnl *e) { return e->late; }

/* The ISA values are bit sets, each including the ones below it (avx2_vnni is not above avx512_core). */
static int isa_has(dnnl_cpu_isa_t want) { return ((int)dnnl_get_effective_cpu_isa() & (int)want) == (int)want; }
int mt_gemm_dnnl_isa_bf16(void) { return isa_has(dnnl_cpu_isa_avx512_core_bf16); }
int mt_gemm_dnnl_isa_amx(void) { return isa_has(dnnl_cpu_isa_avx512_core_amx); }

const char *mt_gemm_dnnl_isa_name(void) {
  switch (dnnl_get_effective_cpu_isa()) {
    case dnnl_cpu_isa_avx512_core_amx: return "avx512_core_amx";
    case dnnl_cpu_isa_avx512_core_bf16: return "avx512_core_bf16";
    case dnnl_cpu_isa_avx512_core_vnni: return "avx512_core_vnni";
    case dnnl_cpu_isa_avx512_core: return "avx512_core";
    case dnnl_cpu_isa_avx2_vnni: return "avx2_vnni";
    case dnnl_cpu_isa_avx2: return "avx2";
    case dnnl_cpu_isa_avx: return "avx";
    case dnnl_cpu_isa_sse41: return "sse41";
    default: return "isa";
  }
}

/* oneDNN runs its kernels on OpenMP threads of the calling thread: their count is this thread's ICV. */
void mt_gemm_dnnl_set_threads(int n) { omp_set_num_threads(n < 1 ? 1 : n); }
