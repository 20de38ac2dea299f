#!/usr/bin/env python3
"""fnlen.py LIMIT DIR... — lists every C function in DIR (recursively, *.c) longer than LIMIT lines, from its
signature to its closing brace, and exits 1 if there is one. A function definition is a line at column 0 that
opens a body ('{' at the end, after a ')') and is not an initializer ('='): option and schema tables are data, not
functions, and are not counted. The project's rule (README "Layout"): no function in src/ or cli/ above 100 lines."""
import os
import re
import sys

STRIP = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|\'(?:\\.|[^\'\\\n])*\'', re.S)


def blank(m):
    """A comment or literal as spaces, newlines kept, so line numbers and braces outside them stay true."""
    return re.sub(r"[^\n]", " ", m.group(0))


def functions(path):
    """(name, first line, lines) of every function definition: a top-level brace whose statement so far has a '('
    and no '=' (an initializer: a table)."""
    text = STRIP.sub(blank, open(path, encoding="utf-8").read())
    text = re.sub(r"(?m)^[ \t]*#.*$", "", text)  # preprocessor lines
    depth, stmt_start, head, start = 0, 0, "", None
    for i, ch in enumerate(text):
        if depth == 0 and ch == "{":
            head = text[stmt_start:i]
            if "(" in head and "=" not in head:
                start = stmt_start + len(head) - len(head.lstrip())
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                if start is not None:
                    name = re.search(r"([A-Za-z_][A-Za-z_0-9]*)\s*\((?![^(]*\()", head)
                    first = text.count("\n", 0, start) + 1
                    yield (name.group(1) if name else "?"), first, text.count("\n", 0, i) + 2 - first
                start = None
                stmt_start = i + 1
        elif ch == ";" and depth == 0:
            stmt_start = i + 1


def main():
    limit = int(sys.argv[1])
    bad = []
    for root in sys.argv[2:]:
        paths = [root] if os.path.isfile(root) else sorted(
            os.path.join(d, f) for d, _, files in os.walk(root) for f in files if f.endswith(".c"))
        for p in paths:
            bad += [(p, n, l, k) for n, l, k in functions(p) if k > limit]
    for p, n, l, k in sorted(bad, key=lambda b: -b[3]):
        print(f"{p}:{l}: {n} is {k} lines (limit {limit})")
    print(f"fnlen: {len(bad)} function(s) longer than {limit} lines" if bad else f"fnlen: no function longer than {limit} lines")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
