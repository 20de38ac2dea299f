/* opts.h — one table per subcommand describes its options; the same table parses the command line, reads
 * INI files (--config FILE), prints --help with defaults, checks ranges, and writes the effective configuration
 * back out as INI (logs, checkpoints). One source of truth, so --help can never disagree with the parser. */
#ifndef MPITRAIN_OPTS_H
#define MPITRAIN_OPTS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "mpitrain/error.h"

#define OPTS_LIST_MAX 16
#define OPTS_POSITIONAL_MAX 64  /* positional arguments mt_opts_parse collects; more is an error */

typedef enum OptType {
  OT_INT,       /* int */
  OT_INT64,     /* int64_t */
  OT_FLOAT,     /* float */
  OT_STRING,    /* char[size] */
  OT_ENUM,      /* int, index into choices */
  OT_BOOL,      /* int 0/1: "--name", "--no-name", or "--name true|false|1|0|yes|no|on|off" */
  OT_INT_LIST,  /* IntList: "512,256" (an empty string is an empty list) */
} OptType;

typedef struct IntList {
  int n;
  int v[OPTS_LIST_MAX];
} IntList;

/* Flags on OptionSpec.flags */
enum {
  OPT_MIN_EXCLUSIVE = 1,  /* value must be > min (not >=) */
  OPT_MAX_EXCLUSIVE = 2,  /* value must be < max (not <=) */
  OPT_RANGED = 4,         /* min/max apply (for lists: to each element) */
  /* What changing the option means for a run resumed from a checkpoint (the trainer compares the command line
   * with the options stored in the checkpoint). Options with neither flag change neither (output, system,
   * stopping criteria) and are not compared. */
  OPT_MODEL = 8,          /* defines the model or the optimiser state the checkpoint holds: a resume is refused */
  OPT_TRAJECTORY = 16,    /* changes the updates from here on (rates, batch, regularisation...): a warning */
};

typedef struct OptionSpec {
  const char *name;     /* long option without dashes; also the INI key ('-' and '_' are interchangeable) */
  OptType type;
  size_t offset;        /* offsetof(TheStruct, field) */
  size_t size;          /* OT_STRING: buffer size in bytes */
  const char *def;      /* default as text; applied by mt_opts_defaults and shown in --help; NULL = empty/zero */
  const char *metavar;  /* "N", "FILE", ... for --help */
  const char *help;     /* one line */
  double min, max;      /* with OPT_RANGED */
  int flags;
  const char *const *choices;  /* OT_ENUM: NULL-terminated names, index = value */
  const char *word;     /* a word accepted instead of a number ("full", "auto") ... */
  double word_value;    /* ... and the value it stands for (exempt from the range check); for OT_INT_LIST the
                         * word means the empty list and word_value is unused */
  const char *section;  /* if set, --help prints it as a heading (and mt_opts_write_ini as [section]) before this
                         * option; it holds for the following options until the next one */
} OptionSpec;
/* In a table entry: an OT_STRING option stored in the char array f of struct T (its type, offset and size). */
#define OPTS_STRING_FIELD(T, f) .type = OT_STRING, .offset = offsetof(T, f), .size = sizeof(((T *)0)->f)

/* A table ends with an entry whose name is NULL.
 * Ranges: with OPT_RANGED, a bound at or beyond +-1e300 (e.g. HUGE_VAL) means "no bound on that side". */

typedef struct OptsResult {
  int help;               /* --help / -h was given (nothing else is parsed then: dst holds the defaults) */
  int n_positional;
  char **positional;      /* = positional_store; its strings point into argv (argv itself is not reordered) */
  char config_path[1024]; /* --config FILE, if any ("" if none) */
  char *positional_store[OPTS_POSITIONAL_MAX];
} OptsResult;

/* Applies every default of the table to dst. */
void mt_opts_defaults(const OptionSpec *table, void *dst);

/* Parses argv[first..argc): defaults, then the INI file named by --config (if allow_config), then the command
 * line, so the command line wins. Accepts "--name value" and "--name=value". Positional arguments are collected
 * in res (the caller decides whether it wants any). Unknown options fail with a "did you mean" hint; INI errors name
 * FILE:LINE. Returns 0 on success, -1 on error (err set). */
int mt_opts_parse(const OptionSpec *table, void *dst, int argc, char **argv, int first, int allow_config,
               OptsResult *res, MtError *err);

/* Applies INI text [len] (need not be NUL-terminated) to dst exactly as --config FILE would, on top of what dst
 * holds (call mt_opts_defaults first for a fresh start); name stands for the file name in messages ("NAME:LINE: ...").
 * Returns 0, or -1 with err set. */
int mt_opts_parse_ini_string(const OptionSpec *table, void *dst, const char *text, size_t len, const char *name,
                          MtError *err);

/* Where the parsers write their warnings (one line each, "mpitrain: warning: FILE:LINE: ..."; today: an INI key set
 * twice, the later value used): stderr until set. Every rank parses the same options, so mpitrain sets stderr on
 * rank 0 and NULL (nowhere) on the others. */
void mt_opts_set_warnings(FILE *f);

/* Sets one option from text, as the command line would (source is used in messages, e.g. "--lr" or "a.ini:3"). */
int mt_opts_set(const OptionSpec *table, void *dst, const char *name, const char *value, const char *source,
             MtError *err);

/* Help: a usage line, then one line per option with its metavar, help and default. */
void mt_opts_print_help(FILE *f, const char *usage, const char *summary, const OptionSpec *table);
/* The same, also listing --config FILE (for commands that pass allow_config to mt_opts_parse). */
void mt_opts_print_help_ex(FILE *f, const char *usage, const char *summary, const OptionSpec *table,
                        int allow_config);

/* The value of an option as text (what --help would show as the default, but for the current value). */
void mt_opts_format_value(const OptionSpec *o, const void *src, char *buf, size_t n);

/* Writes every option as "name = value" lines (a valid INI file for --config). */
void mt_opts_write_ini(FILE *f, const OptionSpec *table, const void *src);

#endif
