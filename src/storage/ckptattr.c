/* ckptattr.c — a checkpoint's root attributes as one table (ckptattr.h): each row names an attribute, its type in
 * the file, the CheckpointMeta field it holds, the values a run can write, and whether older files may lack it.
 * Writing, reading and validating walk the table; README "Checkpoint files" lists the same attributes.
 *
 * The attributes are outside the CRC, so anything no run can write is damage (or tampering), refused on reading
 * rather than wrapped by the trainer (which counts epochs in int), divided by (eps, bn_eps) or overflowed by `info`.
 * Reals must be finite, and are checked as stored (a float field: after rounding to float). Attributes not in the
 * table are ignored, so files with more attributes still load. */
#include "ckptattr.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h5util.h"
#include "mpitrain/dataformat.h"

/* An exact integer, a number, lists of them, a string (a char array, or malloc'd: config), an enum by its name, a
 * list of strings (class_names). */
typedef enum { AK_INT, AK_REAL, AK_INTS, AK_REALS, AK_TEXT, AK_NAME, AK_NAMES } AttrKind;
typedef enum { F_I64, F_INT, F_U32, F_FLOAT, F_DOUBLE, F_CHARS, F_HEAP } FieldType;
typedef enum { T_I32, T_I64, T_U32, T_F32, T_F64, T_STR } FileType; /* little-endian, as every file has them */
enum { OPEN_LO = 1, OPEN_HI = 2 };

typedef struct AttrRule {
  const char *name;
  AttrKind kind;
  FileType type;        /* in the file (lists: of an element) */
  size_t offset;        /* of its field in CheckpointMeta (lists: of the array) */
  FieldType field;      /* (lists: of an element) */
  size_t size;          /* F_CHARS: of the array */
  int64_t ilo, ihi;     /* integers: [ilo, ihi] */
  double lo, hi;        /* reals: lo .. hi, OPEN_LO / OPEN_HI excluding an end; +-INFINITY: no bound */
  int open;
  const char *hi_attr;  /* integers: the upper bound is also this (earlier) attribute's value */
  int optional;         /* older files may lack it: then the field keeps absent (a list has 0 elements, NAMES is
                         * NULL); written only when it holds a value in bounds (a list: some element) */
  double absent;
  size_t n_offset;      /* lists: the int field that receives the count ... */
  int n_min, n_max;     /* ... which must be in [n_min, n_max] ... */
  int n_match;          /* ... or (n_match) must equal what that field already holds */
  const char *(*to_name)(int);   /* AK_NAME: the enum's name ... */
  int (*from_name)(const char *); /* ... and back (-1: unknown) ... */
  const char *what;               /* ... and what it is, for "unknown WHAT 'x'" */
} AttrRule;

/* The enums as ints, for AK_NAME rows (an enum field is read and written as an int). */
_Static_assert(sizeof(ActKind) == sizeof(int) && sizeof(BnPlace) == sizeof(int) && sizeof(OptKind) == sizeof(int),
               "enum fields are stored as int");
static const char *act_str(int v) { return mt_act_name((ActKind)v); }
static const char *bn_str(int v) { return mt_bn_place_name((BnPlace)v); }
static const char *opt_str(int v) { return mt_optim_name((OptKind)v); }

#define FIELD_TYPE(x) \
  _Generic((x), int64_t: F_I64, int: F_INT, uint32_t: F_U32, float: F_FLOAT, double: F_DOUBLE, char *: F_HEAP)
#define FIELD(f) .offset = offsetof(CheckpointMeta, f), .field = FIELD_TYPE(((CheckpointMeta *)0)->f)
#define ELEMS(f) .offset = offsetof(CheckpointMeta, f), .field = FIELD_TYPE(((CheckpointMeta *)0)->f[0])
#define INT(name, t, f, lo_, hi_, ...) {name, AK_INT, t, FIELD(f), .ilo = (lo_), .ihi = (hi_), __VA_ARGS__}
#define REAL(name, f, lo_, hi_, open_, ...) \
  {name, AK_REAL, T_F64, FIELD(f), .lo = (lo_), .hi = (hi_), .open = (open_), __VA_ARGS__}
