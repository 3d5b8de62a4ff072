#!/usr/bin/env python3
"""Fails when a production source file includes a folder of a higher layer.

Usage: check_layers.py SRC_DIR

The layers, lowest first. A production file (not *_test.cpp, not a fuzz
inplace) in one folder may include its own folder and any folder of a LOWER
layer, never one of its own layer or above. A folder of src/ missing from the
table is an error too, so a new folder is placed on purpose.
"""
import os
import re
import sys

LAYERS = [
    # 0: words every layer speaks
    ["util"],
    # 1: the operating system seam, and parsing that needs nothing else;
    # sealing and key wrapping of encrypted stores (bytes in, bytes out)
    ["os", "retention", "crypto"],
    # 2: what vmback reads and writes, each on its own. s3: the client of
    # an S3 bucket (libs3), bytes in and out of objects; it needs util/ and
    # os/ only (crypto/ allowed). Beside store/, so neither includes the
    # other: a store copy in a bucket is built above both (layer 3 or up)
    ["hypervisor", "source", "store", "report", "s3"],
    # 3: the config (its kinds are those of hypervisor/ and source/); the
    # store's intake (files and metadata into blobs); what a backup or
    # restore into any destination takes and gives
    ["config", "scan", "destination"],
    # 4: in-place destinations (zfs, btrfs, dir): backends, sink, operations
    ["inplace"],
    # 5: the store's operations (backup, restore, verify, prune) and the
    # store as a destination
    ["run"],
    # 6: `vmback run` and `plan`: quiesce, snapshot, mount, read, drop,
    # with its journal; a plan is the same steps through a dry-run Env.
    # `vmback mount`: the points of a destination as a file system
    ["job", "mount"],
    # 7: the command line
    ["cli"],
]

INCLUDE = re.compile(r'^\s*#\s*include\s+"([a-z0-9_]+)/[^"]+"', re.M)


def main(src):
    level = {name: i for i, names in enumerate(LAYERS) for name in names}
    bad = []
    for folder in sorted(os.listdir(src)):
        path = os.path.join(src, folder)
        if not os.path.isdir(path):
            continue
        if folder not in level:
            bad.append(f"{path}: folder is in no layer of {sys.argv[0]}: add it to LAYERS")
            continue
        for name in sorted(os.listdir(path)):
            if not name.endswith((".cpp", ".h")) or name.endswith("_test.cpp") or "fuzz" in name:
                continue
            file = os.path.join(path, name)
            with open(file, encoding="utf-8") as f:
                text = f.read()
            for m in INCLUDE.finditer(text):
                other = m.group(1)
                if other == folder:
                    continue
                line = text.count("\n", 0, m.start()) + 1
                if other not in level:
                    bad.append(f"{file}:{line}: includes {other}/, which is in no layer")
                elif level[other] >= level[folder]:
                    bad.append(f"{file}:{line}: {folder}/ (layer {level[folder]}) includes "
                               f"{other}/ (layer {level[other]}): a layer includes only lower ones")
    for b in bad:
        print(b, file=sys.stderr)
    if bad:
        print(f"check_layers: {len(bad)} include(s) against the layer order", file=sys.stderr)
        return 1
    print(f"check_layers: every include in {src} follows the layer order")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: check_layers.py SRC_DIR")
    sys.exit(main(sys.argv[1]))
