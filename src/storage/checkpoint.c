/* checkpoint.c — HDF5 checkpoints (layout in checkpoint.h and README): atomic writes, validated reads.
 *
 * Crash safety comes from the order of operations, not from HDF5: the file is complete, flushed and fsync'ed
 * under a temporary name before rename() gives it a checkpoint's name, and the directory is fsync'ed so the
 * rename itself survives a power cut (mt_atomic_commit). Anything named ckpt-*.h5 is therefore whole — unless the disk lies, which
 * the CRC-32 over every array catches. */
#define _GNU_SOURCE /* F_OFD_SETLK (open-file-description locks) */
#include "mpitrain/checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "ckptattr.h"
#include "h5util.h"
#include "mpitrain/atomicfile.h"
#include "mpitrain/data.h"
#include "mpitrain/dataformat.h"
#include "mpitrain/fileid.h"

#define MAX_TENSORS (4 * MODEL_MAX_HIDDEN + 2)

/* ==== The fields of CheckpointMeta on the heap ====
 *
 * Everything else in CheckpointMeta is plain data (copied, and broadcast, as bytes); these rows say what each
 * pointer holds, for mt_checkpoint_meta_free and mt_checkpoint_meta_broadcast. */

/* A string, [n_inputs] floats, [n_classes] strings; or an array kept by the rank that read it (not broadcast). */
typedef enum { HEAP_TEXT, HEAP_FLOATS, HEAP_STRINGS, HEAP_LOCAL } HeapKind;

static const struct {
  size_t offset;
  HeapKind kind;
} heap_fields[] = {
    {offsetof(CheckpointMeta, config), HEAP_TEXT},
    {offsetof(CheckpointMeta, mean), HEAP_FLOATS},
    {offsetof(CheckpointMeta, std), HEAP_FLOATS},
    {offsetof(CheckpointMeta, class_names), HEAP_STRINGS},
    {offsetof(CheckpointMeta, gc_worker), HEAP_LOCAL},
    {offsetof(CheckpointMeta, gc_server), HEAP_LOCAL},
};
#define N_HEAP (sizeof heap_fields / sizeof heap_fields[0])

static void **heap_slot(CheckpointMeta *meta, size_t i) { return (void **)((char *)meta + heap_fields[i].offset); }

void mt_checkpoint_meta_free(CheckpointMeta *meta) {
  for (size_t i = 0; i < N_HEAP; i++) {
    void **p = heap_slot(meta, i);
    if (heap_fields[i].kind == HEAP_STRINGS)
      mt_h5_strings_free(*p, meta->spec.n_classes);
    else
      free(*p);
    *p = NULL;
  }
}

/* Heap field i of the root's meta as one buffer of *bytes (0: the field is NULL); *owned when it was packed for
 * this (class names: one after the other, each with its NUL). */
static char *heap_pack(CheckpointMeta *meta, size_t i, uint64_t *bytes, int *owned, MtError *err) {
  void *p = *heap_slot(meta, i);
  *bytes = 0;
  *owned = 0;
  if (p == NULL || heap_fields[i].kind == HEAP_LOCAL) return NULL;
  if (heap_fields[i].kind == HEAP_TEXT) *bytes = strlen(p) + 1;
  if (heap_fields[i].kind == HEAP_FLOATS) *bytes = sizeof(float) * (size_t)meta->spec.n_inputs;
  if (heap_fields[i].kind != HEAP_STRINGS) return p;
  char **names = p;
  for (int k = 0; k < meta->spec.n_classes; k++) *bytes += strlen(names[k]) + 1;
  char *buf = malloc(*bytes), *q = buf;
  if (buf == NULL) {
    mt_fail(err, "out of memory broadcasting the checkpoint's class names");
    return NULL;
  }
  for (int k = 0; k < meta->spec.n_classes; k++) q = stpcpy(q, names[k]) + 1;
  *owned = 1;
  return buf;
}

/* A received buffer of heap field i becomes the field (class names: split again); 0, or -1 out of memory. */
static int heap_unpack(CheckpointMeta *meta, size_t i, char *buf, MtError *err) {
  if (heap_fields[i].kind != HEAP_STRINGS) {
    *heap_slot(meta, i) = buf;
    return 0;
  }
  int n = meta->spec.n_classes;
  char **names = calloc((size_t)n, sizeof *names);
  for (int k = 0, off = 0; names && k < n; k++) {
    if ((names[k] = strdup(buf + off)) == NULL) {
      mt_h5_strings_free(names, n);
      names = NULL;
      break;
    }
    off += (int)strlen(buf + off) + 1;
  }
  free(buf);
  *heap_slot(meta, i) = names;
  return names ? 0 : mt_fail(err, "out of memory receiving the checkpoint's class names");
}

int mt_checkpoint_meta_broadcast(Comm *c, CheckpointMeta *meta, int root, MtError *err) {
  const int is_root = c->rank == root;
  if (!is_root) mt_checkpoint_meta_free(meta);
  mt_comm_bcast(c, meta, sizeof *meta, root);
  uint64_t bytes[N_HEAP];
  char *buf[N_HEAP] = {0};
  int owned[N_HEAP] = {0};
  MtError local = {0};
  for (size_t i = 0; i < N_HEAP; i++) {
    if (is_root)
      buf[i] = heap_pack(meta, i, &bytes[i], &owned[i], &local);
    else
      *heap_slot(meta, i) = NULL; /* the root's addresses */
  }
  mt_comm_bcast(c, bytes, sizeof bytes, root);
  for (size_t i = 0; !is_root && i < N_HEAP; i++)
    if (bytes[i] > 0 && !local.failed && (buf[i] = malloc(bytes[i])) == NULL)
      mt_fail(&local, "out of memory receiving the checkpoint's metadata");
  int rc = mt_comm_agree(c, &local);
  for (size_t i = 0; rc == 0 && i < N_HEAP; i++)
    if (bytes[i] > 0) mt_comm_bcast(c, buf[i], bytes[i], root);
  for (size_t i = 0; i < N_HEAP; i++) {
    if (is_root ? owned[i] : rc != 0 || local.failed)
      free(buf[i]);
    else if (bytes[i] > 0)
      heap_unpack(meta, i, buf[i], &local);
  }
  if (rc == 0) rc = mt_comm_agree(c, &local);
  if (rc != 0) {
    if (!is_root) mt_checkpoint_meta_free(meta);
    *err = local;
  }
  return rc;
}

