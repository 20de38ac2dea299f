/* test_log.c — metrics files (CSV and JSONL read back number by number), the cadence of step records, rank > 0
 * staying silent, write errors surfacing at mt_log_close (/dev/full), and what plain and bar progress print. */
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "mpitrain/log.h"

/* ==== Helpers ==== */

static char *slurp(const char *path) {
  FILE *f = fopen(path, "rb");
  assert_non_null(f);
  assert_int_equal(fseek(f, 0, SEEK_END), 0);
  long n = ftell(f);
  assert_true(n >= 0);
  rewind(f);
  char *s = malloc((size_t)n + 1);
  assert_non_null(s);
  assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
  s[n] = '\0';
  fclose(f);
  return s;
}

static const char *temp_path(const char *tag) {
  static char buf[4][96];
  static int next;
  char *p = buf[next++ % 4];
  snprintf(p, 96, "/tmp/test_log_%d_%s", (int)getpid(), tag);
  return p;
}

/* stdout goes to a file between capture_begin and capture_end (which returns what was printed). */
static int saved_stdout = -1;
static char capture_file[96];

static void capture_begin(void) {
  snprintf(capture_file, sizeof capture_file, "/tmp/test_log_%d_stdout", (int)getpid());
  fflush(stdout);
  saved_stdout = dup(STDOUT_FILENO);
  assert_true(saved_stdout >= 0);
  int fd = open(capture_file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  assert_true(fd >= 0);
  assert_true(dup2(fd, STDOUT_FILENO) >= 0);
  close(fd);
}

static char *capture_end(void) {
  fflush(stdout);
  assert_true(dup2(saved_stdout, STDOUT_FILENO) >= 0);
  close(saved_stdout);
  saved_stdout = -1;
  char *s = slurp(capture_file);
  remove(capture_file);
  return s;
}

static StepStats make_step(int epoch, int64_t step, int64_t in_epoch, int64_t per_epoch) {
  StepStats s = {.epoch = epoch, .epochs = 3, .step = step, .step_in_epoch = in_epoch,
                 .steps_per_epoch = per_epoch, .samples = 128, .loss = 0.1234567891 * (double)step,
                 .acc = 0.75, .lr = 1e-3 / (double)step, .samples_per_s = 52123.456, .elapsed_s = 0.5 * (double)step,
                 .eta_s = 72, .grad_norm = -1};
  return s;
}

static EpochStats make_epoch(int epoch, int64_t step, int with_test) {
  EpochStats e = {.epoch = epoch, .epochs = 3, .step = step, .train_loss = 0.30123456789, .train_acc = 0.891,
                  .test_loss = with_test ? 0.33211 : -1, .test_acc = with_test ? 0.88 : -1, .epoch_s = 12.34,
                  .samples_per_s = 48700, .val_loss = -1, .val_acc = -1};
  return e;
}

/* Splits a CSV line in place into exactly n fields (empty ones included); returns how many there were. */
static int split_csv(char *line, char **fields, int n) {
  int k = 0;
  char *p = line;
  for (;;) {
    char *comma = strchr(p, ',');
    if (k < n) fields[k] = p;
    k++;
    if (comma == NULL) break;
    *comma = '\0';
    p = comma + 1;
  }
  return k;
}

static void assert_close(double got, double want) {
  double tol = 1e-8 * (want < 0 ? -want : want);
  if (!(got - want <= tol && want - got <= tol)) fail_msg("got %.17g, want %.17g", got, want);
}

static double num(const char *s) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s || *end != '\0') fail_msg("'%s' is not a number", s);
  return v;
}

/* The number after "key": in a JSON line, or fails if the key is absent. */
static double json_num(const char *line, const char *key) {
  char pat[64];
  snprintf(pat, sizeof pat, "\"%s\":", key);
  const char *p = strstr(line, pat);
  if (p == NULL) fail_msg("no %s in %s", key, line);
  char *end = NULL;
  double v = strtod(p + strlen(pat), &end);
  assert_true(end != p + strlen(pat));
  assert_true(*end == ',' || *end == '}');
  return v;
}

