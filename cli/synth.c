/* synth.c — `mpitrain synth`: a generated classification dataset of any size (synth.h), written in chunks with
 * bounded memory by mt_write_set (writeset.h); under mpirun shard k is written by rank k % ranks. */
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"
#include "mpitrain/import.h"
#include "mpitrain/synth.h"
#include "mpitrain/util.h"
#include "mpitrain/writeset.h"

static const char *const dtype_choices[] = {"float32", "uint8", NULL};

typedef struct SynthOptions {
  int64_t samples, test_samples;
  int features, classes;
  int64_t seed;
  float noise;
  int dtype;  /* 0 float32, 1 uint8 */
  char out[CLI_PATH];
  int shards, gzip;
  float stall_timeout;
} SynthOptions;

#define SO(f) offsetof(SynthOptions, f)
/* clang-format off */
static const OptionSpec synth_options[] = {
  {.name = "samples", .type = OT_INT64, .offset = SO(samples), .metavar = "N", .min = 1, .max = DATA_MAX_ROWS,
   .flags = OPT_RANGED, .help = "training rows (required)"},
  {.name = "test-samples", .type = OT_INT64, .offset = SO(test_samples), .def = "0", .metavar = "M", .min = 0,
   .max = DATA_MAX_ROWS, .flags = OPT_RANGED, .help = "test rows"},
  {.name = "features", .type = OT_INT, .offset = SO(features), .metavar = "D", .min = 1, .max = DATA_MAX_FEATURES,
   .flags = OPT_RANGED, .help = "features per row (required)"},
  {.name = "classes", .type = OT_INT, .offset = SO(classes), .metavar = "C", .min = 2, .max = DATA_MAX_CLASSES,
   .flags = OPT_RANGED, .help = "number of classes (required)"},
  {.name = "seed", .type = OT_INT64, .offset = SO(seed), .def = "1", .metavar = "S", .min = 0, .max = NOMAX,
   .flags = OPT_RANGED, .help = "seed: the same seed gives the same rows whatever --shards and ranks"},
  {.name = "noise", .type = OT_FLOAT, .offset = SO(noise), .def = "1", .metavar = "X", .min = 0, .max = NOMAX,
   .flags = OPT_RANGED, .help = "standard deviation of the noise around the class centres (centres are N(0,1))"},
  {.name = "dtype", .type = OT_ENUM, .offset = SO(dtype), .def = "float32", .choices = dtype_choices,
   .help = "stored type; uint8 quantises [-4s, 4s] (s = sqrt(1 + noise^2)) to 0..255, with scale/mean set so "
           "features come back within one step"},
  {.name = "out", .type = OT_STRING, .offset = SO(out), .size = sizeof(((SynthOptions *)0)->out),
   .metavar = "FILE.h5", .help = "dataset to write (required); with --shards K: FILE-00000-of-0000K.h5 ..."},
  {.name = "shards", .type = OT_INT, .offset = SO(shards), .def = "1", .metavar = "K", .min = 1,
   .max = DATA_MAX_SHARDS, .flags = OPT_RANGED,
   .help = "split the rows over K files; under mpirun shard k is written by rank k % ranks"},
  {.name = "gzip", .type = OT_INT, .offset = SO(gzip), .def = "0", .metavar = "L", .min = 0, .max = 9,
   .flags = OPT_RANGED, .help = "deflate level of the stored arrays (0 = none)"},
  COMM_STALL_OPTION(SynthOptions, stall_timeout),
  {.name = NULL},
};
/* clang-format on */
static const CliUsage synth_usage = {
    .usage = "mpitrain synth --samples N --features D --classes C --out FILE.h5 [options]",
    .summary = "Writes a generated classification dataset of any size: Gaussian clusters around N(0,1) class\n"
               "centres, in chunks with bounded memory. Row i is a function of (seed, split, i) only, so any\n"
               "--shards and any number of ranks write the same rows.",
    .example = "  mpirun -np 4 mpitrain synth --samples 10000000 --test-samples 100000 --features 1024 "
               "--classes 100 --shards 8 --out big.h5\n"};

typedef struct SynthSource {
  SynthSpec spec;
  float *centres;  /* [classes, d] */
  int uint8;
  float lo, step;  /* uint8: x is stored as round((x - lo) / step) */
  float *tmp;      /* uint8: [chunk, d] floats before quantising */
} SynthSource;

static int synth_fill(void *ctx, int s, int64_t first, int64_t n, void *x /* [n, d] */, int32_t *y /* [n] */,
                      MtError *err) {
  (void)err;
  SynthSource *src = ctx;
  int d = src->spec.d;
  if (!src->uint8) {
    mt_synth_rows(&src->spec, src->centres, s, first, n, x, y);
    return 0;
  }
  mt_synth_rows(&src->spec, src->centres, s, first, n, src->tmp, y);
  uint8_t *q = x;
  for (int64_t i = 0; i < n * d; i++) {
    float v = rintf((src->tmp[i] - src->lo) / src->step);
    q[i] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
  }
  return 0;
}