#define INTS(name, f, lo_, hi_, ...) {name, AK_INTS, T_I32, ELEMS(f), .ilo = (lo_), .ihi = (hi_), __VA_ARGS__}
#define REALS(name, f, lo_, hi_, open_, ...) \
  {name, AK_REALS, T_F32, ELEMS(f), .lo = (lo_), .hi = (hi_), .open = (open_), __VA_ARGS__}
#define TEXT(name, f) \
  {name, AK_TEXT, T_STR, .offset = offsetof(CheckpointMeta, f), .field = F_CHARS, .size = sizeof(((CheckpointMeta *)0)->f)}
#define HEAP_TEXT(name, f) {name, AK_TEXT, T_STR, FIELD(f)}
#define NAME(name, f, to, from, what_) \
  {name, AK_NAME, T_STR, .offset = offsetof(CheckpointMeta, f), .field = F_INT, .to_name = to, .from_name = from, \
   .what = what_}
#define COUNT(f) .n_offset = offsetof(CheckpointMeta, f)
#define MAX_UNITS DATA_MAX_FEATURES /* hidden units: no wider than the widest input */

/* In reading order: a row may refer (hi_attr, n_match, a list's count) only to rows above it. format and
 * format_version come first, by their own code: they say whether the rest can be read at all. */
static const AttrRule attr_rules[] = {
    INT("world_size", T_I32, world_size, 1, INT_MAX),
    INT("step", T_I64, step, 0, INT64_MAX),
    INT("epoch", T_I64, epoch, 0, INT_MAX - 1), /* the trainer holds it in an int and counts on */
    INT("n_train", T_I64, n_train, 1, INT64_MAX),
    INT("epoch_pos", T_I64, epoch_pos, 0, INT64_MAX, .hi_attr = "n_train"),
    INT("seed", T_I64, seed, 0, INT64_MAX), /* --seed's range */
    INT("n_inputs", T_I32, spec.n_inputs, 1, DATA_MAX_FEATURES),
    INT("n_classes", T_I32, spec.n_classes, 2, DATA_MAX_CLASSES),
    /* no hidden layer (softmax regression): an empty list, a null dataspace */
    INTS("hidden", spec.hidden, 1, MAX_UNITS, COUNT(spec.n_hidden), .n_max = MODEL_MAX_HIDDEN),
    /* hyperparameters: the ranges of their options (config.c) */
    REAL("leaky_slope", spec.leaky_slope, 0, 1, OPEN_LO | OPEN_HI),
    REAL("bn_momentum", spec.bn_momentum, 0, 1, OPEN_LO),
    REAL("bn_eps", spec.bn_eps, 0, INFINITY, OPEN_LO),
    REALS("dropout", spec.dropout, 0, 1, OPEN_HI, COUNT(spec.n_hidden), .n_match = 1),
    REAL("best_val_loss", best_val_loss, -INFINITY, INFINITY, 0), /* < 0: none yet */
    INT("best_epoch", T_I64, best_epoch, 0, INT_MAX - 1),
    INT("since_best", T_I64, since_best, 0, INT_MAX - 1),
    INT("optimizer_step", T_I64, opt_step, 0, INT64_MAX),
    REAL("beta1", opt.beta1, 0, 1, OPEN_HI),
    REAL("beta2", opt.beta2, 0, 1, OPEN_HI),
    REAL("eps", opt.eps, 0, INFINITY, OPEN_LO),
    REAL("epoch_loss_sum", epoch_loss_sum, 0, INFINITY, 0), /* sums of cross-entropies and L2 terms, all >= 0 */
    REAL("epoch_correct", epoch_correct, 0, INFINITY, 0),
    INT("epoch_samples", T_I64, epoch_samples, 0, INT64_MAX),
    /* deterministic runs only: per parameter tensor, the largest gradient value of a group */
    REALS("det_max", det_max, 0, INFINITY, 0, .optional = 1, COUNT(det_n), .n_min = 1,
          .n_max = 4 * MODEL_MAX_HIDDEN + 2),
    /* training time so far; older versions did not record it (then -1) */
    REAL("elapsed_s", elapsed_s, 0, INFINITY, 0, .optional = 1, .absent = -1),
    INT("crc32", T_U32, crc32, 0, UINT32_MAX),
    NAME("activation", spec.act, act_str, mt_act_from_name, "activation"),
    NAME("batchnorm", spec.bn, bn_str, mt_bn_place_from_name, "batchnorm placement"),
    NAME("optimizer", opt.kind, opt_str, mt_optim_from_name, "optimizer"),
    TEXT("data", data),
    TEXT("created", created),
    TEXT("mpitrain_version", version),
    HEAP_TEXT("config", config),
    /* the training data's class names; older versions did not store them */
    {"class_names", AK_NAMES, T_STR, .offset = offsetof(CheckpointMeta, class_names), .optional = 1},
};
#define N_RULES (sizeof attr_rules / sizeof attr_rules[0])

