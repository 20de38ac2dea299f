/* log.c — what the user sees while training and what is kept afterwards, written by rank 0 only.
 *
 * Screen (stdout): on a terminal, one progress line redrawn in place at most ~10 times a second; elsewhere (a
 * batch job's output file) plain lines at a steady cadence, flushed at once so `tail -f` shows them. Epoch
 * summaries always. Metrics file (--log): CSV or JSONL, one record per logged step and per epoch, numbers with
 * enough digits to read back; a resumed run continues the file of the run it resumed (mt_log_open_file). A failed
 * write is remembered and reported by mt_log_close rather than ignored, so a full disk cannot silently truncate the
 * record of a run. */
#include "mpitrain/log.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "mpitrain/atomicfile.h"
#include "mpitrain/util.h"

const char *const mt_log_format_names[LOGFMT_COUNT + 1] = {"auto", "csv", "jsonl", NULL};
const char *const mt_progress_names[PROGRESS_COUNT + 1] = {"auto", "bar", "plain", "off", NULL};

#define LOG_PATH_MAX 1024
#define BAR_REDRAW_S 0.1       /* ~10 redraws a second: smooth, yet no measurable cost to a fast step loop */
#define FILE_FLUSH_S 1.0       /* step records reach the disk within a second; epoch records at once */
#define FILE_LINES_PER_EPOCH 1000 /* auto cadence of step records: every step unless an epoch has more */
#define PLAIN_LINES_PER_EPOCH 10

struct Log {
  int is_root;              /* everything below is used on rank 0 only */
  int progress;             /* resolved: PROGRESS_BAR, PROGRESS_PLAIN or PROGRESS_OFF */
  int every;                /* steps between plain lines and step records; 0 = auto */
  FILE *f;                  /* metrics file, NULL if none */
  int format;               /* resolved: LOGFMT_CSV or LOGFMT_JSONL */
  char path[LOG_PATH_MAX];
  int write_errno;          /* first failure writing the metrics file; later records are dropped */
  double last_flush;        /* monotonic seconds of the last metrics flush */
  double last_draw;         /* of the last bar redraw; < 0 forces the next one */
  int bar_visible;          /* the cursor is on a half-drawn progress line */
  int have_step;            /* a step has been logged: last_lr / last_elapsed are meaningful */
  double last_lr, last_elapsed;
};


/* ==== Metrics file ==== */

LogFormat mt_log_format_from_path(const char *path) {
  if (mt_has_suffix(path, ".csv", 1)) return LOGFMT_CSV;
  if (mt_has_suffix(path, ".jsonl", 1) || mt_has_suffix(path, ".json", 1)) return LOGFMT_JSONL;
  return LOGFMT_AUTO;
}

static void file_printf(Log *l, const char *fmt, ...) MT_PRINTF(2, 3);
static void file_printf(Log *l, const char *fmt, ...) {
  if (l->f == NULL || l->write_errno != 0) return;
  va_list ap;
  va_start(ap, fmt);
  errno = 0;
  int rc = vfprintf(l->f, fmt, ap);
  va_end(ap);
  if (rc < 0) l->write_errno = errno ? errno : EIO;
}

static void file_flush(Log *l) {
  if (l->f == NULL || l->write_errno != 0) return;
  errno = 0;
  if (fflush(l->f) != 0) l->write_errno = errno ? errno : EIO;
  l->last_flush = mt_now();
}

/* A number that reads back to the same value in 9 significant digits; CSV cells of non-applicable values are
 * empty, JSON has no NaN/Inf so a diverged loss is null there. */