void mt_checkpoint_arch_string(const ModelSpec *spec, char *out, size_t n) {
  int p = snprintf(out, n, "%d", spec->n_inputs);
  for (int i = 0; i < spec->n_hidden && p > 0 && (size_t)p < n; i++)
    p += snprintf(out + p, n - (size_t)p, "-%d", spec->hidden[i]);
  if (p > 0 && (size_t)p < n)
    p += snprintf(out + p, n - (size_t)p, "-%d %s", spec->n_classes,
                  spec->n_hidden > 0 ? mt_act_name(spec->act) : "(softmax regression)");
  if (p > 0 && (size_t)p < n && spec->n_hidden > 0 && spec->bn != BN_NONE)
    snprintf(out + p, n - (size_t)p, ", batchnorm %s", mt_bn_place_name(spec->bn));
}

/* CRC-32 of the parameters, then the first and second moments (those that exist), then the batch-norm running
 * statistics, then the preprocessing's mean and std (when normalised), then the bf16 residuals (when held), in buffer
 * order: every float32 dataset of the file. */
static uint32_t state_crc(const Model *m, const float *mom1, const float *mom2, const CheckpointMeta *meta) {
  uLong crc = crc32_z(0L, Z_NULL, 0);
  size_t bytes = sizeof(float) * m->n_params;
  crc = crc32_z(crc, (const Bytef *)m->params, bytes);
  if (mom1) crc = crc32_z(crc, (const Bytef *)mom1, bytes);
  if (mom2) crc = crc32_z(crc, (const Bytef *)mom2, bytes);
  if (m->n_state) crc = crc32_z(crc, (const Bytef *)m->state, sizeof(float) * m->n_state);
  if (meta->has_preprocess && meta->mean) {
    size_t d = sizeof(float) * (size_t)meta->spec.n_inputs;
    crc = crc32_z(crc, (const Bytef *)meta->mean, d);
    crc = crc32_z(crc, (const Bytef *)meta->std, d);
  }
  const size_t row = sizeof(float) * (size_t)meta->gc_n;
  if (meta->gc_worker) crc = crc32_z(crc, (const Bytef *)meta->gc_worker, row * (size_t)meta->gc_ranks);
  if (meta->gc_server) crc = crc32_z(crc, (const Bytef *)meta->gc_server, row);
  return (uint32_t)crc;
}

/* The tensor of a [d] array named name (in a group of its own): for write_tensor / read_tensor. */
static ModelTensor vector_tensor(const char *name, int d) {
  ModelTensor t;
  memset(&t, 0, sizeof t);
  snprintf(t.name, sizeof t.name, "%s", name);
  t.count = (size_t)d;
  t.rank = 1;
  t.dims[0] = d;
  return t;
}

/* /gradcomm's datasets for meta's counts: worker_residual [gc_ranks, gc_n], server_residual [gc_n]. */
static ModelTensor residual_tensor(const CheckpointMeta *meta, int server) {
  ModelTensor t = vector_tensor(server ? "server_residual" : "worker_residual", (int)meta->gc_n);
  if (!server) {
    t.rank = 2;
    t.dims[0] = meta->gc_ranks;
    t.dims[1] = (int)meta->gc_n;
    t.count = (size_t)meta->gc_ranks * (size_t)meta->gc_n;
  }
  return t;
}

/* ==== Writing ==== */

static int write_tensor(hid_t file, const char *group, const ModelTensor *t, const float *base) {
  char path[128];
  snprintf(path, sizeof path, "%s/%s", group, t->name);
  hsize_t dims[2] = {(hsize_t)t->dims[0], (hsize_t)t->dims[1]};
  hid_t sp = H5Screate_simple(t->rank, dims, NULL), lcpl = H5Pcreate(H5P_LINK_CREATE), ds = -1;
  int rc = -1;
  if (sp < 0 || lcpl < 0 || H5Pset_create_intermediate_group(lcpl, 1) < 0) goto done;
  ds = H5Dcreate2(file, path, H5T_IEEE_F32LE, sp, lcpl, H5P_DEFAULT, H5P_DEFAULT);
  if (ds < 0 || H5Dwrite(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, base + t->offset) < 0) goto done;
  rc = 0;
done:
  if (ds >= 0 && H5Dclose(ds) < 0) rc = -1;
  if (lcpl >= 0) H5Pclose(lcpl);
  if (sp >= 0) H5Sclose(sp);
  return rc;
}