/* ==== Metrics files ==== */

static void test_csv(void **state) {
  (void)state;
  const char *path = temp_path("m.csv");
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = path, .format = LOGFMT_AUTO};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 3; t++) {
    StepStats s = make_step(0, t, t, 3);
    mt_log_step(l, &s);
  }
  EpochStats e = make_epoch(0, 3, 1);
  mt_log_epoch(l, &e);
  StepStats s4 = make_step(1, 4, 1, 3);
  mt_log_step(l, &s4);
  EpochStats e2 = make_epoch(1, 4, 0);
  mt_log_epoch(l, &e2);
  assert_int_equal(mt_log_close(l, &err), 0);

  char *text = slurp(path);
  remove(path);
  char *save = NULL;
  char *line = strtok_r(text, "\n", &save);
  assert_string_equal(line,
                      "kind,epoch,step,samples,loss,acc,lr,samples_per_s,elapsed_s,test_loss,test_acc,val_loss,val_acc,"
                      "grad_norm,layer,weight_norm");
  char *f[16];
  for (int64_t t = 1; t <= 3; t++) {
    line = strtok_r(NULL, "\n", &save);
    assert_non_null(line);
    assert_int_equal(split_csv(line, f, 16), 16);
    assert_string_equal(f[0], "step");
    assert_string_equal(f[1], "1");
    assert_int_equal((int64_t)num(f[2]), t);
    assert_string_equal(f[3], "128");
    assert_close(num(f[4]), 0.1234567891 * (double)t);
    assert_close(num(f[5]), 0.75);
    assert_close(num(f[6]), 1e-3 / (double)t);
    assert_close(num(f[7]), 52123.456);
    assert_close(num(f[8]), 0.5 * (double)t);
    assert_string_equal(f[9], "");
    assert_string_equal(f[10], "");
  }
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "epoch");
  assert_string_equal(f[1], "1");
  assert_string_equal(f[2], "3");
  assert_string_equal(f[3], "");
  assert_close(num(f[4]), 0.30123456789);
  assert_close(num(f[5]), 0.891);
  assert_close(num(f[6]), 1e-3 / 3); /* the lr of the epoch's last step */
  assert_close(num(f[7]), 48700);
  assert_close(num(f[8]), 1.5);
  assert_close(num(f[9]), 0.33211);
  assert_close(num(f[10]), 0.88);
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "step");
  assert_string_equal(f[1], "2");
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "epoch");
  assert_string_equal(f[1], "2");
  assert_string_equal(f[9], ""); /* not evaluated */
  assert_string_equal(f[10], "");
  assert_null(strtok_r(NULL, "\n", &save));
  free(text);
}

static void test_jsonl(void **state) {
  (void)state;
  const char *path = temp_path("m.jsonl");
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = path, .format = LOGFMT_AUTO};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  StepStats s = make_step(0, 1, 1, 2);
  mt_log_step(l, &s);
  s = make_step(0, 2, 2, 2);
  s.loss = NAN; /* a diverged step: JSON has no NaN */
  mt_log_step(l, &s);
  EpochStats e = make_epoch(0, 2, 1);
  mt_log_epoch(l, &e);
  e = make_epoch(1, 4, 0);
  mt_log_epoch(l, &e);
  assert_int_equal(mt_log_close(l, &err), 0);

  char *text = slurp(path);
  remove(path);
  char *save = NULL;
  char *line = strtok_r(text, "\n", &save);
  assert_non_null(line);
  assert_true(strncmp(line, "{\"kind\":\"step\",", 15) == 0);
  assert_int_equal((int)json_num(line, "epoch"), 1);
  assert_int_equal((int)json_num(line, "step"), 1);
  assert_int_equal((int)json_num(line, "samples"), 128);
  assert_close(json_num(line, "loss"), 0.1234567891);
  assert_close(json_num(line, "acc"), 0.75);
  assert_close(json_num(line, "lr"), 1e-3);
  assert_close(json_num(line, "samples_per_s"), 52123.456);
  assert_close(json_num(line, "elapsed_s"), 0.5);
  assert_null(strstr(line, "test_loss"));
  assert_int_equal(line[strlen(line) - 1], '}');
  line = strtok_r(NULL, "\n", &save);
  assert_non_null(strstr(line, "\"loss\":null,"));
  line = strtok_r(NULL, "\n", &save);
  assert_true(strncmp(line, "{\"kind\":\"epoch\",", 16) == 0);
  assert_close(json_num(line, "loss"), 0.30123456789);
  assert_close(json_num(line, "test_loss"), 0.33211);
  assert_close(json_num(line, "test_acc"), 0.88);
  assert_null(strstr(line, "\"samples\""));
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal((int)json_num(line, "epoch"), 2);
  assert_null(strstr(line, "test_"));
  assert_null(strtok_r(NULL, "\n", &save));
  free(text);
}

