/* torchfile.c — PyTorch state dicts (torch.save's zip format) read without Python, and mapped onto the model.
 *
 * The file: a zip archive (entries stored, not compressed) holding <name>/data.pkl, a pickle of protocol 2, and
 * <name>/data/<key>, one raw little-endian storage per tensor. The pickle is interpreted, not executed: the handful
 * of opcodes torch.save emits for a dict of tensors build values in a bounded pool, and the only callables are the
 * three a state dict needs, recognised by name. Everything else — another global, another opcode, a length past the
 * end, an unknown memo index, too deep a nesting, an entry whose CRC-32 does not match — is refused with a message
 * naming what was found. */
#include "mpitrain/torchfile.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "mpitrain/checkpoint.h"

#define MAX_ENTRIES (2 * TORCHFILE_MAX_TENSORS + 16) /* zip entries: a storage per tensor, data.pkl, version, ... */
#define MAX_NAME 512                                 /* bytes of a zip entry's name */
#define MAX_VALUES (1 << 17)                         /* pickle values: about 12 per tensor */
#define MAX_STACK (1 << 16)
#define MAX_MARKS 64                                 /* nesting depth of MARK ... TUPLE / SETITEMS */
#define MAX_GLOBAL 128                               /* bytes of "module\nname\n" */

/* ==== Bytes ==== */

static uint32_t le16(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const uint8_t *p) { return le16(p) | (uint32_t)le16(p + 2) << 16; }
static uint64_t le64(const uint8_t *p) { return (uint64_t)le32(p) | (uint64_t)le32(p + 4) << 32; }

static const char *const dtype_names[TORCH_DTYPE_COUNT] = {"float32", "float64", "float16", "bfloat16", "int64",
                                                            "int32", "int16", "int8", "uint8", "bool"};
/* The storage classes torch.save names (torch.FloatStorage ...), in TorchDtype order, and their element sizes. */
static const char *const storage_names[TORCH_DTYPE_COUNT] = {
    "FloatStorage", "DoubleStorage", "HalfStorage", "BFloat16Storage", "LongStorage",
    "IntStorage",   "ShortStorage",  "CharStorage", "ByteStorage",     "BoolStorage"};
static const int dtype_bytes[TORCH_DTYPE_COUNT] = {4, 8, 2, 2, 8, 4, 2, 1, 1, 1};

const char *mt_torchfile_dtype_name(TorchDtype d) {
  return d >= 0 && d < TORCH_DTYPE_COUNT ? dtype_names[d] : "unknown";
}

/* ==== The zip archive ==== */

typedef struct Entry {
  char name[MAX_NAME];
  const uint8_t *data;
  uint64_t size;
} Entry;

typedef struct Zip {
  const char *path;
  const uint8_t *buf;
  uint64_t size;
  Entry *e;
  int n;
} Zip;

/* The zip64 extended-information extra field replaces each of usize, csize, offset that is saturated, in this order. */
static int zip64_extra(const Zip *z, const uint8_t *x, uint32_t xlen, uint64_t *usize, uint64_t *csize,
                       uint64_t *off, MtError *err) {
  for (uint32_t p = 0; p + 4 <= xlen;) {
    uint32_t id = le16(x + p), len = le16(x + p + 2);
    if (p + 4 + len > xlen) break;
    if (id == 1) {
      uint32_t q = p + 4, end = q + len;
      uint64_t *fields[3] = {usize, csize, off};
      for (int i = 0; i < 3; i++) {
        if (*fields[i] != 0xFFFFFFFFu) continue;
        if (q + 8 > end) return mt_fail(err, "%s: a zip64 extra field is too short (damaged?)", z->path);
        *fields[i] = le64(x + q);
        q += 8;
      }
      return 0;
    }
    p += 4 + len;
  }
  if (*usize == 0xFFFFFFFFu || *csize == 0xFFFFFFFFu || *off == 0xFFFFFFFFu)
    return mt_fail(err, "%s: a zip entry's size or offset is saturated but has no zip64 field (damaged?)", z->path);
  return 0;
}

