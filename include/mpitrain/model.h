/* model.h — the multi-layer perceptron: a list of layers over flat parameter and gradient buffers.
 *
 * Memory layout (README "How a training step works"): all parameters live in one float buffer `params`, all
 * gradients in `grads` with the same offsets, and the non-trainable state (batch-norm running statistics) in
 * `state`. A layer only records offsets into them. Activations are allocated once for `max_batch` rows. Nothing
 * here allocates after mt_model_create, talks to MPI or reads files: batch normalisation, which needs statistics of
 * the whole global batch, gets them through a reduction callback the caller provides. */
#ifndef MPITRAIN_MODEL_H
#define MPITRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"
#include "mpitrain/gemm.h"

#define MODEL_MAX_HIDDEN 16
/* grads has MODEL_GRAD_TAIL floats after the n_params gradients: scratch for values that ride along in the same
 * in-place reduction as the gradients (loss and accuracy sums, an error flag), so a step needs one collective. */
#define MODEL_GRAD_TAIL 16

typedef enum ActKind { ACT_RELU = 0, ACT_LEAKY_RELU, ACT_TANH, ACT_SIGMOID, ACT_COUNT } ActKind;
/* Its names, in enum order and NULL-terminated (the option table's choices too); mt_act_name / mt_act_from_name. */
extern const char *const mt_act_names[ACT_COUNT + 1];
typedef enum LayerKind { LAYER_DENSE = 0, LAYER_ACT, LAYER_BN, LAYER_DROPOUT } LayerKind;
/* Where batch normalisation goes in each hidden block: dense → BN → act, or dense → act → BN. */
typedef enum BnPlace { BN_NONE = 0, BN_BEFORE, BN_AFTER, BN_COUNT } BnPlace;
/* Its names, as mt_act_names; mt_bn_place_name / mt_bn_place_from_name. */
extern const char *const mt_bn_place_names[BN_COUNT + 1];

typedef struct ModelSpec {
  int n_inputs;                    /* D, features per sample */
  int n_classes;                   /* C, width of the softmax output */
  int n_hidden;                    /* number of hidden dense layers */
  int hidden[MODEL_MAX_HIDDEN];    /* their widths */
  ActKind act;                     /* activation after every hidden dense layer */
  float leaky_slope;               /* slope for x < 0 with ACT_LEAKY_RELU */
  BnPlace bn;                      /* batch normalisation in every hidden block, and where */
  float bn_momentum;               /* running = (1 - momentum)·running + momentum·batch (PyTorch's convention) */
  float bn_eps;                    /* added to the variance */
  float dropout[MODEL_MAX_HIDDEN]; /* inverted-dropout rate after hidden block k (0 = none) */
} ModelSpec;

typedef struct Layer {
  LayerKind kind;
  char name[24];     /* "dense0", "relu0", "bn0", "dropout0": names in checkpoints and logs */
  int block;         /* the hidden block (or output layer) it belongs to */
  int in, out;       /* features in and out (equal for all but dense) */
  size_t w_off;      /* dense: W [out, in]; BN: gamma [out] — offsets in params/grads */
  size_t b_off;      /* dense: b [out]; BN: beta [out] */
  int has_bias;      /* dense: 0 when batch normalisation follows directly (its beta is the bias; a bias before
                      * it would only receive rounding noise, which Adam would amplify into drift) */
  size_t s_off;      /* BN: running mean [out] then running variance [out], offsets in state */
  ActKind act;       /* activation kind */
  float slope;       /* leaky ReLU slope */
  float p;           /* dropout rate */
  float *y;          /* output [max_batch, out]; activations work in place, so y == the previous layer's y */
  float *aux;        /* BN: x̂ [max_batch, out]; dropout: the mask's scale factors [max_batch, out] */
  float *stat;       /* BN: 1/sqrt(var + eps) [out] of the last training forward */
} Layer;

/* In-place SUM of buf over all replicas that share the global batch (an MPI allreduce in the trainer). */
typedef void (*ModelReduceFn)(void *arg, double *buf, size_t n);

