/* opts.c — the table-driven option parser behind every subcommand. One OptionSpec table per command drives the
 * command line, INI files (--config), --help and the INI dump of the effective configuration, so none of them can
 * drift from the others. Every message is one line naming the option (or FILE:LINE: key) and what was expected. */
#include "mpitrain/opts.h"

#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <ini.h>

#include "mpitrain/fileid.h"

/* ==== Names ==== */

/* Option names compare case-insensitively with '-' and '_' interchangeable: INI files conventionally use
 * learning_rate-style keys, the command line --kebab-case, and neither spelling should be an error. */
static int name_char(char c) {
  if (c == '_') return '-';
  return tolower((unsigned char)c);
}

/* Does name[0..n) equal the NUL-terminated option name b? */
static int names_equal_n(const char *name, size_t n, const char *b) {
  size_t i = 0;
  for (; i < n && b[i] != '\0'; i++)
    if (name_char(name[i]) != name_char(b[i])) return 0;
  return i == n && b[i] == '\0';
}

static const OptionSpec *opts_find(const OptionSpec *table, const char *name, size_t n) {
  for (const OptionSpec *o = table; o->name != NULL; o++)
    if (names_equal_n(name, n, o->name)) return o;
  return NULL;
}

static void *field(const OptionSpec *o, void *dst) { return (char *)dst + o->offset; }
static const void *cfield(const OptionSpec *o, const void *src) { return (const char *)src + o->offset; }

/* ==== "Did you mean" ==== */

#define NAME_MAX_LEV 64

/* Edit distance under the same normalisation as names_equal_n; names longer than NAME_MAX_LEV get none. */
static int levenshtein(const char *a, size_t na, const char *b) {
  size_t nb = strlen(b);
  if (na > NAME_MAX_LEV || nb > NAME_MAX_LEV) return INT_MAX;
  int row[NAME_MAX_LEV + 1];
  for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
  for (size_t i = 1; i <= na; i++) {
    int diag = row[0];
    row[0] = (int)i;
    for (size_t j = 1; j <= nb; j++) {
      int up = row[j];
      int sub = diag + (name_char(a[i - 1]) != name_char(b[j - 1]));
      int best = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
      row[j] = sub < best ? sub : best;
      diag = up;
    }
  }
  return row[nb];
}

/* Offers a candidate only when it is plausibly a typo of it (or an unambiguous abbreviation): a far-fetched
 * suggestion is worse than none. */
static void suggest_consider(const char *name, size_t n, const char *cand, const char *prefix, int *best_d,
                             char *out, size_t out_n) {
  char full[NAME_MAX_LEV + 8];
  snprintf(full, sizeof full, "%s%s", prefix, cand);
  size_t len = strlen(full);
  int d = levenshtein(name, n, full);
  int limit = len <= 4 ? 1 : len <= 8 ? 2 : 3;
  if (n >= 3 && n < len) {
    /* A unique prefix ("--act") is as good as distance 1. */
    size_t i = 0;
    while (i < n && name_char(name[i]) == name_char(full[i])) i++;
    if (i == n && d > 1) d = 1;
  }
  if (d <= limit && d < *best_d && (size_t)d < len) {
    *best_d = d;
    snprintf(out, out_n, "%s", full);
  }
}

/* Names users bring from PyTorch scripts, where no typo distance leads to mpitrain's name. value NULL: the option
 * name itself is the alias, and ours is mpitrain's option (hinted only where the table has it); else the alias is
 * that value of the option, and ours says what to write instead. Names compare as option names do. */
static const struct {
  const char *name, *value, *ours;
} opts_aliases[] = {
    {"batch-size", NULL, "batch"},
    {"learning-rate", NULL, "lr"},
    {"num-epochs", NULL, "epochs"},
    {"optimizer", "adamw", "adam with --weight-decay WD (decoupled weight decay, as in AdamW)"},
};

/* The alias entry for an option name (value NULL) or for a value of option name, or -1. */
static int opts_alias(const char *name, size_t n, const char *value) {
  for (size_t i = 0; i < sizeof opts_aliases / sizeof opts_aliases[0]; i++)
    if (names_equal_n(name, n, opts_aliases[i].name) && (value == NULL) == (opts_aliases[i].value == NULL) &&
        (value == NULL || names_equal_n(value, strlen(value), opts_aliases[i].value)))
      return (int)i;
  return -1;
}

/* Writes "; did you mean --xyz?" (or "'xyz'" for INI keys) into out, or "" when nothing is close; an alias gets
 * "; mpitrain calls it --xyz" instead. */