/* The central directory's entries, each checked against its local header and its CRC-32. */
static int zip_open(Zip *z, MtError *err) {
  const uint8_t *b = z->buf;
  const uint64_t size = z->size;
  if (size < 22) return mt_fail(err, "%s: %" PRIu64 " bytes: too short for a zip archive (truncated?)", z->path, size);
  /* End of central directory: 22 bytes and a comment of at most 65535, which must end the file exactly. */
  int64_t eocd = -1;
  for (int64_t p = (int64_t)size - 22; p >= 0 && p >= (int64_t)size - 22 - 65535; p--)
    if (le32(b + p) == 0x06054b50u && (uint64_t)p + 22 + le16(b + p + 20) == size) {
      eocd = p;
      break;
    }
  if (eocd < 0)
    return mt_fail(err, "%s: no end of the zip central directory (truncated, or not a torch.save file)", z->path);
  uint64_t entries = le16(b + eocd + 10), cd_size = le32(b + eocd + 12), cd_off = le32(b + eocd + 16);
  uint64_t cd_end_limit = (uint64_t)eocd;
  if (le16(b + eocd + 4) != 0 && le16(b + eocd + 4) != 0xFFFF)
    return mt_fail(err, "%s: a multi-disk zip archive", z->path);
  if (entries == 0xFFFF || cd_size == 0xFFFFFFFFu || cd_off == 0xFFFFFFFFu) {
    /* zip64: the locator (20 bytes) just before, pointing at the zip64 end record (56 bytes and more). */
    if (eocd < 20 || le32(b + eocd - 20) != 0x07064b50u)
      return mt_fail(err, "%s: a zip64 archive without its zip64 locator (damaged?)", z->path);
    uint64_t z64 = le64(b + eocd - 20 + 8);
    if (z64 > (uint64_t)eocd - 20 || (uint64_t)eocd - 20 - z64 < 56 || le32(b + z64) != 0x06064b50u)
      return mt_fail(err, "%s: the zip64 end of central directory is not where its locator says (damaged?)", z->path);
    entries = le64(b + z64 + 32);
    cd_size = le64(b + z64 + 40);
    cd_off = le64(b + z64 + 48);
    cd_end_limit = z64;
  }
  if (entries > MAX_ENTRIES)
    return mt_fail(err, "%s: %" PRIu64 " zip entries; a state dict mpitrain can load has at most %d", z->path, entries,
                   MAX_ENTRIES);
  if (cd_off > cd_end_limit || cd_size > cd_end_limit - cd_off)
    return mt_fail(err, "%s: the zip central directory lies outside the file (truncated or damaged?)", z->path);
  z->e = calloc(entries ? entries : 1, sizeof *z->e);
  if (z->e == NULL) return mt_fail(err, "%s: out of memory reading the zip directory", z->path);
  uint64_t p = cd_off, cd_end = cd_off + cd_size;
  for (uint64_t i = 0; i < entries; i++) {
    if (cd_end - p < 46 || le32(b + p) != 0x02014b50u)
      return mt_fail(err, "%s: zip directory entry %" PRIu64 " is damaged", z->path, i);
    uint32_t flags = le16(b + p + 8), method = le16(b + p + 10), crc = le32(b + p + 16);
    uint64_t csize = le32(b + p + 20), usize = le32(b + p + 24), off = le32(b + p + 42);
    uint32_t nlen = le16(b + p + 28), xlen = le16(b + p + 30), clen = le16(b + p + 32);
    if (cd_end - p - 46 < (uint64_t)nlen + xlen + clen)
      return mt_fail(err, "%s: zip directory entry %" PRIu64 " runs past the directory (damaged?)", z->path, i);
    if (nlen == 0 || nlen >= MAX_NAME)
      return mt_fail(err, "%s: zip entry %" PRIu64 " has a name of %u bytes", z->path, i, nlen);
    Entry *e = &z->e[z->n];
    memcpy(e->name, b + p + 46, nlen);
    e->name[nlen] = '\0';
    if (strlen(e->name) != nlen) return mt_fail(err, "%s: zip entry %" PRIu64 " has a NUL in its name", z->path, i);
    if (zip64_extra(z, b + p + 46 + nlen, xlen, &usize, &csize, &off, err) != 0) return -1;
    if (flags & 1) return mt_fail(err, "%s: zip entry %s is encrypted", z->path, e->name);
    if (method != 0)
      return mt_fail(err, "%s: zip entry %s is compressed (method %u); torch.save stores its entries uncompressed",
                     z->path, e->name, method);
    if (csize != usize)
      return mt_fail(err, "%s: zip entry %s is stored with %" PRIu64 " bytes for %" PRIu64 " (damaged?)", z->path,
                     e->name, csize, usize);
    /* Its local header: the same name, then the data, all before the central directory. */
    if (off > cd_off || cd_off - off < 30 || le32(b + off) != 0x04034b50u)
      return mt_fail(err, "%s: zip entry %s: no local header at offset %" PRIu64 " (damaged?)", z->path, e->name, off);
    uint64_t lnlen = le16(b + off + 26), lxlen = le16(b + off + 28), data = off + 30 + lnlen + lxlen;
    if (lnlen != nlen || data > cd_off || memcmp(b + off + 30, e->name, nlen) != 0)
      return mt_fail(err, "%s: zip entry %s: its local header does not match the directory (damaged?)", z->path,
                     e->name);
    if (usize > cd_off - data)
      return mt_fail(err, "%s: zip entry %s: %" PRIu64 " bytes run past the end of the data (truncated?)", z->path,
                     e->name, usize);
    e->data = b + data;
    e->size = usize;
    uLong c = crc32_z(crc32_z(0L, Z_NULL, 0), e->data, (z_size_t)usize);
    if ((uint32_t)c != crc)
      return mt_fail(err, "%s: zip entry %s fails its CRC-32 check (stored %08x, computed %08x): the file is damaged",
                     z->path, e->name, crc, (uint32_t)c);
    z->n++;
    p += 46 + (uint64_t)nlen + xlen + clen;
  }
  return 0;
}

static const Entry *zip_find(const Zip *z, const char *name) {
  for (int i = 0; i < z->n; i++)
    if (strcmp(z->e[i].name, name) == 0) return &z->e[i];
  return NULL;
}

/* ==== The pickle ==== */

typedef enum VKind { V_NONE = 0, V_BOOL, V_INT, V_STR, V_TUPLE, V_DICT, V_GLOBAL, V_STORAGE, V_TENSOR } VKind;
typedef enum GKind { G_ORDERED_DICT = 0, G_REBUILD_TENSOR, G_REBUILD_PARAMETER, G_STORAGE } GKind;

typedef struct Val {
  VKind kind;
  int64_t i;              /* INT, BOOL; GLOBAL: GKind; STORAGE, TENSOR: TorchDtype */
  const char *s;          /* STR: into the pickle, not NUL-terminated; STORAGE: the data */
  uint64_t len;           /* STR: bytes; STORAGE, TENSOR: elements */
  int first, count;       /* TUPLE: cells [first, first + count); DICT: pairs, a list from first, count of them */
  int last;               /* DICT: the last pair */
  int dtype;              /* GLOBAL G_STORAGE: TorchDtype */
  int storage;            /* TENSOR: the storage value */
  int64_t offset;         /* TENSOR: elements into the storage */
  int rank;
  int64_t size[TORCHFILE_MAX_RANK], stride[TORCHFILE_MAX_RANK];
} Val;

typedef struct Pair {
  int key, value, next;
} Pair;

typedef struct Vm {
  const char *path;
  const Zip *zip;
  char prefix[MAX_NAME];  /* "<name>/" of data.pkl */
  const uint8_t *p;
  uint64_t n, pos;
  Val *v;
  int nv, cap_v;
  int *cells;
  int ncells, cap_cells;
  Pair *pairs;
  int npairs, cap_pairs;
  int *stack;
  int sp;
  int marks[MAX_MARKS];
  int nmarks;
  int *memo;
  int cap_memo;
  MtError *err;
} Vm;

static int grow(void **a, int *cap, int need, size_t elem, int max, const Vm *vm, const char *what) {
  if (need <= *cap) return 0;
  if (need > max) return mt_fail(vm->err, "%s: the pickle has more than %d %s", vm->path, max, what);
  int c = *cap ? *cap : 256;
  while (c < need) c *= 2;
  if (c > max) c = max;
  void *q = realloc(*a, (size_t)c * elem);
  if (q == NULL) return mt_fail(vm->err, "%s: out of memory reading the pickle", vm->path);
  *a = q;
  *cap = c;
  return 0;
}

static int new_val(Vm *vm, VKind kind) {
  if (grow((void **)&vm->v, &vm->cap_v, vm->nv + 1, sizeof(Val), MAX_VALUES, vm, "values") != 0) return -1;
  memset(&vm->v[vm->nv], 0, sizeof(Val));
  vm->v[vm->nv].kind = kind;
  return vm->nv++;
}

static int push(Vm *vm, int v) {
  if (v < 0) return -1;
  if (vm->sp >= MAX_STACK) return mt_fail(vm->err, "%s: the pickle's stack grows beyond %d values", vm->path, MAX_STACK);
  vm->stack[vm->sp++] = v;
  return 0;
}

/* The value on top, which must be above the innermost mark. */
static int pop(Vm *vm, int *v) {
  int floor = vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
  if (vm->sp <= floor)
    return mt_fail(vm->err, "%s: pickle opcode at byte %" PRIu64 " pops an empty stack (damaged?)", vm->path, vm->pos);
  *v = vm->stack[--vm->sp];
  return 0;
}