int mt_checkpoint_write(const char *dir, const char *name, const CheckpointMeta *meta, const Model *m,
                     const Optimizer *o, char *path_out, size_t n, MtError *err) {
  char final[1100], tmp[1400];
  if (name)
    snprintf(final, sizeof final, "%s/%s", dir, name);
  else
    snprintf(final, sizeof final, "%s/ckpt-%012lld.h5", dir, (long long)meta->step);
  if (mt_atomic_temp_name(final, tmp, sizeof tmp) != 0) return mt_fail(err, "checkpoint path %s is too long", final);
  const float *mom1 = o ? o->m : NULL, *mom2 = o ? o->v : NULL;
  ModelTensor ts[MAX_TENSORS];
  int nt = mt_model_tensors(m, ts, MAX_TENSORS);
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS), f = -1;
  int rc = -1;
  errno = 0;
  /* No HDF5 file locks: on NFS and Lustre they fail for no reason the user can fix; the temporary name makes
   * concurrent writers impossible anyway. */
  if (fapl < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) goto done;
  f = H5Fcreate(tmp, H5F_ACC_TRUNC, H5P_DEFAULT, fapl);
  if (f < 0) goto done;
  for (int i = 0; i < nt; i++) {
    if (write_tensor(f, "/model", &ts[i], m->params) < 0) goto done;
    if (mom1 && write_tensor(f, "/optimizer/m", &ts[i], mom1) < 0) goto done;
    if (mom2 && write_tensor(f, "/optimizer/v", &ts[i], mom2) < 0) goto done;
  }
  ModelTensor ss[MAX_TENSORS];
  int ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
  for (int i = 0; i < ns; i++)
    if (write_tensor(f, "/model", &ss[i], m->state) < 0) goto done;
  if (meta->has_preprocess) {
    hid_t g = H5Gcreate2(f, "/preprocess", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    float scale = meta->scale;
    int bad = g < 0 || mt_h5_attr_write_scalar(g, "scale", H5T_IEEE_F32LE, &scale) < 0;
    if (g >= 0 && H5Gclose(g) < 0) bad = 1;
    if (bad) goto done;
    ModelTensor mt = vector_tensor("mean", meta->spec.n_inputs), st = vector_tensor("std", meta->spec.n_inputs);
    if (meta->mean &&
        (write_tensor(f, "/preprocess", &mt, meta->mean) < 0 || write_tensor(f, "/preprocess", &st, meta->std) < 0))
      goto done;
  }
  ModelTensor wt = residual_tensor(meta, 0), st = residual_tensor(meta, 1);
  if ((meta->gc_worker && write_tensor(f, "/gradcomm", &wt, meta->gc_worker) < 0) ||
      (meta->gc_server && write_tensor(f, "/gradcomm", &st, meta->gc_server) < 0))
    goto done;
  if (mt_ckpt_attrs_write(f, meta, state_crc(m, mom1, mom2, meta)) < 0) goto done;
  if (mt_h5_file_flush(f, tmp) != 0) goto done;
  herr_t closed = H5Fclose(f);
  f = -1;
  if (closed < 0 || mt_atomic_commit(tmp, final) != 0) goto done;
  rc = 0;
done:;
  int e = errno;
  if (f >= 0) {
    mt_h5_file_abandon(f); /* a failed write: the close must not fail too (h5util.h) */
    H5Fclose(f);
  }
  if (fapl >= 0) H5Pclose(fapl);
  if (rc != 0) {
    unlink(tmp);
    return mt_fail(err, "cannot write checkpoint %s: %s (is the disk full or the directory read-only?)", final,
                   e ? strerror(e) : "HDF5 write failed");
  }
  if (path_out) snprintf(path_out, n, "%s", final);
  return 0;
}

/* ==== Listing ==== */

/* The step in a name "ckpt-000000001234.h5", or -1 if the name is not a checkpoint's. */
static long long name_step(const char *name) {
  if (strncmp(name, "ckpt-", 5) != 0) return -1;
  const char *p = name + 5;
  char *end = NULL;
  if (*p < '0' || *p > '9') return -1;
  long long s = strtoll(p, &end, 10);
  return end && strcmp(end, ".h5") == 0 ? s : -1;
}

typedef struct Entry {
  long long step;
  char path[1024];
} Entry;

static int cmp_entry_desc(const void *a, const void *b) {
  long long x = ((const Entry *)a)->step, y = ((const Entry *)b)->step;
  return (x < y) - (x > y);
}

int mt_checkpoint_list(const char *dir, char (*paths)[1024], int max, MtError *err) {
  DIR *d = opendir(dir);
  if (d == NULL) return mt_fail(err, "cannot read checkpoint directory %s: %s", dir, strerror(errno));
  Entry *e = malloc(sizeof(Entry) * CHECKPOINT_MAX);
  if (e == NULL) {
    closedir(d);
    return mt_fail(err, "out of memory listing %s", dir);
  }
  int n = 0;
  struct dirent *de;
  while ((de = readdir(d)) != NULL && n < CHECKPOINT_MAX) {
    long long s = name_step(de->d_name);
    if (s < 0) continue;
    e[n].step = s;
    snprintf(e[n].path, sizeof e[n].path, "%s/%s", dir, de->d_name);
    n++;
  }
  closedir(d);
  qsort(e, (size_t)n, sizeof *e, cmp_entry_desc);
  int k = n < max ? n : max;
  for (int i = 0; i < k; i++) memcpy(paths[i], e[i].path, sizeof paths[i]);
  free(e);
  return k;
}

int mt_checkpoint_prune(const char *dir, int keep, MtError *err) {
  if (keep <= 0) return 0;
  char (*paths)[1024] = malloc(sizeof(*paths) * CHECKPOINT_MAX);
  if (paths == NULL) return mt_fail(err, "out of memory pruning %s", dir);
  int n = mt_checkpoint_list(dir, paths, CHECKPOINT_MAX, err);
  int rc = n < 0 ? -1 : 0;
  for (int i = keep; i < n; i++)
    if (unlink(paths[i]) != 0 && errno != ENOENT) {
      rc = mt_fail(err, "cannot delete old checkpoint %s: %s", paths[i], strerror(errno));
      break;
    }
  free(paths);
  return rc;
}