static void opts_suggest(const OptionSpec *table, const char *name, size_t n, int allow_config, int ini, char *out,
                         size_t out_n) {
  int a = opts_alias(name, n, NULL);
  if (a >= 0 && opts_find(table, opts_aliases[a].ours, strlen(opts_aliases[a].ours)) != NULL) {
    snprintf(out, out_n, ini ? "; mpitrain calls it '%s'" : "; mpitrain calls it --%s", opts_aliases[a].ours);
    return;
  }
  char best[NAME_MAX_LEV + 8] = "";
  int best_d = INT_MAX;
  for (const OptionSpec *o = table; o->name != NULL; o++) {
    suggest_consider(name, n, o->name, "", &best_d, best, sizeof best);
    if (o->type == OT_BOOL && !ini) suggest_consider(name, n, o->name, "no-", &best_d, best, sizeof best);
  }
  if (!ini) suggest_consider(name, n, "help", "", &best_d, best, sizeof best);
  if (allow_config && !ini) suggest_consider(name, n, "config", "", &best_d, best, sizeof best);
  if (best[0] == '\0')
    out[0] = '\0';
  else if (ini)
    snprintf(out, out_n, "; did you mean '%s'?", best);
  else
    snprintf(out, out_n, "; did you mean --%s?", best);
}

/* ==== What an option expects, in words ==== */

static int has_lo(const OptionSpec *o) { return (o->flags & OPT_RANGED) && o->min > -1e300; }
static int has_hi(const OptionSpec *o) { return (o->flags & OPT_RANGED) && o->max < 1e300; }

/* "a whole number >= 1 or 'full'", "a number in (0, 1)", ...; noun is "a whole number", "whole numbers", ... */
static void range_text(const OptionSpec *o, const char *noun, int with_word, char *buf, size_t n) {
  int lo = has_lo(o), hi = has_hi(o);
  int lx = (o->flags & OPT_MIN_EXCLUSIVE) != 0, hx = (o->flags & OPT_MAX_EXCLUSIVE) != 0;
  if (lo && hi)
    snprintf(buf, n, "%s in %c%.15g, %.15g%c", noun, lx ? '(' : '[', o->min, o->max, hx ? ')' : ']');
  else if (lo)
    snprintf(buf, n, "%s %s %.15g", noun, lx ? ">" : ">=", o->min);
  else if (hi)
    snprintf(buf, n, "%s %s %.15g", noun, hx ? "<" : "<=", o->max);
  else
    snprintf(buf, n, "%s", noun);
  if (with_word && o->word != NULL) {
    size_t used = strlen(buf);
    snprintf(buf + used, n - used, " or '%s'", o->word);
  }
}

static void choices_text(const OptionSpec *o, const char *sep, char *buf, size_t n) {
  buf[0] = '\0';
  size_t used = 0;
  for (int i = 0; o->choices != NULL && o->choices[i] != NULL && used < n; i++) {
    snprintf(buf + used, n - used, "%s%s", i ? sep : "", o->choices[i]);
    used = strlen(buf);
  }
}

static int in_range(const OptionSpec *o, double v) {
  if (has_lo(o) && ((o->flags & OPT_MIN_EXCLUSIVE) ? !(v > o->min) : !(v >= o->min))) return 0;
  if (has_hi(o) && ((o->flags & OPT_MAX_EXCLUSIVE) ? !(v < o->max) : !(v <= o->max))) return 0;
  return 1;
}

/* ==== Parsing one value ==== */

/* s without leading and trailing white space, copied into buf (values are short; longer ones are reported as
 * invalid by the caller through the returned length). */
static const char *trimmed(const char *s, char *buf, size_t n) {
  while (isspace((unsigned char)*s)) s++;
  size_t len = strlen(s);
  while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
  if (len >= n) len = n - 1;
  memcpy(buf, s, len);
  buf[len] = '\0';
  return buf;
}

static int word_is(const OptionSpec *o, const char *s) {
  return o->word != NULL && names_equal_n(s, strlen(s), o->word);
}

/* Strict base-10 integer: the whole string, no junk, no overflow. "1e6" is accepted when it is exactly a whole
 * number, because step and size limits are naturally written that way. Returns 0 or -1. */
static int parse_int64(const char *s, int64_t *out) {
  if (*s == '\0' || strlen(s) > 64) return -1;
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (end != s && *end == '\0') {
    if (errno == ERANGE) return -1;
    *out = (int64_t)v;
    return 0;
  }
  /* Only decimal digits, sign, point and exponent: keeps strtod's hex, "inf" and "nan" out. */
  for (const char *p = s; *p; p++)
    if (!isdigit((unsigned char)*p) && strchr("+-.eE", *p) == NULL) return -1;
  errno = 0;
  double d = strtod(s, &end);
  if (end == s || *end != '\0' || errno == ERANGE || !isfinite(d) || d != floor(d) || fabs(d) > 9007199254740992.0)
    return -1;
  *out = (int64_t)d;
  return 0;
}

static int parse_float(const char *s, float *out) {
  if (*s == '\0') return -1;
  char *end = NULL;
  errno = 0;
  float v = strtof(s, &end);
  if (end == s || *end != '\0' || !isfinite(v)) return -1;
  /* ERANGE on underflow is harmless (a tiny value stays tiny and the range check judges it); overflow is not. */
  if (errno == ERANGE && fabsf(v) > FLT_MIN) return -1;
  *out = v;
  return 0;
}