static int pop_mark(Vm *vm, int *base) {
  if (vm->nmarks == 0)
    return mt_fail(vm->err, "%s: pickle opcode at byte %" PRIu64 " has no mark (damaged?)", vm->path, vm->pos);
  *base = vm->marks[--vm->nmarks];
  return 0;
}

static int need_bytes(Vm *vm, uint64_t k, const char *what) {
  if (vm->n - vm->pos < k)
    return mt_fail(vm->err, "%s: %s at byte %" PRIu64 " runs past the end of the pickle (truncated?)", vm->path, what,
                   vm->pos);
  return 0;
}

static int make_tuple(Vm *vm, const int *items, int count) {
  if (grow((void **)&vm->cells, &vm->cap_cells, vm->ncells + count, sizeof(int), MAX_VALUES, vm, "tuple items") != 0)
    return -1;
  int t = new_val(vm, V_TUPLE);
  if (t < 0) return -1;
  vm->v[t].first = vm->ncells;
  vm->v[t].count = count;
  if (count > 0) memcpy(vm->cells + vm->ncells, items, sizeof(int) * (size_t)count);
  vm->ncells += count;
  return t;
}

static int dict_set(Vm *vm, int d, int key, int value) {
  if (vm->v[d].kind != V_DICT)
    return mt_fail(vm->err, "%s: pickle SETITEM at byte %" PRIu64 " on something that is not a dict", vm->path,
                   vm->pos);
  if (grow((void **)&vm->pairs, &vm->cap_pairs, vm->npairs + 1, sizeof(Pair), MAX_VALUES, vm, "dict items") != 0)
    return -1;
  Pair *p = &vm->pairs[vm->npairs];
  *p = (Pair){key, value, -1};
  Val *dv = &vm->v[d];
  if (dv->count == 0)
    dv->first = vm->npairs;
  else
    vm->pairs[dv->last].next = vm->npairs;
  dv->last = vm->npairs++;
  dv->count++;
  return 0;
}

static const Val *item(const Vm *vm, const Val *t, int i) { return &vm->v[vm->cells[t->first + i]]; }

static int is_str(const Val *v, const char *s) {
  return v->kind == V_STR && v->len == strlen(s) && memcmp(v->s, s, v->len) == 0;
}

/* GLOBAL "module\nname\n": the only callables a state dict needs. */
static int op_global(Vm *vm) {
  char text[MAX_GLOBAL + 1];
  int lines = 0;
  uint64_t k = 0;
  while (lines < 2) {
    if (vm->pos + k >= vm->n || k >= MAX_GLOBAL)
      return mt_fail(vm->err, "%s: pickle GLOBAL at byte %" PRIu64 " is not two short lines (damaged?)", vm->path,
                     vm->pos);
    char c = (char)vm->p[vm->pos + k];
    if (c == '\0' || (c != '\n' && (c < 32 || c > 126)))
      return mt_fail(vm->err, "%s: pickle GLOBAL at byte %" PRIu64 " has a non-printable name", vm->path, vm->pos);
    text[k++] = c == '\n' ? (lines++ == 0 ? '.' : '\0') : c;
  }
  vm->pos += k;
  int g = -1, dtype = 0;
  if (strcmp(text, "collections.OrderedDict") == 0) g = G_ORDERED_DICT;
  if (strcmp(text, "torch._utils._rebuild_tensor_v2") == 0) g = G_REBUILD_TENSOR;
  if (strcmp(text, "torch._utils._rebuild_parameter") == 0) g = G_REBUILD_PARAMETER;
  for (int d = 0; d < TORCH_DTYPE_COUNT; d++)
    if (strncmp(text, "torch.", 6) == 0 && strcmp(text + 6, storage_names[d]) == 0) {
      g = G_STORAGE;
      dtype = d;
    }
  if (g < 0)
    return mt_fail(vm->err, "%s: refusing pickle global %s: only state dicts of tensors are read (saved with "
                            "torch.save(model.state_dict(), path); a TorchScript or whole-model file is not one)",
                   vm->path, text);
  int v = new_val(vm, V_GLOBAL);
  if (v < 0) return -1;
  vm->v[v].i = g;
  vm->v[v].dtype = dtype;
  return push(vm, v);
}

/* BINPERSID: ('storage', torch.<T>Storage, key, location, numel) -> the storage in <prefix>data/<key>. */
static int op_persid(Vm *vm) {
  int t = 0;
  if (pop(vm, &t) != 0) return -1;
  const Val *pid = &vm->v[t];
  if (pid->kind != V_TUPLE || pid->count != 5 || !is_str(item(vm, pid, 0), "storage") ||
      item(vm, pid, 1)->kind != V_GLOBAL || item(vm, pid, 1)->i != G_STORAGE || item(vm, pid, 2)->kind != V_STR ||
      item(vm, pid, 3)->kind != V_STR || item(vm, pid, 4)->kind != V_INT || item(vm, pid, 4)->i < 0)
    return mt_fail(vm->err, "%s: pickle persistent id at byte %" PRIu64 " is not a tensor storage", vm->path, vm->pos);
  const Val *key = item(vm, pid, 2);
  int dtype = item(vm, pid, 1)->dtype;
  uint64_t numel = (uint64_t)item(vm, pid, 4)->i;
  char name[MAX_NAME + 64];
  if (key->len > 64) return mt_fail(vm->err, "%s: a storage key of %" PRIu64 " bytes", vm->path, key->len);
  snprintf(name, sizeof name, "%sdata/%.*s", vm->prefix, (int)key->len, key->s);
  const Entry *e = zip_find(vm->zip, name);
  if (e == NULL) return mt_fail(vm->err, "%s: storage %s is missing from the archive (truncated?)", vm->path, name);
  if (numel > e->size / (uint64_t)dtype_bytes[dtype] || numel * (uint64_t)dtype_bytes[dtype] != e->size)
    return mt_fail(vm->err, "%s: storage %s holds %" PRIu64 " bytes, not %" PRIu64 " %s elements (damaged?)", vm->path,
                   name, e->size, numel, dtype_names[dtype]);
  int v = new_val(vm, V_STORAGE);
  if (v < 0) return -1;
  vm->v[v].i = dtype;
  vm->v[v].s = (const char *)e->data;
  vm->v[v].len = numel;
  return push(vm, v);
}

/* The ints of a tuple into out [TORCHFILE_MAX_RANK]; -1 if it is not such a tuple. */
static int int_tuple(const Vm *vm, const Val *t, int64_t *out, int *rank) {
  if (t->kind != V_TUPLE || t->count > TORCHFILE_MAX_RANK) return -1;
  for (int i = 0; i < t->count; i++) {
    const Val *x = item(vm, t, i);
    if (x->kind != V_INT || x->i < 0 || x->i > ((int64_t)1 << 40)) return -1;
    out[i] = x->i;
  }
  *rank = t->count;
  return 0;
}

