#!/usr/bin/env python3
"""Prints the README's Helm configuration table from charts/serin/values.yaml: one row per key
documented with a `# --` comment (nested keys with their own comments get their own rows).
tests/chart.rs checks the README's table against values.yaml, so rerun this after changing it:
    python3 scripts/values-table.py
"""
import json
import pathlib
import re

import yaml

root = pathlib.Path(__file__).resolve().parent.parent
text = (root / "charts/serin/values.yaml").read_text()
values = yaml.safe_load(text)

# Key path -> description, from the `# --` comment right above each key.
docs, stack, pending = {}, [], None
for line in text.splitlines():
    m = re.match(r"^(\s*)# -- (.*)$", line)
    if m:
        pending = m.group(2)
        continue
    m = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):", line)
    if not m:
        if not line.strip().startswith("#"):
            pending = None
        continue
    depth = len(m.group(1)) // 2
    stack = stack[:depth] + [m.group(2)]
    if pending is not None:
        docs[".".join(stack)] = pending
    pending = None


def lookup(path):
    v = values
    for k in path.split("."):
        v = v[k]
    return v


print("| key | default | description |")
print("|---|---|---|")
for path, desc in docs.items():
    v = lookup(path)
    # A documented map whose children are documented themselves is a heading, not a row.
    if isinstance(v, dict) and v and any(k.startswith(path + ".") for k in docs):
        continue
    default = json.dumps(v, separators=(",", ":"))
    print(f"| `{path}` | `{default}` | {desc} |")