/* What a forward pass needs to know beyond its rows. */
typedef struct ModelContext {
  int train;                  /* 1: batch statistics and dropout; 0: running statistics, no dropout */
  uint64_t seed;              /* dropout masks: keyed by (seed, step, block, sample id, unit) ... */
  int64_t step;               /* ... so a sample's mask is the same whichever rank processes it */
  const int64_t *sample_ids;  /* [n] global ids of the rows */
  int64_t batch_rows;         /* rows of the whole global batch: batch-norm statistics are over all of them */
  ModelReduceFn reduce;       /* sums batch-norm statistics over the replicas; NULL: this process holds them all */
  void *reduce_arg;
  /* Called during backward each time a layer's gradients are complete: params [offset, n_params) are final (the
   * trainer sets it for the last micro-batch only, to start reducing them while backward goes on). */
  void (*grad_ready)(void *arg, size_t offset);
  void *grad_ready_arg;
  /* > 0, with grad_ready: each dense layer's weight gradient in blocks of about this many floats, of whole rows of
   * W (output units, mt_model_dw_block_rows), computed from the last block to the first, with grad_ready after each:
   * the reduction of a large W starts before all of it is computed (the first layer's W, 75 % of the default model's
   * gradient, is the last thing backward computes). The bias gradient is computed before the blocks. 0: each W in
   * one GEMM. A block's GEMM may round differently from the whole one's (OpenBLAS picks its kernels by shape). */
  size_t dw_block;
  /* --deterministic (det.h): every GEMM and every sum over rows runs on one group of `group` rows at a time (rows
   * 0..group-1, group.., the last one shorter), so its bits do not depend on how many groups a rank holds (0: all n
   * rows at once). Backward then writes each group's own gradient of a layer into grads (no accumulation) and
   * hands it to group_grads; batch-norm sums over the global batch go through reduce_groups, one partial vector per
   * group, instead of reduce. group_parts: scratch [ceil(max_batch / group)][2 · max_width]. */
  int group;
  void (*group_grads)(void *arg, const float *grads, size_t offset, size_t count);
  void (*reduce_groups)(void *arg, const double *parts, size_t len, double *out);
  void *group_arg;
  double *group_parts;
} ModelContext;

typedef struct Model {
  ModelSpec spec;
  int n_layers;
  Layer *layers;
  size_t n_params;    /* floats in params and grads */
  float *params;      /* [n_params] */
  float *grads;       /* [n_params + MODEL_GRAD_TAIL] */
  size_t n_state;     /* floats in state */
  float *state;       /* [n_state] batch-norm running statistics (not trained by the optimiser) */
  int max_batch;      /* rows the activation buffers hold */
  int max_width;      /* widest layer output */
  float *act_mem;     /* backing store of every layer's y and aux */
  float *dbuf[2];     /* backward ping-pong [max_batch, max_width] */
  double *red;        /* [2 * max_width] batch-norm reduction scratch */
  ModelContext ctx;   /* of the last forward pass (backward uses it) */
  MtGemm *gemm;       /* the dense layers' GEMMs (gemm.h): fp32 from mt_model_create, mt_model_set_precision */
} Model;

/* Builds the layer list dense0 [bn0] act0 [bn0] [dropout0] dense1 ... denseL (logits), allocates everything, and
 * sets batch-norm gamma = 1, beta = 0, running mean 0 and variance 1 (weights are init.h's job). */
int mt_model_create(Model *m, const ModelSpec *spec, int max_batch, MtError *err);
/* Bytes mt_model_create would allocate (parameters, gradients, statistics, activations), computed without allocating:
 * to refuse an absurd model with a message before asking for the memory. */
double mt_model_plan_bytes(const ModelSpec *spec, int max_batch);
void mt_model_free(Model *m);
/* The precision of the dense layers' GEMMs (resolved: fp32 or bf16; mt_model_create sets fp32). bf16 allocates its
 * buffers and creates its primitives here, for max_batch rows and each of rows[0..n_rows): call it at start-up
 * with every row count the forward and backward passes will see. 0, or -1 with err set (the model unchanged). */
int mt_model_set_precision(Model *m, MtPrecision p, const int *rows, int n_rows, MtError *err);
/* The GEMM shapes of the model's dense layers, in order, into dense [MODEL_MAX_HIDDEN + 1]; returns how many. */
int mt_model_dense_shapes(const Model *m, MtGemmDense *dense);
int mt_model_has_bn(const Model *m);