static int is_empty_dict(const Val *v) { return v->kind == V_DICT && v->count == 0; }

/* _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]); a is the
 * arguments tuple's index (values move when the pool grows). */
static int rebuild_tensor(Vm *vm, int a) {
  const Val *args = &vm->v[a];
  Val t;
  memset(&t, 0, sizeof t);
  t.kind = V_TENSOR;
  int stride_rank = 0;
  if (args->count < 6 || args->count > 7 || item(vm, args, 0)->kind != V_STORAGE || item(vm, args, 1)->kind != V_INT ||
      item(vm, args, 1)->i < 0 || item(vm, args, 4)->kind != V_BOOL || !is_empty_dict(item(vm, args, 5)) ||
      (args->count == 7 && item(vm, args, 6)->kind != V_NONE && !is_empty_dict(item(vm, args, 6))))
    return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": _rebuild_tensor_v2 with arguments of a kind a state dict "
                            "does not have",
                   vm->path, vm->pos);
  if (int_tuple(vm, item(vm, args, 2), t.size, &t.rank) != 0 ||
      int_tuple(vm, item(vm, args, 3), t.stride, &stride_rank) != 0 || stride_rank != t.rank)
    return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": a tensor's size and stride are not tuples of at most %d "
                            "integers below 2^40",
                   vm->path, vm->pos, TORCHFILE_MAX_RANK);
  const Val *st = item(vm, args, 0);
  t.storage = vm->cells[args->first];
  t.i = st->i;
  t.offset = item(vm, args, 1)->i;
  /* Elements, and the last one it reaches, which must lie in its storage. The storage holds at most the file's
   * 2^34 bytes, so reach <= len keeps every sum below 2^35. */
  uint64_t len = st->len, count = 1, last = (uint64_t)t.offset;
  for (int d = 0; d < t.rank; d++) count = t.size[d] == 0 ? 0 : count;
  for (int d = 0; d < t.rank && count > 0; d++) {
    uint64_t n1 = (uint64_t)t.size[d] - 1, str = (uint64_t)t.stride[d];
    if (n1 > 0 && str > 0 && (n1 > len / str || last > len - n1 * str)) last = len;
    else last += n1 * str;
    if (count > ((uint64_t)1 << 62) / (uint64_t)t.size[d])
      return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": a tensor of more than 2^62 elements", vm->path, vm->pos);
    count *= (uint64_t)t.size[d];
  }
  if (count > 0 && last >= len)
    return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": a tensor reaches past the end of its storage of %" PRIu64
                            " elements (damaged?)",
                   vm->path, vm->pos, len);
  t.len = count;
  int v = new_val(vm, V_TENSOR);
  if (v < 0) return -1;
  vm->v[v] = t;
  return push(vm, v);
}

static int op_reduce(Vm *vm) {
  int a = 0, f = 0;
  if (pop(vm, &a) != 0 || pop(vm, &f) != 0) return -1;
  const Val *args = &vm->v[a], *fn = &vm->v[f];
  if (fn->kind != V_GLOBAL || args->kind != V_TUPLE)
    return mt_fail(vm->err, "%s: pickle REDUCE at byte %" PRIu64 " calls something that is not a known global",
                   vm->path, vm->pos);
  switch ((GKind)fn->i) {
  case G_ORDERED_DICT:
    if (args->count != 0)
      return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": OrderedDict with arguments", vm->path, vm->pos);
    return push(vm, new_val(vm, V_DICT));
  case G_REBUILD_TENSOR:
    return rebuild_tensor(vm, a);
  case G_REBUILD_PARAMETER: /* (tensor, requires_grad, backward_hooks) -> the tensor */
    if (args->count != 3 || item(vm, args, 0)->kind != V_TENSOR || item(vm, args, 1)->kind != V_BOOL ||
        !is_empty_dict(item(vm, args, 2)))
      return mt_fail(vm->err, "%s: pickle at byte %" PRIu64 ": _rebuild_parameter of something else than a tensor",
                     vm->path, vm->pos);
    return push(vm, vm->cells[args->first]);
  case G_STORAGE:
    break;
  }
  return mt_fail(vm->err, "%s: pickle REDUCE at byte %" PRIu64 " calls a storage class", vm->path, vm->pos);
}

/* BINPUT / LONG_BINPUT (the top of the stack into the memo) and BINGET / LONG_BINGET (a memo entry pushed). */
static int op_memo(Vm *vm, uint8_t op, uint64_t at) {
  int wide = op == 'r' || op == 'j';
  if (need_bytes(vm, wide ? 4 : 1, "a memo index") != 0) return -1;
  uint64_t idx = wide ? le32(vm->p + vm->pos) : vm->p[vm->pos];
  vm->pos += wide ? 4 : 1;
  if (idx >= MAX_VALUES)
    return mt_fail(vm->err, "%s: pickle memo index %" PRIu64 " at byte %" PRIu64 " is out of range (at most %d)",
                   vm->path, idx, at, MAX_VALUES - 1);
  if (op == 'q' || op == 'r') {
    int old = vm->cap_memo;
    if (grow((void **)&vm->memo, &vm->cap_memo, (int)idx + 1, sizeof(int), MAX_VALUES, vm, "memo entries") != 0)
      return -1;
    for (int i = old; i < vm->cap_memo; i++) vm->memo[i] = -1;
    if (vm->sp == 0) return mt_fail(vm->err, "%s: pickle BINPUT at byte %" PRIu64 " with an empty stack", vm->path, at);
    vm->memo[idx] = vm->stack[vm->sp - 1];
    return 0;
  }
  if ((int)idx >= vm->cap_memo || vm->memo[idx] < 0)
    return mt_fail(vm->err, "%s: pickle memo entry %" PRIu64 " is read at byte %" PRIu64 " before it is set",
                   vm->path, idx, at);
  return push(vm, vm->memo[idx]);
}

/* BINUNICODE: a string (pointing into the pickle) pushed. */
static int op_binunicode(Vm *vm, uint64_t at) {
  if (need_bytes(vm, 4, "a string length") != 0) return -1;
  uint64_t len = le32(vm->p + vm->pos);
  vm->pos += 4;
  if (vm->n - vm->pos < len)
    return mt_fail(vm->err, "%s: a pickle string of %" PRIu64 " bytes runs past the end of the pickle at byte %" PRIu64
                            " (truncated?)",
                   vm->path, len, at);
  int v = new_val(vm, V_STR);
  if (v < 0) return -1;
  vm->v[v].s = (const char *)vm->p + vm->pos;
  vm->v[v].len = len;
  vm->pos += len;
  return push(vm, v);
}

