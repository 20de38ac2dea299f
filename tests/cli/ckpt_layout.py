#!/usr/bin/python3
"""ckpt_layout.py README.md CKPT.h5... — README's "Checkpoint files" section is the whole checkpoint format.

Parses the section's two tables (datasets with <k> placeholders; attributes with the object they are on), then for
every checkpoint given: each dataset and each attribute of each object must be listed (exit 1 names what is not),
and the section's CRC snippet, run on the file, must print "matches". Over all the checkpoints, every listed
dataset and attribute must occur at least once, so the tables cannot keep entries the format no longer has."""
import re
import subprocess
import sys

import h5py

readme, ckpts = sys.argv[1], sys.argv[2:]
text = open(readme, encoding="utf-8").read()
section = text[text.index("### Checkpoint files\n"):]
section = section[:section.index("\n### ", 1)]

datasets, attributes = [], []  # (regex, label), ((object, name), label)
for line in section.splitlines():
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if not line.startswith("| `"):
        continue
    names = re.findall(r"`([^`]+)`", cells[0])
    if names[0].startswith("/"):
        for n in names:
            datasets.append((re.compile("^" + re.escape(n).replace("<k>", "[0-9]+") + "$"), n))
    else:
        on = re.findall(r"`([^`]+)`", cells[1])[0]
        attributes += [((on, n), f"{n} on {on}") for n in names]
snippet = re.search(r"```python\n(.*?)```", section, re.S)
if not datasets or not attributes or snippet is None:
    sys.exit(f"{readme}: no dataset table, attribute table or CRC snippet in 'Checkpoint files'")

seen, bad = set(), []
for path in ckpts:
    f = h5py.File(path, "r")
    objects = {"/": f}

    def visit(name, obj):
        full = "/" + name
        if isinstance(obj, h5py.Dataset):
            hit = [label for rx, label in datasets if rx.match(full)]
            if not hit:
                bad.append(f"{path}: dataset {full} is not in README")
            seen.update(hit)
        objects[full] = obj

    f.visititems(visit)
    for on, obj in objects.items():
        for name in obj.attrs:
            label = dict(attributes).get((on, name))
            if label is None:
                bad.append(f"{path}: attribute {name} on {on} is not in README")
            seen.add(label)
    out = subprocess.run([sys.executable, "-c", snippet.group(1), path], capture_output=True, text=True)
    print(f"{path}: {out.stdout.strip()}{out.stderr.strip()}")
    if out.returncode != 0 or "matches" not in out.stdout:
        bad.append(f"{path}: README's CRC snippet does not reproduce the stored crc32")
for label in [l for _, l in datasets] + [l for _, l in attributes]:
    if label not in seen:
        bad.append(f"README lists {label}, which none of the {len(ckpts)} checkpoints holds")
print(f"{len(datasets)} dataset patterns, {len(attributes)} attributes in README; {len(ckpts)} checkpoints walked")
for b in bad:
    print("FAIL:", b)
sys.exit(1 if bad else 0)