/* 1 if the temporary's name ".ckpt-<step>.h5.tmp.<host>.<pid>" says this host and a process that is gone. */
static int writer_gone(const char *name, const char *host) {
  const char *tag = strstr(name, ".tmp."), *dot = strrchr(name, '.');
  if (tag == NULL || dot == NULL || dot < tag + 5) return 0;
  tag += 5;
  char *end = NULL;
  long pid = strtol(dot + 1, &end, 10);
  if (pid <= 0 || end == dot + 1 || *end != '\0') return 0;
  if ((size_t)(dot - tag) != strlen(host) || strncmp(tag, host, (size_t)(dot - tag)) != 0) return 0;
  return kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

int mt_checkpoint_clean_temporaries(const char *dir, int all) {
  DIR *d = opendir(dir);
  if (d == NULL) return 0;
  int n = 0;
  struct dirent *de;
  char path[1400], host[256];
  mt_atomic_host_name(host, sizeof host);
  while ((de = readdir(d)) != NULL) {
    if (strncmp(de->d_name, ".ckpt-", 6) != 0 || strstr(de->d_name, ".tmp") == NULL) continue;
    if (!all && !writer_gone(de->d_name, host)) continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (unlink(path) == 0) n++;
  }
  closedir(d);
  return n;
}

/* ==== One run per directory ==== */

#define LOCK_NAME ".mpitrain.lock"
#define LOCK_COMMAND_MAX 160 /* of the holder's command line, so that a refusal naming it stays one readable line */

/* This process's command line, argv[0] by its base name, at most LOCK_COMMAND_MAX characters. */
static void own_command(char *out, size_t n) {
  char buf[4096];
  int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
  ssize_t len = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
  if (fd >= 0) close(fd);
  if (len <= 0) {
    snprintf(out, n, "mpitrain (command line unknown)");
    return;
  }
  buf[len] = '\0';
  const char *a0 = strrchr(buf, '/');
  size_t p = (size_t)snprintf(out, n, "%s", a0 ? a0 + 1 : buf);
  for (const char *q = buf + strlen(buf) + 1; q < buf + len && p < n; q += strlen(q) + 1)
    p += (size_t)snprintf(out + p, n - p, " %s", q);
  if (p > LOCK_COMMAND_MAX && n > LOCK_COMMAND_MAX) snprintf(out + LOCK_COMMAND_MAX - 3, 4, "...");
  for (char *c = out; *c; c++)
    if (*c == '\n') *c = ' ';
}

/* The first line of the lock file into out [n] ("" if it is empty). */
static void read_holder(int fd, char *out, size_t n) {
  ssize_t len = pread(fd, out, n - 1, 0);
  out[len > 0 ? len : 0] = '\0';
  out[strcspn(out, "\n")] = '\0';
}

static int lock_whole_file(int fd) {
  struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 0};
#ifdef F_OFD_SETLK
  /* Open-file-description locks: a second lock from the same process (two trainers in one program) conflicts too,
   * and closing some other descriptor of the file does not drop it, as it would a classic POSIX lock. */
  if (fcntl(fd, F_OFD_SETLK, &fl) == 0) return 0;
  if (errno != EINVAL) return -1;
#endif
  return fcntl(fd, F_SETLK, &fl); /* kernels before 3.15 */
}

int mt_checkpoint_dir_lock(const char *dir, int *fd, char *stale, size_t n, MtError *err) {
  char path[1100], holder[512];
  *fd = -1;
  if (stale && n) stale[0] = '\0';
  snprintf(path, sizeof path, "%s/" LOCK_NAME, dir);
  int lfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
  if (lfd < 0) return mt_fail(err, "--checkpoint-dir %s: cannot open %s: %s", dir, path, strerror(errno));
  if (lock_whole_file(lfd) != 0) {
    int e = errno;
    if (e == EACCES || e == EAGAIN) {
      /* The holder writes its line just after taking the lock: give it a moment. */
      read_holder(lfd, holder, sizeof holder);
      for (int i = 0; i < 20 && holder[0] == '\0'; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
        read_holder(lfd, holder, sizeof holder);
      }
      close(lfd);
      return mt_fail(err, "--checkpoint-dir %s: in use by another run (%.300s); wait for it to end or use another "
                          "--checkpoint-dir",
                     dir, holder[0] ? holder : "which did not say who it is");
    }
    close(lfd);
    mt_fail(err, "--checkpoint-dir %s: cannot lock %s (%s); without locks on this file system nothing stops "
                 "another run from using the directory at the same time, so give each run its own, and only "
                 "temporaries of processes of this host that are gone are removed",
            dir, path, strerror(e));
    return 1;
  }
  if (stale && n) read_holder(lfd, stale, n);
  char host[256], cmd[LOCK_COMMAND_MAX + 1], when[32];
  mt_atomic_host_name(host, sizeof host);
  own_command(cmd, sizeof cmd);
  time_t now = time(NULL);
  struct tm tm;
  if (gmtime_r(&now, &tm) == NULL || strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm) == 0)
    snprintf(when, sizeof when, "(unknown time)");
  int len = snprintf(holder, sizeof holder, "pid %ld on %s, started %s UTC: %s\n", (long)getpid(), host, when, cmd);
  /* fsync: a run on another node (NFS) reads the file, not this node's page cache. */
  if (ftruncate(lfd, 0) != 0 || pwrite(lfd, holder, (size_t)len, 0) != (ssize_t)len || fsync(lfd) != 0) {
    int e = errno;
    close(lfd);
    return mt_fail(err, "--checkpoint-dir %s: cannot write %s: %s", dir, path, strerror(e));
  }
  *fd = lfd;
  return 0;
}

void mt_checkpoint_dir_unlock(int fd) {
  if (fd < 0) return;
  /* Should emptying fail, the file reads as a dead run's: the next run says it takes it over, no harm done. */
  int emptied = ftruncate(fd, 0);
  (void)emptied;
  close(fd);
}