/* Inference forward pass for n <= max_batch rows of x [n, n_inputs]; returns the logits [n, n_classes]. */
const float *mt_model_forward(Model *m, const float *x, int n);
/* Forward pass in the given context (training: ctx->train = 1). */
const float *mt_model_forward_ctx(Model *m, const float *x, int n, const ModelContext *ctx);

/* Backward pass given dlogits [n, n_classes] (the loss gradient w.r.t. the logits of the last forward, whose
 * input x must still be valid). accumulate = 0 overwrites grads, 1 adds to them (micro-batches; not in group
 * mode, where grads holds one group's gradient at a time). A training
 * forward with batch normalisation calls ctx->reduce once per BN layer, and backward once more per BN layer: every
 * replica must make the same calls. */
void mt_model_backward(Model *m, const float *x, const float *dlogits, int n, int accumulate);
/* Rows of W (output units) per weight-gradient block of a dense layer [out, in] for ModelContext.dw_block = floats:
 * W cut into ceil(out·in / floats) blocks of equal rows, rounded up to a multiple of 16 (the GEMM's efficiency), or
 * out (one block) when floats is 0, W is not larger, or the GEMMs are bf16 (oneDNN's primitives are made per shape:
 * blocks are not built there, and the trainer plans none). Block k holds rows [k·rows, min(out, (k+1)·rows)). The
 * trainer cuts its gradient buckets at the same rows. */
int mt_model_dw_block_rows(const Model *m, int out, int in, size_t floats);

/* Only the GEMMs of one forward + backward pass over n rows (same calls, shapes and buffers as training, no
 * bias, activation or loss work): what the benchmark times as the roofline a training step could reach. */
void mt_model_run_gemms(Model *m, const float *x /* [n, n_inputs] */, const float *dlogits /* [n, n_classes] */, int n);

/* A named tensor: a view into params (and, at the same offset, grads and the optimiser's moments) or into state. */
typedef struct ModelTensor {
  char name[40];   /* "dense0/W", "dense0/b", "bn0/gamma", "bn0/running_mean", ... */
  size_t offset;   /* into params (mt_model_tensors) or state (mt_model_state_tensors) */
  size_t count;    /* floats */
  int rank;        /* 1 or 2 */
  int dims[2];     /* [out, in] for W, [out] otherwise */
  int decay;       /* 1 for weight matrices: what L2 and weight decay apply to (not biases, not gamma/beta) */
} ModelTensor;

/* The parameter tensors in buffer order (so concatenating them gives params). Returns how many; fills at most max. */
int mt_model_tensors(const Model *m, ModelTensor *out, int max);
/* The state tensors (batch-norm running statistics) in buffer order. */
int mt_model_state_tensors(const Model *m, ModelTensor *out, int max);

/* Floating-point operations of one forward+backward pass over n rows, counting only the GEMMs
 * (2·m·n·k each); used by the benchmark. The first layer's input gradient is not computed. */
double mt_model_gemm_flops(const Model *m, int n);

/* Activation name <-> kind ("relu", "leaky_relu", "tanh", "sigmoid"). mt_act_from_name returns -1 if unknown. */
const char *mt_act_name(ActKind a);
int mt_act_from_name(const char *s);
const char *mt_bn_place_name(BnPlace b); /* "none", "before", "after" */
int mt_bn_place_from_name(const char *s);

/* Elementwise activation and its derivative written in terms of the output y (exact for all four kinds). */
void mt_act_forward(ActKind a, float slope, float *y /* [n] in place */, size_t n);
void mt_act_backward(ActKind a, float slope, const float *y /* [n] */, float *dy /* [n] in place */, size_t n);

/* The inverted-dropout factor of (sample, unit) in hidden block `block` at `step`: 0 (dropped, with probability p)
 * or 1/(1-p). A pure function of its arguments: the same on every rank and for any rank count. */
float mt_model_dropout_factor(uint64_t seed, int64_t step, int block, int64_t sample, int unit, float p);

#endif