static hid_t file_type(FileType t) {
  switch (t) {
    case T_I32: return H5T_STD_I32LE;
    case T_I64: return H5T_STD_I64LE;
    case T_U32: return H5T_STD_U32LE;
    case T_F32: return H5T_IEEE_F32LE;
    case T_F64: return H5T_IEEE_F64LE;
    case T_STR: break;
  }
  return -1;
}

static const AttrRule *attr_rule(const char *name) {
  for (size_t i = 0; i < N_RULES; i++)
    if (strcmp(attr_rules[i].name, name) == 0) return &attr_rules[i];
  return NULL;
}

static void *field_at(const CheckpointMeta *meta, const AttrRule *r, int i) {
  static const size_t size[] = {[F_I64] = 8, [F_INT] = sizeof(int), [F_U32] = 4, [F_FLOAT] = 4, [F_DOUBLE] = 8,
                                [F_CHARS] = 1, [F_HEAP] = sizeof(char *)};
  return (char *)meta + r->offset + (size_t)i * size[r->field];
}

static int64_t field_int(const CheckpointMeta *meta, const AttrRule *r) {
  const void *p = field_at(meta, r, 0);
  if (r->field == F_I64) return *(const int64_t *)p;
  if (r->field == F_INT) return *(const int *)p;
  return *(const uint32_t *)p;
}

static double field_real(const CheckpointMeta *meta, const AttrRule *r) {
  const void *p = field_at(meta, r, 0);
  return r->field == F_FLOAT ? (double)*(const float *)p : *(const double *)p;
}

static int real_in_bounds(const AttrRule *r, double v) {
  if (!isfinite(v)) return 0;
  if ((r->open & OPEN_LO) ? !(v > r->lo) : !(v >= r->lo)) return 0;
  return (r->open & OPEN_HI) ? v < r->hi : v <= r->hi;
}

/* ==== Writing ==== */

/* A list attribute of n elements of type t (n = 0: a null dataspace, the empty list). */
static int write_list(hid_t f, const char *name, hid_t t, const void *v, int n) {
  hsize_t dim = (hsize_t)n;
  hid_t sp = n > 0 ? H5Screate_simple(1, &dim, NULL) : H5Screate(H5S_NULL);
  if (sp < 0) return -1;
  int rc = mt_h5_attr_write(f, name, t, sp, v);
  if (H5Sclose(sp) < 0) rc = -1;
  return rc;
}