/* BININT1, BININT2, BININT, LONG1: an integer pushed. */
static int op_int(Vm *vm, uint8_t op, uint64_t at) {
  uint64_t k = op == 'K' ? 1 : op == 'M' ? 2 : op == 'J' ? 4 : 0;
  if (op == 0x8a) {
    if (need_bytes(vm, 1, "an integer") != 0) return -1;
    k = vm->p[vm->pos++];
    if (k > 8)
      return mt_fail(vm->err, "%s: a pickle integer of %" PRIu64 " bytes at byte %" PRIu64 " (at most 8)", vm->path,
                     k, at);
  }
  if (need_bytes(vm, k, "an integer") != 0) return -1;
  uint64_t u = 0;
  for (uint64_t i = 0; i < k; i++) u |= (uint64_t)vm->p[vm->pos + i] << (8 * i);
  /* BININT and LONG1 are signed (two's complement); BININT1 and BININT2 unsigned. */
  int64_t x = (int64_t)u;
  if ((op == 'J' || op == 0x8a) && k > 0 && k < 8 && (u >> (8 * k - 1)) & 1) x = (int64_t)(u | (~(uint64_t)0 << (8 * k)));
  vm->pos += k;
  int v = new_val(vm, V_INT);
  if (v < 0) return -1;
  vm->v[v].i = x;
  return push(vm, v);
}

/* Runs the pickle to its STOP; *result is the value left. */
static int vm_run(Vm *vm, int *result) {
  if (vm->n < 2 || vm->p[0] != 0x80 || vm->p[1] != 2)
    return mt_fail(vm->err, "%s: data.pkl is not a pickle of protocol 2 (torch.save's default%s)", vm->path,
                   vm->n >= 2 && vm->p[0] == 0x80 ? "; re-save without pickle_protocol" : "");
  vm->pos = 2;
  for (;;) {
    if (vm->pos >= vm->n)
      return mt_fail(vm->err, "%s: the pickle ends without STOP (truncated?)", vm->path);
    uint8_t op = vm->p[vm->pos++];
    uint64_t at = vm->pos - 1;
    int rc = 0, v = 0, w = 0, base = 0;
    switch (op) {
    case '.': /* STOP */
      if (vm->sp != 1 || vm->nmarks != 0)
        return mt_fail(vm->err, "%s: the pickle stops with %d values on its stack (damaged?)", vm->path, vm->sp);
      *result = vm->stack[0];
      return 0;
    case 'c':
      rc = op_global(vm);
      break;
    case 'q': case 'r': case 'h': case 'j': /* BINPUT, LONG_BINPUT, BINGET, LONG_BINGET */
      rc = op_memo(vm, op, at);
      break;
    case '(': /* MARK */
      if (vm->nmarks >= MAX_MARKS)
        return mt_fail(vm->err, "%s: the pickle is nested deeper than %d levels", vm->path, MAX_MARKS);
      vm->marks[vm->nmarks++] = vm->sp;
      break;
    case ')':
      rc = push(vm, make_tuple(vm, NULL, 0));
      break;
    case 't':
      if (pop_mark(vm, &base) != 0) return -1;
      v = make_tuple(vm, vm->stack + base, vm->sp - base);
      vm->sp = base;
      rc = push(vm, v);
      break;
    case 0x85: case 0x86: case 0x87: { /* TUPLE1..3 */
      int k = op - 0x84, floor = vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
      if (vm->sp - floor < k)
        return mt_fail(vm->err, "%s: pickle TUPLE%d at byte %" PRIu64 " on a stack of %d (damaged?)", vm->path, k, at,
                       vm->sp - floor);
      v = make_tuple(vm, vm->stack + vm->sp - k, k);
      vm->sp -= k;
      rc = push(vm, v);
      break;
    }
    case 'X': /* BINUNICODE */
      rc = op_binunicode(vm, at);
      break;
    case 'K': case 'M': case 'J': case 0x8a: /* BININT1, BININT2, BININT, LONG1 */
      rc = op_int(vm, op, at);
      break;
    case 0x88: case 0x89: /* NEWTRUE, NEWFALSE */
      if ((v = new_val(vm, V_BOOL)) < 0) return -1;
      vm->v[v].i = op == 0x88;
      rc = push(vm, v);
      break;
    case 'N':
      rc = push(vm, new_val(vm, V_NONE));
      break;
    case '}':
      rc = push(vm, new_val(vm, V_DICT));
      break;
    case 's': /* SETITEM */
      if (pop(vm, &w) != 0 || pop(vm, &v) != 0) return -1;
      if (vm->sp == 0) return mt_fail(vm->err, "%s: pickle SETITEM at byte %" PRIu64 " without a dict", vm->path, at);
      rc = dict_set(vm, vm->stack[vm->sp - 1], v, w);
      break;
    case 'u': /* SETITEMS */
      if (pop_mark(vm, &base) != 0) return -1;
      if ((vm->sp - base) % 2 != 0 || base == 0)
        return mt_fail(vm->err, "%s: pickle SETITEMS at byte %" PRIu64 " without a dict or with an odd count", vm->path,
                       at);
      for (int i = base; i < vm->sp && rc == 0; i += 2) rc = dict_set(vm, vm->stack[base - 1], vm->stack[i], vm->stack[i + 1]);
      vm->sp = base;
      break;
    case 'Q':
      rc = op_persid(vm);
      break;
    case 'R':
      rc = op_reduce(vm);
      break;
    case 'b': /* BUILD: the state dict's __dict__ ({'_metadata': ...}) on the OrderedDict; nothing of it is used */
      if (pop(vm, &w) != 0) return -1;
      if (vm->sp == 0 || vm->v[vm->stack[vm->sp - 1]].kind != V_DICT || vm->v[w].kind != V_DICT)
        return mt_fail(vm->err, "%s: pickle BUILD at byte %" PRIu64 " on something that is not a dict", vm->path, at);
      break;
    default:
      return mt_fail(vm->err, "%s: unsupported pickle opcode 0x%02x at byte %" PRIu64 " (a state dict of tensors saved "
                              "by torch.save does not use it)",
                     vm->path, op, at);
    }
    if (rc != 0) return -1;
  }
}

/* ==== Reading a state dict ==== */

static int read_file(const char *path, uint8_t **buf, uint64_t *size, MtError *err) {
  struct stat st;
  if (stat(path, &st) != 0) return mt_fail(err, "%s: %s", path, strerror(errno));
  if (!S_ISREG(st.st_mode)) return mt_fail(err, "%s: not a regular file", path);
  if ((int64_t)st.st_size > TORCHFILE_MAX_BYTES)
    return mt_fail(err, "%s: %lld bytes; at most %lld are read", path, (long long)st.st_size,
                   (long long)TORCHFILE_MAX_BYTES);
  FILE *f = fopen(path, "rb");
  if (f == NULL) return mt_fail(err, "%s: %s", path, strerror(errno));
  *size = (uint64_t)st.st_size;
  *buf = malloc(*size ? *size : 1);
  int rc = 0;
  if (*buf == NULL)
    rc = mt_fail(err, "%s: out of memory for %lld bytes", path, (long long)st.st_size);
  else if (fread(*buf, 1, *size, f) != *size)
    rc = mt_fail(err, "%s: read error: %s", path, ferror(f) ? strerror(errno) : "file shrank");
  fclose(f);
  return rc;
}

