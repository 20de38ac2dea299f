/* bench.c — placeholder while the benchmark is written (replaced in a later commit). */
#include <stdio.h>
#include "mpitrain/bench.h"
int bench_main(Comm *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "bench: not built yet\n"); return 1; }
