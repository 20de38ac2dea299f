/* tools.c — placeholder while the dataset tools are written (replaced in a later commit). */
#include <stdio.h>
#include "mpitrain/tools.h"
int tool_convert(Comm *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "convert: not built yet\n"); return 1; }
int tool_synth(Comm *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "synth: not built yet\n"); return 1; }
int tool_info(Comm *c, int argc, char **argv) { (void)c; (void)argc; (void)argv; fprintf(stderr, "info: not built yet\n"); return 1; }