int mt_torchfile_sniff(const char *path) {
  unsigned char b[4] = {0};
  FILE *f = fopen(path, "rb");
  if (f == NULL) return 0;
  size_t n = fread(b, 1, sizeof b, f);
  fclose(f);
  return (n >= 4 && memcmp(b, "PK\x03\x04", 4) == 0) || (n >= 2 && b[0] == 0x80 && b[1] <= 5);
}

void mt_torchfile_free(TorchStateDict *sd) {
  for (int i = 0; sd->t && i < sd->n; i++) free(sd->t[i].data);
  free(sd->t);
  memset(sd, 0, sizeof *sd);
}

/* The state dict's tensors out of the pickle's result. */
static int collect(Vm *vm, int result, TorchStateDict *sd) {
  const Val *d = &vm->v[result];
  static const char *const kinds[] = {"None", "a bool", "an int", "a string", "a tuple", "a dict", "a global",
                                      "a storage", "a tensor"};
  if (d->kind != V_DICT)
    return mt_fail(vm->err, "%s: not a state dict: the pickle holds %s, not a dict of tensors", vm->path,
                   kinds[d->kind]);
  if (d->count > TORCHFILE_MAX_TENSORS)
    return mt_fail(vm->err, "%s: %d tensors; at most %d are read", vm->path, d->count, TORCHFILE_MAX_TENSORS);
  sd->t = calloc((size_t)(d->count ? d->count : 1), sizeof *sd->t);
  if (sd->t == NULL) return mt_fail(vm->err, "%s: out of memory", vm->path);
  int pi = d->first;
  for (int k = 0; k < d->count; k++, pi = vm->pairs[pi].next) {
    const Val *key = &vm->v[vm->pairs[pi].key], *val = &vm->v[vm->pairs[pi].value];
    int printable = key->kind == V_STR && key->len > 0 && key->len < TORCHFILE_MAX_KEY;
    for (uint64_t j = 0; printable && j < key->len; j++) /* it goes into one-line messages; UTF-8 is fine */
      printable = (unsigned char)key->s[j] >= 32 && key->s[j] != 127;
    if (!printable)
      return mt_fail(vm->err, "%s: not a state dict: key %d is not a printable string of 1 to %d bytes", vm->path, k,
                     TORCHFILE_MAX_KEY - 1);
    TorchTensor *t = &sd->t[sd->n];
    memcpy(t->key, key->s, key->len);
    t->key[key->len] = '\0';
    for (int j = 0; j < sd->n; j++)
      if (strcmp(sd->t[j].key, t->key) == 0) return mt_fail(vm->err, "%s: key %s appears twice", vm->path, t->key);
    sd->n++;
    if (val->kind != V_TENSOR)
      return mt_fail(vm->err, "%s: not a state dict: key %s holds %s, not a tensor", vm->path, t->key,
                     kinds[val->kind]);
    t->dtype = (TorchDtype)val->i;
    t->rank = val->rank;
    t->count = (int64_t)val->len;
    t->contiguous = 1;
    memcpy(t->dims, val->size, sizeof t->dims);
    int64_t expect = 1; /* a suffix product of the sizes: at most count <= 2^62 */
    for (int j = val->rank - 1; j >= 0 && t->count > 0; j--) {
      if (val->size[j] > 1 && val->stride[j] != expect) t->contiguous = 0;
      expect *= val->size[j];
    }
    if (t->dtype != TORCH_FLOAT32 || !t->contiguous || t->count == 0) continue;
    t->data = malloc(sizeof(float) * (size_t)t->count);
    if (t->data == NULL) return mt_fail(vm->err, "%s: out of memory for key %s", vm->path, t->key);
    const uint8_t *src = (const uint8_t *)vm->v[val->storage].s + 4 * (size_t)val->offset;
    for (int64_t j = 0; j < t->count; j++) { /* little-endian in the file, whatever the host */
      uint32_t u = le32(src + 4 * j);
      memcpy(&t->data[j], &u, sizeof u);
    }
  }
  return 0;
}

int mt_torchfile_read(const char *path, TorchStateDict *sd, MtError *err) {
  memset(sd, 0, sizeof *sd);
  uint8_t *buf = NULL;
  uint64_t size = 0;
  if (read_file(path, &buf, &size, err) != 0) {
    free(buf);
    return -1;
  }
  Zip z = {.path = path, .buf = buf, .size = size};
  Vm vm = {.path = path, .zip = &z, .err = err};
  int rc = -1, result = -1;
  if (size >= 2 && buf[0] == 0x80 && !(size >= 4 && memcmp(buf, "PK\x03\x04", 4) == 0)) {
    mt_fail(err, "%s: the legacy torch.save format (PyTorch < 1.6, or _use_new_zipfile_serialization=False); "
                 "re-save it with torch.save(state_dict, path) in PyTorch >= 1.6", path);
    goto done;
  }
  if (size < 4 || memcmp(buf, "PK\x03\x04", 4) != 0) {
    mt_fail(err, "%s: not a torch.save file (a zip archive)", path);
    goto done;
  }
  if (zip_open(&z, err) != 0) goto done;
  const Entry *pkl = NULL;
  for (int i = 0; i < z.n; i++) {
    const char *slash = strchr(z.e[i].name, '/');
    if (slash == NULL || strcmp(slash, "/data.pkl") != 0) continue;
    if (pkl) {
      mt_fail(err, "%s: two pickles (%s, %s) in one archive", path, pkl->name, z.e[i].name);
      goto done;
    }
    pkl = &z.e[i];
    snprintf(vm.prefix, sizeof vm.prefix, "%.*s", (int)(slash - z.e[i].name + 1), z.e[i].name);
  }
  if (pkl == NULL) {
    mt_fail(err, "%s: no <name>/data.pkl in the archive: not a torch.save file", path);
    goto done;
  }
  char bo_name[MAX_NAME + 16];
  snprintf(bo_name, sizeof bo_name, "%sbyteorder", vm.prefix);
  const Entry *bo = zip_find(&z, bo_name);
  if (bo && !(bo->size == 6 && memcmp(bo->data, "little", 6) == 0)) {
    mt_fail(err, "%s: the storages are not little-endian (%s)", path, bo_name);
    goto done;
  }
  vm.p = pkl->data;
  vm.n = pkl->size;
  vm.stack = malloc(sizeof(int) * MAX_STACK);
  if (vm.stack == NULL) {
    mt_fail(err, "%s: out of memory", path);
    goto done;
  }
  if (vm_run(&vm, &result) != 0 || collect(&vm, result, sd) != 0) goto done;
  rc = 0;
done:
  free(vm.stack);
  free(vm.memo);
  free(vm.pairs);
  free(vm.cells);
  free(vm.v);
  free(z.e);
  free(buf);
  if (rc != 0) mt_torchfile_free(sd);
  return rc;
}