static int parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"true", "1", "yes", "on"};
  static const char *const no[] = {"false", "0", "no", "off"};
  for (int i = 0; i < 4; i++) {
    if (names_equal_n(s, strlen(s), yes[i])) return *out = 1, 0;
    if (names_equal_n(s, strlen(s), no[i])) return *out = 0, 0;
  }
  return -1;
}

#define SHOW "%.120s" /* how much of a rejected value a message repeats */

static int fail_expected(MtError *err, const char *src, const char *expected, const char *value) {
  return mt_fail(err, "%s: expected %s, got '" SHOW "'", src, expected, value);
}

/* One integer of an int, int64 or list option (lo/hi = the C type's limits). */
static int assign_integer(const OptionSpec *o, const char *s, int64_t lo, int64_t hi, const char *noun,
                          int64_t *out, const char *src, const char *whole, MtError *err) {
  char expected[160];
  if (word_is(o, s) && o->type != OT_INT_LIST) {
    *out = (int64_t)o->word_value;
    return 0;
  }
  int64_t v = 0;
  if (parse_int64(s, &v) != 0 || v < lo || v > hi || !in_range(o, (double)v)) {
    range_text(o, noun, 1, expected, sizeof expected);
    if (whole != NULL && strcmp(whole, s) != 0)
      return mt_fail(err, "%s: expected %s, got '" SHOW "' in '" SHOW "'", src, expected, s, whole);
    return fail_expected(err, src, expected, s);
  }
  *out = v;
  return 0;
}

static int assign_list(const OptionSpec *o, void *dst, const char *s, const char *src, MtError *err) {
  IntList list = {0};
  if (*s != '\0' && !word_is(o, s)) {
    char item[80];
    const char *p = s;
    for (;;) {
      const char *comma = strchr(p, ',');
      size_t len = comma ? (size_t)(comma - p) : strlen(p);
      if (list.n == OPTS_LIST_MAX) {
        int total = 1;
        for (const char *q = s; *q; q++) total += *q == ',';
        return mt_fail(err, "%s: at most %d values allowed, got %d", src, OPTS_LIST_MAX, total);
      }
      char raw[80];
      if (len >= sizeof raw) {
        range_text(o, "a comma-separated list of whole numbers", 1, item, sizeof item);
        return mt_fail(err, "%s: expected %s, got '" SHOW "'", src, item, s);
      }
      memcpy(raw, p, len);
      raw[len] = '\0';
      trimmed(raw, item, sizeof item);
      if (item[0] == '\0') {
        char expected[160];
        range_text(o, "a comma-separated list of whole numbers", 1, expected, sizeof expected);
        return mt_fail(err, "%s: empty element in '" SHOW "' (expected %s)", src, s, expected);
      }
      int64_t v = 0;
      if (assign_integer(o, item, INT_MIN, INT_MAX, "a comma-separated list of whole numbers", &v, src, s, err) != 0)
        return -1;
      list.v[list.n++] = (int)v;
      if (comma == NULL) break;
      p = comma + 1;
    }
  }
  *(IntList *)field(o, dst) = list;
  return 0;
}

/* What an INI file cannot hold of a text value, or NULL. Every option can come from an INI file, and the effective
 * configuration is written back out as INI (mt_opts_write_ini: checkpoints keep it): a value that would read back
 * differently — or, with a line break, as further options — is refused where it is given. inih trims white space
 * around a value and takes a ';' after white space (or at its start) as the start of a comment. */
static const char *ini_unsafe(const char *v) {
  size_t len = strlen(v);
  for (size_t i = 0; i < len; i++) {
    if (v[i] == '\n' || v[i] == '\r') return "a line break";
    if (v[i] == ';' && (i == 0 || isspace((unsigned char)v[i - 1]))) return "a ';' at its start or after a space";
  }
  if (len > 0 && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[len - 1])))
    return "white space at its start or end";
  return NULL;
}

