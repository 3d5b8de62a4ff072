#!/usr/bin/env python3
"""A deterministic tree of many small files, like a host's root file system,
for bench/tree_bench.sh (issue 17).

  gen_tree.py create DIR --files N --bytes B --seed S   prints a JSON summary
  gen_tree.py modify DIR --seed S                       the day-2 change, JSON

create: N entries under DIR (which must not exist): regular files whose
sizes are log-normal (median about 6 KiB, a long tail to a few MiB), scaled
so that they add up to about B bytes; 1% symlinks and 0.1% hard links among
them. Names and directories look like a root file system (etc, usr/lib,
usr/share/doc, var/lib/dpkg/info, home ...), up to 10 levels deep. Content:
text-like files (.py .h .conf .txt ...) are compressible (a mix of a shared
vocabulary and random letters, unique per file, so that no file dedups with
another), the rest (.so .gz .png ...) random bytes. mtimes are set to fixed
times in January 2026, so that the day-2 change moves them forward.

modify: 1% of the regular files changed (60% of them rewritten in part, in
place, 40% appended to), 0.1% new files and 0.1% deleted; every changed or
new file gets an mtime one day later than day 1's. The same seed gives the
same change on the same tree.
"""
import argparse
import json
import math
import os
import random
import sys
import time

KIB = 1024
MIB = 1024 * KIB
BASE_MTIME = 1767225600  # 2026-01-01T00:00:00Z

ROOTS = ["etc", "etc/systemd/system", "usr/bin", "usr/sbin", "usr/lib/x86_64-linux-gnu", "usr/lib/python3/dist-packages",
         "usr/include", "usr/share/doc", "usr/share/locale", "usr/share/man/man1", "usr/share/icons",
         "var/lib/dpkg/info", "var/log", "var/cache/apt", "opt", "home/user/src", "home/user/.cache", "srv/www"]
SYLLABLES = ["lib", "core", "net", "sys", "x", "gtk", "py", "data", "conf", "io", "util", "kde", "gnome", "ssl",
             "crypt", "font", "pkg", "base", "dev", "tools", "ma", "ri", "ko", "te", "va", "lo", "zen", "qu", "bit",
             "fs", "http", "json", "xml", "db", "sql", "mon", "run", "boot", "udev", "dbus", "audio", "video"]
TEXT_EXT = [".py", ".h", ".c", ".conf", ".txt", ".json", ".xml", ".sh", ".service", ".md", ".list", ".pl", ""]
BIN_EXT = [".so", ".gz", ".png", ".mo", ".a", ".bin", ".jpg", ".zst", ".pyc", ".deb"]
WORDS = (b"the of and to in is for on that with as by this are from be or at an not it int return if else "
         b"struct static const void char unsigned define include self def import class None True False "
         b"Description Depends Version Package License GNU General Public copyright foo bar value name "
         b"path config error warning file data size type list string object default user group").split()


def word(rng):
    return "".join(rng.choice(SYLLABLES) for _ in range(rng.randint(1, 3)))


def make_dirs(rng, n_dirs):
    dirs = list(ROOTS)
    while len(dirs) < n_dirs:
        parent = rng.choice(dirs)
        if parent.count("/") >= 9:
            continue
        d = parent + "/" + word(rng) + ("-%d.%d" % (rng.randint(0, 9), rng.randint(0, 30)) if rng.random() < 0.2 else "")
        if d not in dirs:
            dirs.append(d)
    return dirs


def sizes_for(rng, n, total):
    raw = [rng.lognormvariate(math.log(6 * KIB), 1.6) for _ in range(n)]
    lo, hi = 200, 6 * MIB
    scale = 1.0
    for _ in range(30):  # scale so that the clamped sizes add up to total
        got = sum(min(hi, max(lo, r * scale)) for r in raw)
        if abs(got - total) < total * 0.002:
            break
        scale *= total / got
    return [int(min(hi, max(lo, r * scale))) for r in raw]


class Content:
    """Compressible text (unique per file) or random bytes, from one rng."""

    def __init__(self, rng):
        self.rng = rng
        vocab = bytearray()
        while len(vocab) < MIB:
            vocab += rng.choice(WORDS) + (b"\n" if rng.random() < 0.1 else b" ")
        self.vocab = bytes(vocab)
        letters = b"etaoinshrdlcumwfgypbvkjxqz      \n.,_()=:etaoinsrhl"
        self.table = bytes(letters[i % len(letters)] for i in range(256))

    def text(self, n):
        parts, got = [], 0
        while got < n:
            k = min(512, n - got)
            if self.rng.random() < 0.6:
                off = self.rng.randrange(len(self.vocab) - k)
                parts.append(self.vocab[off:off + k])
            else:
                parts.append(self.rng.randbytes(k).translate(self.table))
            got += k
        return b"".join(parts)

    def random(self, n):
        return self.rng.randbytes(n)

    def for_name(self, name, n):
        return self.random(n) if os.path.splitext(name)[1] in BIN_EXT else self.text(n)


def write(path, data, mtime):
    with open(path, "wb") as f:
        f.write(data)
    os.utime(path, (mtime, mtime))


