/* test_ckptmeta_mpi.c — mt_checkpoint_meta_broadcast at 4 ranks: every byte of CheckpointMeta reaches every rank, and
 * the heap fields (config, mean, std, class_names) arrive as copies of their contents, from any root; the bf16
 * residuals (gc_worker, gc_server) stay on the root.
 *
 * The root fills the whole struct with a byte pattern (so a field added to CheckpointMeta without being broadcast
 * shows up as bytes that differ), then points the heap fields at real data; the other ranks start zeroed. */
#include <mpi.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mpitrain/checkpoint.h"
#include "mpitrain/comm.h"

#include "mpi_check.h"

enum { N_INPUTS = 3, N_CLASSES = 4 };

/* The root's meta for pattern seed s; with_heap = 0: every heap field NULL. */
static void fill(CheckpointMeta *m, int s, int with_heap) {
  unsigned char *b = (unsigned char *)m;
  for (size_t i = 0; i < sizeof *m; i++) b[i] = (unsigned char)(i * 31 + 7 + (size_t)s);
  m->spec.n_inputs = N_INPUTS;
  m->spec.n_classes = N_CLASSES;
  m->config = NULL;
  m->mean = m->std = NULL;
  m->class_names = NULL;
  m->gc_worker = m->gc_server = NULL;
  if (!with_heap) return;
  m->gc_worker = calloc(8, sizeof(float));
  m->gc_server = calloc(4, sizeof(float));
  m->config = strdup("[train]\nepochs = 3\n");
  m->mean = malloc(sizeof(float) * N_INPUTS);
  m->std = malloc(sizeof(float) * N_INPUTS);
  m->class_names = calloc(N_CLASSES, sizeof *m->class_names);
  for (int j = 0; j < N_INPUTS; j++) m->mean[j] = 0.5f * (float)(j + s), m->std[j] = 2.0f + (float)j;
  for (int k = 0; k < N_CLASSES; k++) {
    char name[32];
    snprintf(name, sizeof name, k == 2 ? "" : "class-%d-%d", k, s); /* an empty name too */
    m->class_names[k] = strdup(name);
  }
}

/* The struct without its heap pointers, to compare as bytes. */
static CheckpointMeta plain(const CheckpointMeta *m) {
  CheckpointMeta p = *m;
  p.config = NULL;
  p.mean = p.std = NULL;
  p.class_names = NULL;
  p.gc_worker = p.gc_server = NULL;
  return p;
}

static void check_from(Comm *c, int root, int with_heap) {
  CheckpointMeta want, got;
  fill(&want, root, with_heap);
  if (c->rank == root)
    fill(&got, root, with_heap);
  else
    memset(&got, 0, sizeof got);
  MtError err = {0};
  CHECK(mt_checkpoint_meta_broadcast(c, &got, root, &err) == 0, "rank %d: %s", c->rank, err.msg);
  CheckpointMeta a = plain(&want), b = plain(&got);
  const unsigned char *x = (const unsigned char *)&a, *y = (const unsigned char *)&b;
  size_t first = sizeof a;
  for (size_t i = 0; i < sizeof a && first == sizeof a; i++)
    if (x[i] != y[i]) first = i;
  CHECK(first == sizeof a, "rank %d, root %d: byte %zu of CheckpointMeta (of %zu) is not the root's: a field is not "
        "broadcast", c->rank, root, first, sizeof a);
  if (with_heap) {
    CHECK(got.config && strcmp(got.config, want.config) == 0, "rank %d: config not broadcast", c->rank);
    CHECK(got.mean && memcmp(got.mean, want.mean, sizeof(float) * N_INPUTS) == 0, "rank %d: mean", c->rank);
    CHECK(got.std && memcmp(got.std, want.std, sizeof(float) * N_INPUTS) == 0, "rank %d: std", c->rank);
    CHECK(got.class_names != NULL, "rank %d: class_names not broadcast", c->rank);
    for (int k = 0; got.class_names && k < N_CLASSES; k++)
      CHECK(strcmp(got.class_names[k], want.class_names[k]) == 0, "rank %d: class_names[%d] '%s'", c->rank, k,
            got.class_names[k]);
    CHECK(c->rank == root || (got.config != want.config && got.mean != want.mean), "rank %d: not copies", c->rank);
    /* The bf16 residuals stay with the rank that read them (the trainer scatters them). */
    CHECK(c->rank == root ? got.gc_worker != NULL : !got.gc_worker && !got.gc_server, "rank %d: gc arrays", c->rank);
  } else {
    CHECK(!got.config && !got.mean && !got.std && !got.class_names, "rank %d: NULL heap fields arrived", c->rank);
  }
  mt_checkpoint_meta_free(&want);
  mt_checkpoint_meta_free(&got);
}

int main(int argc, char **argv) {
  Comm c;
  mpi_check_start(&argc, &argv, &c);
  for (int root = 0; root < c.size; root++) {
    check_from(&c, root, 1);
    check_from(&c, root, 0);
  }
  return mpi_check_finish(&c);
}