/* Attribute r from meta's field (an optional one only when it holds a value). */
static int attr_write(hid_t f, const AttrRule *r, const CheckpointMeta *meta) {
  const void *p = field_at(meta, r, 0);
  switch (r->kind) {
    case AK_INT: {
      int64_t v = field_int(meta, r);
      int32_t i32 = (int32_t)v;
      uint32_t u32 = (uint32_t)v;
      const void *buf = r->type == T_I32 ? (const void *)&i32 : r->type == T_U32 ? (const void *)&u32 : &v;
      return mt_h5_attr_write_scalar(f, r->name, file_type(r->type), buf);
    }
    case AK_REAL: {
      double v = field_real(meta, r);
      if (r->optional && v < r->lo) return 0; /* elapsed_s < 0: not recorded */
      return mt_h5_attr_write_scalar(f, r->name, file_type(r->type), &v);
    }
    case AK_INTS: /* int and float arrays are the file's I32 and F32 (little-endian hosts, as everywhere) */
    case AK_REALS: {
      int n = *(const int *)((const char *)meta + r->n_offset);
      return r->optional && n == 0 ? 0 : write_list(f, r->name, file_type(r->type), p, n);
    }
    case AK_TEXT: {
      const char *s = r->field == F_HEAP ? *(char *const *)p : p;
      if (s == NULL) s = "";
      return mt_h5_attr_write_strings(f, r->name, &s, 1, 1);
    }
    case AK_NAME: {
      const char *s = r->to_name(*(const int *)p);
      return mt_h5_attr_write_strings(f, r->name, &s, 1, 1);
    }
    case AK_NAMES: {
      char **v = *(char **const *)p;
      return v ? mt_h5_attr_write_strings(f, r->name, (const char *const *)v, (hsize_t)meta->spec.n_classes, 0) : 0;
    }
  }
  return -1;
}

int mt_ckpt_attrs_write(hid_t f, const CheckpointMeta *meta, uint32_t crc) {
  CheckpointMeta w = *meta; /* what this mpitrain writes, whoever wrote meta */
  w.crc32 = crc;
  snprintf(w.version, sizeof w.version, "%s", MPITRAIN_VERSION);
  const char *format = CHECKPOINT_FORMAT;
  int fv = CHECKPOINT_VERSION, rc = 0;
  rc |= mt_h5_attr_write_strings(f, "format", &format, 1, 1);
  rc |= mt_h5_attr_write_scalar(f, "format_version", H5T_STD_I32LE, &fv);
  for (size_t i = 0; i < N_RULES; i++) rc |= attr_write(f, &attr_rules[i], &w);
  return rc ? -1 : 0;
}

/* ==== Reading ==== */

/* Stores v (in bounds, so it fits) as element i of r's field; returns the value as stored. */
static double field_store(CheckpointMeta *meta, const AttrRule *r, int i, int64_t iv, double v) {
  void *p = field_at(meta, r, i);
  switch (r->field) {
    case F_I64:
      *(int64_t *)p = iv;
      return (double)iv;
    case F_INT:
      *(int *)p = (int)iv;
      return (double)iv;
    case F_U32:
      *(uint32_t *)p = (uint32_t)iv;
      return (double)iv;
    case F_FLOAT: /* beyond float's range is Inf (a plain cast would be undefined behaviour) */
      *(float *)p = isfinite(v) && fabs(v) > FLT_MAX ? (v > 0 ? INFINITY : -INFINITY) : (float)v;
      return (double)*(float *)p;
    case F_DOUBLE:
      *(double *)p = v;
      return v;
    case F_CHARS:
    case F_HEAP:
      break;
  }
  return v;
}

/* One value of attribute r (element i of a list, i < 0: a scalar) checked and stored. */
static int attr_value(const char *path, const AttrRule *r, int i, int64_t iv, double v, CheckpointMeta *meta,
                      MtError *err) {
  char name[64], range[96];
  if (i < 0)
    snprintf(name, sizeof name, "%s", r->name);
  else
    snprintf(name, sizeof name, "%s[%d]", r->name, i);
  if (r->kind == AK_INT || r->kind == AK_INTS) {
    int64_t hi = r->ihi;
    const AttrRule *h = r->hi_attr ? attr_rule(r->hi_attr) : NULL;
    if (h && field_int(meta, h) < hi) hi = field_int(meta, h);
    if (iv < r->ilo || iv > hi) {
      if (h)
        snprintf(range, sizeof range, "[%lld, %s = %lld]", (long long)r->ilo, h->name, (long long)hi);
      else
        snprintf(range, sizeof range, "[%lld, %lld]", (long long)r->ilo, (long long)hi);
      return mt_fail(err, "checkpoint %s: attribute %s = %lld is out of range %s", path, name, (long long)iv, range);
    }
    field_store(meta, r, i < 0 ? 0 : i, iv, 0);
    return 0;
  }
  double stored = field_store(meta, r, i < 0 ? 0 : i, 0, v);
  if (real_in_bounds(r, stored)) return 0;
  char as[48] = "";
  if (real_in_bounds(r, v)) snprintf(as, sizeof as, " (%g as float32)", stored); /* rounding made it invalid */
  if (isinf(r->lo) && isinf(r->hi))
    return mt_fail(err, "checkpoint %s: attribute %s = %g%s is not a finite number", path, name, v, as);
  snprintf(range, sizeof range, "%c%g, %g%c", (r->open & OPEN_LO) ? '(' : '[', r->lo, r->hi,
           (r->open & OPEN_HI) || isinf(r->hi) ? ')' : ']');
  return mt_fail(err, "checkpoint %s: attribute %s = %g%s is out of range %s", path, name, v, as, range);
}