/* ==== Reading ==== */

static hid_t open_ro(const char *path, MtError *err) {
  struct stat st;
  if (stat(path, &st) != 0) {
    mt_fail(err, "cannot open checkpoint '%s': %s", path, strerror(errno));
    return -1;
  }
  /* before HDF5 opens it: a FIFO would block that open until a writer came */
  if (mt_fileid_regular(path, "checkpoint", err) != 0) return -1;
  hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
  if (fapl < 0 || H5Pset_file_locking(fapl, 0, 1) < 0) {
    if (fapl >= 0) H5Pclose(fapl);
    mt_fail(err, "cannot open checkpoint '%s': HDF5 error", path);
    return -1;
  }
  hid_t f = H5Fopen(path, H5F_ACC_RDONLY, fapl);
  H5Pclose(fapl);
  if (f < 0)
    mt_fail(err, "cannot open checkpoint '%s': not an HDF5 file, or truncated (%lld bytes)", path,
            (long long)st.st_size);
  return f;
}

static int read_preprocess(hid_t f, const char *path, CheckpointMeta *meta, MtError *err);
static int read_gradcomm(hid_t f, const char *path, CheckpointMeta *meta, MtError *err);

int mt_checkpoint_read_meta(const char *path, CheckpointMeta *meta, MtError *err) {
  memset(meta, 0, sizeof *meta);
  hid_t f = open_ro(path, err);
  if (f < 0) return -1;
  int rc = mt_ckpt_attrs_read(f, path, meta, err);
  if (rc == 0) rc = read_preprocess(f, path, meta, err);
  if (rc == 0) rc = read_gradcomm(f, path, meta, err);
  H5Fclose(f);
  if (rc != 0) mt_checkpoint_meta_free(meta);
  return rc;
}

static int read_tensor(hid_t file, const char *path, const char *group, const ModelTensor *t, float *base,
                       MtError *err) {
  char name[128];
  snprintf(name, sizeof name, "%s/%s", group, t->name);
  htri_t ex = H5Lexists(file, group, H5P_DEFAULT) > 0 ? H5Lexists(file, name, H5P_DEFAULT) : 0;
  if (ex <= 0) return mt_fail(err, "checkpoint %s: dataset %s is missing (truncated or damaged?)", path, name);
  hid_t ds = H5Dopen2(file, name, H5P_DEFAULT);
  if (ds < 0) return mt_fail(err, "checkpoint %s: cannot open %s", path, name);
  char in_file[1100];
  snprintf(in_file, sizeof in_file, "checkpoint %s", path);
  if (mt_h5_filters_check(ds, in_file, name, err) != 0) {
    H5Dclose(ds);
    return -1;
  }
  hid_t sp = H5Dget_space(ds);
  hsize_t dims[2] = {0, 0};
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_dims(sp, dims, NULL);
  if (sp >= 0) H5Sclose(sp);
  int rc = 0;
  char where[1200];
  snprintf(where, sizeof where, "checkpoint %s: %s", path, name);
  if (rank != t->rank || dims[0] != (hsize_t)t->dims[0] || (t->rank == 2 && dims[1] != (hsize_t)t->dims[1]))
    rc = mt_fail(err, "checkpoint %s: %s has shape %lldx%lld; expected %dx%d", path, name, (long long)dims[0],
                 (long long)dims[1], t->dims[0], t->dims[1]);
  else if (mt_h5_check_stored(ds, where, err) != 0)
    rc = -1;
  else if (H5Dread(ds, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, base + t->offset) < 0)
    rc = mt_fail(err, "checkpoint %s: reading %s failed (truncated or damaged?)", path, name);
  H5Dclose(ds);
  return rc;
}


/* ---- What the arrays may hold (inside the CRC, but a CRC recomputed over tampered values matches too) ---- */

/* 0 if every value of tensor t in base is finite (and >= 0 when nonneg), else names the first that is not. */
static int check_values(const char *path, const char *group, const ModelTensor *t, const float *base, int nonneg,
                        const char *what, MtError *err) {
  const float *v = base + t->offset;
  for (size_t i = 0; i < t->count; i++)
    if (!isfinite(v[i]) || (nonneg && v[i] < 0)) {
      char val[32];
      if (isnan(v[i]))
        snprintf(val, sizeof val, "NaN");
      else if (isinf(v[i]))
        snprintf(val, sizeof val, "%sInf", v[i] < 0 ? "-" : "");
      else
        snprintf(val, sizeof val, "%g", (double)v[i]);
      return mt_fail(err, "checkpoint %s: %s/%s[%zu] holds %s; expected %s", path, group, t->name, i, val, what);
    }
  return 0;
}

/* Parameters and first moments finite; second moments and running variances finite and >= 0 (they are
 * averages of squares: the optimiser takes their root, batch norm divides by it). */
static int check_state(const char *path, const Model *m, const float *mom1, const float *mom2, MtError *err) {
  ModelTensor ts[MAX_TENSORS], ss[MAX_TENSORS];
  int nt = mt_model_tensors(m, ts, MAX_TENSORS), ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
  for (int i = 0; i < nt; i++)
    if (check_values(path, "/model", &ts[i], m->params, 0, "finite weights", err) != 0 ||
        (mom1 && check_values(path, "/optimizer/m", &ts[i], mom1, 0, "finite first moments", err) != 0) ||
        (mom2 && check_values(path, "/optimizer/v", &ts[i], mom2, 1, "finite second moments >= 0", err) != 0))
      return -1;
  for (int i = 0; i < ns; i++) {
    int var = strstr(ss[i].name, "running_var") != NULL;
    if (check_values(path, "/model", &ss[i], m->state, var,
                     var ? "finite running variances >= 0" : "finite running means", err) != 0)
      return -1;
  }
  return 0;
}

