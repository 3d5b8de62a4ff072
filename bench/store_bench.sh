#!/usr/bin/env bash
# vmback store benchmark, side by side with restic and borg.  A benchmark, not
# a test: goals are printed next to the figures, never asserted.
#
#   bench/store_bench.sh
#
# 1. generates a deterministic sparse 4 GiB image (bench/gen_image.py: 30%
#    random, 20% compressible, 50% holes, 1 MiB regions, seeded shuffle);
# 2. full backup with vmback, restic and borg (default settings each);
# 3. changes 1% of the 4 KiB blocks plus one 64 MiB run, bumps mtime;
# 4. incremental backup with each tool;
# 5. prints wall, CPU (user+sys), bytes added to the repository (du -sb
#    after - before, apparent bytes), peak RSS and vmback/other ratios as a
#    table, and writes the same as JSON to bench/out/results.json.
# The page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches) before
# every measured run when permitted; the output says whether it worked
# (checked with fincore on the image).
#
# Environment:
#   BENCH_DIR    parent of the work dir (default /tmp); a fresh vmback-bench.XXXXXX
#                directory is made inside it and removed at the end
#   BENCH_SEED   generator seed (default 42)
#   BENCH_SIZE   image apparent size (default 4G; smaller only for smoke runs)
#   BENCH_KEEP=1 keep the work dir
#   VMBACK       vmback binary (default build/vmback of this checkout)
#   BENCH_OUT    where the JSON goes (default bench/out/results.json)
#   BENCH_TIMEOUT  per measured run, seconds (default 1800)
#   BENCH_FORCE=1  run even if vmback fails the pre-flight sanity check
#   BENCH_QUIET_MAX  wait up to this many s for a quiet machine before each run (default 120)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$SCRIPT_DIR/.." && pwd)
VMBACK=${VMBACK:-$ROOT/build/vmback}
SEED=${BENCH_SEED:-42}
SIZE=${BENCH_SIZE:-4G}
OUT_DIR=$SCRIPT_DIR/out
TIME=/usr/bin/time

for t in "$VMBACK" restic borg python3 "$TIME" du fincore timeout sha256sum; do
  command -v "$t" >/dev/null || { echo "store_bench: missing $t" >&2; exit 2; }
done

PARENT=${BENCH_DIR:-/tmp}
mkdir -p "$PARENT"
WORK=$(mktemp -d "$PARENT/vmback-bench.XXXXXX")
cleanup() {
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    echo "work dir kept: $WORK" >&2
  else
    rm -rf -- "$WORK"
  fi
}
trap cleanup EXIT
mkdir -p "$OUT_DIR" "$WORK/img" "$WORK/logs"

IMG=$WORK/img/vm-disk.img
VM_STORE=$WORK/vmback-store
RESTIC_REPO=$WORK/restic-repo
BORG_REPO_DIR=$WORK/borg-repo
RESULTS=$WORK/results.tsv
: >"$RESULTS"

export RESTIC_PASSWORD=vmback-bench RESTIC_REPOSITORY=$RESTIC_REPO RESTIC_CACHE_DIR=$WORK/restic-cache
export BORG_BASE_DIR=$WORK/borg-base BORG_REPO=$BORG_REPO_DIR
export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# Drops the page cache; prints "yes" if the kernel accepted it, else "no".
drop_caches() {
  sync
  if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then echo yes; else echo no; fi
}

# cpu_jiffies: "busy total" jiffies of the whole machine from /proc/stat.
cpu_jiffies() {
  local _c u n s i w irq sirq st _rest
  read -r _c u n s i w irq sirq st _rest </proc/stat
  echo "$((u + n + s + irq + sirq + st)) $((u + n + s + i + w + irq + sirq + st))"
}

# The machine may be shared: wait (up to BENCH_QUIET_MAX s, default 120) until
# it is below 15% busy over 2 s; prints the last busy percentage seen.
wait_quiet() {
  local deadline=$((SECONDS + ${BENCH_QUIET_MAX:-120})) b0 t0 b1 t1 pct
  while :; do
    read -r b0 t0 < <(cpu_jiffies); sleep 2; read -r b1 t1 < <(cpu_jiffies)
    pct=$(( (b1 - b0) * 100 / (t1 - t0 > 0 ? t1 - t0 : 1) ))
    if (( pct < 15 || SECONDS >= deadline )); then echo "$pct"; return; fi
  done
}

