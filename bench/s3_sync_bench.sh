#!/usr/bin/env bash
# A store copied into an S3 bucket (issue 19): `vmback store sync --mirror
# s3://...` of the benchmark's day-1 and day-2 points to a real Ceph gateway
# (RGW), beside `s3cmd sync` and `rclone sync` of the same store directory.
# A benchmark, not a test: goals are printed next to the figures, never
# asserted.
#
#   bash bench/s3_sync_bench.sh [--size SIZE] [--keep]      (as root)
#
# 1. starts a private single-node Ceph cluster with its S3 gateway on
#    loopback (tests/integration/ceph_lib.sh; its daemons stopped by their
#    pids at exit) and makes one bucket, vmback-bench;
# 2. generates the image of bench/store_bench.sh (bench/gen_image.py: 4 GiB
#    apparent by default, 30% random, 20% compressible, 50% holes, seed 42)
#    and backs it up into a local store (day 1, not measured); before that,
#    a 20 MiB multipart upload and a small one to another prefix warm the
#    gateway up (it makes its pools at the first of each);
# 3. day 1, measured: the store copied to three prefixes of the bucket:
#      vmback   vmback store sync --store STORE --mirror s3://vmback-bench/vmback
#      s3cmd    s3cmd sync STORE/ s3://vmback-bench/s3cmd/   (defaults)
#      rclone   rclone sync STORE bench:vmback-bench/rclone  (defaults)
#    s3cmd and rclone copy what a store copy holds: config.json, packs/,
#    index/ and points/ (not the lock files, nor tmp/);
#    vmback's sync records the bucket copy in the store's config.json, but a
#    backup with --store alone does not write to a bucket it records (README:
#    "a config.json on a disk never sends data to a bucket it records"): the
#    bytes sent to the gateway during each backup are counted and printed,
#    so a day-2 sync with nothing left to send would show;
# 4. the day-2 change of every benchmark (gen_image.py modify: 1% of the 4
#    KiB blocks and one 64 MiB run), a day-2 backup into the store (not
#    measured), then the three syncs again, measured;
# 5. after each day, each prefix is listed (s3cmd ls, not measured): a copy
#    is complete when every local file of those four parts is there, with its
#    size (config.json: there; a copy's own may name the copy);
# 6. prints a table: wall, CPU (user+sys of the tool's processes), peak RSS,
#    bytes sent to the gateway and received from it, bytes stored, and the
#    ratios to s3cmd, and writes the same as JSON to
#    bench/out/s3_sync_results.json.
#
# Bytes on the wire, the same way for every tool: two counting rules of
# this run's own in iptables' OUTPUT chain (no target: they only count),
# `-o lo -p tcp --dport PORT` (client -> gateway: "sent") and `--sport PORT`
# (gateway -> client: "received"), PORT being this run's gateway. They count
# whole IP packets (HTTP requests, headers, bodies, TCP/IP headers, retries,
# listings) of whatever talks to the gateway, which is only the tool being
# measured; the gateway's own traffic to its OSD (other ports) is not
# counted. Counters are read right before and after each run; the rules are
# deleted at exit.
# The page cache is dropped before every measured run when permitted (the
# three tools read the same local files), as in store_bench.sh.
#
# If `vmback store sync --help` does not mention s3 (a vmback without the
# bucket copy), the vmback rows say "not available" and the others still run.
#
# Options / environment:
#   --size SIZE   image apparent size (BENCH_SIZE, default 4G; e.g. 256M for a
#                 quick run)
#   --keep        keep the work dir (BENCH_KEEP=1); the cluster is stopped anyway
#   BENCH_DIR (default /tmp), BENCH_SEED (42), VMBACK (default build/vmback),
#   BENCH_OUT (default bench/out/s3_sync_results.json), BENCH_TIMEOUT (per
#   run, s, default 1800), BENCH_QUIET_MAX (wait for a quiet machine before
#   each run, s, default 30 here), BENCH_FORCE=1 (run a vmback that fails the
#   pre-flight check).
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while (($#)); do
  case $1 in
    --size) [ $# -ge 2 ] || usage; export BENCH_SIZE=$2; shift 2 ;;
    --size=*) export BENCH_SIZE=${1#--size=}; shift ;;
    --keep) export BENCH_KEEP=1; shift ;;
    -h | --help) usage ;;
    *) echo "s3_sync_bench: unknown argument $1" >&2; usage ;;
  esac