/* The core of mt_opts_set: value text -> field, with range and type checks. src names the origin in messages. */
static int opt_assign(const OptionSpec *o, void *dst, const char *value, const char *src, MtError *err) {
  if (value == NULL) value = "";
  if (o->type == OT_STRING) {
    size_t len = strlen(value);
    if (len >= o->size)
      return mt_fail(err, "%s: value is too long (%zu characters; at most %zu)", src, len,
                     o->size ? o->size - 1 : 0);
    const char *why = ini_unsafe(value);
    if (why != NULL)
      return mt_fail(err, "%s: the value has %s, which a configuration file cannot hold", src, why);
    memcpy(field(o, dst), value, len + 1);
    return 0;
  }
  char buf[256];
  if (strlen(value) >= sizeof buf) return fail_expected(err, src, "a shorter value", value);
  const char *s = trimmed(value, buf, sizeof buf);
  char expected[400];
  switch (o->type) {
    case OT_INT:
    case OT_INT64: {
      int64_t v = 0;
      int64_t lo = o->type == OT_INT ? INT_MIN : INT64_MIN, hi = o->type == OT_INT ? INT_MAX : INT64_MAX;
      if (assign_integer(o, s, lo, hi, "a whole number", &v, src, NULL, err) != 0) return -1;
      if (o->type == OT_INT)
        *(int *)field(o, dst) = (int)v;
      else
        *(int64_t *)field(o, dst) = v;
      return 0;
    }
    case OT_FLOAT: {
      float v = 0;
      if (word_is(o, s)) {
        v = (float)o->word_value;
      } else if (parse_float(s, &v) != 0 || !in_range(o, v)) {
        range_text(o, "a number", 1, expected, sizeof expected);
        return fail_expected(err, src, expected, s);
      }
      *(float *)field(o, dst) = v;
      return 0;
    }
    case OT_ENUM:
      for (int i = 0; o->choices != NULL && o->choices[i] != NULL; i++)
        if (names_equal_n(s, strlen(s), o->choices[i])) {
          *(int *)field(o, dst) = i;
          return 0;
        }
      if (opts_alias(o->name, strlen(o->name), s) >= 0)
        return mt_fail(err, "%s: unknown value '" SHOW "'; mpitrain calls it %s", src, s,
                       opts_aliases[opts_alias(o->name, strlen(o->name), s)].ours);
      choices_text(o, ", ", expected, sizeof expected);
      return mt_fail(err, "%s: unknown value '" SHOW "'; expected one of %s", src, s, expected);
    case OT_BOOL: {
      int v = 0;
      if (parse_bool(s, &v) != 0) return fail_expected(err, src, "true or false (or yes/no, on/off, 1/0)", s);
      *(int *)field(o, dst) = v;
      return 0;
    }
    case OT_INT_LIST:
      return assign_list(o, dst, s, src, err);
    case OT_STRING:
      break;
  }
  return mt_fail(err, "%s: option has an unknown type %d", src, (int)o->type);
}

/* ==== Public: defaults, set, format ==== */

void mt_opts_defaults(const OptionSpec *table, void *dst) {
  for (const OptionSpec *o = table; o->name != NULL; o++) {
    if (o->def == NULL) {
      /* Zero of the field's type; the option's range does not apply to "not given". */
      size_t bytes = o->type == OT_STRING ? o->size
                     : o->type == OT_INT64 ? sizeof(int64_t)
                     : o->type == OT_FLOAT ? sizeof(float)
                     : o->type == OT_INT_LIST ? sizeof(IntList)
                                              : sizeof(int);
      memset(field(o, dst), 0, bytes);
      continue;
    }
    /* A default the table's own checks reject is a programming error; test_config checks every table. */
    opt_assign(o, dst, o->def, o->name, NULL);
  }
}

int mt_opts_set(const OptionSpec *table, void *dst, const char *name, const char *value, const char *source,
             MtError *err) {
  const OptionSpec *o = opts_find(table, name, strlen(name));
  if (o == NULL) {
    char hint[128];
    opts_suggest(table, name, strlen(name), 0, 0, hint, sizeof hint);
    if (source != NULL) return mt_fail(err, "%s: unknown option '%s'%s", source, name, hint);
    return mt_fail(err, "unknown option --%s%s", name, hint);
  }
  char src[160];
  if (source == NULL) snprintf(src, sizeof src, "--%s", o->name);
  return opt_assign(o, dst, value, source ? source : src, err);
}

/* Shortest text that reads back as the same float, written as people write numbers: help and INI files show
 * 0.001, not 0.00100000005, and 10 or 600, not 1e1 or 6e2 (the shortest %g picks the exponent form whenever the
 * digits run out before the decimal point: plain notation is used for magnitudes below 1e6, as %g does by default). */
static void format_float(float v, char *buf, size_t n) {
  for (int p = 1; p <= 9; p++) {
    snprintf(buf, n, "%.*g", p, (double)v);
    if (strtof(buf, NULL) == v) break;
  }
  const char *ex = strchr(buf, 'e');
  if (ex != NULL) {
    int e = atoi(ex + 1);
    char plain[64];
    if (e >= 0 && e < 6 && snprintf(plain, sizeof plain, "%.*g", e + 1, (double)v) < (int)sizeof plain &&
        strtof(plain, NULL) == v)
      snprintf(buf, n, "%s", plain);
  }
  /* 1e-08 -> 1e-8: the way people write it. */
  char *e = strchr(buf, 'e');
  if (e != NULL) {
    char *d = e + 1;
    if (*d == '+') memmove(d, d + 1, strlen(d));
    else if (*d == '-') d++;
    while (d[0] == '0' && d[1] != '\0') memmove(d, d + 1, strlen(d));
  }
}