resident_bytes() { fincore -b -n -o RES "$1" 2>/dev/null | tr -d ' ' || echo -1; }

repo_bytes() { if [[ -e "$1" ]]; then du -sb -- "$1" | cut -f1; else echo 0; fi; }

# measure TOOL PHASE REPO CMD...: one measured run, appended to $RESULTS.
measure() {
  local tool=$1 phase=$2 repo=$3
  shift 3
  local base=$WORK/logs/$tool-$phase
  local dropped resident before after rc t0 t1 sync_s wall user sys rss busy_pct b0 j0 b1 j1
  if [[ $phase == init ]]; then busy_pct=-1; else busy_pct=$(wait_quiet); fi
  dropped=$(drop_caches)
  resident=$(resident_bytes "$IMG")
  before=$(repo_bytes "$repo")
  log "$tool $phase: $* (machine busy before: ${busy_pct}%, page cache dropped: $dropped, image resident: $resident B)"
  read -r b0 j0 < <(cpu_jiffies)
  set +e
  "$TIME" -f '%e %U %S %M' -o "$base.time" timeout "${BENCH_TIMEOUT:-1800}" "$@" >"$base.out" 2>"$base.err"
  rc=$?
  set -e
  read -r b1 j1 < <(cpu_jiffies)
  t0=$(date +%s.%N); sync; t1=$(date +%s.%N)
  sync_s=$(python3 -c "print(round($t1 - $t0, 3))")
  after=$(repo_bytes "$repo")
  read -r wall user sys rss < <(tail -n 1 "$base.time")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' \
    "$tool" "$phase" "$rc" "$wall" "$user" "$sys" "$rss" "$before" "$after" \
    "$dropped" "$resident" "$sync_s" "$busy_pct" "$((b1 - b0))" "$((j1 - j0))" >>"$RESULTS"
  if [[ $rc -ne 0 ]]; then
    log "$tool $phase FAILED (exit $rc); stderr tail:"
    tail -n 20 "$base.err" >&2
  else
    log "$tool $phase: ${wall}s wall, repo $before -> $after B, peak RSS ${rss} KiB"
  fi
}

# Which vmback is measured: the build dir may be rebuilt while we run, so a
# private copy of the binary is what every run below executes.
binary_id() { echo "$(sha256sum <"$1" | cut -c1-16) $(stat -c %y "$1" | cut -c1-19)"; }
VMBACK_ORIG=$(command -v "$VMBACK")
VMBACK_ID_START=$(binary_id "$VMBACK_ORIG")
mkdir -p "$WORK/bin"
cp "$VMBACK_ORIG" "$WORK/bin/vmback"
VMBACK=$WORK/bin/vmback
echo "$VMBACK_ORIG $VMBACK_ID_START" >"$WORK/vmback-id-start"
log "vmback binary $VMBACK_ORIG ($VMBACK_ID_START), run from a copy in $WORK/bin"