done
export BENCH_QUIET_MAX=${BENCH_QUIET_MAX:-30}

source "$SCRIPT_DIR/lib.sh"
require_tools s3_sync_bench "$VMBACK" python3 "$TIME" s3cmd rclone iptables fincore timeout sha256sum
[ "$(id -u)" -eq 0 ] || { echo "s3_sync_bench: run as root (iptables byte counters, dropping the page cache)" >&2; exit 2; }

# What ceph_lib.sh expects of its caller (as tests/integration/lib.sh
# gives it): die, and register_cleanup (run at exit, last registered first).
_CLEANUPS=()
register_cleanup() { _CLEANUPS+=("$1"); }
die() { echo "s3_sync_bench: $*" >&2; exit 1; }
on_exit() {
  local i
  set +e
  for ((i = ${#_CLEANUPS[@]} - 1; i >= 0; i--)); do "${_CLEANUPS[i]}"; done
  remove_work
}

make_work vmback-s3bench
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# The OSD's block file is sparse: room for three copies of the store.
CEPH_OSD_BLOCK_BYTES=$(python3 -c "import sys; sys.path.insert(0, sys.argv[1]); from gen_image import parse_size; print(max(8 << 30, 4 * parse_size(sys.argv[2])))" "$SCRIPT_DIR" "$SIZE")
export CEPH_OSD_BLOCK_BYTES
source "$ROOT/tests/integration/ceph_lib.sh"

IMG=$WORK/img/vm-disk.img
STORE=$WORK/store
BUCKET=vmback-bench
PARTS=(config.json packs index points)  # what a copy of the store holds
mkdir -p "$WORK/img"

use_vmback_copy
preflight_or_exit s3_sync_bench

log "work dir $WORK; generating $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"
log "$(cat "$WORK/gen.json")"
"$VMBACK" -q store init "$STORE" >/dev/null

log "starting Ceph (mon, osd, mgr, radosgw; OSD block file $CEPH_OSD_BLOCK_BYTES B, sparse)"
ceph_start >"$WORK/logs/ceph-start.out"
log "$(cat "$WORK/logs/ceph-start.out")"
ceph_make_bucket "$BUCKET"
RGW_PORT=${S3_ENDPOINT##*:}

# --- bytes on the wire: two counting rules of this run (see the top) ---
WIRE_TAG=vmback-s3bench-$$
wire_rule() { iptables -w "$1" OUTPUT -o lo -p tcp "$2" "$RGW_PORT" -m comment --comment "$WIRE_TAG$3"; }
wire_stop() {
  wire_rule -D --dport -up 2>/dev/null
  wire_rule -D --sport -down 2>/dev/null
}
register_cleanup wire_stop
wire_rule -I --dport -up
wire_rule -I --sport -down
# wire_bytes: "UP DOWN", the byte counters of the two rules.
wire_bytes() {
  local table up down
  table=$(iptables -w -L OUTPUT -n -v -x)
  up=$(awk -v t="/* $WIRE_TAG-up */" 'index($0, t) {print $2}' <<<"$table")
  down=$(awk -v t="/* $WIRE_TAG-down */" 'index($0, t) {print $2}' <<<"$table")
  [[ $up =~ ^[0-9]+$ && $down =~ ^[0-9]+$ ]] || die "cannot read the iptables byte counters of $WIRE_TAG"
  echo "$up $down"
}

# --- the three clients: keys in files and the environment, never in argv ---
S3CMD_CFG=$WORK/s3cfg
(umask 077 && cat >"$S3CMD_CFG" <<EOF
[default]
access_key = $S3_ACCESS_KEY
secret_key = $S3_SECRET_KEY
host_base = $S3_ENDPOINT
host_bucket = $S3_ENDPOINT
use_https = False
signature_v2 = False
bucket_location = us-east-1
EOF
)
export RCLONE_CONFIG=$WORK/rclone.conf  # empty: the remote is defined below
: >"$RCLONE_CONFIG"
export RCLONE_CONFIG_BENCH_TYPE=s3 RCLONE_CONFIG_BENCH_PROVIDER=Ceph RCLONE_CONFIG_BENCH_ENDPOINT=http://$S3_ENDPOINT
export RCLONE_CONFIG_BENCH_ACCESS_KEY_ID=$S3_ACCESS_KEY RCLONE_CONFIG_BENCH_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export RCLONE_CONFIG_BENCH_FORCE_PATH_STYLE=true RCLONE_CONFIG_BENCH_REGION=us-east-1
export AWS_ENDPOINT_URL=http://$S3_ENDPOINT AWS_ACCESS_KEY_ID=$S3_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET_KEY
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
unset AWS_SHARED_CREDENTIALS_FILE AWS_PROFILE || true

# Warm-up, not measured: the gateway makes its data pool at the first object
# and its multipart pool at the first multipart upload, a few seconds each;
# whichever tool came first would pay for it.
python3 -c "import random, sys; sys.stdout.buffer.write(random.Random(7).randbytes(20 << 20))" >"$WORK/warmup.bin"
s3cmd -c "$S3CMD_CFG" --no-progress put "$WORK/warmup.bin" "s3://$BUCKET/warmup/multipart.bin" >"$WORK/logs/warmup.out" 2>&1 ||
  die "warm-up upload failed: $(tail -n 5 "$WORK/logs/warmup.out")"
s3cmd -c "$S3CMD_CFG" --no-progress put "$WORK/gen.json" "s3://$BUCKET/warmup/small.json" >>"$WORK/logs/warmup.out" 2>&1 ||
  die "warm-up upload failed: $(tail -n 5 "$WORK/logs/warmup.out")"
log "gateway warmed up (pools: $(_ceph osd pool ls 2>/dev/null | tr '\n' ' '))"

S3CMD_FILTER=(--exclude '*' --include config.json --include 'packs/*' --include 'index/*' --include 'points/*')
RCLONE_FILTER=(--filter '+ /config.json' --filter '+ /packs/**' --filter '+ /index/**' --filter '+ /points/**' --filter '- **')

if "$VMBACK" store sync --help 2>&1 | grep -qiE 's3://|\bs3\b'; then
  VMBACK_S3=yes
else
  VMBACK_S3=no
  log "vmback store sync --help does not mention s3: the vmback rows are not available"
fi
echo "$VMBACK_S3" >"$WORK/vmback-s3.txt"

# sync_run TOOL DAY CMD...: one measured sync (bench/lib.sh measure), and the
# wire bytes it moved appended to WORK/wire.tsv.
sync_run() {
  local tool=$1 day=$2 u0 d0 u1 d1
  shift 2
  read -r u0 d0 < <(wire_bytes)
  measure "$tool" "$day" "$STORE" "$@"
  read -r u1 d1 < <(wire_bytes)
  printf '%s\t%s\t%s\t%s\n' "$tool" "$day" "$((u1 - u0))" "$((d1 - d0))" >>"$WORK/wire.tsv"
  log "$tool $day: $((u1 - u0)) B sent to the gateway, $((d1 - d0)) B received"
}

# local_files DAY: "path<TAB>size<TAB>mtime" of the store's copied parts.
local_files() {
  (cd "$STORE" && find "${PARTS[@]}" -type f -printf '%p\t%s\t%T@\n' | LC_ALL=C sort) >"$WORK/local-$1.tsv"
}

# list_copies DAY: each prefix's objects ("key<TAB>size"), not measured.
list_copies() {
  local tool
  for tool in vmback s3cmd rclone; do
    s3cmd -c "$S3CMD_CFG" ls -r "s3://$BUCKET/$tool/" 2>"$WORK/logs/list-$tool-$1.err" |
      awk -v p="s3://$BUCKET/$tool/" '{k = $4; sub("^" p, "", k); print k "\t" $3}' | LC_ALL=C sort >"$WORK/list-$tool-$1.tsv" || true
  done
}

day() {
  local day=$1
  log "$day: backup into the local store (not measured)"
  local u0 d0 u1 d1
  read -r u0 d0 < <(wire_bytes)
  "$VMBACK" -q backup --store "$STORE" "$IMG" --json >"$WORK/logs/backup-$day.json"
  read -r u1 d1 < <(wire_bytes)
  printf '%s\t%s\t%s\n' "$day" "$((u1 - u0))" "$((d1 - d0))" >>"$WORK/backup-wire.tsv"
  if [ "$VMBACK_S3" = yes ]; then
    sync_run vmback "$day" "$VMBACK" -q store sync --store "$STORE" --mirror "s3://$BUCKET/vmback"
  fi
  sync_run s3cmd "$day" s3cmd -c "$S3CMD_CFG" --no-progress sync "${S3CMD_FILTER[@]}" "$STORE/" "s3://$BUCKET/s3cmd/"
  # (rclone 1.60 fails whenever AWS_CA_BUNDLE is set: "LoadCustomCABundleError ...
  # unsupported transport"; the endpoint is plain http, no CA is needed)
  sync_run rclone "$day" env -u AWS_CA_BUNDLE rclone sync "${RCLONE_FILTER[@]}" "$STORE" "bench:$BUCKET/rclone"
  local_files "$day"
  list_copies "$day"
}

day day1
modify_image
day day2

# --- report ---
if ! python3 - "$WORK" "${BENCH_OUT:-$OUT_DIR/s3_sync_results.json}" "$VMBACK_ORIG" "$SCRIPT_DIR" "$S3_ENDPOINT" <<'PY'
import datetime, json, os, sys

work, out_path, vmback, endpoint = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[5]
sys.path.insert(0, sys.argv[4])
from bench_common import MIB, binary_info, binary_json, fmt, goal, goal_lines, load_json, load_runs, read_text, table, ver, write_json  # noqa: E402

TOOLS = ["vmback", "s3cmd", "rclone"]
DAYS = ["day1", "day2"]
runs = load_runs(work)
for line in open(os.path.join(work, "wire.tsv")):
    tool, day, up, down = line.rstrip("\n").split("\t")
    runs[tool][day]["wire_sent_bytes"] = int(up)
    runs[tool][day]["wire_received_bytes"] = int(down)
vmback_s3 = read_text(work, "vmback-s3.txt") == "yes"


def tsv(name):
    try:
        return [l.rstrip("\n").split("\t") for l in open(os.path.join(work, name)) if l.strip()]
    except OSError:
        return None


local = {d: {p: (int(s), m) for p, s, m in tsv("local-%s.tsv" % d) or []} for d in DAYS}
# What a day's sync has to move: every file on day 1; on day 2, the files
# that are new or changed (size or mtime) since day 1.
need = {"day1": local["day1"],
        "day2": {p: v for p, v in local["day2"].items() if local["day1"].get(p) != v}}


def part(path):
    return path.split("/", 1)[0]


need_summary = {}
for d in DAYS:
    by_part = {}
    for p, (s, _) in need[d].items():
        b = by_part.setdefault(part(p), {"files": 0, "bytes": 0})
        b["files"] += 1
        b["bytes"] += s
    need_summary[d] = {"files": len(need[d]), "bytes": sum(s for s, _ in need[d].values()), "by_part": by_part,
                       "gone_since_day1": sorted(set(local["day1"]) - set(local["day2"])) if d == "day2" else []}

stored = {}
for tool in TOOLS:
    prev = 0
    for d in DAYS:
        objs = tsv("list-%s-%s.tsv" % (tool, d))
        if objs is None or tool not in runs or d not in runs[tool]:
            continue
        keys = {k: int(s) for k, s in objs}
        # config.json: each copy's own (it may name the copy), so only there;
        # the rest byte for byte (its size here).
        missing = [p for p, (s, _) in local[d].items() if p not in keys or (p != "config.json" and keys[p] != s)]
        total = sum(keys.values())
        r = runs[tool][d]
        # Directory markers: empty objects named like a directory ("packs/"; "" is the prefix's own).
        markers = sorted(k for k, n in keys.items() if n == 0 and (k == "" or k.endswith("/")))
        others = sorted(k for k in keys if k not in markers and part(k) not in ("config.json", "packs", "index", "points"))
        r["copy"] = {"objects": len(keys), "bytes": total, "stored_added_bytes": total - prev,
                     "local_files_missing_or_different": len(missing), "examples_missing": missing[:5],
                     "complete": not missing, "directory_markers": len(markers), "objects_besides_the_store_files": others}
        prev = total


def get(tool, d, key):
    return runs.get(tool, {}).get(d, {}).get(key)


def ok(tool, d):
    return get(tool, d, "exit_status") == 0 and (get(tool, d, "copy") or {}).get("complete", False)


def ratio(a, b):
    return None if a is None or b is None or b == 0 else a / b


ratios = {d: {t: {"wall": ratio(get(t, d, "wall_s"), get("s3cmd", d, "wall_s")) if ok(t, d) and ok("s3cmd", d) else None,
                  "sent": ratio(get(t, d, "wire_sent_bytes"), get("s3cmd", d, "wire_sent_bytes")) if ok(t, d) and ok("s3cmd", d) else None}
              for t in TOOLS} for d in DAYS}

hdr = ["day", "tool", "status", "wall s", "cpu s", "RSS MiB", "sent MiB", "recv MiB", "stored +MiB", "objects", "cache",
       "others %", "wall/s3cmd", "sent/s3cmd"]
rows = []
for d in DAYS:
    for t in TOOLS:
        r = runs.get(t, {}).get(d)
        if r is None:
            rows.append([d, t, "not available" if t == "vmback" and not vmback_s3 else "not run"] + ["-"] * (len(hdr) - 3))
            continue
        c = r.get("copy") or {}
        status = "ok" if ok(t, d) else ("FAIL(%d)" % r["exit_status"] if r["exit_status"] else "INCOMPLETE")
        rows.append([d, t, status, fmt(r["wall_s"], "%.2f"), fmt(r["cpu_s"], "%.2f"),
                     fmt(None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / MIB, "%.0f"),
                     fmt(None if r.get("wire_sent_bytes") is None else r["wire_sent_bytes"] / MIB, "%.1f"),
                     fmt(None if r.get("wire_received_bytes") is None else r["wire_received_bytes"] / MIB, "%.2f"),
                     fmt(None if "stored_added_bytes" not in c else c["stored_added_bytes"] / MIB, "%.1f"),
                     fmt(c.get("objects"), "%d"),
                     "dropped" if r["page_cache_dropped"] else "warm",
                     fmt(r["other_processes_pct_of_machine"], "%.0f"),
                     fmt(ratios[d][t]["wall"], "%.3f"), fmt(ratios[d][t]["sent"], "%.3f")])
    rows.append(None)
rows.pop()

vm_sent2 = get("vmback", "day2", "wire_sent_bytes") if ok("vmback", "day2") else None
goals = [
    goal("day 2: vmback sends at most the day-2 files, +5% for HTTP/TCP (sent / new files' bytes)",
         ratio(vm_sent2, need_summary["day2"]["bytes"]), 1.05, "<=", "%.3f"),
    goal("day 2: vmback store sync not slower than s3cmd sync (wall vmback / s3cmd)", ratios["day2"]["vmback"]["wall"], 1.0, "<=", "%.3f"),
]

versions = {"vmback": ver([vmback, "--version"]), "s3cmd": ver(["s3cmd", "--version"]), "rclone": ver(["rclone", "version"]),
            "radosgw": ver(["radosgw", "--version"])}
vm_id_start, vm_id_end = binary_info(work, vmback)
gen = load_json(os.path.join(work, "gen.json")) or {}
mod = load_json(os.path.join(work, "modify.json")) or {}
print()
print("store copy to an S3 bucket  (%s, %d cores)" % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
print("versions: %s | %s | %s | %s" % (versions["vmback"], versions["s3cmd"], versions["rclone"], versions["radosgw"]))
print("gateway: single-node Ceph RGW at http://%s (loopback, plain http, path style), one bucket, a prefix per tool" % endpoint)
if gen:
    print("image: %.0f MiB apparent, %.0f MiB allocated (bench/gen_image.py, seed %s); day 2: %d random 4 KiB blocks + one 64 MiB run"
          % (gen["apparent_bytes"] / MIB, gen["allocated_bytes"] / MIB, gen["seed"], mod.get("changed_4k_blocks", -1)))
for d in DAYS:
    s = need_summary[d]
    parts = ", ".join("%s %d (%.1f MiB)" % (p, b["files"], b["bytes"] / MIB) for p, b in sorted(s["by_part"].items()))
    print("%s: the store's files to copy (%s): %d, %.1f MiB: %s%s" % (
        d, "all" if d == "day1" else "new or changed since day 1", s["files"], s["bytes"] / MIB, parts,
        "; gone since day 1: %d" % len(s["gone_since_day1"]) if s["gone_since_day1"] else ""))
for d, up, down in tsv("backup-wire.tsv") or []:
    print("%s: the backup into the local store (not measured) sent %d B to the gateway%s"
          % (d, int(up), "" if int(up) == 0 else " (it wrote to the bucket itself: the day's sync rows understate)"))
print()
for line in table(hdr, rows, right=set(range(3, len(hdr))) - {hdr.index("cache")}):
    print(line)
print()
print("sent / recv = bytes of IP packets to / from the gateway's port on loopback (iptables counters, the same for every")
print("              tool: requests, headers, bodies, listings, retries); stored +MiB = bytes the prefix's listing gained")
print("              since the day before (s3cmd ls after the run); objects = the objects in the prefix then")
print("status ok = exit 0 and every local file of config.json, packs/, index/, points/ in the prefix with its size")
print("cpu = user + sys of the tool (not the gateway); RSS = its peak resident memory; others % = CPU of everything else")
print("              (the gateway included), %% of all %d cores" % os.cpu_count())
print("wall/s3cmd, sent/s3cmd: that tool's figure / s3cmd's (below 1: fewer seconds, fewer bytes than s3cmd)")
print("s3cmd sync, rclone sync: defaults (s3cmd: md5 of every local file, multipart above 15 MiB; rclone: size + mtime")
print("              from each object's metadata, 4 transfers); page cache dropped before each run")
for t in TOOLS:
    c = get(t, "day2", "copy") or get(t, "day1", "copy")
    if c and (c["objects_besides_the_store_files"] or c["directory_markers"]):
        o = c["objects_besides_the_store_files"]
        print("%s: objects in its prefix besides config.json, packs/, index/, points/: %d empty directory markers%s%s"
              % (t, c["directory_markers"], "".join(", " + x for x in o[:8]), ", ..." if len(o) > 8 else ""))
if not vmback_s3:
    print("vmback: not available (this vmback's `store sync --help` does not mention s3)")
print()
print("goals (informational, not asserted):")
for line in goal_lines(goals):
    print(line)

write_json(out_path, {
    "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
    "cpus": os.cpu_count(),
    "versions": versions,
    "vmback_binary": binary_json(vmback, vm_id_start, vm_id_end, read_text(work, "preflight.txt")),
    "vmback_s3_available": vmback_s3,
    "image": gen, "modification": mod,
    "store_files_to_copy": need_summary,
    "runs": runs, "ratios_over_s3cmd": ratios, "goals": goals,
})
PY
then
  BENCH_KEEP=1
  echo "s3_sync_bench: the report failed; raw results in $WORK/results.tsv, $WORK/wire.tsv and $WORK/logs" >&2
  exit 1
fi