void mt_opts_format_value(const OptionSpec *o, const void *src, char *buf, size_t n) {
  if (n == 0) return;
  buf[0] = '\0';
  const void *p = cfield(o, src);
  switch (o->type) {
    case OT_INT:
    case OT_INT64: {
      int64_t v = o->type == OT_INT ? (int64_t) * (const int *)p : *(const int64_t *)p;
      if (o->word != NULL && (double)v == o->word_value)
        snprintf(buf, n, "%s", o->word);
      else
        snprintf(buf, n, "%" PRId64, v);
      return;
    }
    case OT_FLOAT: {
      float v = *(const float *)p;
      if (o->word != NULL && v == (float)o->word_value)
        snprintf(buf, n, "%s", o->word);
      else
        format_float(v, buf, n);
      return;
    }
    case OT_STRING:
      snprintf(buf, n, "%s", (const char *)p);
      return;
    case OT_ENUM: {
      int v = *(const int *)p, count = 0;
      while (o->choices != NULL && o->choices[count] != NULL) count++;
      if (v >= 0 && v < count)
        snprintf(buf, n, "%s", o->choices[v]);
      else
        snprintf(buf, n, "%d", v);
      return;
    }
    case OT_BOOL:
      snprintf(buf, n, "%s", *(const int *)p ? "true" : "false");
      return;
    case OT_INT_LIST: {
      const IntList *l = p;
      if (l->n == 0 && o->word != NULL) snprintf(buf, n, "%s", o->word);
      size_t used = 0;
      for (int i = 0; i < l->n && i < OPTS_LIST_MAX && used < n; i++) {
        snprintf(buf + used, n - used, "%s%d", i ? "," : "", l->v[i]);
        used = strlen(buf);
      }
      return;
    }
  }
}

/* ==== INI files ==== */

static FILE *warnings;   /* mt_opts_set_warnings; stderr until set */
static int warnings_set;

void mt_opts_set_warnings(FILE *f) {
  warnings = f;
  warnings_set = 1;
}

typedef struct IniCtx {
  const OptionSpec *table;
  void *dst;
  const char *path;
  int *set_at;       /* [options]: the line that set each option, 0 if none yet (a second one is warned about) */
  FILE *f;
  int line;          /* of the line inih is processing: it handles each line before reading the next */
  char buf[1024];    /* one line: longer than any inih accepts, so a longer one is reported, never grown into */
  int read_errno;    /* a read failure (e.g. a directory), reported as such rather than as a syntax error */
  MtError err;       /* first error found by the reader or handler ... */
  int err_line;      /* ... and its line, to order it against inih's own syntax errors */
} IniCtx;

/* Feeds inih one line at a time so the handler knows the line number (this inih has no lineno callback).
 * Leading white space is dropped: inih would read an indented line as the continuation of the previous value,
 * and an indented "lr = 0.1" silently becoming part of another option is the worst outcome. */
static char *opts_ini_read_line(char *str, int num, void *stream) {
  IniCtx *c = stream;
  if (c->err.failed) return NULL;  /* stop at the first error: it is the one reported */
  /* A fixed buffer, not getline: `--config /dev/zero` (or a binary file) grew getline's buffer until memory ran
   * out, and then its failure read as a clean end of file. */
  errno = 0;
  if (fgets(c->buf, sizeof c->buf, c->f) == NULL) {
    if (ferror(c->f)) c->read_errno = errno ? errno : EIO;
    return NULL;
  }
  c->line++;
  size_t got = strlen(c->buf);
  int whole = (got > 0 && c->buf[got - 1] == '\n') || feof(c->f); /* else the line goes on, or holds a NUL */
  if (!whole && got + 1 < sizeof c->buf) {
    mt_fail(&c->err, "%s:%d: the line holds a NUL byte; expected a text file", c->path, c->line);
    c->err_line = c->line;
    return NULL;
  }
  const char *p = c->buf;
  while (*p == ' ' || *p == '\t') p++;
  size_t n = strlen(p);
  if (!whole || n + 1 > (size_t)num) {
    mt_fail(&c->err, "%s:%d: line is too long (at most %d characters)", c->path, c->line, num - 3);
    c->err_line = c->line;
    return NULL;
  }
  memcpy(str, p, n + 1);
  return str;
}

static int opts_ini_on_key(void *user, const char *section, const char *name, const char *value) {
  IniCtx *c = user;
  (void)section; /* sections only organise the file; keys are looked up across all of them */
  if (c->err.failed) return 1;
  const OptionSpec *o = opts_find(c->table, name, strlen(name));
  if (o == NULL) {
    char hint[128];
    opts_suggest(c->table, name, strlen(name), 0, 1, hint, sizeof hint);
    mt_fail(&c->err, "%s:%d: unknown option '%s'%s", c->path, c->line, name, hint);
    c->err_line = c->line;
    return 0;
  }
  char src[1200];
  snprintf(src, sizeof src, "%s:%d: %s", c->path, c->line, o->name);
  if (opt_assign(o, c->dst, value, src, &c->err) != 0) {
    c->err_line = c->line;
    return 0;
  }
  /* Silently taking the later of two values hid a forgotten line; sections do not separate keys (see above). */
  int *at = &c->set_at[o - c->table];
  FILE *w = warnings_set ? warnings : stderr;
  if (*at != 0 && w != NULL)
    fprintf(w, "mpitrain: warning: %s:%d: '%s' set again (first at line %d); using the later value %s\n", c->path,
            c->line, name, *at, value);
  if (*at == 0) *at = c->line;
  return 1;
}