def create(args):
    t0 = time.time()
    rng = random.Random(args.seed)
    content = Content(rng)
    os.makedirs(args.dir)
    n_dirs = max(len(ROOTS), args.files // 14)
    dirs = make_dirs(rng, n_dirs)
    for d in dirs:
        os.makedirs(os.path.join(args.dir, d), exist_ok=True)
    weights = [rng.paretovariate(1.2) for _ in dirs]  # a few big directories, many small
    n_links = args.files // 100
    n_hard = args.files // 1000
    n_regular = args.files - n_links - n_hard
    sizes = sizes_for(rng, n_regular, args.bytes)
    placed = rng.choices(range(len(dirs)), weights=weights, k=args.files)
    files, total, text_bytes = [], 0, 0
    for i in range(args.files):
        d = dirs[placed[i]]
        while True:
            ext = rng.choice(TEXT_EXT) if rng.random() < 0.6 else rng.choice(BIN_EXT)
            name = word(rng) + ("_%d" % rng.randint(0, 999) if rng.random() < 0.5 else "") + ext
            rel = d + "/" + name
            if not os.path.lexists(os.path.join(args.dir, rel)):
                break
        path = os.path.join(args.dir, rel)
        mtime = BASE_MTIME + rng.randint(0, 86400 * 30 - 1)
        if i < n_regular:
            data = content.for_name(name, sizes[i])
            write(path, data, mtime)
            if rng.random() < 0.15:
                os.chmod(path, 0o755)
            files.append(rel)
            total += len(data)
            if os.path.splitext(name)[1] not in BIN_EXT:
                text_bytes += len(data)
        elif i < n_regular + n_links:
            target = rng.choice(files)
            os.symlink(os.path.relpath(os.path.join(args.dir, target), os.path.dirname(path)), path)
        else:
            os.link(os.path.join(args.dir, rng.choice(files)), path)
    sizes_sorted = sorted(sizes)
    json.dump({"dir": args.dir, "seed": args.seed, "entries": args.files, "regular_files": n_regular,
               "symlinks": n_links, "hard_links": n_hard, "directories": len(dirs), "bytes": total,
               "text_bytes": text_bytes, "random_bytes": total - text_bytes,
               "size_median": sizes_sorted[len(sizes) // 2], "size_p99": sizes_sorted[len(sizes) * 99 // 100],
               "size_max": sizes_sorted[-1], "max_depth": max(d.count("/") + 1 for d in dirs),
               "seconds": round(time.time() - t0, 1)}, sys.stdout)
    print()


def modify(args):
    t0 = time.time()
    rng = random.Random(args.seed * 1000003 + 17)
    content = Content(rng)
    regular, dirs = [], []
    for root, dnames, fnames in os.walk(args.dir):
        dnames.sort()
        dirs.append(root)
        for f in sorted(fnames):
            p = os.path.join(root, f)
            st = os.lstat(p)
            if os.path.isfile(p) and not os.path.islink(p) and st.st_nlink == 1:
                regular.append(p)
    n = len(regular)
    changed = rng.sample(regular, max(1, n // 100))
    mtime = BASE_MTIME + 86400 * 31
    rewritten = appended = bytes_written = 0
    for p in changed:
        size = os.path.getsize(p)
        if rng.random() < 0.6 and size > 0:
            k = min(size, rng.randint(1, 64 * KIB))
            off = rng.randrange(size - k + 1)
            with open(p, "r+b") as f:
                f.seek(off)
                f.write(content.for_name(p, k))
            rewritten += 1
        else:
            k = rng.randint(1, 64 * KIB)
            with open(p, "ab") as f:
                f.write(content.for_name(p, k))
            appended += 1
        bytes_written += k
        os.utime(p, (mtime, mtime))
    changed_set = set(changed)
    rest = [p for p in regular if p not in changed_set]
    deleted = rng.sample(rest, max(1, n // 1000))
    for p in deleted:
        os.unlink(p)
    created = 0
    for i in range(max(1, n // 1000)):
        d = rng.choice(dirs)
        name = "new-%s_%d%s" % (word(rng), i, rng.choice(TEXT_EXT + BIN_EXT))
        k = int(min(4 * MIB, rng.lognormvariate(math.log(6 * KIB), 1.6)))
        write(os.path.join(d, name), content.for_name(name, k), mtime)
        bytes_written += k
        created += 1
    json.dump({"regular_files_before": n, "changed": len(changed), "rewritten_in_part": rewritten,
               "appended": appended, "created": created, "deleted": len(deleted),
               "bytes_written": bytes_written, "seconds": round(time.time() - t0, 1)}, sys.stdout)
    print()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create")
    c.add_argument("dir")
    c.add_argument("--files", type=int, default=100000)
    c.add_argument("--bytes", type=int, default=2 << 30)
    c.add_argument("--seed", type=int, default=42)
    m = sub.add_parser("modify")
    m.add_argument("dir")
    m.add_argument("--seed", type=int, default=42)
    args = ap.parse_args()
    create(args) if args.cmd == "create" else modify(args)


if __name__ == "__main__":
    main()