/* ==== Onto the model ==== */

/* One module of the state dict: the keys "<path>.<param>" sharing a path, in order. */
typedef struct Module {
  char path[TORCHFILE_MAX_KEY];
  const TorchTensor *weight, *bias, *running_mean, *running_var;
} Module;

static void shape_text(const int64_t *dims, int rank, char *out, size_t n) {
  int p = snprintf(out, n, "[");
  for (int i = 0; i < rank && p > 0 && (size_t)p < n; i++)
    p += snprintf(out + p, n - (size_t)p, "%s%" PRId64, i ? ", " : "", dims[i]);
  if (p > 0 && (size_t)p < n) snprintf(out + p, n - (size_t)p, "]");
}

/* Checks that t can stand for a model tensor of shape dims [rank] called name: float32, contiguous, that shape,
 * finite. */
static int check(const char *path, const TorchTensor *t, const char *name, int rank, const int *dims, MtError *err) {
  if (t->dtype != TORCH_FLOAT32)
    return mt_fail(err, "%s: key %s is %s; mpitrain reads float32 tensors (save {k: v.float() for k, v in "
                        "sd.items()})", path, t->key, mt_torchfile_dtype_name(t->dtype));
  if (!t->contiguous)
    return mt_fail(err, "%s: key %s is not contiguous (save {k: v.contiguous() ...})", path, t->key);
  int64_t want[2] = {dims[0], rank == 2 ? dims[1] : 0};
  if (t->rank != rank || t->dims[0] != want[0] || (rank == 2 && t->dims[1] != want[1])) {
    char a[128], b[64];
    shape_text(t->dims, t->rank, a, sizeof a);
    shape_text(want, rank, b, sizeof b);
    return mt_fail(err, "%s: key %s has shape %s; this model's %s is %s", path, t->key, a, name, b);
  }
  for (int64_t i = 0; i < t->count; i++)
    if (!isfinite(t->data[i]))
      return mt_fail(err, "%s: key %s holds %g at index %" PRId64 "; expected finite values", path, t->key,
                     (double)t->data[i], i);
  return 0;
}

/* check, then copy t into the model tensor mt of buffer base (minus sub [count], if given: a folded bias). */
static int put(const char *path, const TorchTensor *t, const ModelTensor *mt, float *base, const float *sub,
               MtError *err) {
  if (check(path, t, mt->name, mt->rank, mt->dims, err) != 0) return -1;
  for (int64_t i = 0; i < t->count; i++) base[mt->offset + (size_t)i] = sub ? t->data[i] - sub[i] : t->data[i];
  return 0;
}

/* The model tensor named "<layer>/<what>". */
static const ModelTensor *find_tensor(const ModelTensor *ts, int n, const char *layer, const char *what) {
  char name[64];
  snprintf(name, sizeof name, "%s/%s", layer, what);
  for (int i = 0; i < n; i++)
    if (strcmp(ts[i].name, name) == 0) return &ts[i];
  return NULL;
}

/* Splits the tensors into modules (consecutive keys with the same path), num_batches_tracked dropped. */
static int split_modules(const char *path, const TorchStateDict *sd, Module *mods, int *n_mods, MtError *err) {
  *n_mods = 0;
  for (int i = 0; i < sd->n; i++) {
    const TorchTensor *t = &sd->t[i];
    const char *dot = strrchr(t->key, '.');
    if (dot == NULL || dot == t->key)
      return mt_fail(err, "%s: key %s is not MODULE.PARAMETER (such as 0.weight or dense0.bias)", path, t->key);
    const char *param = dot + 1;
    size_t plen = (size_t)(dot - t->key);
    /* Not weights: batch norm's counter, and launch/export.py's preprocessing (the dataset's own applies here). */
    if (strcmp(param, "num_batches_tracked") == 0) continue;
    if (plen == 3 && strncmp(t->key, "pre", 3) == 0 &&
        (strcmp(param, "scale") == 0 || strcmp(param, "mean") == 0 || strcmp(param, "std") == 0))
      continue;
    Module *m = *n_mods ? &mods[*n_mods - 1] : NULL;
    if (m == NULL || strlen(m->path) != plen || strncmp(m->path, t->key, plen) != 0) {
      for (int j = 0; j < *n_mods; j++)
        if (strlen(mods[j].path) == plen && strncmp(mods[j].path, t->key, plen) == 0)
          return mt_fail(err, "%s: the keys of module %s are not together (key %s)", path, mods[j].path, t->key);
      m = &mods[(*n_mods)++];
      memset(m, 0, sizeof *m);
      memcpy(m->path, t->key, plen);
    }
    const TorchTensor **slot = strcmp(param, "weight") == 0         ? &m->weight
                               : strcmp(param, "bias") == 0         ? &m->bias
                               : strcmp(param, "running_mean") == 0 ? &m->running_mean
                               : strcmp(param, "running_var") == 0  ? &m->running_var
                                                                    : NULL;
    if (slot == NULL)
      return mt_fail(err, "%s: key %s: mpitrain's layers have weight, bias, running_mean and running_var, not %s",
                     path, t->key, param);
    *slot = t;
  }
  return 0;
}

static int named_layer(const char *s) {
  const char *d = strncmp(s, "dense", 5) == 0 ? s + 5 : strncmp(s, "bn", 2) == 0 ? s + 2 : NULL;
  if (d == NULL || *d == '\0') return 0;
  for (; *d; d++)
    if (*d < '0' || *d > '9') return 0;
  return 1;
}

/* The module's first tensor, to name it by a key. */
static const TorchTensor *module_first(const Module *mod) {
  return mod->weight ? mod->weight : mod->bias ? mod->bias : mod->running_mean ? mod->running_mean : mod->running_var;
}

/* The model the state dict is loaded into: its tensors and its architecture for messages. */
typedef struct Target {
  const char *path;
  Model *m;
  ModelTensor ts[4 * MODEL_MAX_HIDDEN + 2], ss[2 * MODEL_MAX_HIDDEN];
  int nt, ns;
  char arch[256];
} Target;

/* Keys by name: every module must be one of this model's layers. */
static int modules_belong(const Target *tg, const Module *mods, int n_mods, MtError *err) {
  for (int j = 0; j < n_mods; j++) {
    int found = 0;
    for (int i = 0; i < tg->m->n_layers; i++) found = found || strcmp(tg->m->layers[i].name, mods[j].path) == 0;
    if (!found)
      return mt_fail(err, "%s: key %s does not belong to this model (%s)", tg->path, module_first(&mods[j])->key,
                     tg->arch);
  }
  return 0;
}

