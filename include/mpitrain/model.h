/* model.h — the multi-layer perceptron: a list of layers over flat parameter and gradient buffers.
 *
 * Memory layout (see docs in README "Design"): all parameters live in one float buffer `params`, all gradients
 * in `grads` with the same offsets. A layer only records offsets into them. Activations are allocated once for
 * `max_batch` rows. Nothing here allocates after model_create, talks to MPI or reads files. */
#ifndef MPITRAIN_MODEL_H
#define MPITRAIN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "mpitrain/error.h"

#define MODEL_MAX_HIDDEN 16
/* grads has MODEL_GRAD_TAIL floats after the n_params gradients: scratch for values that ride along in the same
 * in-place reduction as the gradients (loss and accuracy sums, an error flag), so a step needs one collective. */
#define MODEL_GRAD_TAIL 16

typedef enum ActKind { ACT_RELU = 0, ACT_LEAKY_RELU, ACT_TANH, ACT_SIGMOID, ACT_COUNT } ActKind;
typedef enum LayerKind { LAYER_DENSE = 0, LAYER_ACT } LayerKind;

typedef struct ModelSpec {
  int n_inputs;                    /* D, features per sample */
  int n_classes;                   /* C, width of the softmax output */
  int n_hidden;                    /* number of hidden dense layers */
  int hidden[MODEL_MAX_HIDDEN];    /* their widths */
  ActKind act;                     /* activation after every hidden dense layer */
  float leaky_slope;               /* slope for x < 0 with ACT_LEAKY_RELU */
} ModelSpec;

typedef struct Layer {
  LayerKind kind;
  char name[24];     /* "dense0", "relu0", ...: names in checkpoints and logs */
  int in, out;       /* features in and out (equal for activations) */
  size_t w_off;      /* dense: offset of W [out, in] in params/grads */
  size_t b_off;      /* dense: offset of b [out] */
  ActKind act;       /* activation kind */
  float slope;       /* leaky ReLU slope */
  float *y;          /* output [max_batch, out]; activations are in place, so y == the previous layer's y */
} Layer;

typedef struct Model {
  ModelSpec spec;
  int n_layers;
  Layer *layers;
  size_t n_params;    /* floats in params and grads */
  float *params;      /* [n_params] */
  float *grads;       /* [n_params + MODEL_GRAD_TAIL] */
  int max_batch;      /* rows the activation buffers hold */
  int max_width;      /* widest layer output */
  float *act_mem;     /* backing store of every layer's y */
  float *dbuf[2];     /* backward ping-pong [max_batch, max_width] */
} Model;

/* Builds the layer list dense0 act0 dense1 act1 ... denseL (logits) and allocates everything. */
int model_create(Model *m, const ModelSpec *spec, int max_batch, MtError *err);
void model_free(Model *m);

/* Forward pass for n <= max_batch rows of x [n, n_inputs]; returns the logits [n, n_classes]. */
const float *model_forward(Model *m, const float *x, int n);

/* Backward pass given dlogits [n, n_classes] (the loss gradient w.r.t. the logits of the last forward, whose
 * input x must still be valid). accumulate = 0 overwrites grads, 1 adds to them (micro-batches). */
void model_backward(Model *m, const float *x, const float *dlogits, int n, int accumulate);

/* Only the GEMMs of one forward + backward pass over n rows (same calls, shapes and buffers as training, no
 * bias, activation or loss work): what the benchmark times as the roofline a training step could reach. */
void model_run_gemms(Model *m, const float *x /* [n, n_inputs] */, const float *dlogits /* [n, n_classes] */, int n);

/* A named parameter tensor: a view into params (and, at the same offset, grads and the optimiser's moments). */
typedef struct ModelTensor {
  char name[40];   /* "dense0/W", "dense0/b", ... */
  size_t offset;   /* into params */
  size_t count;    /* floats */
  int rank;        /* 1 or 2 */
  int dims[2];     /* [out, in] for W, [out] for b */
} ModelTensor;

/* Lists the parameter tensors in buffer order (so concatenating them gives params). Returns how many; fills at
 * most max. */
int model_tensors(const Model *m, ModelTensor *out, int max);

/* Dense-layer parameter views. */
float *model_weight(Model *m, const Layer *l);
float *model_bias(Model *m, const Layer *l);

/* Floating-point operations of one forward+backward pass over n rows, counting only the GEMMs
 * (2·m·n·k each); used by the benchmark. The first layer's input gradient is not computed. */
double model_gemm_flops(const Model *m, int n);

/* Activation name <-> kind ("relu", "leaky_relu", "tanh", "sigmoid"). act_from_name returns -1 if unknown. */
const char *act_name(ActKind a);
int act_from_name(const char *s);

/* Elementwise activation and its derivative written in terms of the output y (exact for all four kinds). */
void act_forward(ActKind a, float slope, float *y /* [n] in place */, size_t n);
void act_backward(ActKind a, float slope, const float *y /* [n] */, float *dy /* [n] in place */, size_t n);

#endif