static int count_lines_starting(const char *text, const char *prefix) {
  int n = 0;
  size_t k = strlen(prefix);
  for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
    if (strncmp(p, prefix, k) == 0) n++;
  return n;
}

static void test_file_cadence(void **state) {
  (void)state;
  /* --log-every 2 over 5 steps: records at global steps 2 and 4, explicit format on an unknown extension */
  const char *path = temp_path("m.txt");
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = path, .format = LOGFMT_CSV, .every = 2};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 5; t++) {
    StepStats s = make_step(0, t, t, 5);
    mt_log_step(l, &s);
  }
  assert_int_equal(mt_log_close(l, &err), 0);
  char *text = slurp(path);
  assert_int_equal(count_lines_starting(text, "step,"), 2);
  assert_non_null(strstr(text, "\nstep,1,2,"));
  assert_non_null(strstr(text, "\nstep,1,4,"));
  free(text);

  /* auto: every step while epochs are short, about 1000 records per epoch when they are long */
  o.every = 0;
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 5000; t++) {
    StepStats s = make_step(0, t, t, 5000);
    mt_log_step(l, &s);
  }
  assert_int_equal(mt_log_close(l, &err), 0);
  text = slurp(path);
  remove(path);
  assert_int_equal(count_lines_starting(text, "step,"), 1000);
  free(text);
}

static void test_open_errors(void **state) {
  (void)state;
  Log *l = (Log *)1;
  MtError err = {0};
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = "/nonexistent/dir/m.csv"};
  assert_int_equal(mt_log_open(&l, &o, &err), -1);
  assert_null(l);
  assert_string_equal(err.msg, "cannot create metrics file '/nonexistent/dir/m.csv': No such file or directory");
  mt_error_clear(&err);
  o.path = "metrics.txt";
  assert_int_equal(mt_log_open(&l, &o, &err), -1);
  assert_non_null(strstr(err.msg, "--log metrics.txt: cannot tell the format"));
}

/* A resumed run's file (mt_log_open_file): records up to the checkpoint's step kept, later ones and a torn last line
 * dropped, new ones appended after them, one CSV header; JSONL likewise; a file of another kind refused untouched;
 * without a checkpoint (step < 0) a new file. */
static void write_steps(const char *path, int format, int64_t from, int64_t to, int defer, int64_t resumed) {
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = path, .format = format, .every = 1,
                  .defer_file = defer};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  if (defer && mt_log_open_file(l, resumed, &err) != 0) fail_msg("%s", err.msg);
  for (int64_t t = from; t <= to; t++) {
    StepStats s = make_step(0, t, t, 100);
    mt_log_step(l, &s);
  }
  if (to == 6) {
    EpochStats e = make_epoch(0, 6, 0);
    mt_log_epoch(l, &e);
  }
  assert_int_equal(mt_log_close(l, &err), 0);
}