/* /preprocess, optional (checkpoints written before mpitrain stored it load without). */
static int read_preprocess(hid_t f, const char *path, CheckpointMeta *meta, MtError *err) {
  const int d = meta->spec.n_inputs;
  htri_t ex = H5Lexists(f, "/preprocess", H5P_DEFAULT);
  if (ex < 0) return mt_fail(err, "checkpoint %s: cannot read /preprocess", path);
  if (ex == 0) return 0;
  hid_t g = H5Gopen2(f, "/preprocess", H5P_DEFAULT);
  if (g < 0) return mt_fail(err, "checkpoint %s: /preprocess is not a group", path);
  double scale = 0;
  int rs = mt_h5_attr_read_number(g, path, "scale", 0, &scale, err);
  htri_t hm = H5Lexists(g, "mean", H5P_DEFAULT), hs = H5Lexists(g, "std", H5P_DEFAULT);
  H5Gclose(g);
  if (rs < 0) return -1;
  if (rs == 1) return mt_fail(err, "checkpoint %s: /preprocess has no attribute scale", path);
  if (hm < 0 || hs < 0) return mt_fail(err, "checkpoint %s: cannot read /preprocess", path);
  char where[1200];
  snprintf(where, sizeof where, "checkpoint %s: /preprocess", path);
  /* Either without the other is refused by the check below, after reading what is there. */
  if (hm && (meta->mean = malloc(sizeof(float) * (size_t)d)) == NULL)
    return mt_fail(err, "checkpoint %s: out of memory reading /preprocess", path);
  if (hs && (meta->std = malloc(sizeof(float) * (size_t)d)) == NULL)
    return mt_fail(err, "checkpoint %s: out of memory reading /preprocess", path);
  ModelTensor mt = vector_tensor("mean", d), st = vector_tensor("std", d);
  if ((hm && read_tensor(f, path, "/preprocess", &mt, meta->mean, err) != 0) ||
      (hs && read_tensor(f, path, "/preprocess", &st, meta->std, err) != 0))
    return -1;
  if (mt_data_check_preprocess(where, scale, meta->mean, meta->std, d, err) != 0) return -1;
  meta->has_preprocess = 1;
  meta->scale = (float)scale;
  return 0;
}


/* The shape of /gradcomm/worker_residual, whose rows are one per rank of the run that wrote it: into dims (rows
 * between 1 and 2^24, values per row fitting an int, and stored: a damaged extent is not allocated). 1: absent. */
static int gradcomm_shape(hid_t f, const char *path, hsize_t dims[2], MtError *err) {
  htri_t ex = H5Lexists(f, "/gradcomm", H5P_DEFAULT);
  if (ex > 0) ex = H5Lexists(f, "/gradcomm/worker_residual", H5P_DEFAULT);
  if (ex < 0) return mt_fail(err, "checkpoint %s: cannot read /gradcomm", path);
  if (ex == 0) return 1;
  hid_t ds = H5Dopen2(f, "/gradcomm/worker_residual", H5P_DEFAULT);
  if (ds < 0) return mt_fail(err, "checkpoint %s: cannot open /gradcomm/worker_residual", path);
  hid_t sp = H5Dget_space(ds);
  int rank = sp < 0 ? -1 : H5Sget_simple_extent_ndims(sp);
  if (rank == 2) H5Sget_simple_extent_dims(sp, dims, NULL);
  if (sp >= 0) H5Sclose(sp);
  char where[1200];
  snprintf(where, sizeof where, "checkpoint %s: /gradcomm/worker_residual", path);
  int rc = 0;
  if (rank != 2 || dims[0] < 1 || dims[0] > ((hsize_t)1 << 24) || dims[1] < 1 || dims[1] > (hsize_t)INT32_MAX)
    rc = mt_fail(err, "%s: expected [ranks, parameters]", where);
  else
    rc = mt_h5_check_stored(ds, where, err);
  H5Dclose(ds);
  return rc;
}

/* /gradcomm, optional (fp32 communication, one rank, and checkpoints before version 3 have none): zero residuals. */
static int read_gradcomm(hid_t f, const char *path, CheckpointMeta *meta, MtError *err) {
  hsize_t dims[2] = {0, 0};
  int rc = gradcomm_shape(f, path, dims, err);
  if (rc != 0) return rc < 0 ? -1 : 0;
  meta->gc_ranks = (int)dims[0];
  meta->gc_n = (int64_t)dims[1];
  htri_t hs = H5Lexists(f, "/gradcomm/server_residual", H5P_DEFAULT);
  if (hs < 0) return mt_fail(err, "checkpoint %s: cannot read /gradcomm", path);
  meta->gc_has_server = hs > 0;
  ModelTensor wt = residual_tensor(meta, 0), st = residual_tensor(meta, 1);
  if ((meta->gc_worker = malloc(sizeof(float) * wt.count)) == NULL ||
      (hs && (meta->gc_server = malloc(sizeof(float) * st.count)) == NULL))
    return mt_fail(err, "checkpoint %s: out of memory reading /gradcomm", path);
  if (read_tensor(f, path, "/gradcomm", &wt, meta->gc_worker, err) != 0 ||
      (hs && read_tensor(f, path, "/gradcomm", &st, meta->gc_server, err) != 0))
    return -1;
  return 0;
}

