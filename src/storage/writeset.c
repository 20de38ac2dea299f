/* writeset.c — a dataset written as one file or a set of shards from a row source (writeset.h), so that shards and
 * chunked appends are done once for every source (IDX arrays in memory, a CSV reader, the synthetic generator). */
#include "mpitrain/writeset.h"

#include <stdio.h>
#include <unistd.h>

#include "mpitrain/data.h"
#include "mpitrain/util.h"

void mt_write_set_file_name(const char *out, int k, int shards, char *path, size_t n) {
  if (shards == 1)
    snprintf(path, n, "%s", out);
  else
    mt_data_shard_name(out, k, shards, path, n);
}

int mt_write_set(WriteSet *ws, MtError *err) {
  size_t elem = ws->spec.store_uint8 ? 1 : sizeof(float);
  int64_t chunk = (int64_t)(WRITE_SET_CHUNK_BYTES / (elem * (size_t)ws->spec.d));
  if (chunk < 1) chunk = 1;
  void *x = mt_alloc((size_t)chunk * (size_t)ws->spec.d * elem, "write buffer", err);
  int32_t *y = x ? mt_alloc((size_t)chunk * sizeof *y, "label buffer", err) : NULL;
  int rc = -1;
  if (y == NULL) goto done;
  for (int k = ws->rank; k < ws->shards; k += ws->size) {
    char path[WRITE_SET_PATH];
    mt_write_set_file_name(ws->out, k, ws->shards, path, sizeof path);
    int64_t lo[2], hi[2];
    DataWriterSpec spec = ws->spec;
    for (int s = 0; s < 2; s++) {
      mt_even_split(ws->n[s], k, ws->shards, &lo[s], &hi[s]);
      spec.n[s] = hi[s] - lo[s];
    }
    DataWriter *w = NULL;
    if (mt_datawriter_open(&w, path, &spec, err) != 0) goto done;
    for (int s = 0; s < 2; s++)
      for (int64_t r = lo[s]; r < hi[s]; r += chunk) {
        int64_t cnt = hi[s] - r < chunk ? hi[s] - r : chunk;
        mt_comm_phase(ws->c, "write", r / chunk);
        int sig = mt_comm_stop_signal(); /* SIGTERM / SIGINT (mt_comm_stop_catch): give the set up, like any failure */
        if (sig != 0 && ws->shards == 1)
          mt_fail(err, "%s interrupted by %s: removed the unfinished %s; nothing written", ws->cmd,
                  mt_comm_signal_name(sig), mt_datawriter_temp(w));
        else if (sig != 0)
          mt_fail(err, "%s interrupted by %s: removed the unfinished shards of %s; nothing written", ws->cmd,
                  mt_comm_signal_name(sig), ws->out);
        if (sig != 0 || ws->fill(ws->ctx, s, r, cnt, x, y, err) != 0 ||
            mt_datawriter_append(w, (Split)s, x, y, cnt, err) != 0) {
          mt_datawriter_abort(w);
          goto done;
        }
      }
    if (mt_datawriter_close(w, err) != 0) goto done;
    snprintf(ws->written[ws->n_written++], WRITE_SET_PATH, "%s", path);
  }
  rc = 0;
done:
  mt_free(y);
  mt_free(x);
  return rc;
}

void mt_write_set_undo(WriteSet *ws) {
  for (int i = ws->n_written - 1; i >= 0; i--) unlink(ws->written[i]);
  ws->n_written = 0;
}