/* Applies the INI text read from f (named path in messages) to dst, and closes f. */
static int opts_load_ini_stream(const OptionSpec *table, void *dst, FILE *f, const char *path, MtError *err) {
  IniCtx c = {.table = table, .dst = dst, .path = path, .f = f};
  size_t n_options = 0;
  while (table[n_options].name != NULL) n_options++;
  c.set_at = calloc(n_options + 1, sizeof *c.set_at);
  if (c.set_at == NULL) {
    fclose(f);
    return mt_fail(err, "out of memory reading config file '%s'", path);
  }
  int rc = ini_parse_stream(opts_ini_read_line, &c, opts_ini_on_key, &c);
  free(c.set_at);
  int closed = fclose(c.f);
  if (c.read_errno != 0) return mt_fail(err, "cannot read config file '%s': %s", path, strerror(c.read_errno));
  if (rc == -2) return mt_fail(err, "out of memory reading config file '%s'", path);
  if (rc > 0 && (!c.err.failed || rc < c.err_line))
    return mt_fail(err, "%s:%d: expected 'key = value', a '[section]' header or a comment", path, rc);
  if (c.err.failed) return mt_fail(err, "%s", c.err.msg);
  if (rc != 0) return mt_fail(err, "cannot parse config file '%s' (inih error %d)", path, rc);
  if (closed != 0) return mt_fail(err, "cannot read config file '%s': %s", path, strerror(errno));
  return 0;
}

static int opts_load_ini(const OptionSpec *table, void *dst, const char *path, MtError *err) {
  /* stat first: opening a FIFO to read would block until a writer came, on every rank, before any watchdog runs */
  if (mt_fileid_regular(path, "--config", err) != 0) return -1;
  FILE *f = fopen(path, "r");
  if (f == NULL) return mt_fail(err, "cannot open config file '%s': %s", path, strerror(errno));
  return opts_load_ini_stream(table, dst, f, path, err);
}

int mt_opts_parse_ini_string(const OptionSpec *table, void *dst, const char *text, size_t len, const char *name,
                          MtError *err) {
  if (len == 0) return 0; /* nothing to apply (and fmemopen refuses an empty buffer on older C libraries) */
  /* Through a memory stream, so text takes exactly the path a file does: the same line reader and messages. */
  FILE *f = fmemopen((void *)text, len, "r");
  if (f == NULL) return mt_fail(err, "cannot read configuration text '%s': %s", name, strerror(errno));
  return opts_load_ini_stream(table, dst, f, name, err);
}

/* ==== The command line ==== */

static int is_long_option(const char *s) { return s[0] == '-' && s[1] == '-'; }

/* A value-taking option consumes the next word unless that word is itself an option: `--log --epochs 3` is a
 * forgotten file name, not a log file called "--epochs". */
static const char *next_value(int argc, char **argv, int *i) {
  if (*i + 1 < argc && !is_long_option(argv[*i + 1])) return argv[++*i];
  return NULL;
}

static int is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

/* Pass 1 of mt_opts_parse: --help and --config, wherever they are, because the INI file is applied before every
 * command-line option. Skips values exactly as pass 2 consumes them, so a value is never mistaken for an option.
 * Returns the --config value (the last one) or NULL; *help = 1 if --help / -h was given. */
static const char *scan_help_and_config(const OptionSpec *table, int argc, char **argv, int first, int allow_config,
                                        int *help) {
  const char *config = NULL;
  for (int i = first; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) break;
    if (is_help(a)) {
      *help = 1;
      continue;
    }
    if (!is_long_option(a)) continue;
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t n = eq ? (size_t)(eq - name) : strlen(name);
    if (allow_config && names_equal_n(name, n, "config")) {
      const char *v = eq ? eq + 1 : next_value(argc, argv, &i);
      if (v != NULL) config = v;
      continue;
    }
    const OptionSpec *o = opts_find(table, name, n);
    if (o != NULL && o->type != OT_BOOL && eq == NULL) next_value(argc, argv, &i);
  }
  return config;
}