# Pre-flight: an 8 MiB dense file must become 8 MiB / block size blocks.
# A broken build (e.g. a stale object after a header change) can make vmback
# read a whole file as one block, with gigabytes of memory; do not spend
# minutes (and the machine's memory) on a 4 GiB image in that case.
preflight() {
  local d=$WORK/preflight out blocks want
  mkdir -p "$d"
  python3 -c "import random,sys; sys.stdout.buffer.write(random.Random(1).randbytes(8 << 20))" >"$d/dense.img"
  "$VMBACK" -q store init "$d/store" >/dev/null 2>&1 || { echo "store init failed"; return; }
  "$TIME" -f '%e %M' -o "$d/time" timeout 120 "$VMBACK" -q backup --store "$d/store" "$d/dense.img" --json \
    >"$d/out.json" 2>"$d/err" || { echo "backup failed (exit $?): $(tail -n 3 "$d/err")"; return; }
  python3 - "$d" <<'PY'
import json, sys
d = sys.argv[1]
cfg = json.load(open(d + "/store/config.json"))
out = json.load(open(d + "/out.json"))
v = out["volumes"][0]
wall, rss = open(d + "/time").read().split()[-2:]
want = (8 << 20) // cfg["block_size"]
msg = "8 MiB dense file: %s blocks (expected %d at block size %d), raw %d B written, %s s, peak RSS %.0f MiB" % (
    v["blocks"], want, cfg["block_size"], out["raw_bytes_written"], wall, int(rss) / 1024)
print(("ok: " if v["blocks"] == want and int(rss) < 512 * 1024 else "BAD: ") + msg)
PY
}
PREFLIGHT=$(preflight)
echo "$PREFLIGHT" >"$WORK/preflight.txt"
log "vmback pre-flight: $PREFLIGHT"
if [[ "$PREFLIGHT" != ok:* && "${BENCH_FORCE:-0}" != 1 ]]; then
  echo "store_bench: vmback failed the pre-flight check, not benchmarking it:" >&2
  echo "  $VMBACK_ORIG ($VMBACK_ID_START): $PREFLIGHT" >&2
  echo "  (set BENCH_FORCE=1 to run anyway, or VMBACK=/path/to/a/good/vmback)" >&2
  exit 3
fi
rm -rf "$WORK/preflight"

log "work dir $WORK; generating $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"
log "$(cat "$WORK/gen.json")"

# --- repositories (init is not part of the measured backup, but timed) ---
measure vmback init "$VM_STORE" "$VMBACK" -q store init "$VM_STORE"
measure restic init "$RESTIC_REPO" restic init
measure borg init "$BORG_REPO_DIR" borg init -e none "$BORG_REPO_DIR"
restic cat config >"$WORK/restic-config.json" 2>/dev/null || echo '{}' >"$WORK/restic-config.json"

run_phase() {
  local phase=$1
  measure vmback "$phase" "$VM_STORE" "$VMBACK" -q backup --store "$VM_STORE" "$IMG" --json
  measure restic "$phase" "$RESTIC_REPO" restic backup --json --host bench "$IMG"
  measure borg "$phase" "$BORG_REPO_DIR" borg create --json "$BORG_REPO_DIR::$phase" "$IMG"
}

run_phase full
log "modifying the image"
python3 "$SCRIPT_DIR/gen_image.py" modify "$IMG" --seed "$SEED" >"$WORK/modify.json"
log "$(cat "$WORK/modify.json")"
run_phase incremental

# --- report ---
if ! python3 - "$WORK" "${BENCH_OUT:-$OUT_DIR/results.json}" "$VMBACK_ORIG" <<'PY'
import json, os, subprocess, sys, datetime

work, out_path, vmback = sys.argv[1], sys.argv[2], sys.argv[3]
MIB = 1024 * 1024
TOOLS = ["vmback", "restic", "borg"]
PHASES = ["full", "incremental"]


def ver(cmd):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return "unknown (%s)" % e


def load_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except Exception:  # noqa: BLE001
        return None


def tool_stats(tool, phase):
    """The tool's own statistics from its --json output (informational)."""
    path = os.path.join(work, "logs", "%s-%s.out" % (tool, phase))
    if tool == "restic":
        summary = None
        try:
            for line in open(path):
                line = line.strip()
                if line.startswith("{") and '"summary"' in line:
                    summary = json.loads(line)
        except OSError:
            pass
        return summary
    return load_json(path)


