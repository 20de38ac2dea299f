/* step_profile.c — where a training step's compute goes, in fp32 or bf16, on one thread: the model's forward +
 * loss + backward, its GEMMs alone (mt_model_run_gemms, the bench's roofline), the same shapes as bare oneDNN bf16
 * matmuls (operands already bf16: what the GEMMs could reach), and each pass that is not a GEMM timed by itself.
 * All measured in the same run, in alternating rounds (the machine is shared), medians printed.
 *
 *   step_profile fp32|bf16 BATCH [HIDDEN1 HIDDEN2]     (784-H1-H2-10, ReLU, 2000 reps per round)
 *
 * A development tool (README "bf16 mixed precision"), not a test. */
#include <math.h>
#include <oneapi/dnnl/dnnl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mpitrain/blas.h"
#include "mpitrain/gemm.h"
#include "mpitrain/init.h"
#include "mpitrain/loss.h"
#include "mpitrain/model.h"

#define ROUNDS 7
#define CK(x)                                                          \
  do {                                                                 \
    if ((x) != dnnl_success) {                                         \
      fprintf(stderr, "step_profile: %s failed\n", #x);                \
      exit(1);                                                         \
    }                                                                  \
  } while (0)

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A bare matmul: bf16 in, f32 out, A or B transposed in memory when at, bt. */
typedef struct Mm {
  dnnl_primitive_t p;
  dnnl_memory_t a, b, c, bias; /* bias: forward only */
} Mm;

/* One bare matmul C [M, N] = A [M, K] · B [K, N] (+ bias [1, N] when bias), as the model's products are made. */
static void mm_make(Mm *mm, dnnl_engine_t eng, int M, int K, int N, int at, int bt, int bias) {
  dnnl_memory_desc_t ad, bd, cd, biasd;
  dnnl_dims_t as = {M, K}, bs = {K, N}, cs = {M, N}, ast = {1, M}, bst = {1, K}, biass = {1, N};
  if (at) CK(dnnl_memory_desc_init_by_strides(&ad, 2, as, dnnl_bf16, ast));
  else CK(dnnl_memory_desc_init_by_tag(&ad, 2, as, dnnl_bf16, dnnl_ab));
  if (bt) CK(dnnl_memory_desc_init_by_strides(&bd, 2, bs, dnnl_bf16, bst));
  else CK(dnnl_memory_desc_init_by_tag(&bd, 2, bs, dnnl_bf16, dnnl_ab));
  CK(dnnl_memory_desc_init_by_tag(&cd, 2, cs, dnnl_f32, dnnl_ab));
  CK(dnnl_memory_desc_init_by_tag(&biasd, 2, biass, dnnl_f32, dnnl_ab));
  dnnl_matmul_desc_t d;
  CK(dnnl_matmul_desc_init(&d, &ad, &bd, bias ? &biasd : NULL, &cd));
  mm->bias = NULL;
  if (bias) CK(dnnl_memory_create(&mm->bias, &biasd, eng, DNNL_MEMORY_ALLOCATE));
  dnnl_primitive_desc_t pd;
  CK(dnnl_primitive_desc_create(&pd, &d, NULL, eng, NULL));
  CK(dnnl_primitive_create(&mm->p, pd));
  dnnl_primitive_desc_destroy(pd);
  CK(dnnl_memory_create(&mm->a, &ad, eng, DNNL_MEMORY_ALLOCATE));
  CK(dnnl_memory_create(&mm->b, &bd, eng, DNNL_MEMORY_ALLOCATE));
  CK(dnnl_memory_create(&mm->c, &cd, eng, DNNL_MEMORY_ALLOCATE));
  /* Real values (fresh pages would all map the zero page and flatter the caches). */
  const dnnl_memory_t ops[2] = {mm->a, mm->b};
  const size_t counts[2] = {(size_t)M * K, (size_t)K * N};
  for (int o = 0; o < 2; o++) {
    void *h = NULL;
    CK(dnnl_memory_get_data_handle(ops[o], &h));
    for (size_t i = 0; i < counts[o]; i++) ((uint16_t *)h)[i] = mt_bf16_from_float((float)sin(0.37 * (double)i));
  }
  float *c = NULL;
  CK(dnnl_memory_get_data_handle(mm->c, (void **)&c));
  memset(c, 0, sizeof(float) * (size_t)M * N);
  if (bias) {
    CK(dnnl_memory_get_data_handle(mm->bias, (void **)&c));
    for (int j = 0; j < N; j++) c[j] = 0.01f * (float)j;
  }
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

enum { T_STEP, T_FWD, T_GEMMS, T_STAGED, T_BARE, T_STAGE_W, T_CONV_X0, T_ACT_FWD, T_CONV_ACT, T_LOSS, T_ACT_BWD, T_CONV_DY, T_DB, NT };
static const char *const names[NT] = {"forward+loss+backward", "  of which forward", "its GEMMs (mt_model_run_gemms)",
                                      "its GEMMs alone (bf16: operands staged)",
                                      "bare oneDNN matmuls, same shapes", "  weights -> bf16 (staging)",
                                      "  input X -> bf16", "  activation forward (all hidden)",
                                      "  activations -> bf16", "  softmax + loss + dlogits",
                                      "  activation backward (all hidden)", "  dY -> bf16 (all layers)",
                                      "  bias gradient sum dY (all layers)"};

/* The products of a step through the GEMM interface; bf16: on the operands the last step left in the handle's
 * buffers (x and dy NULL: no conversion), so this is the GEMMs alone. fp32: mt_model_run_gemms. */
static void staged_gemms(Model *m, const float *x, const float *dl, int B) {
  if (mt_gemm_precision(m->gemm) != PRECISION_BF16) {
    mt_model_run_gemms(m, x, dl, B);
    return;
  }
  int k = 0, dense[3];
  for (int i = 0; i < m->n_layers; i++)
    if (m->layers[i].kind == LAYER_DENSE) dense[k++] = i;
  for (k = 0; k < 3; k++) {
    const Layer *l = &m->layers[dense[k]];
    mt_gemm_forward(m->gemm, k, NULL, m->params + l->w_off, m->params + l->b_off, l->y, 0, B);
  }
  for (k = 2; k >= 0; k--) {
    const Layer *l = &m->layers[dense[k]];
    mt_gemm_backward(m->gemm, k, NULL, NULL, m->params + l->w_off, m->grads + l->w_off, 0.0f, k ? m->dbuf[0] : NULL,
                     0, B);
  }
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: step_profile fp32|bf16 BATCH [H1 H2]\n");
    return 2;
  }
  const int bf = strcmp(argv[1], "bf16") == 0, B = atoi(argv[2]);
  const int H1 = argc > 3 ? atoi(argv[3]) : 512, H2 = argc > 4 ? atoi(argv[4]) : 256, D = 784, C = 10, REPS = 400;
  mt_blas_set_threads(1);
  ModelSpec spec = {.n_inputs = D, .n_classes = C, .n_hidden = 2, .hidden = {H1, H2}, .act = ACT_RELU};
  Model m;
  MtError err = {0};
  if (mt_model_create(&m, &spec, B, &err) || mt_model_set_precision(&m, bf ? PRECISION_BF16 : PRECISION_FP32, NULL, 0, &err)) {
    fprintf(stderr, "step_profile: %s\n", err.msg);
    return 1;
  }
  mt_init_params(&m, INIT_HE, 1);
  float *x = malloc(sizeof(float) * (size_t)B * D), *dl = malloc(sizeof(float) * (size_t)B * C);
  float *tmp = malloc(sizeof(float) * (size_t)B * H1), *db = calloc((size_t)H1, sizeof(float));
  uint16_t *hb = malloc(sizeof(uint16_t) * (size_t)B * D);
  int32_t *y = malloc(sizeof(int32_t) * (size_t)B);
  for (int i = 0; i < B * D; i++) x[i] = (float)sin(0.37 * i);
  for (int r = 0; r < B; r++) y[r] = r % C;
  const int widths[3] = {H1, H2, C}, ins[3] = {D, H1, H2};

  dnnl_engine_t eng;
  dnnl_stream_t st;
  CK(dnnl_engine_create(&eng, dnnl_cpu, 0));
  CK(dnnl_stream_create(&st, eng, dnnl_stream_default_flags));
  Mm mms[8];
  int nm = 0;
  for (int d = 0; d < 3; d++) {
    mm_make(&mms[nm++], eng, B, ins[d], widths[d], 0, 1, 1);  /* Y = X·Wᵀ + b */
    mm_make(&mms[nm++], eng, widths[d], B, ins[d], 1, 0, 0);  /* dW = dYᵀ·X */
    if (d > 0) mm_make(&mms[nm++], eng, B, widths[d], ins[d], 0, 0, 0); /* dX = dY·W */
  }

  double t[NT][ROUNDS];
  const ModelContext ctx = {.train = 1, .batch_rows = B};
  for (int round = 0; round < ROUNDS; round++) {
    double t0 = now();
    for (int k = 0; k < REPS; k++) {
      LossSums s = {0, 0};
      const float *lg = mt_model_forward_ctx(&m, x, B, &ctx);
      mt_loss_softmax_xent(lg, y, B, C, 1.0f / B, dl, &s);
      mt_model_backward(&m, x, dl, B, 0);
    }
    t[T_STEP][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++) mt_model_forward_ctx(&m, x, B, &ctx);
    t[T_FWD][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++) mt_model_run_gemms(&m, x, dl, B);
    t[T_GEMMS][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++) staged_gemms(&m, x, dl, B);
    t[T_STAGED][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++)
      for (int i = 0; i < nm; i++) {
        dnnl_exec_arg_t a[4] = {{DNNL_ARG_SRC, mms[i].a}, {DNNL_ARG_WEIGHTS, mms[i].b}, {DNNL_ARG_DST, mms[i].c},
                                {DNNL_ARG_BIAS, mms[i].bias}};
        CK(dnnl_primitive_execute(mms[i].p, st, mms[i].bias ? 4 : 3, a));
        CK(dnnl_stream_wait(st));
      }
    t[T_BARE][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++) mt_gemm_stage_weights(m.gemm, m.params);
    t[T_STAGE_W][round] = now() - t0;
    t0 = now();
    for (int k = 0; k < REPS; k++) mt_bf16_convert(x, hb, (size_t)B * D);
    t[T_CONV_X0][round] = now() - t0;
    double fa = 0, ca = 0, ba = 0, cd = 0, sd = 0;
    for (int d = 0; d < 3; d++) {
      const size_t n = (size_t)B * (size_t)widths[d];
      for (size_t i = 0; i < n; i++) tmp[i] = (float)sin(0.1 * (double)i);
      if (d < 2) {
        t0 = now();
        for (int k = 0; k < REPS; k++) mt_act_forward(ACT_RELU, 0, tmp, n);
        fa += now() - t0;
        t0 = now();
        for (int k = 0; k < REPS; k++) mt_bf16_convert(tmp, hb, n);
        ca += now() - t0;
        t0 = now();
        for (int k = 0; k < REPS; k++) mt_act_backward(ACT_RELU, 0, tmp, tmp, n);
        ba += now() - t0;
      }
      t0 = now();
      for (int k = 0; k < REPS; k++) mt_bf16_convert(tmp, hb, n);
      cd += now() - t0;
      t0 = now();
      for (int k = 0; k < REPS; k++) { /* the model's loop */
        memset(db, 0, sizeof(float) * (size_t)widths[d]);
        for (int r = 0; r < B; r++)
          for (int j = 0; j < widths[d]; j++) db[j] += tmp[(size_t)r * widths[d] + j];
      }
      sd += now() - t0;
    }
    t[T_ACT_FWD][round] = fa, t[T_CONV_ACT][round] = ca, t[T_ACT_BWD][round] = ba, t[T_CONV_DY][round] = cd;
    t[T_DB][round] = sd;
    const float *lg = mt_model_forward(&m, x, B);
    memcpy(tmp, lg, sizeof(float) * (size_t)B * C);
    t0 = now();
    for (int k = 0; k < REPS; k++) {
      LossSums s = {0, 0};
      mt_loss_softmax_xent(tmp, y, B, C, 1.0f / B, dl, &s);
    }
    t[T_LOSS][round] = now() - t0;
  }
  const double flops = mt_model_gemm_flops(&m, B);
  printf("%s batch %d, 784-%d-%d-10 ReLU, 1 thread, kernel %s, median of %d rounds x %d reps (ms per step)\n",
         argv[1], B, H1, H2, mt_gemm_kernel(m.gemm), ROUNDS, REPS);
  double med[NT];
  for (int i = 0; i < NT; i++) {
    qsort(t[i], ROUNDS, sizeof(double), cmp);
    med[i] = t[i][ROUNDS / 2] / REPS * 1e3;
    printf("  %-38s %8.4f", names[i], med[i]);
    if (i <= T_BARE && i != T_FWD) printf("   %7.1f GFLOP/s", flops / (med[i] * 1e-3) / 1e9);
    printf("\n");
  }
  printf("  GEMMs alone / bare matmuls: %.1f %% of the bare speed; step - GEMMs alone: %.4f ms = %.1f %% of the step\n",
         100 * med[T_BARE] / med[T_STAGED], med[T_STEP] - med[T_STAGED],
         100 * (med[T_STEP] - med[T_STAGED]) / med[T_STEP]);
  printf("  step - bare matmuls: %.4f ms = %.1f %% of the step\n", med[T_STEP] - med[T_BARE],
         100 * (med[T_STEP] - med[T_BARE]) / med[T_STEP]);
  return 0;
}