static void fmt_num(char *buf, size_t n, double v, int json) {
  if (isfinite(v))
    snprintf(buf, n, "%.9g", v);
  else if (json)
    snprintf(buf, n, "null");
  else
    snprintf(buf, n, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
}

/* One record. Columns (CSV header order) and JSON keys are the same; a NULL cell is not applicable. */
enum { COL_KIND, COL_EPOCH, COL_STEP, COL_SAMPLES, COL_LOSS, COL_ACC, COL_LR, COL_RATE, COL_ELAPSED, COL_TLOSS,
       COL_TACC, COL_VLOSS, COL_VACC, COL_GNORM, COL_LAYER, COL_WNORM, N_COLS };
static const char *const col_names[N_COLS] = {"kind",      "epoch",    "step",     "samples",  "loss",
                                              "acc",       "lr",       "samples_per_s", "elapsed_s", "test_loss",
                                              "test_acc",  "val_loss", "val_acc",  "grad_norm", "layer",
                                              "weight_norm"};

/* A record being built: cell[c] is column c's text (in text[c], or a constant), NULL = not applicable. */
typedef struct Record {
  const char *cell[N_COLS];
  char text[N_COLS][80];
  int json;
} Record;

static void record_text(Record *r, int col, const char *text) {
  snprintf(r->text[col], sizeof r->text[col], "%s", text);
  r->cell[col] = r->text[col];
}

static void record_int(Record *r, int col, int64_t v) {
  snprintf(r->text[col], sizeof r->text[col], "%" PRId64, v);
  r->cell[col] = r->text[col];
}

/* A record of `kind` at (epoch 0-based, step), its other cells not applicable until set. */
static void record_start(Record *r, const Log *l, const char *kind, int epoch, int64_t step) {
  memset(r->cell, 0, sizeof r->cell);
  r->json = l->format == LOGFMT_JSONL;
  r->cell[COL_KIND] = kind;
  record_int(r, COL_EPOCH, epoch + 1);
  record_int(r, COL_STEP, step);
}

/* Column col holds v (fmt_num), when it applies. */
static void record_num(Record *r, int col, double v, int applies) {
  if (!applies) return;
  fmt_num(r->text[col], sizeof r->text[col], v, r->json);
  r->cell[col] = r->text[col];
}

static void file_record(Log *l, const Record *r) {
  static const int quoted[N_COLS] = {[COL_KIND] = 1, [COL_LAYER] = 1};
  if (l->format == LOGFMT_CSV) {
    for (int i = 0; i < N_COLS; i++) file_printf(l, "%s%s", i ? "," : "", r->cell[i] ? r->cell[i] : "");
    file_printf(l, "\n");
  } else {
    int first = 1;
    file_printf(l, "{");
    for (int i = 0; i < N_COLS; i++) {
      if (r->cell[i] == NULL) continue;
      file_printf(l, quoted[i] ? "%s\"%s\":\"%s\"" : "%s\"%s\":%s", first ? "" : ",", col_names[i], r->cell[i]);
      first = 0;
    }
    file_printf(l, "}\n");
  }
}

/* Steps between step records in the file: --log-every, or every step unless epochs are very long. */
static int64_t file_every(const Log *l, const StepStats *s) {
  if (l->every > 0) return l->every;
  int64_t e = s->steps_per_epoch / FILE_LINES_PER_EPOCH;
  return e > 1 ? e : 1;
}

/* Whether step s gets a record in the metrics file. */
static int file_due(const Log *l, const StepStats *s) {
  int64_t every = file_every(l, s);
  int64_t at = l->every > 0 ? s->step : s->step_in_epoch;
  return at % every == 0;
}

static void file_step(Log *l, const StepStats *s) {
  if (!file_due(l, s)) return;
  Record r;
  record_start(&r, l, "step", s->epoch, s->step);
  record_int(&r, COL_SAMPLES, s->samples);
  record_num(&r, COL_LOSS, s->loss, 1);
  record_num(&r, COL_ACC, s->acc, 1);
  record_num(&r, COL_LR, s->lr, 1);
  record_num(&r, COL_RATE, s->samples_per_s, 1);
  record_num(&r, COL_ELAPSED, s->elapsed_s, 1);
  record_num(&r, COL_GNORM, s->grad_norm, s->grad_norm >= 0);
  file_record(l, &r);
  if (mt_now() - l->last_flush >= FILE_FLUSH_S) file_flush(l);
}

static void file_epoch(Log *l, const EpochStats *s) {
  Record r;
  record_start(&r, l, s->partial ? "end" : "epoch", s->epoch, s->step);
  record_num(&r, COL_LOSS, s->train_loss, 1);
  record_num(&r, COL_ACC, s->train_acc, 1);
  /* lr and elapsed_s are those of the epoch's last step: the learning rate it ended with, and the time since
   * training started when its training steps were done. */
  record_num(&r, COL_LR, l->last_lr, l->have_step);
  record_num(&r, COL_RATE, s->samples_per_s, 1);
  record_num(&r, COL_ELAPSED, l->last_elapsed, l->have_step);
  record_num(&r, COL_TLOSS, s->test_loss, s->test_loss >= 0);
  record_num(&r, COL_TACC, s->test_acc, s->test_acc >= 0);
  record_num(&r, COL_VLOSS, s->val_loss, s->val_loss >= 0);
  record_num(&r, COL_VACC, s->val_acc, s->val_acc >= 0);
  file_record(l, &r);
  file_flush(l);
}

int mt_log_step_due(const Log *l, const StepStats *s) {
  return l != NULL && l->is_root && l->f != NULL && l->write_errno == 0 && file_due(l, s);
}

void mt_log_layer(Log *l, const StepStats *s, const char *layer, double weight_norm, double grad_norm) {
  if (!mt_log_step_due(l, s)) return;
  Record r;
  record_start(&r, l, "layer", s->epoch, s->step);
  record_num(&r, COL_WNORM, weight_norm, 1);
  record_num(&r, COL_GNORM, grad_norm, 1);
  record_text(&r, COL_LAYER, layer); /* layer names are [a-z0-9_/]: nothing to escape */
  file_record(l, &r);
}

/* ==== Screen ==== */

static void fmt_rate(char *buf, size_t n, double v) {
  if (!isfinite(v) || v < 0)
    snprintf(buf, n, "?");
  else if (v < 1e3)
    snprintf(buf, n, "%.0f", v);
  else if (v < 1e6)
    snprintf(buf, n, "%.1fk", v / 1e3);
  else
    snprintf(buf, n, "%.2fM", v / 1e6);
}

static void fmt_eta(char *buf, size_t n, double s) {
  if (!isfinite(s) || s < 0 || s > 1e8) {
    snprintf(buf, n, "?");
    return;
  }
  long t = (long)(s + 0.5);
  if (t >= 3600)
    snprintf(buf, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else
    snprintf(buf, n, "%ld:%02ld", t / 60, t % 60);
}

static int term_width(void) {
  struct winsize ws;
  if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20) return ws.ws_col;
  return 80;
}

static void bar_clear(Log *l) {
  if (!l->bar_visible) return;
  fputs("\r\033[K", stdout);
  l->bar_visible = 0;
}

static void bar_draw(Log *l, const StepStats *s) {
  double t = mt_now();
  if (l->last_draw >= 0 && t - l->last_draw < BAR_REDRAW_S) return;
  l->last_draw = t;
  char left[40], right[160], rate[24], eta[24], pct[8] = "";
  snprintf(left, sizeof left, "epoch %d/%d", s->epoch + 1, s->epochs);
  fmt_rate(rate, sizeof rate, s->samples_per_s);
  fmt_eta(eta, sizeof eta, s->eta_s);
  double frac = s->steps_per_epoch > 0 ? (double)s->step_in_epoch / (double)s->steps_per_epoch : -1;
  if (frac > 1) frac = 1;
  if (frac >= 0) snprintf(pct, sizeof pct, " %3d%%", (int)(100 * frac));
  snprintf(right, sizeof right, "%s loss %.4f acc %.1f%% %s samples/s ETA %s", pct, s->loss, 100 * s->acc, rate,
           eta);
  /* Never write the last column: some terminals wrap there, and the next \r would then redraw a line too low. */
  int usable = term_width() - 1;
  int bar_w = usable - (int)strlen(left) - (int)strlen(right) - 3;
  if (bar_w > 50) bar_w = 50;
  char line[512], bar[64] = "";
  if (frac >= 0 && bar_w >= 10) {
    int filled = (int)(frac * bar_w);
    bar[0] = ' ';
    bar[1] = '[';
    for (int i = 0; i < bar_w; i++) {
      char c = i < filled ? '=' : ' ';
      if (i == filled - 1 && filled < bar_w) c = '>'; /* the head, until the epoch is done */
      bar[2 + i] = c;
    }
    bar[2 + bar_w] = ']';
    bar[3 + bar_w] = '\0';
  }
  snprintf(line, sizeof line, "%s%s%s", left, bar, right);
  if ((int)strlen(line) > usable && usable > 0) line[usable] = '\0';
  printf("\r%s\033[K", line);
  fflush(stdout);
  l->bar_visible = 1;
}

/* Plain-line cadence: --log-every, or about PLAIN_LINES_PER_EPOCH lines an epoch (every step in short ones). */
static void plain_step(Log *l, const StepStats *s) {
  int64_t every, at;
  if (l->every > 0) {
    every = l->every;
    at = s->step;
  } else {
    every = s->steps_per_epoch / PLAIN_LINES_PER_EPOCH;
    if (every < 1) every = 1;
    at = s->step_in_epoch;
  }
  if (at % every != 0) return;
  char rate[24], eta[24], pct[16] = "";
  fmt_rate(rate, sizeof rate, s->samples_per_s);
  fmt_eta(eta, sizeof eta, s->eta_s);
  if (s->steps_per_epoch > 0)
    snprintf(pct, sizeof pct, " (%d%%)", (int)(100.0 * (double)s->step_in_epoch / (double)s->steps_per_epoch));
  printf("step %" PRId64 "  epoch %d/%d%s  loss %.4f  acc %.1f%%  %s samples/s  ETA %s\n", s->step, s->epoch + 1,
         s->epochs, pct, s->loss, 100 * s->acc, rate, eta);
  fflush(stdout);
}

/* ==== Continuing the file of a resumed run ==== */

static int is_kind(const char *k, size_t n) {
  return (n == 4 && strncmp(k, "step", 4) == 0) || (n == 5 && strncmp(k, "epoch", 5) == 0) ||
         (n == 5 && strncmp(k, "layer", 5) == 0) || (n == 3 && strncmp(k, "end", 3) == 0);
}

/* Whether line (without its newline) is a record as file_record writes it; its step into *step. */
static int record_step(const Log *l, const char *line, int64_t *step) {
  const char *p;
  if (l->format == LOGFMT_CSV) {
    int commas = 0;
    for (p = line; *p; p++) commas += *p == ',';
    const char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (commas != N_COLS - 1 || !is_kind(line, (size_t)(c1 - line))) return 0;
    p = c2 + 1;
  } else {
    static const char open[] = "{\"kind\":\"";
    size_t n = strlen(line);
    if (strncmp(line, open, sizeof open - 1) != 0 || n < 2 || line[n - 1] != '}') return 0;
    const char *k = line + sizeof open - 1, *q = strchr(k, '"');
    if (q == NULL || !is_kind(k, (size_t)(q - k)) || (p = strstr(q, ",\"step\":")) == NULL) return 0;
    p += 8;
  }
  char *end;
  errno = 0;
  long long v = strtoll(p, &end, 10);
  if (end == p || errno != 0 || v < 0 || (*end != ',' && *end != '}')) return 0;
  *step = v;
  return 1;
}

/* A new file: created (emptied if it exists), with the CSV header. */
static int file_create(Log *l, MtError *err) {
  l->f = fopen(l->path, "w");
  if (l->f == NULL) return mt_fail(err, "cannot create metrics file '%s': %s", l->path, strerror(errno));
  if (l->format == LOGFMT_CSV) {
    for (int i = 0; i < N_COLS; i++) file_printf(l, "%s%s", i ? "," : "", col_names[i]);
    file_printf(l, "\n");
  }
  return 0;
}

/* The file of the run resumed at step `after`: its records up to that step are copied to a temporary that then
 * replaces it (atomically: a crash now leaves the old file), and the new records go on after them. Records past
 * the step are those of steps the earlier run did after its last checkpoint; the resumed run does them again. A
 * file of any other kind is refused and left as it is. */
static int file_continue(Log *l, int64_t after, MtError *err) {
  FILE *in = fopen(l->path, "r");
  if (in == NULL && errno == ENOENT) return file_create(l, err);
  if (in == NULL) return mt_fail(err, "--log %s: cannot read it to continue it: %s", l->path, strerror(errno));
  char tmp[LOG_PATH_MAX + 64];
  FILE *out = mt_atomic_temp_name(l->path, tmp, sizeof tmp) == 0 ? fopen(tmp, "w") : NULL;
  if (out == NULL) {
    fclose(in);
    return mt_fail(err, "--log %s: cannot create a temporary next to it: %s", l->path, strerror(errno));
  }
  char header[512] = "";
  for (int i = 0; i < N_COLS; i++) snprintf(header + strlen(header), sizeof header - strlen(header), "%s%s",
                                            i ? "," : "", col_names[i]);
  char *line = NULL;
  size_t cap = 0;
  ssize_t len;
  long long lineno = 0, dropped = 0;
  int rc = 0;
  errno = 0;
  while (rc == 0 && (len = getline(&line, &cap, in)) >= 0) {
    lineno++;
    int whole = len > 0 && line[len - 1] == '\n';
    while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = '\0';
    int64_t step = 0;
    if (lineno == 1 && l->format == LOGFMT_CSV) {
      if (strcmp(line, header) != 0)
        rc = mt_fail(err, "--log %s: not a metrics log of mpitrain (its first line is not the header %.40s...): "
                          "refusing to append to it; move it away or give another --log", l->path, header);
    } else if (!whole) {
      dropped++; /* the last line, torn by the crash that ended the earlier run */
      continue;
    } else if (!record_step(l, line, &step)) {
      rc = mt_fail(err, "--log %s: not a metrics log of mpitrain in %s format: line %lld is not a metrics record; "
                        "refusing to append to it; move it away or give another --log",
                   l->path, mt_log_format_names[l->format], lineno);
    } else if (step > after) {
      dropped++;
      continue;
    }
    if (rc == 0 && fprintf(out, "%s\n", line) < 0)
      rc = mt_fail(err, "--log %s: writing %s failed: %s", l->path, tmp, strerror(errno));
  }
  if (rc == 0 && ferror(in)) rc = mt_fail(err, "--log %s: reading it failed: %s", l->path, strerror(errno));
  free(line);
  fclose(in);
  if (rc == 0 && lineno == 0 && l->format == LOGFMT_CSV && fprintf(out, "%s\n", header) < 0)
    rc = mt_fail(err, "--log %s: writing %s failed: %s", l->path, tmp, strerror(errno));
  if (rc == 0 && fflush(out) != 0) rc = mt_fail(err, "--log %s: writing %s failed: %s", l->path, tmp, strerror(errno));
  if (rc == 0 && mt_atomic_commit(tmp, l->path) != 0)
    rc = mt_fail(err, "--log %s: cannot move %s into place: %s", l->path, tmp, strerror(errno));
  if (rc != 0) {
    fclose(out);
    unlink(tmp);
    return -1;
  }
  l->f = out; /* still open: the file now has the final name */
  if (dropped > 0)
    mt_log_info(l, "continuing %s after step %lld (dropped %lld record%s written after that checkpoint)", l->path,
             (long long)after, dropped, dropped == 1 ? "" : "s");
  else
    mt_log_info(l, "continuing %s after step %lld", l->path, (long long)after);
  return 0;
}

int mt_log_open_file(Log *l, int64_t resumed_step, MtError *err) {
  if (l == NULL || !l->is_root || l->path[0] == '\0' || l->f != NULL) return 0;
  int rc = resumed_step < 0 ? file_create(l, err) : file_continue(l, resumed_step, err);
  l->last_flush = mt_now();
  return rc;
}

/* ==== Public ==== */

/* Is the user looking at a terminal? Under mpirun, isatty() cannot tell: Open MPI hands every local rank a
 * pseudo-terminal even when mpirun's own output goes to a file, which would fill a batch job's log with bar
 * redraws. mpirun starts the local ranks itself, so ask where our parent's standard output goes. */
static int stdout_is_terminal(void) {
  if (!isatty(STDOUT_FILENO)) return 0;
  if (getenv("OMPI_COMM_WORLD_SIZE") == NULL) return 1;
  char link[64], target[256];
  snprintf(link, sizeof link, "/proc/%ld/fd/1", (long)getppid());
  ssize_t n = readlink(link, target, sizeof target - 1);
  if (n <= 0) return 1; /* cannot tell: trust isatty */
  target[n] = '\0';
  return strncmp(target, "/dev/pts/", 9) == 0 || strncmp(target, "/dev/tty", 8) == 0;
}

int mt_log_open(Log **out, const LogOptions *o, MtError *err) {
  *out = NULL;
  Log *l = mt_alloc(sizeof *l, "the log", err);
  if (l == NULL) return -1;
  l->is_root = o->is_root;
  l->last_draw = -1;
  if (!l->is_root) {
    *out = l;
    return 0;
  }
  l->every = o->every > 0 ? o->every : 0;
  l->progress = o->progress;
  if (l->progress == PROGRESS_AUTO) {
    /* A terminal that cannot move the cursor ("dumb", e.g. an editor's shell) gets plain lines too. */
    const char *term = getenv("TERM");
    int smart = term == NULL || strcmp(term, "dumb") != 0;
    l->progress = stdout_is_terminal() && smart ? PROGRESS_BAR : PROGRESS_PLAIN;
  }
  const char *path = o->path ? o->path : "";
  if (path[0] != '\0') {
    if (strlen(path) >= sizeof l->path) {
      mt_free(l);
      return mt_fail(err, "--log: file name is too long (at most %d characters)", LOG_PATH_MAX - 1);
    }
    strcpy(l->path, path);
    l->format = o->format;
    if (l->format == LOGFMT_AUTO) {
      l->format = mt_log_format_from_path(path);
      if (l->format == LOGFMT_AUTO) {
        mt_free(l);
        return mt_fail(err, "--log %s: cannot tell the format from the file name; add --log-format csv or "
                            "--log-format jsonl", path);
      }
    }
    if (!o->defer_file && mt_log_open_file(l, -1, err) != 0) {
      mt_free(l);
      return -1;
    }
  }
  *out = l;
  return 0;
}

void mt_log_step(Log *l, const StepStats *s) {
  if (l == NULL || !l->is_root) return;
  l->have_step = 1;
  l->last_lr = s->lr;
  l->last_elapsed = s->elapsed_s;
  if (l->f != NULL) file_step(l, s);
  if (l->progress == PROGRESS_BAR)
    bar_draw(l, s);
  else if (l->progress == PROGRESS_PLAIN)
    plain_step(l, s);
}

void mt_log_epoch(Log *l, const EpochStats *s) {
  if (l == NULL || !l->is_root) return;
  if (l->f != NULL) file_epoch(l, s);
  bar_clear(l);
  char rate[24], test[96] = "", val[96] = "";
  fmt_rate(rate, sizeof rate, s->samples_per_s);
  if (s->val_loss >= 0 && s->val_acc >= 0)
    snprintf(val, sizeof val, "  val loss %.4f acc %.1f%%", s->val_loss, 100 * s->val_acc);
  if (s->test_loss >= 0 && s->test_acc >= 0)
    snprintf(test, sizeof test, "  test loss %.4f acc %.1f%%", s->test_loss, 100 * s->test_acc);
  if (s->partial)
    printf("step %" PRId64 " (epoch %d/%d, partial)", s->step, s->epoch + 1, s->epochs);
  else
    printf("epoch %d/%d", s->epoch + 1, s->epochs);
  printf("  train loss %.4f acc %.1f%%%s%s  %.1f s  %s samples/s\n", s->train_loss, 100 * s->train_acc, val, test,
         s->epoch_s, rate);
  fflush(stdout);
  l->last_draw = -1; /* the next epoch's bar appears with its first step */
}

void mt_log_flush(Log *l) {
  if (l != NULL && l->is_root) file_flush(l);
}

void mt_log_info(Log *l, const char *fmt, ...) {
  if (l == NULL || !l->is_root) return;
  bar_clear(l);
  va_list ap;
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  size_t n = strlen(fmt);
  if (n == 0 || fmt[n - 1] != '\n') putchar('\n');
  fflush(stdout);
  l->last_draw = -1;
}

int mt_log_close(Log *l, MtError *err) {
  if (l == NULL) return 0;
  int rc = 0;
  if (l->is_root) {
    /* Leave the last progress state on screen (the run may have stopped mid-epoch) and end its line. */
    if (l->bar_visible) {
      putchar('\n');
      l->bar_visible = 0;
    }
    fflush(stdout);
    if (l->f != NULL) {
      file_flush(l);
      if (l->write_errno == 0 && ferror(l->f)) l->write_errno = EIO;
      errno = 0;
      if (fclose(l->f) != 0 && l->write_errno == 0) l->write_errno = errno ? errno : EIO;
      l->f = NULL;
      if (l->write_errno != 0)
        rc = mt_fail(err, "writing metrics file '%s' failed: %s", l->path, strerror(l->write_errno));
    }
  }
  mt_free(l);
  return rc;
}