/* The architecture must match exactly: a checkpoint is not a warm start for another model. */
int mt_checkpoint_check_fits(const char *path, const CheckpointMeta *meta, const Model *m, const Optimizer *o,
                      MtError *err) {
  const ModelSpec *a = &meta->spec, *b = &m->spec;
  if (a->n_classes != b->n_classes)
    return mt_fail(err, "checkpoint %s was trained for %d classes; this dataset has %d", path, a->n_classes,
                   b->n_classes);
  if (a->n_inputs != b->n_inputs)
    return mt_fail(err, "checkpoint %s was trained on %d features; this dataset has %d", path, a->n_inputs,
                   b->n_inputs);
  int same = a->n_hidden == b->n_hidden && a->act == b->act &&
             (a->act != ACT_LEAKY_RELU || a->leaky_slope == b->leaky_slope || a->n_hidden == 0) &&
             (a->n_hidden == 0 || a->bn == b->bn);
  for (int i = 0; same && i < a->n_hidden; i++) same = a->hidden[i] == b->hidden[i];
  if (!same) {
    char x[256], y[256];
    mt_checkpoint_arch_string(a, x, sizeof x);
    mt_checkpoint_arch_string(b, y, sizeof y);
    return mt_fail(err, "checkpoint %s holds a %s model; this run builds %s (set --hidden, --activation and "
                        "--batchnorm to match, or use a new --checkpoint-dir to start afresh)",
                   path, x, y);
  }
  if (meta->gc_ranks > 0 && (size_t)meta->gc_n != m->n_params)
    return mt_fail(err, "checkpoint %s: /gradcomm holds residuals of %lld values; the model has %zu parameters", path,
                   (long long)meta->gc_n, m->n_params);
  if (o && o->cfg.kind != meta->opt.kind)
    return mt_fail(err, "checkpoint %s was written with --optimizer %s; this run uses %s, whose state it does not "
                        "hold (resume with --optimizer %s, or use a new --checkpoint-dir to start afresh)",
                   path, mt_optim_name(meta->opt.kind), mt_optim_name(o->cfg.kind), mt_optim_name(meta->opt.kind));
  return 0;
}

int mt_checkpoint_read_state(const char *path, const CheckpointMeta *meta, Model *m, Optimizer *o, MtError *err) {
  if (mt_checkpoint_check_fits(path, meta, m, o, err) != 0) return -1;
  /* The CRC covers the moments too, so they are read even when the caller (evaluation) has no optimiser. */
  int has_m = meta->opt.kind == OPT_MOMENTUM || meta->opt.kind == OPT_ADAM;
  int has_v = meta->opt.kind == OPT_RMSPROP || meta->opt.kind == OPT_ADAM;
  float *mom1 = o ? o->m : NULL, *mom2 = o ? o->v : NULL, *own1 = NULL, *own2 = NULL;
  if (has_m && mom1 == NULL && (mom1 = own1 = mt_alloc(sizeof(float) * m->n_params, "checkpoint moments", err)) == NULL)
    return -1;
  if (has_v && mom2 == NULL && (mom2 = own2 = mt_alloc(sizeof(float) * m->n_params, "checkpoint moments", err)) == NULL) {
    mt_free(own1);
    return -1;
  }
  int rc = -1;
  hid_t f = open_ro(path, err);
  if (f >= 0) {
    ModelTensor ts[MAX_TENSORS];
    int nt = mt_model_tensors(m, ts, MAX_TENSORS);
    rc = 0;
    for (int i = 0; i < nt && rc == 0; i++) {
      rc = read_tensor(f, path, "/model", &ts[i], m->params, err);
      if (rc == 0 && has_m) rc = read_tensor(f, path, "/optimizer/m", &ts[i], mom1, err);
      if (rc == 0 && has_v) rc = read_tensor(f, path, "/optimizer/v", &ts[i], mom2, err);
    }
    ModelTensor ss[MAX_TENSORS];
    int ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
    for (int i = 0; i < ns && rc == 0; i++) rc = read_tensor(f, path, "/model", &ss[i], m->state, err);
    H5Fclose(f);
  }
  if (rc == 0) {
    uint32_t crc = state_crc(m, has_m ? mom1 : NULL, has_v ? mom2 : NULL, meta);
    if (crc != meta->crc32)
      rc = mt_fail(err, "checkpoint %s fails its CRC-32 check (stored %08x, computed %08x): the file is damaged",
                   path, meta->crc32, crc);
    else
      rc = check_state(path, m, has_m ? mom1 : NULL, has_v ? mom2 : NULL, err);
  }
  const ModelTensor wt = residual_tensor(meta, 0), st = residual_tensor(meta, 1);
  if (rc == 0 && meta->gc_worker)
    rc = check_values(path, "/gradcomm", &wt, meta->gc_worker, 0, "finite residuals", err);
  if (rc == 0 && meta->gc_server)
    rc = check_values(path, "/gradcomm", &st, meta->gc_server, 0, "finite residuals", err);
  mt_free(own2);
  mt_free(own1);
  if (rc == 0 && o) o->t = meta->opt_step;
  return rc;
}

/* ==== Describing ==== */