runs = {}
with open(os.path.join(work, "results.tsv")) as f:
    for line in f:
        (tool, phase, rc, wall, user, sys_, rss, before, after, dropped, resident, sync_s,
         busy_before, busy_j, total_j) = line.rstrip("\n").split("\t")
        def num(x, conv=float):
            try:
                return conv(x)
            except ValueError:
                return None
        r = {
            "exit_status": int(rc),
            "wall_s": num(wall),
            "user_s": num(user),
            "sys_s": num(sys_),
            "peak_rss_bytes": (num(rss, int) or 0) * 1024 if num(rss, int) is not None else None,
            "repo_bytes_before": int(before),
            "repo_bytes_after": int(after),
            "bytes_written": int(after) - int(before),
            "page_cache_dropped": dropped == "yes",
            "image_resident_bytes_at_start": num(resident, int),
            "sync_after_s": num(sync_s),
        }
        r["cpu_s"] = round(r["user_s"] + r["sys_s"], 2) if r["user_s"] is not None and r["sys_s"] is not None else None
        # CPU used by everything else on the machine during the run (shared host)
        hz = os.sysconf("SC_CLK_TCK")
        r["machine_busy_pct_before"] = int(busy_before)
        machine_cpu = int(busy_j) / hz
        if r["wall_s"] and r["cpu_s"] is not None:
            r["other_processes_cpu_s"] = round(max(0.0, machine_cpu - r["cpu_s"]), 2)
            r["other_processes_pct_of_machine"] = round(100 * r["other_processes_cpu_s"] / (r["wall_s"] * os.cpu_count()), 1)
        else:
            r["other_processes_cpu_s"] = r["other_processes_pct_of_machine"] = None
        if phase != "init":
            r["tool_stats"] = tool_stats(tool, phase)
        runs.setdefault(tool, {})[phase] = r

gen = load_json(os.path.join(work, "gen.json")) or {}
mod = load_json(os.path.join(work, "modify.json")) or {}


def get(tool, phase, key):
    return runs.get(tool, {}).get(phase, {}).get(key)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


# ratios: vmback / other (below 1 = vmback better)
ratios = {}
for phase in PHASES:
    for other in ("restic", "borg"):
        ok = get("vmback", phase, "exit_status") == 0 and get(other, phase, "exit_status") == 0
        ratios.setdefault(phase, {})["vmback_vs_" + other] = {
            "wall": ratio(get("vmback", phase, "wall_s"), get(other, phase, "wall_s")) if ok else None,
            "bytes_written": ratio(get("vmback", phase, "bytes_written"), get(other, phase, "bytes_written")) if ok else None,
        }

# goals (printed, not asserted)
def goal(name, value, target, cmp, fmt):
    met = None if value is None else (value >= target if cmp == ">=" else value <= target if cmp == "<=" else value < target)
    return {"goal": name, "measured": value, "target": "%s %s" % (cmp, target), "met": met, "fmt": fmt}

def speedup(phase, other):
    return ratio(get(other, phase, "wall_s"), get("vmback", phase, "wall_s"))

vm_rss = [get("vmback", p, "peak_rss_bytes") for p in PHASES]
vm_rss = max(x for x in vm_rss if x is not None) / MIB if any(x is not None for x in vm_rss) else None
goals = [
    goal("incremental: vmback >= 3x faster than restic (restic wall / vmback wall)", speedup("incremental", "restic"), 3, ">=", "%.2fx"),
    goal("incremental: vmback >= 3x faster than borg (borg wall / vmback wall)", speedup("incremental", "borg"), 3, ">=", "%.2fx"),
    goal("incremental: vmback bytes <= 1/3 of restic's (vmback / restic)", ratios["incremental"]["vmback_vs_restic"]["bytes_written"], 0.333, "<=", "%.3f"),
    goal("incremental: vmback bytes <= 1/3 of borg's (vmback / borg)", ratios["incremental"]["vmback_vs_borg"]["bytes_written"], 0.333, "<=", "%.3f"),
    goal("full: vmback >= 2x faster than restic (restic wall / vmback wall)", speedup("full", "restic"), 2, ">=", "%.2fx"),
    goal("vmback peak RSS < 256 MiB (max over both phases, MiB)", vm_rss, 256, "<", "%.1f"),
]

# ---- table ----
def fmt(v, f):
    return "-" if v is None else f % v

drop_states = {r["page_cache_dropped"] for t in runs.values() for r in t.values()}
hdr = ["phase", "tool", "status", "wall s", "cpu s", "user s", "sys s", "written MiB", "repo MiB", "peak RSS MiB",
       "cache", "others %", "wall vm/x", "bytes vm/x"]