static void test_continue(void **state) {
  (void)state;
  const char *csv = temp_path("c.csv"), *jsonl = temp_path("c.jsonl");
  write_steps(csv, LOGFMT_AUTO, 1, 6, 0, 0);
  FILE *f = fopen(csv, "a");
  assert_non_null(f);
  fputs("step,1,7,128,0.8", f); /* torn by a crash */
  fclose(f);
  capture_begin();
  write_steps(csv, LOGFMT_AUTO, 4, 8, 1, 3); /* resumed from step 3: 4, 5, 6, the epoch at 6 and the torn 7 go */
  char *said = capture_end();
  assert_non_null(strstr(said, "after step 3 (dropped 5 records written after that checkpoint)"));
  free(said);
  char *text = slurp(csv);
  assert_int_equal(count_lines_starting(text, "kind,"), 1);
  assert_int_equal(count_lines_starting(text, "step,"), 8);
  assert_int_equal(count_lines_starting(text, "epoch,"), 0);
  for (int t = 1; t <= 8; t++) {
    char want[32];
    snprintf(want, sizeof want, "\nstep,1,%d,", t);
    char *at = strstr(text, want);
    assert_non_null(at);
    assert_null(strstr(at + 1, want)); /* once */
  }
  assert_non_null(strstr(text, "\nstep,1,3,")); /* in order: 3 before 4 */
  assert_true(strstr(text, "\nstep,1,3,") < strstr(text, "\nstep,1,4,"));
  free(text);

  write_steps(jsonl, LOGFMT_AUTO, 1, 6, 0, 0);
  capture_begin();
  write_steps(jsonl, LOGFMT_AUTO, 6, 6, 1, 5);
  free(capture_end());
  text = slurp(jsonl);
  assert_int_equal(count_lines_starting(text, "{\"kind\":\"step\""), 6);
  assert_int_equal(count_lines_starting(text, "{\"kind\":\"epoch\""), 1); /* the old one at 6 dropped, the new one */
  assert_non_null(strstr(text, "\"step\":5,"));
  free(text);

  /* another kind of file: refused, left as it was */
  f = fopen(csv, "w");
  assert_non_null(f);
  fputs("name,score\nalice,3\n", f);
  fclose(f);
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = csv, .defer_file = 1};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  assert_int_equal(mt_log_open_file(l, 3, &err), -1);
  assert_non_null(strstr(err.msg, "not a metrics log of mpitrain (its first line is not the header kind,epoch"));
  assert_int_equal(mt_log_close(l, &err), 0);
  text = slurp(csv);
  assert_string_equal(text, "name,score\nalice,3\n");
  free(text);
  /* no checkpoint: a new file whatever it held */
  write_steps(csv, LOGFMT_AUTO, 1, 2, 1, -1);
  text = slurp(csv);
  assert_int_equal(count_lines_starting(text, "step,"), 2);
  assert_null(strstr(text, "alice"));
  free(text);
  remove(csv);
  remove(jsonl);
}

static void test_disk_full(void **state) {
  (void)state;
  if (access("/dev/full", W_OK) != 0) skip();
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = "/dev/full", .format = LOGFMT_CSV};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  StepStats s = make_step(0, 1, 1, 1);
  mt_log_step(l, &s);
  assert_int_equal(mt_log_close(l, &err), -1);
  assert_string_equal(err.msg, "writing metrics file '/dev/full' failed: No space left on device");

  /* the same when the failure happens at an epoch's flush, long before the close */
  mt_error_clear(&err);
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  EpochStats e = make_epoch(0, 1, 1);
  mt_log_epoch(l, &e);
  mt_log_step(l, &s);
  assert_int_equal(mt_log_close(l, &err), -1);
  assert_non_null(strstr(err.msg, "No space left on device"));
}