/* What the value of o looks like, for "missing value (expected ...)". */
static void expected_text(const OptionSpec *o, char *buf, size_t n) {
  if (o->type == OT_ENUM) {
    char list[300];
    choices_text(o, ", ", list, sizeof list);
    snprintf(buf, n, "one of %s", list);
  } else if (o->type == OT_INT_LIST) {
    range_text(o, "a comma-separated list of whole numbers", 1, buf, n);
  } else if (o->type == OT_FLOAT) {
    range_text(o, "a number", 1, buf, n);
  } else if (o->type == OT_STRING) {
    snprintf(buf, n, "%s", o->metavar ? o->metavar : "a value");
  } else {
    range_text(o, "a whole number", 1, buf, n);
  }
}

/* Pass 2's handling of the long option argv[*i] ("--name", "--name value" (advancing *i), "--name=value",
 * "--no-name"): applies it to dst. Returns 0, or -1 with err set. */
static int parse_long_option(const OptionSpec *table, void *dst, int argc, char **argv, int *i, int allow_config,
                             MtError *err) {
  const char *name = argv[*i] + 2, *eq = strchr(name, '=');
  size_t n = eq ? (size_t)(eq - name) : strlen(name);
  if (allow_config && names_equal_n(name, n, "config")) {
    if (eq == NULL && next_value(argc, argv, i) == NULL)
      return mt_fail(err, "--config: missing value (expected an INI file name)");
    return 0;
  }
  const OptionSpec *o = opts_find(table, name, n);
  if (o == NULL && n > 3 && names_equal_n(name, 3, "no-")) {
    const OptionSpec *neg = opts_find(table, name + 3, n - 3);
    if (neg != NULL && neg->type == OT_BOOL) {
      if (eq != NULL) return mt_fail(err, "--no-%s takes no value (use --%s=%s instead)", neg->name, neg->name, eq + 1);
      *(int *)field(neg, dst) = 0;
      return 0;
    }
  }
  if (o == NULL) {
    char hint[128];
    opts_suggest(table, name, n, allow_config, 0, hint, sizeof hint);
    return mt_fail(err, "unknown option --%.*s%s", (int)(n > 100 ? 100 : n), name, hint);
  }
  char src[160];
  snprintf(src, sizeof src, "--%s", o->name);
  if (o->type == OT_BOOL && eq == NULL) {
    /* "--eval false" would otherwise turn on --eval and leave "false" as a stray argument. */
    int ignored = 0;
    if (*i + 1 < argc && parse_bool(argv[*i + 1], &ignored) == 0)
      return mt_fail(err, "--%s takes no value; write --%s=%s (or --%s / --no-%s)", o->name, o->name, argv[*i + 1],
                     o->name, o->name);
    *(int *)field(o, dst) = 1;
    return 0;
  }
  const char *value = eq ? eq + 1 : next_value(argc, argv, i);
  if (value == NULL) {
    char expected[400];
    expected_text(o, expected, sizeof expected);
    return mt_fail(err, "%s: missing value (expected %s)", src, expected);
  }
  return opt_assign(o, dst, value, src, err) != 0 ? -1 : 0;
}

int mt_opts_parse(const OptionSpec *table, void *dst, int argc, char **argv, int first, int allow_config,
               OptsResult *res, MtError *err) {
  memset(res, 0, sizeof *res);
  res->positional = res->positional_store;
  mt_opts_defaults(table, dst);

  const char *config = scan_help_and_config(table, argc, argv, first, allow_config, &res->help);
  if (res->help) return 0; /* `--help` wins over any mistake elsewhere on the line */

  if (config != NULL) {
    if (strlen(config) >= sizeof res->config_path)
      return mt_fail(err, "--config: file name is too long (at most %zu characters)", sizeof res->config_path - 1);
    strcpy(res->config_path, config);
    if (opts_load_ini(table, dst, config, err) != 0) return -1;
  }

  /* Pass 2: the command line proper, so it overrides the file. */
  int only_positional = 0;
  for (int i = first; i < argc; i++) {
    char *a = argv[i];
    if (!only_positional && strcmp(a, "--") == 0) {
      only_positional = 1;
      continue;
    }
    if (!only_positional && is_help(a)) continue;
    if (!only_positional && is_long_option(a)) {
      if (parse_long_option(table, dst, argc, argv, &i, allow_config, err) != 0) return -1;
      continue;
    }
    if (!only_positional && a[0] == '-' && a[1] != '\0' && !isdigit((unsigned char)a[1]) && a[1] != '.') {
      /* "-lr 0.1": options take two dashes; say so rather than treating it as a file name. */
      char hint[128];
      opts_suggest(table, a + 1, strlen(a + 1), allow_config, 0, hint, sizeof hint);
      return mt_fail(err, "unknown option %.100s (options start with two dashes)%s", a, hint);
    }
    if (res->n_positional == OPTS_POSITIONAL_MAX)
      return mt_fail(err, "too many arguments (at most %d besides the options)", OPTS_POSITIONAL_MAX);
    res->positional_store[res->n_positional++] = a;
  }
  return 0;
}

/* ==== Help and INI output ==== */

#define HELP_WIDTH 100 /* wrap column: readable on an 80-column terminal without mid-word breaks most of the time */
#define HELP_LEFT_MAX 30