/* A Linear into dense layer l; a bias this layer has not (batch norm follows) is left in *pending_bias for that
 * batch norm to absorb. */
static int load_dense(Target *tg, const Layer *l, const Module *mod, const TorchTensor **pending_bias, MtError *err) {
  const char *path = tg->path;
  Model *m = tg->m;
  if (mod->weight == NULL) return mt_fail(err, "%s: module %s has no weight (this model's %s/W)", path, mod->path, l->name);
  if (put(path, mod->weight, find_tensor(tg->ts, tg->nt, l->name, "W"), m->params, NULL, err) != 0) return -1;
  *pending_bias = NULL;
  if (l->has_bias && mod->bias) {
    if (put(path, mod->bias, find_tensor(tg->ts, tg->nt, l->name, "b"), m->params, NULL, err) != 0) return -1;
  } else if (l->has_bias) {
    memset(m->params + l->b_off, 0, sizeof(float) * (size_t)l->out); /* Linear(bias=False) */
  } else if (mod->bias) {
    char name[64];
    snprintf(name, sizeof name, "%s/b (folded into the batch norm)", l->name);
    if (check(path, mod->bias, name, 1, &l->out, err) != 0) return -1;
    *pending_bias = mod->bias;
  }
  return 0;
}

/* A BatchNorm1d into batch-norm layer l: gamma, beta, running mean and variance, all required. */
static int load_bn(Target *tg, const Layer *l, const Module *mod, const TorchTensor *pending_bias, MtError *err) {
  const char *path = tg->path;
  Model *m = tg->m;
  const TorchTensor *parts[4] = {mod->weight, mod->bias, mod->running_mean, mod->running_var};
  static const char *const pn[4] = {"weight", "bias", "running_mean", "running_var"};
  for (int k = 0; k < 4; k++)
    if (parts[k] == NULL)
      return mt_fail(err, "%s: key %s.%s is missing (this model's %s needs weight, bias, running_mean, running_var)",
                     path, mod->path, pn[k], l->name);
  if (put(path, mod->weight, find_tensor(tg->ts, tg->nt, l->name, "gamma"), m->params, NULL, err) != 0 ||
      put(path, mod->bias, find_tensor(tg->ts, tg->nt, l->name, "beta"), m->params, NULL, err) != 0 ||
      put(path, mod->running_mean, find_tensor(tg->ss, tg->ns, l->name, "running_mean"), m->state,
          pending_bias ? pending_bias->data : NULL, err) != 0 ||
      put(path, mod->running_var, find_tensor(tg->ss, tg->ns, l->name, "running_var"), m->state, NULL, err) != 0)
    return -1;
  for (int64_t k = 0; k < mod->running_var->count; k++)
    if (mod->running_var->data[k] < 0)
      return mt_fail(err, "%s: key %s holds a negative variance at index %" PRId64, path, mod->running_var->key, k);
  return 0;
}

/* The modules into the model's layers, matched by name (by_name) or in order. */
static int modules_load(Target *tg, const Module *mods, int n_mods, int by_name, MtError *err) {
  const char *path = tg->path;
  int next = 0;
  const TorchTensor *pending_bias = NULL; /* a Linear's bias for the batch norm right after it to absorb */
  for (int i = 0; i < tg->m->n_layers; i++) {
    const Layer *l = &tg->m->layers[i];
    if (l->kind != LAYER_DENSE && l->kind != LAYER_BN) continue;
    const Module *mod = NULL;
    if (by_name) {
      for (int j = 0; j < n_mods && !mod; j++)
        if (strcmp(mods[j].path, l->name) == 0) mod = &mods[j];
      if (mod == NULL)
        return mt_fail(err, "%s: no keys %s.* for this model's layer %s (%s)", path, l->name, l->name, tg->arch);
    } else {
      if (next == n_mods)
        return mt_fail(err, "%s: the state dict ends after module %s; this model (%s) has %s too", path,
                       mods[n_mods - 1].path, tg->arch, l->name);
      mod = &mods[next++];
    }
    int is_bn = mod->running_mean != NULL || mod->running_var != NULL;
    if (l->kind == LAYER_DENSE && is_bn)
      return mt_fail(err, "%s: key %s: a batch norm where this model (%s) has %s (set --batchnorm to match)", path,
                     module_first(mod)->key, tg->arch, l->name);
    if (l->kind == LAYER_BN && !is_bn)
      return mt_fail(err, "%s: key %s: a linear layer where this model (%s) has %s (set --batchnorm to match)", path,
                     module_first(mod)->key, tg->arch, l->name);
    if (l->kind == LAYER_DENSE ? load_dense(tg, l, mod, &pending_bias, err) != 0
                               : load_bn(tg, l, mod, pending_bias, err) != 0)
      return -1;
    if (l->kind == LAYER_BN) pending_bias = NULL;
  }
  if (!by_name && next < n_mods)
    return mt_fail(err, "%s: key %s does not belong to this model (%s): the state dict has more layers", path,
                   module_first(&mods[next])->key, tg->arch);
  return 0;
}

int mt_torchfile_load_model(const char *path, Model *m, char *how, size_t how_n, MtError *err) {
  TorchStateDict sd;
  if (mt_torchfile_read(path, &sd, err) != 0) return -1;
  Module *mods = calloc((size_t)(sd.n ? sd.n : 1), sizeof *mods);
  Target *tg = calloc(1, sizeof *tg);
  int n_mods = 0, rc = -1, by_name = 1;
  if (mods == NULL || tg == NULL) {
    mt_fail(err, "%s: out of memory", path);
    goto done;
  }
  tg->path = path;
  tg->m = m;
  tg->nt = mt_model_tensors(m, tg->ts, 4 * MODEL_MAX_HIDDEN + 2);
  tg->ns = mt_model_state_tensors(m, tg->ss, 2 * MODEL_MAX_HIDDEN);
  mt_checkpoint_arch_string(&m->spec, tg->arch, sizeof tg->arch);
  if (split_modules(path, &sd, mods, &n_mods, err) != 0) goto done;
  if (n_mods == 0) {
    mt_fail(err, "%s: the state dict holds no tensors", path);
    goto done;
  }
  for (int j = 0; j < n_mods; j++) by_name = by_name && named_layer(mods[j].path);
  if ((by_name && modules_belong(tg, mods, n_mods, err) != 0) || modules_load(tg, mods, n_mods, by_name, err) != 0)
    goto done;
  snprintf(how, how_n, "%s", by_name ? "keys by name" : "keys in layer order");
  rc = 0;
done:
  free(tg);
  free(mods);
  mt_torchfile_free(&sd);
  return rc;
}