rows = []
for phase in PHASES:
    for tool in TOOLS:
        r = runs.get(tool, {}).get(phase)
        if r is None:
            rows.append([phase, tool, "not run"] + ["-"] * (len(hdr) - 3))
            continue
        rt = ratios[phase].get("vmback_vs_" + tool, {}) if tool != "vmback" else {}
        wall_r = rt.get("wall")
        rows.append([
            phase, tool,
            "ok" if r["exit_status"] == 0 else "FAIL(%d)" % r["exit_status"],
            fmt(r["wall_s"], "%.2f"), fmt(r["cpu_s"], "%.2f"), fmt(r["user_s"], "%.2f"), fmt(r["sys_s"], "%.2f"),
            "%.1f" % (r["bytes_written"] / MIB),
            "%.1f" % (r["repo_bytes_after"] / MIB),
            fmt(None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / MIB, "%.1f"),
            "dropped" if r["page_cache_dropped"] and (r["image_resident_bytes_at_start"] or 0) < 16 * MIB
            else ("drop-ok?" if r["page_cache_dropped"] else "warm"),
            fmt(r["other_processes_pct_of_machine"], "%.0f"),
            "-" if tool == "vmback" else (fmt(wall_r, "%.3f") + ("" if wall_r is None else " (%.2fx)" % (1 / wall_r) if wall_r else "")),
            "-" if tool == "vmback" else fmt(rt.get("bytes_written"), "%.3f"),
        ])
widths = [max(len(str(x)) for x in col) for col in zip(hdr, *rows)]
right = {3, 4, 5, 6, 7, 8, 9, 11, 12, 13}
def line(cells):
    return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

versions = {
    "vmback": ver([vmback, "--version"]),
    "restic": ver(["restic", "version"]),
    "borg": ver(["borg", "--version"]),
}
def read_text(name):
    try:
        return open(os.path.join(work, name)).read().strip()
    except OSError:
        return None

