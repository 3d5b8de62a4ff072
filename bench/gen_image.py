#!/usr/bin/env python3
"""Deterministic sparse VM-image-like file for bench/store_bench.sh.

  gen_image.py create PATH [--size 4G] [--seed 42] [--region 1M]
      Apparent size SIZE, cut into REGION-sized regions; exactly 30% of them
      get random (incompressible) data, 20% compressible text, 50% stay holes.
      The region kinds are a seeded shuffle, so they interleave. Holes are
      never written: the file is ftruncate'd to SIZE and only data regions
      are pwrite'n.

  gen_image.py modify PATH [--seed 42]
      Overwrites 1% of the file's 4 KiB blocks (seeded random offsets, some
      of which land in holes and allocate them) with new random data, plus
      one contiguous 64 MiB run of new random data at a seeded 4 KiB-aligned
      offset; fsyncs and moves mtime forward (at least 1 s past the old one).
      Writes in place (no truncation, no new file): on a reflink file system
      only the written extents stop being shared with a copy made before.

Both print a JSON summary on stdout. Same arguments -> same bytes.
"""
import argparse
import json
import os
import random
import sys
import time

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
BLOCK = 4 * KIB
RUN = 64 * MIB


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": KIB, "M": MIB, "G": GIB, "T": 1024 * GIB}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def make_lines(rng, count=4096):
    """A fixed vocabulary of log-like lines; regions are random sequences of
    them, so every region (and every 4K..2M chunk) is unique, yet an LZ
    compressor (lz4, zstd) finds plenty of repeats within a chunk."""
    words = [
        "vm", "disk", "qemu", "kvm", "virtio", "blk", "net", "eth0", "read", "write",
        "flush", "sector", "block", "error", "ok", "warning", "info", "debug", "guest",
        "host", "page", "cache", "memory", "cpu", "irq", "timer", "tick", "sched",
        "ext4", "journal", "inode", "mount", "systemd", "kernel", "user", "session",
        "opened", "closed", "started", "stopped", "request", "response", "GET", "POST",
        "/var/log", "/usr/lib", "/etc/fstab", "200", "404", "500", "connection",
    ]
    lines = []
    for i in range(count):
        n = rng.randint(4, 12)
        text = " ".join(rng.choice(words) for _ in range(n))
        lines.append(("%06d %s\n" % (rng.randrange(1000000), text)).encode())
    return lines


def compressible(rng, lines, size):
    out = bytearray()
    avg = sum(len(l) for l in lines[:256]) // 256
    while len(out) < size:
        out += b"".join(rng.choices(lines, k=size // avg + 16))
    return bytes(out[:size])


def allocated(path):
    return os.stat(path).st_blocks * 512


def create(args):
    size = parse_size(args.size)
    region = parse_size(args.region)
    if size % region or region % BLOCK:
        sys.exit("size must be a multiple of region, region of 4 KiB")
    n = size // region
    n_rand = round(n * 0.30)
    n_comp = round(n * 0.20)
    kinds = ["R"] * n_rand + ["C"] * n_comp + ["H"] * (n - n_rand - n_comp)
    rng = random.Random("layout-%d" % args.seed)
    rng.shuffle(kinds)
    data_rng = random.Random("data-%d" % args.seed)
    lines = make_lines(random.Random("lines-%d" % args.seed))

    fd = os.open(args.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, size)  # everything a hole to start with
        for i, k in enumerate(kinds):
            if k == "H":
                continue  # leave the hole: no write at all
            buf = data_rng.randbytes(region) if k == "R" else compressible(data_rng, lines, region)
            os.pwrite(fd, buf, i * region)
        os.fsync(fd)
    finally:
        os.close(fd)
    # run-length summary of the layout, for the curious
    runs, prev, cnt = [], None, 0
    for k in kinds:
        if k == prev:
            cnt += 1
        else:
            if prev:
                runs.append(cnt)
            prev, cnt = k, 1
    runs.append(cnt)
    return {
        "path": args.path,
        "seed": args.seed,
        "apparent_bytes": size,
        "allocated_bytes": allocated(args.path),
        "region_bytes": region,
        "regions": n,
        "random_regions": n_rand,
        "compressible_regions": n_comp,
        "hole_regions": n - n_rand - n_comp,
        "layout_runs": len(runs),
        "longest_run_regions": max(runs),
        "layout_head": "".join(kinds[:64]),
    }


def modify(args):
    st = os.stat(args.path)
    size = st.st_size
    nblocks = size // BLOCK
    k = nblocks // 100  # 1% of the 4 KiB blocks
    rng = random.Random("modify-%d" % args.seed)
    blocks = sorted(rng.sample(range(nblocks), k))
    run_off = rng.randrange(0, (size - RUN) // BLOCK + 1) * BLOCK
    alloc_before = allocated(args.path)
    fd = os.open(args.path, os.O_WRONLY)
    try:
        for b in blocks:
            os.pwrite(fd, rng.randbytes(BLOCK), b * BLOCK)
        for off in range(0, RUN, 4 * MIB):
            os.pwrite(fd, rng.randbytes(4 * MIB), run_off + off)
        os.fsync(fd)
    finally:
        os.close(fd)
    now = time.time_ns()
    new_mtime = max(now, st.st_mtime_ns + 1_000_000_000)
    os.utime(args.path, ns=(new_mtime, new_mtime))
    return {
        "path": args.path,
        "seed": args.seed,
        "changed_4k_blocks": k,
        "changed_4k_bytes": k * BLOCK,
        # the union of the 4 KiB blocks and the run: the bytes the change wrote
        "changed_bytes": len(set(blocks) | set(range(run_off // BLOCK, (run_off + RUN) // BLOCK))) * BLOCK,
        "run_offset": run_off,
        "run_bytes": RUN,
        "allocated_bytes_before": alloc_before,
        "allocated_bytes_after": allocated(args.path),
        "old_mtime_ns": st.st_mtime_ns,
        "new_mtime_ns": new_mtime,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("path")
    c.add_argument("--size", default="4G")
    c.add_argument("--region", default="1M")
    c.add_argument("--seed", type=int, default=42)
    m = sub.add_parser("modify")
    m.add_argument("path")
    m.add_argument("--seed", type=int, default=42)
    args = p.parse_args()
    t0 = time.monotonic()
    res = create(args) if args.cmd == "create" else modify(args)
    res["seconds"] = round(time.monotonic() - t0, 2)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