/* The left column: "--name METAVAR", "--[no-]name", "--name a|b|c". */
static void help_left(const OptionSpec *o, char *buf, size_t n) {
  if (o->type == OT_BOOL) {
    snprintf(buf, n, "--[no-]%s", o->name);
  } else if (o->metavar != NULL) {
    snprintf(buf, n, "--%s %s", o->name, o->metavar);
  } else if (o->type == OT_ENUM) {
    char list[300];
    choices_text(o, "|", list, sizeof list);
    snprintf(buf, n, "--%s %s", o->name, list);
  } else {
    snprintf(buf, n, "--%s %s", o->name,
             o->type == OT_FLOAT ? "X" : o->type == OT_STRING ? "TEXT" : o->type == OT_INT_LIST ? "LIST" : "N");
  }
}

/* Prints "  LEFT   text" with text word-wrapped at HELP_WIDTH and continuation lines indented to col. */
static void help_line(FILE *f, const char *left, int col, const char *text) {
  int pos = fprintf(f, "  %s", left);
  if (pos + 2 > col) {
    fputc('\n', f);
    pos = 0;
  }
  fprintf(f, "%*s", col - pos, "");
  pos = col;
  const char *p = text;
  while (*p) {
    while (*p == ' ') p++;
    size_t w = strcspn(p, " ");
    if (w == 0) break;
    if (pos > col && pos + 1 + (int)w > HELP_WIDTH) {
      fprintf(f, "\n%*s", col, "");
      pos = col;
    }
    if (pos > col) {
      fputc(' ', f);
      pos++;
    }
    fprintf(f, "%.*s", (int)w, p);
    pos += (int)w;
    p += w;
  }
  fputc('\n', f);
}

void mt_opts_print_help(FILE *f, const char *usage, const char *summary, const OptionSpec *table) {
  mt_opts_print_help_ex(f, usage, summary, table, 0);
}

void mt_opts_print_help_ex(FILE *f, const char *usage, const char *summary, const OptionSpec *table,
                        int allow_config) {
  char left[400], text[1400], list[300];
  int col = 0;
  for (const OptionSpec *o = table; o->name != NULL; o++) {
    help_left(o, left, sizeof left);
    int w = (int)strlen(left);
    if (w <= HELP_LEFT_MAX && w > col) col = w;
  }
  col += 4; /* two of indent, two of gap */
  fprintf(f, "usage: %s\n", usage);
  if (summary != NULL && summary[0] != '\0') fprintf(f, "\n%s\n", summary);
  /* The options every command has come first; under their own heading when the table has sections. */
  int sections = table[0].name != NULL && table[0].section != NULL;
  fprintf(f, "\n%s:\n", sections ? "general" : "options");
  help_line(f, "-h, --help", col, "show this help and exit");
  if (allow_config)
    help_line(f, "--config FILE", col,
              "read options from an INI file first: one \"name = value\" per line, names as below without the "
              "dashes; [sections] are allowed and ignored; the command line wins");
  for (const OptionSpec *o = table; o->name != NULL; o++) {
    if (o->section != NULL) fprintf(f, "\n%s:\n", o->section);
    help_left(o, left, sizeof left);
    int used = snprintf(text, sizeof text, "%s", o->help ? o->help : "");
    if (used < 0 || (size_t)used >= sizeof text) used = (int)sizeof text - 1;
    const char *def = o->def ? o->def : "";
    char extra[400] = "";
    if (o->type == OT_ENUM && o->metavar != NULL) {
      choices_text(o, ", ", list, sizeof list);
      snprintf(extra, sizeof extra, "one of %s; ", list);
    }
    size_t el = strlen(extra);
    if (o->type == OT_BOOL) {
      int v = 0;
      snprintf(extra + el, sizeof extra - el, "default: %s", parse_bool(def, &v) == 0 && v ? "on" : "off");
    } else if (def[0] != '\0') {
      snprintf(extra + el, sizeof extra - el, "default: %s", def);
    } else if (o->type == OT_INT_LIST) {
      snprintf(extra + el, sizeof extra - el, "default: none");
    } else if (el >= 2) {
      extra[el - 2] = '\0'; /* drop the "; " of an enum with no default */
    }
    if (extra[0] != '\0') snprintf(text + used, sizeof text - (size_t)used, "%s(%s)", used ? " " : "", extra);
    help_line(f, left, col, text);
  }
}

void mt_opts_write_ini(FILE *f, const OptionSpec *table, const void *src) {
  char value[2048];
  int first = 1;
  for (const OptionSpec *o = table; o->name != NULL; o++) {
    if (o->section != NULL) {
      fprintf(f, "%s[%s]\n", first ? "" : "\n", o->section);
    }
    mt_opts_format_value(o, src, value, sizeof value);
    fprintf(f, "%s = %s\n", o->name, value);
    first = 0;
  }
}