vm_id_start = read_text("vmback-id-start")
vm_id_start = vm_id_start.split(" ", 1)[1] if vm_id_start else None
try:
    import hashlib
    with open(vmback, "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()[:16]
    vm_id_end = "%s %s" % (h, datetime.datetime.fromtimestamp(os.stat(vmback).st_mtime).strftime("%Y-%m-%d %H:%M:%S"))
except OSError:
    vm_id_end = None
preflight = read_text("preflight.txt")
restic_cfg = load_json(os.path.join(work, "restic-config.json")) or {}
vm_cfg = load_json(os.path.join(work, "vmback-store", "config.json")) or {}

print()
print("vmback store benchmark  (%s, %d cores)" % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
print("versions: %s | %s | %s" % (versions["vmback"], versions["restic"], versions["borg"]))
print("vmback binary: %s (sha256 %s; the runs used a copy taken at the start)%s" % (vmback, vm_id_start,
      "" if vm_id_end == vm_id_start else "; note: %s was rebuilt meanwhile, now %s" % (vmback, vm_id_end)))
print("vmback pre-flight: %s" % preflight)
print("settings: vmback store defaults %s | restic repo version %s (default compression) | borg -e none, default chunker/lz4"
      % ({k: v for k, v in vm_cfg.items() if k in ("block_size", "compression", "zstd_level", "version")} or "?",
         restic_cfg.get("version", "?")))
if gen:
    print("image: %.0f MiB apparent, %.0f MiB allocated; %d x %d KiB regions: %d random, %d compressible, %d holes (seed %s, %s s to generate)"
          % (gen["apparent_bytes"] / MIB, gen["allocated_bytes"] / MIB, gen["regions"], gen["region_bytes"] // 1024,
             gen["random_regions"], gen["compressible_regions"], gen["hole_regions"], gen["seed"], gen["seconds"]))
if mod:
    print("change: %d random 4 KiB blocks (%.1f MiB) + 64 MiB run at offset %d; allocated %.0f -> %.0f MiB; mtime bumped"
          % (mod["changed_4k_blocks"], mod["changed_4k_bytes"] / MIB, mod["run_offset"],
             mod["allocated_bytes_before"] / MIB, mod["allocated_bytes_after"] / MIB))
if drop_states == {True}:
    res = [r["image_resident_bytes_at_start"] for t in runs.values() for r in t.values() if r["image_resident_bytes_at_start"] is not None]
    print("page cache: dropped before every run (drop_caches accepted; image resident at start of runs: max %.1f MiB)"
          % (max(res) / MIB if res else -1))
elif drop_states == {False}:
    print("page cache: NOT dropped (no permission to write /proc/sys/vm/drop_caches); runs may read a warm cache")
else:
    print("page cache: dropped only for some runs (see 'cache' column)")
inits = ", ".join("%s %.2f s" % (t, runs[t]["init"]["wall_s"]) for t in TOOLS if "init" in runs.get(t, {}) and runs[t]["init"]["wall_s"] is not None)
print("repository init (not included below): " + inits)
print()
print(line(hdr))
print(line(["-" * w for w in widths]))
prev = None
for r in rows:
    if prev is not None and r[0] != prev:
        print()
    prev = r[0]
    print(line(r))
print()
print("written = du -sb of the repository after - before (apparent bytes); repo = du -sb after; cpu = user + sys;")
print("wall vm/x, bytes vm/x = vmback / that tool (below 1: vmback better; (Nx) = how many times faster vmback is)")
print("others %% = CPU used by other processes on this machine during the run, %% of all %d cores (from /proc/stat;" % os.cpu_count())
print("           each run waited up to BENCH_QUIET_MAX s for a quiet machine first) - high values make wall times unreliable")
vs = [(p, get("vmback", p, "tool_stats")) for p in PHASES]
for p, s in vs:
    if s:
        v = (s.get("volumes") or [{}])[0]
        print("vmback %-11s own stats: read %.1f MiB of %.1f MiB, %s new of %s blocks (%s zero), stored %.1f MiB (raw %.1f MiB), %s packs"
              % (p, v.get("bytes_read", 0) / MIB, v.get("bytes", 0) / MIB, v.get("new_blocks"), v.get("blocks"),
                 v.get("zero_blocks"), s.get("bytes_written", 0) / MIB, s.get("raw_bytes_written", 0) / MIB, s.get("packs_written")))
for p in PHASES:
    s = get("restic", p, "tool_stats")
    if s:
        print("restic %-11s own stats: data_added (before compression) %.1f MiB, %s new blobs" % (p, s.get("data_added", 0) / MIB, s.get("data_blobs")))
    b = get("borg", p, "tool_stats")
    if b and "archive" in b:
        st = b["archive"]["stats"]
        print("borg   %-11s own stats: original %.1f MiB, compressed %.1f MiB, deduplicated %.1f MiB"
              % (p, st.get("original_size", 0) / MIB, st.get("compressed_size", 0) / MIB, st.get("deduplicated_size", 0) / MIB))
print()
print("goals (informational, not asserted):")
gw = max(len(g["goal"]) for g in goals)
for g in goals:
    m = "-" if g["measured"] is None else g["fmt"] % g["measured"]
    status = "n/a" if g["met"] is None else ("met" if g["met"] else "MISSED")
    print("  %s  %10s  (target %s)  %s" % (g["goal"].ljust(gw), m, g["target"], status))

result = {
    "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
    "cpus": os.cpu_count(),
    "versions": versions,
    "vmback_binary": {"path": vmback, "sha256_mtime_at_start": vm_id_start, "sha256_mtime_at_end": vm_id_end,
                      "rebuilt_during_run": vm_id_end != vm_id_start, "runs_used_copy_taken_at_start": True, "preflight": preflight},
    "settings": {"vmback_store_config": vm_cfg, "restic_repo_config": {k: v for k, v in restic_cfg.items() if k != "chunker_polynomial"},
                 "borg": "borg init -e none; borg create defaults"},
    "image": gen,
    "modification": mod,
    "page_cache_dropped_all_runs": drop_states == {True},
    "runs": runs,
    "ratios_vmback_over_other": ratios,
    "goals": [{k: v for k, v in g.items() if k != "fmt"} for g in goals],
}
os.makedirs(os.path.dirname(out_path), exist_ok=True)
with open(out_path, "w") as f:
    json.dump(result, f, indent=2)
print()
print("JSON: " + out_path)
PY
then
  BENCH_KEEP=1
  echo "store_bench: the report failed; raw results in $WORK/results.tsv and $WORK/logs" >&2
  exit 1
fi