/* The options the table's ranges cannot check; 0 or -1 (err set, to be agreed). */
static int synth_check(const SynthOptions *o, const OptsResult *res, MtError *err) {
  if (res->n_positional > 0)
    return mt_fail(err, "synth takes no arguments besides options (got '%s')", res->positional[0]);
  if (o->samples == 0) return mt_fail(err, "--samples N is required (training rows, at least 1)");
  if (o->features == 0) return mt_fail(err, "--features D is required (features per row, at least 1)");
  if (o->classes == 0) return mt_fail(err, "--classes C is required (at least 2)");
  if (cli_check_out(o->out, err) != 0) return -1;
  if (o->shards > o->samples)
    return mt_fail(err, "--shards %d is more than --samples %lld; expected at most one shard per row", o->shards,
                   (long long)o->samples);
  if (!isfinite(o->noise)) return mt_fail(err, "--noise %g: expected a finite number >= 0", (double)o->noise);
  if ((double)o->classes * o->features * sizeof(float) > (double)((size_t)1 << 30))
    return mt_fail(err, "--classes %d x --features %d: the class centres alone would need more than 1 GiB",
                   o->classes, o->features);
  return 0;
}

/* A rank with shards to write: the class centres, for uint8 the quantisation (and the mean/std that undo it), then
 * its shards. The buffers are src's and *mean, *std, *written (freed by the caller). */
static void synth_write(const SynthOptions *o, SynthSource *src, WriteSet *ws, float **mean, float **std,
                        char (**written)[WRITE_SET_PATH], MtError *err) {
  src->centres = mt_alloc(sizeof(float) * (size_t)o->classes * (size_t)o->features, "class centres", err);
  *written = src->centres ? calloc((size_t)o->shards, sizeof **written) : NULL;
  if (src->centres && *written == NULL) mt_fail(err, "out of memory");
  if (*written && src->uint8) {
    /* stored q decodes as (q*scale - mean)/std = q*step + lo */
    size_t chunk = WRITE_SET_CHUNK_BYTES / (size_t)o->features;
    src->tmp = mt_alloc(sizeof(float) * (chunk ? chunk : 1) * (size_t)o->features, "quantisation buffer", err);
    *mean = mt_alloc(sizeof(float) * (size_t)o->features, "mean", err);
    *std = *mean ? mt_alloc(sizeof(float) * (size_t)o->features, "std", err) : NULL;
    for (int j = 0; *std && j < o->features; j++) {
      (*mean)[j] = -src->lo;
      (*std)[j] = 1.0f;
    }
    ws->spec.scale = src->step;
    ws->spec.mean = *mean;
    ws->spec.std = *std;
  }
  if (!err->failed) {
    mt_synth_centres(&src->spec, src->centres);
    ws->written = *written;
    if (mt_write_set(ws, err) != 0) mt_write_set_undo(ws);
  }
}

int synth_main(Comm *c, int argc, char **argv) {
  double t0 = mt_now();
  SynthOptions o;
  OptsResult res;
  MtError err = {0};
  if (cli_parse(c, synth_options, &synth_usage, &o, argc, argv, &res, &err) != 0) return 0;
  if (!err.failed) synth_check(&o, &res, &err);
  if (cli_agree_and_report(c, &err) != 0) return EXIT_USAGE;
  FileRole config = {.role = "--config", .path = res.config_path};
  if (c->rank == 0) cli_check_files(&config, 1, o.out, o.shards, &err);
  if (cli_agree_and_report(c, &err) != 0) return 1;
  mt_comm_watchdog_timeout(c, o.stall_timeout);

  SynthSource src = {.spec = {o.samples, o.test_samples, o.features, o.classes, (uint64_t)o.seed, o.noise},
                     .uint8 = o.dtype == 1};
  float sigma = sqrtf(1.0f + o.noise * o.noise);
  src.lo = -4.0f * sigma;
  src.step = 8.0f * sigma / 255.0f;
  char source[256];
  snprintf(source, sizeof source, "mpitrain synth: Gaussian clusters, seed %lld, noise %g%s", (long long)o.seed,
           (double)o.noise, src.uint8 ? ", quantised to uint8" : "");
  float *mean = NULL, *std = NULL;
  char(*written)[WRITE_SET_PATH] = NULL;
  WriteSet ws = {.c = c, .cmd = "synth", .out = o.out, .shards = o.shards, .n = {o.samples, o.test_samples},
                 .fill = synth_fill, .ctx = &src, .rank = c->rank, .size = c->size};
  ws.spec = (DataWriterSpec){.d = o.features, .n_classes = o.classes, .store_uint8 = src.uint8, .scale = 1.0f,
                             .source = source, .gzip = o.gzip};
  mt_comm_stop_catch(); /* SIGTERM / SIGINT: the set is given up and its temporaries removed (mt_write_set) */
  if (c->rank < o.shards) synth_write(&o, &src, &ws, &mean, &std, &written, &err); /* the others have nothing */
  cli_wait_for_all(c);
  mt_comm_stop_release();
  int rc = 0;
  if (mt_comm_agree(c, &err) != 0) {
    mt_write_set_undo(&ws); /* another rank failed: the set is incomplete */
    rc = mt_comm_fail_exit(c, &err);
  } else if (c->rank == 0) {
    int writers = c->size < o.shards ? c->size : o.shards;
    char tail[128];
    snprintf(tail, sizeof tail, "%d classes, by %d rank%s in %.1f s", o.classes, writers, writers > 1 ? "s" : "",
             mt_now() - t0);
    cli_report_set("synth", o.out, o.shards, ws.n, o.features, src.uint8, tail);
    fflush(stdout);
  }
  mt_free(std);
  mt_free(mean);
  mt_free(src.tmp);
  free(written);
  mt_free(src.centres);
  return rc;
}