static void test_non_root_silent(void **state) {
  (void)state;
  const char *path = temp_path("nonroot.csv");
  remove(path);
  LogOptions o = {.is_root = 0, .progress = PROGRESS_PLAIN, .path = path, .format = LOGFMT_AUTO, .every = 1};
  Log *l = NULL;
  MtError err = {0};
  capture_begin();
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  StepStats s = make_step(0, 1, 1, 1);
  mt_log_step(l, &s);
  EpochStats e = make_epoch(0, 1, 1);
  mt_log_epoch(l, &e);
  mt_log_info(l, "hello from rank %d", 1);
  assert_int_equal(mt_log_close(l, &err), 0);
  char *out = capture_end();
  assert_string_equal(out, "");
  free(out);
  assert_int_equal(access(path, F_OK), -1);
  /* and a NULL log is a no-op everywhere */
  mt_log_step(NULL, &s);
  mt_log_epoch(NULL, &e);
  mt_log_info(NULL, "x");
  assert_int_equal(mt_log_close(NULL, &err), 0);
}

/* ==== Screen ==== */

static void test_plain(void **state) {
  (void)state;
  LogOptions o = {.is_root = 1, .progress = PROGRESS_PLAIN};
  Log *l = NULL;
  MtError err = {0};
  capture_begin();
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 20; t++) {
    StepStats s = make_step(0, t, t, 20);
    s.loss = 0.5;
    mt_log_step(l, &s);
  }
  mt_log_info(l, "checkpoint written to %s", "x.h5");
  EpochStats e = make_epoch(0, 20, 1);
  e.train_loss = 0.3012;
  mt_log_epoch(l, &e);
  /* a short epoch gets a line per step */
  for (int64_t t = 21; t <= 23; t++) {
    StepStats s = make_step(1, t, t - 20, 3);
    mt_log_step(l, &s);
  }
  e = make_epoch(1, 23, 0);
  mt_log_epoch(l, &e);
  assert_int_equal(mt_log_close(l, &err), 0);
  char *out = capture_end();

  assert_int_equal(count_lines_starting(out, "step "), 10 + 3);
  if (strstr(out, "step 2  epoch 1/3 (10%)  loss 0.5000  acc 75.0%  52.1k samples/s  ETA 1:12\n") == NULL)
    fail_msg("unexpected plain output:\n%s", out);
  assert_non_null(strstr(out, "\nstep 20  epoch 1/3 (100%)"));
  assert_non_null(strstr(out, "\ncheckpoint written to x.h5\n"));
  assert_non_null(
      strstr(out, "\nepoch 1/3  train loss 0.3012 acc 89.1%  test loss 0.3321 acc 88.0%  12.3 s  48.7k samples/s\n"));
  assert_non_null(strstr(out, "\nstep 21  epoch 2/3 (33%)"));
  assert_non_null(strstr(out, "\nepoch 2/3  train loss 0.3012 acc 89.1%  12.3 s  48.7k samples/s\n"));
  assert_null(strchr(out, '\r')); /* nothing redrawn in a file */
  free(out);

  /* --log-every 7: by global step */
  o.every = 7;
  capture_begin();
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 20; t++) {
    StepStats s = make_step(0, t, t, 20);
    mt_log_step(l, &s);
  }
  assert_int_equal(mt_log_close(l, &err), 0);
  out = capture_end();
  assert_int_equal(count_lines_starting(out, "step "), 2);
  assert_non_null(strstr(out, "step 14 "));
  free(out);
}