/* A list attribute r: its count checked against its bounds, then every element. */
static int attr_read_list(hid_t f, const char *path, const AttrRule *r, CheckpointMeta *meta, MtError *err) {
  H5T_class_t cls;
  hssize_t count = 0;
  int found = mt_h5_attr_find(f, r->name, &cls, &count); /* 1 found, 0 missing */
  if (found < 0) return mt_fail(err, "checkpoint %s: cannot read attribute %s", path, r->name);
  if (found == 0) return r->optional ? 0 : mt_fail(err, "checkpoint %s: attribute %s is missing", path, r->name);
  if (cls != H5T_INTEGER && (r->kind == AK_INTS || cls != H5T_FLOAT))
    return mt_fail(err, "checkpoint %s: attribute %s is not a list of %s", path, r->name,
                   r->kind == AK_INTS ? "integers" : "numbers");
  int *n = (int *)((char *)meta + r->n_offset);
  if (r->n_match ? count != *n : count < r->n_min || count > r->n_max) {
    if (r->n_match)
      return mt_fail(err, "checkpoint %s: attribute %s has %lld values; expected %d, one per hidden layer", path,
                     r->name, (long long)count, *n);
    return mt_fail(err, "checkpoint %s: attribute %s has %lld values; expected %d .. %d", path, r->name,
                   (long long)count, r->n_min, r->n_max);
  }
  int64_t iv[4 * MODEL_MAX_HIDDEN + 2]; /* the longest list (n_max, or a count n_match holds to) */
  double v[4 * MODEL_MAX_HIDDEN + 2];
  if ((size_t)count > sizeof v / sizeof v[0])
    return mt_fail(err, "checkpoint %s: attribute %s is too long", path, r->name);
  if (count > 0 && mt_h5_attr_read_raw(f, r->name, r->kind == AK_INTS ? H5T_NATIVE_INT64 : H5T_NATIVE_DOUBLE,
                                    r->kind == AK_INTS ? (void *)iv : (void *)v) < 0)
    return mt_fail(err, "checkpoint %s: cannot read attribute %s", path, r->name);
  for (int i = 0; i < (int)count; i++)
    if (attr_value(path, r, i, r->kind == AK_INTS ? iv[i] : 0, r->kind == AK_REALS ? v[i] : 0, meta, err) != 0)
      return -1;
  *n = (int)count;
  return 0;
}

/* A string attribute r: into its char array, malloc'd (config), or as the enum it names. */
static int attr_read_text(hid_t f, const char *path, const AttrRule *r, CheckpointMeta *meta, MtError *err) {
  char **v = NULL;
  int nv = 0, found = mt_h5_attr_read_strings(f, path, r->name, 1, &v, &nv, err);
  if (found == 1) return mt_fail(err, "checkpoint %s: attribute %s is missing", path, r->name);
  if (found < 0) return -1;
  const char *s = nv > 0 ? v[0] : "";
  void *p = field_at(meta, r, 0);
  int rc = 0;
  if (r->kind == AK_NAME) {
    int k = r->from_name(s);
    if (k < 0)
      rc = mt_fail(err, "checkpoint %s: unknown %s '%.*s'", path, r->what, 31, s); /* as read into 32 bytes before */
    else
      *(int *)p = k;
  } else if (r->field == F_HEAP) {
    *(char **)p = strdup(s);
  } else {
    snprintf(p, r->size, "%s", s);
  }
  mt_h5_strings_free(v, nv);
  return rc;
}

