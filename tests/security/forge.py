#!/usr/bin/env python3
"""Forges points in a vmback store, written from docs/FORMAT.md alone.

An attacker with the disk in hand can write any bytes; this writes the ones
a test asks for, with correct checksums, so that the reader's checks of
content (not of checksums) are what is tested.

  forge.py point STORE SPEC.json [NAME]

adds one pack (blobs stored raw, compression 0) and one point manifest to
the store at STORE (made by `vmback store init`; its block size is read from
config.json). SPEC describes the point:

  {"volumes": [{"name": "v", "root": NODE}, ...], "vms": [...]}

("vms", optional, is copied into the manifest as it is.)

A NODE is an entry as in FORMAT.md, with its content given inline instead
of by id:
  {"type": "dir",  "entries": [NODE, ...]}        -> "subtree"
  {"type": "file", "data": "text"} or "data_hex"  -> "content", "size"
  {"type": "symlink", "target": "..."}
and any other keys (name, name_hex, mode, uid, gid, mtime_ns, hardlink,
rdev, xattrs, target_hex) copied as they are; missing mode/uid/gid/mtime_ns
get defaults. Tree entries are sorted by their name bytes (name_hex wins),
but never deduplicated. A volume may give "name_hex" instead of "name" when
the test wants bytes JSON text cannot carry. Prints the point's name.
"""
import hashlib
import json
import os
import struct
import sys

KIDS_PER_LIST = 2048


class Pack:
    def __init__(self):
        self.body = bytearray(b"VMBPACK\n" + struct.pack("<I", 1))
        self.table = bytearray()
        self.seen = set()

    def put(self, btype, data):
        bid = hashlib.sha256(data).digest()
        if bid in self.seen:
            return bid
        self.seen.add(bid)
        self.body += struct.pack("<BBHII", btype, 0, 0, len(data), len(data)) + bid
        offset = len(self.body)
        self.body += data
        self.table += bid + struct.pack("<BBHIIQ", btype, 0, 0, len(data), len(data), offset)
        return bid

    def write(self, store):
        count = len(self.table) // 52
        table_off = len(self.body)
        data = bytes(self.body) + bytes(self.table) + struct.pack("<I", count) + \
            hashlib.sha256(bytes(self.table)).digest() + struct.pack("<Q", table_off) + b"VMBPEND\n"
        pid = hashlib.sha256(data).hexdigest()
        d = os.path.join(store, "packs", pid[:2])
        os.makedirs(d, mode=0o700, exist_ok=True)
        with open(os.path.join(d, pid + ".pack"), "wb") as f:
            f.write(data)


def name_bytes(node):
    if "name_hex" in node:
        return bytes.fromhex(node["name_hex"])
    return node.get("name", "").encode("utf-8", "surrogateescape")


def entry(pack, node, block_size):
    out = {k: v for k, v in node.items() if k not in ("entries", "data", "data_hex")}
    out.setdefault("mode", 0o755 if node["type"] == "dir" else 0o644)
    out.setdefault("uid", 0)
    out.setdefault("gid", 0)
    out.setdefault("mtime_ns", 1700000000000000000)
    if node["type"] == "dir":
        children = [entry(pack, c, block_size) for c in node.get("entries", [])]
        children.sort(key=name_bytes)
        tree = json.dumps({"entries": children}, separators=(",", ":")).encode()
        out["subtree"] = pack.put(2, tree).hex()
    elif node["type"] == "file" and "content" not in node:
        data = bytes.fromhex(node["data_hex"]) if "data_hex" in node else node.get("data", "").encode()
        ids = [pack.put(0, data[i:i + block_size]) for i in range(0, len(data), block_size)]
        lists = [pack.put(1, b"".join(ids[i:i + KIDS_PER_LIST])).hex()
                 for i in range(0, len(ids), KIDS_PER_LIST)]
        out["size"] = len(data)
        out["content"] = lists
    return out


def forge_point(store, spec, name):
    with open(os.path.join(store, "config.json")) as f:
        block_size = json.load(f)["block_size"]
    pack = Pack()
    volumes = []
    for v in spec["volumes"]:
        vol = {k: v[k] for k in ("name", "name_hex") if k in v}
        if "name_hex" in vol:  # bytes JSON text cannot carry: decoded leniently
            vol = {"name": bytes.fromhex(vol["name_hex"]).decode("utf-8", "surrogatepass")}
        vol["source"] = v.get("source", "/forged")
        vol["root"] = entry(pack, v["root"], block_size)
        volumes.append(vol)
    pack.write(store)
    manifest = {"version": 1, "name": name, "time": "2026-01-01T00:00:00Z",
                "time_ns": 1767225600000000000, "host": "forged", "block_size": block_size,
                "volumes": volumes, "stats": {}}
    if "vms" in spec:  # VM records, as they are
        manifest["vms"] = spec["vms"]
    line = json.dumps(manifest, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")
    text = line + b"\nsha256:" + hashlib.sha256(line).hexdigest().encode() + b"\n"
    with open(os.path.join(store, "points", name + ".json"), "wb") as f:
        f.write(text)
    print(name)


def main():
    if len(sys.argv) < 4 or sys.argv[1] != "point":
        sys.exit("usage: forge.py point STORE SPEC.json [NAME]")
    with open(sys.argv[3]) as f:
        spec = json.load(f)
    forge_point(sys.argv[2], spec, sys.argv[4] if len(sys.argv) > 4 else "2026-01-01T000000Z")


if __name__ == "__main__":
    main()