/* info's list of the arrays: the model's, the optimiser's, the preprocessing's and the bf16 residuals. */
static void describe_arrays(const Model *m, const Optimizer *o, const CheckpointMeta *meta) {
  printf("arrays:\n");
  ModelTensor ts[MAX_TENSORS];
  int nt = mt_model_tensors(m, ts, MAX_TENSORS);
  const char *groups[3] = {"/model", "/optimizer/m", "/optimizer/v"};
  int present[3] = {1, o->m != NULL, o->v != NULL};
  for (int g = 0; g < 3; g++)
    for (int i = 0; present[g] && i < nt; i++) {
      char name[160], shape[48];
      snprintf(name, sizeof name, "%s/%.40s", groups[g], ts[i].name);
      if (ts[i].rank == 2)
        snprintf(shape, sizeof shape, "[%d, %d]", ts[i].dims[0], ts[i].dims[1]);
      else
        snprintf(shape, sizeof shape, "[%d]", ts[i].dims[0]);
      printf("  %-28s %-12s float32\n", name, shape);
    }
  ModelTensor ss[MAX_TENSORS];
  int ns = mt_model_state_tensors(m, ss, MAX_TENSORS);
  for (int i = 0; i < ns; i++) {
    char name[160];
    snprintf(name, sizeof name, "/model/%.40s", ss[i].name);
    printf("  %-28s [%d]%*s float32 (running statistics)\n", name, ss[i].dims[0], 1, "");
  }
  for (int i = 0; meta->mean && i < 2; i++) {
    char shape[48];
    snprintf(shape, sizeof shape, "[%d]", meta->spec.n_inputs);
    printf("  %-28s %-12s float32 (feature %s)\n", i ? "/preprocess/std" : "/preprocess/mean", shape,
           i ? "deviations" : "means");
  }
  if (meta->gc_ranks > 0) {
    char shape[48];
    snprintf(shape, sizeof shape, "[%d, %lld]", meta->gc_ranks, (long long)meta->gc_n);
    printf("  %-28s %-12s float32 (--grad-comm bf16: each rank's rounding residual)\n", "/gradcomm/worker_residual",
           shape);
  }
  if (meta->gc_server) {
    char shape[48];
    snprintf(shape, sizeof shape, "[%lld]", (long long)meta->gc_n);
    printf("  %-28s %-12s float32 (--grad-comm bf16: the sums' rounding residual)\n", "/gradcomm/server_residual",
           shape);
  }
}

int mt_checkpoint_describe(const char *path, MtError *err) {
  CheckpointMeta meta;
  if (mt_checkpoint_read_meta(path, &meta, err) != 0) return -1;
  char arch[256];
  mt_checkpoint_arch_string(&meta.spec, arch, sizeof arch);
  Model m;
  Optimizer o;
  int have_model = mt_model_create(&m, &meta.spec, 1, err) == 0;
  int have_opt = 0;
  if (have_model) {
    OptConfig oc = meta.opt;
    have_opt = mt_optim_create(&o, &oc, m.n_params, err) == 0;
  }
  if (!have_model || !have_opt) {
    if (have_model) mt_model_free(&m);
    mt_checkpoint_meta_free(&meta);
    return -1;
  }
  MtError rerr = {0};
  int ok = mt_checkpoint_read_state(path, &meta, &m, &o, &rerr) == 0;
  printf("checkpoint:  %s\n", path);
  printf("format:      %s version %d, written by mpitrain %s on %s\n", CHECKPOINT_FORMAT, meta.format_version,
         meta.version, meta.created);
  printf("model:       %s, %zu parameters\n", arch, m.n_params);
  printf("optimizer:   %s (beta1 %g, beta2 %g, eps %g), %lld steps taken\n", mt_optim_name(meta.opt.kind),
         (double)meta.opt.beta1, (double)meta.opt.beta2, (double)meta.opt.eps, (long long)meta.opt_step);
  if (meta.epoch_pos == 0)
    printf("progress:    step %lld; %lld epoch%s complete\n", (long long)meta.step, (long long)meta.epoch,
           meta.epoch == 1 ? "" : "s");
  else
    printf("progress:    step %lld; in epoch %lld, %lld of %lld training rows consumed\n", (long long)meta.step,
           (long long)meta.epoch + 1, (long long)meta.epoch_pos, (long long)meta.n_train);
  if (meta.elapsed_s >= 0)
    printf("elapsed:     %.1f s of training, over every part of the run\n", meta.elapsed_s);
  else
    printf("elapsed:     not recorded (written by an older mpitrain)\n");
  printf("written at:  %d rank%s (any number of ranks can resume it)\n", meta.world_size,
         meta.world_size == 1 ? "" : "s");
  printf("data:        %s (%lld training rows)\n", meta.data, (long long)meta.n_train);
  printf("seed:        %lld (weights and data order derive from it; nothing else to restore)\n", (long long)meta.seed);
  if (!meta.has_preprocess) {
    printf("preprocess:  none stored (an older checkpoint): eval and predict use the data file's own scaling\n");
  } else if (meta.mean) {
    float lo[2] = {meta.mean[0], meta.std[0]}, hi[2] = {meta.mean[0], meta.std[0]};
    for (int j = 1; j < meta.spec.n_inputs; j++) {
      lo[0] = fminf(lo[0], meta.mean[j]), hi[0] = fmaxf(hi[0], meta.mean[j]);
      lo[1] = fminf(lo[1], meta.std[j]), hi[1] = fmaxf(hi[1], meta.std[j]);
    }
    printf("preprocess:  features = (x * scale - mean) / std: scale %g, mean in [%g, %g], std in [%g, %g]\n",
           (double)meta.scale, (double)lo[0], (double)hi[0], (double)lo[1], (double)hi[1]);
  } else {
    printf("preprocess:  features = x * scale: scale %g, not normalised\n", (double)meta.scale);
  }
  printf("classes:     %d", meta.spec.n_classes);
  for (int k = 0; meta.class_names && k < meta.spec.n_classes; k++)
    printf("%s%s", k ? ", " : ": ", meta.class_names[k]);
  printf("%s\n", meta.class_names ? "" : " (no names)");
  printf("crc32:       %08x, %s%s\n", meta.crc32, ok ? "matches the arrays, every value valid" : "refused: ",
         ok ? "" : rerr.msg);
  describe_arrays(&m, &o, &meta);
  printf("config:\n");
  for (const char *p = meta.config; p && *p;) {
    const char *nl = strchr(p, '\n');
    int len = nl ? (int)(nl - p) : (int)strlen(p);
    if (len > 0) printf("  %.*s\n", len, p);
    p = nl ? nl + 1 : p + len;
  }
  mt_optim_free(&o);
  mt_model_free(&m);
  mt_checkpoint_meta_free(&meta);
  if (!ok) return mt_fail(err, "%s", rerr.msg);
  return 0;
}