static void test_bar(void **state) {
  (void)state;
  LogOptions o = {.is_root = 1, .progress = PROGRESS_BAR};
  Log *l = NULL;
  MtError err = {0};
  capture_begin();
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  for (int64_t t = 1; t <= 1000; t++) {
    StepStats s = make_step(2, t, t, 2000);
    s.loss = 0.3121;
    s.acc = 0.882;
    mt_log_step(l, &s);
  }
  struct timespec pause = {0, 150 * 1000 * 1000};
  nanosleep(&pause, NULL);
  StepStats s = make_step(2, 1001, 1001, 2000);
  s.loss = 0.3121;
  mt_log_step(l, &s); /* due: more than 0.1 s since the last redraw */
  EpochStats e = make_epoch(2, 2000, 1);
  mt_log_epoch(l, &e);
  assert_int_equal(mt_log_close(l, &err), 0);
  char *out = capture_end();

  /* redraws are rate-limited: 1001 steps, a handful of redraws */
  int draws = 0;
  for (const char *p = out; (p = strstr(p, "\repoch 3/3 [")) != NULL; p++) draws++;
  if (draws < 2 || draws > 10) fail_msg("%d redraws:\n%s", draws, out);
  /* each redraw fits in 79 columns of the 80 assumed when stdout is not a terminal */
  for (const char *p = strchr(out, '\r'); p != NULL; p = strchr(p + 1, '\r')) {
    const char *end = strstr(p, "\033[K");
    assert_non_null(end);
    if (end - p - 1 > 79) fail_msg("bar line of %d columns", (int)(end - p - 1));
  }
  assert_non_null(strstr(out, "\repoch 3/3 [ "));
  assert_non_null(strstr(out, "]   0% loss 0.3121 acc 88.2% 52.1k samples/s ETA 1:12\033[K"));
  assert_non_null(strstr(out, "[======>        ]  50% loss 0.3121 acc 75.0%"));
  /* the epoch summary first clears the bar */
  assert_non_null(strstr(out, "\r\033[Kepoch 3/3  train loss 0.3012 acc 89.1%  test loss 0.3321 acc 88.0%"));
  free(out);
}

/* Validation metrics, the gradient norm and per-layer norm records. */
static void test_norms_and_validation(void **state) {
  (void)state;
  const char *path = temp_path("n.csv");
  LogOptions o = {.is_root = 1, .progress = PROGRESS_OFF, .path = path, .format = LOGFMT_AUTO, .every = 2};
  Log *l = NULL;
  MtError err = {0};
  assert_int_equal(mt_log_open(&l, &o, &err), 0);
  StepStats s1 = make_step(0, 1, 1, 4), s2 = make_step(0, 2, 2, 4);
  s2.grad_norm = 2.5;
  assert_false(mt_log_step_due(l, &s1)); /* --log-every 2: step 1 has no record, so no layer records either */
  assert_true(mt_log_step_due(l, &s2));
  mt_log_step(l, &s1);
  mt_log_layer(l, &s1, "dense0/W", 9, 9);
  mt_log_step(l, &s2);
  mt_log_layer(l, &s2, "dense0/W", 3.25, 0.125);
  EpochStats e = make_epoch(0, 4, 1);
  e.val_loss = 0.5;
  e.val_acc = 0.8;
  mt_log_epoch(l, &e);
  assert_int_equal(mt_log_close(l, &err), 0);
  char *text = slurp(path);
  remove(path);
  char *save = NULL, *f[16];
  char *line = strtok_r(text, "\n", &save); /* header */
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "step");
  assert_close(num(f[13]), 2.5);
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "layer");
  assert_string_equal(f[2], "2");
  assert_string_equal(f[14], "dense0/W");
  assert_close(num(f[15]), 3.25);
  assert_close(num(f[13]), 0.125);
  line = strtok_r(NULL, "\n", &save);
  assert_int_equal(split_csv(line, f, 16), 16);
  assert_string_equal(f[0], "epoch");
  assert_close(num(f[11]), 0.5);
  assert_close(num(f[12]), 0.8);
  assert_null(strtok_r(NULL, "\n", &save));
  free(text);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_csv),          cmocka_unit_test(test_jsonl),
      cmocka_unit_test(test_norms_and_validation),
      cmocka_unit_test(test_file_cadence), cmocka_unit_test(test_open_errors),
      cmocka_unit_test(test_disk_full),    cmocka_unit_test(test_non_root_silent),
      cmocka_unit_test(test_continue),
      cmocka_unit_test(test_plain),        cmocka_unit_test(test_bar),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