/* class_names: one string per class (or none: older files, or data without names). */
static int attr_read_names(hid_t f, const char *path, const AttrRule *r, CheckpointMeta *meta, MtError *err) {
  const int C = meta->spec.n_classes;
  char **names = NULL;
  int nn = 0, found = mt_h5_attr_read_strings(f, path, r->name, C, &names, &nn, err);
  if (found < 0) return -1;
  if (found == 0 && nn != C) {
    mt_h5_strings_free(names, nn);
    return mt_fail(err, "checkpoint %s: class_names has %d entries; expected one per class (%d)", path, nn, C);
  }
  *(char ***)field_at(meta, r, 0) = names;
  return 0;
}

/* Reads, checks and stores attribute r. */
static int attr_read(hid_t f, const char *path, const AttrRule *r, CheckpointMeta *meta, MtError *err) {
  if (r->kind == AK_INTS || r->kind == AK_REALS) return attr_read_list(f, path, r, meta, err);
  if (r->kind == AK_TEXT || r->kind == AK_NAME) return attr_read_text(f, path, r, meta, err);
  if (r->kind == AK_NAMES) return attr_read_names(f, path, r, meta, err);
  int64_t iv = 0;
  double v = 0;
  int found = r->kind == AK_INT ? mt_h5_attr_read_int64(f, path, r->name, &iv, err)
                                : mt_h5_attr_read_number(f, path, r->name, 0, &v, err);
  if (found < 0) return -1;
  if (found == 1) {
    if (r->optional) field_store(meta, r, 0, (int64_t)r->absent, r->absent);
    return r->optional ? 0 : mt_fail(err, "checkpoint %s: attribute %s is missing", path, r->name);
  }
  return attr_value(path, r, -1, iv, v, meta, err);
}

/* format and format_version: an mpitrain checkpoint, of a version this mpitrain reads. */
static int read_format(hid_t f, const char *path, CheckpointMeta *meta, MtError *err) {
  char format[64] = "";
  char **fv = NULL;
  int nfv = 0, r = mt_h5_attr_read_strings(f, path, "format", 1, &fv, &nfv, err);
  if (r < 0) return -1;
  if (r == 0 && nfv > 0) snprintf(format, sizeof format, "%s", fv[0]);
  mt_h5_strings_free(fv, nfv);
  if (strcmp(format, CHECKPOINT_FORMAT) != 0)
    return mt_fail(err, "%s is not an mpitrain checkpoint (format attribute '%s'; expected '%s')", path,
                   r == 1 ? "(none)" : format, CHECKPOINT_FORMAT);
  /* Exactly, not through double, like every integer here. */
  int64_t v = 0;
  r = mt_h5_attr_read_int64(f, path, "format_version", &v, err);
  if (r == 1) return mt_fail(err, "checkpoint %s: attribute %s is missing", path, "format_version");
  if (r < 0) return -1;
  meta->format_version = (int)v;
  if (v > CHECKPOINT_VERSION || v < 1)
    return mt_fail(err, "checkpoint %s has format version %lld; this mpitrain (%s) reads versions 1 to %d: use a "
                        "newer mpitrain to resume it",
                   path, (long long)v, MPITRAIN_VERSION, CHECKPOINT_VERSION);
  return 0;
}

int mt_ckpt_attrs_read(hid_t f, const char *path, CheckpointMeta *meta, MtError *err) {
  memset(meta, 0, sizeof *meta);
  if (read_format(f, path, meta, err) != 0) return -1;
  for (size_t i = 0; i < N_RULES; i++)
    if (attr_read(f, path, &attr_rules[i], meta, err) != 0) return -1;
  return 0;
}
