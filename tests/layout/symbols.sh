#!/usr/bin/env bash
# symbols.sh LIB... — every symbol the part libraries export starts with mt_ (README "Layout": a user's program
# that links them must not clash with names like log_open or init_params; names starting with __ are the
# compiler's and sanitizers' own). Lists the offenders; exit 1 if any.
set -u
bad=$(for lib in "$@"; do nm -g --defined-only "$lib" | awk '$2 ~ /^[TDBRCVWi]$/ {print $3}'; done | sort -u | grep -v '^mt_' | grep -v '^__')
total=$(for lib in "$@"; do nm -g --defined-only "$lib" | awk '$2 ~ /^[TDBRCVWi]$/ {print $3}'; done | sort -u | wc -l)
if [ -n "$bad" ]; then
  echo "symbols.sh: exported without the mt_ prefix:"
  echo "$bad"
  exit 1
fi
echo "symbols.sh: all $total exported symbols start with mt_"
