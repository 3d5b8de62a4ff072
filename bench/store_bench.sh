#!/usr/bin/env bash
# vmback store benchmark, side by side with restic, borg and cp.  A benchmark,
# not a test: goals are printed next to the figures, never asserted.
#
#   bench/store_bench.sh
#
# 1. generates a deterministic sparse 4 GiB image (bench/gen_image.py: 30%
#    random, 20% compressible, 50% holes, 1 MiB regions, seeded shuffle);
# 2. full backup with vmback into its store, vmback into a plain directory
#    (the dir target, `backup --dir`), restic and borg (default settings
#    each), and `cp --sparse=always` of the image (the floor: no hashing, no
#    compression);
# 3. changes 1% of the 4 KiB blocks plus one 64 MiB run, bumps mtime;
# 4. incremental backup with each tool (cp copies the whole image again);
# 5. restore of the day-2 point with each: `vmback restore` (store and dir
#    target), `restic restore`, `borg extract --sparse`, and `cp --sparse`
#    of cp's copy; each result is compared with the image (cmp) and removed;
# 6. prints wall, CPU (user+sys), bytes added to the repository (du -sb
#    after - before, apparent bytes), peak RSS and vmback/other ratios as a
#    table, and writes the same as JSON to bench/out/results.json.
# vmback fsyncs what it restores before it exits; restic, borg and cp do not,
# so the restore rows compare "wall + sync" (the sync run right after each
# tool, timed) as well as wall.
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
source "$SCRIPT_DIR/lib.sh"
require_tools store_bench "$VMBACK" restic borg python3 "$TIME" du fincore timeout sha256sum

make_work vmback-bench
trap remove_work EXIT
mkdir -p "$WORK/img"

IMG=$WORK/img/vm-disk.img
VM_STORE=$WORK/vmback-store
VM_DIR=$WORK/vmback-dir
CP_DIR=$WORK/cp-copy
RESTORED=$WORK/restored
use_restic_borg_repos

use_vmback_copy
preflight_or_exit store_bench

log "work dir $WORK; generating $SIZE image (seed $SEED)"
python3 "$SCRIPT_DIR/gen_image.py" create "$IMG" --size "$SIZE" --seed "$SEED" >"$WORK/gen.json"
log "$(cat "$WORK/gen.json")"

# --- repositories (init is not part of the measured backup, but timed) ---
measure vmback init "$VM_STORE" "$VMBACK" -q store init "$VM_STORE"
mkdir -m 0700 "$VM_DIR" "$CP_DIR" "$RESTORED"
init_restic_borg
restic cat config >"$WORK/restic-config.json" 2>/dev/null || echo '{}' >"$WORK/restic-config.json"

run_phase() {
  local phase=$1
  measure vmback "$phase" "$VM_STORE" "$VMBACK" -q backup --store "$VM_STORE" "$IMG" --json
  measure vmback-dir "$phase" "$VM_DIR" "$VMBACK" -q backup --dir "$VM_DIR" "$IMG" --json
  measure_restic_borg "$phase"
  measure cp "$phase" "$CP_DIR" cp --sparse=always "$IMG" "$CP_DIR/vm-disk.img"
}

# check_restored TOOL FILE: compares FILE with the image, records the result
# and FILE's allocated bytes in WORK/restored.tsv, removes FILE's tree.
check_restored() {
  local same=no alloc=0
  if [[ -f "$2" ]]; then
    cmp -s "$IMG" "$2" && same=yes
    alloc=$(( $(stat -c %b "$2") * $(stat -c %B "$2") ))
  fi
  printf '%s\t%s\t%s\n' "$1" "$same" "$alloc" >>"$WORK/restored.tsv"
  log "$1 restore: identical to the image: $same, $alloc B allocated"
  rm -rf -- "$RESTORED/$1"
}

restore_phase() {
  local name
  name=$(basename "$IMG")
  mkdir -p "$RESTORED"/{restic,borg,cp}
  measure vmback restore "$RESTORED/vmback" "$VMBACK" -q restore --store "$VM_STORE" latest "$name" --to "$RESTORED/vmback"
  check_restored vmback "$RESTORED/vmback"
  measure vmback-dir restore "$RESTORED/vmback-dir" "$VMBACK" -q restore --dir "$VM_DIR" latest "$name" --to "$RESTORED/vmback-dir"
  check_restored vmback-dir "$RESTORED/vmback-dir"
  measure restic restore "$RESTORED/restic" restic restore latest --target "$RESTORED/restic"
  check_restored restic "$RESTORED/restic$IMG"
  measure borg restore "$RESTORED/borg" sh -c 'cd "$1" && borg extract --sparse "$2"' sh "$RESTORED/borg" "$BORG_REPO::incremental"
  check_restored borg "$RESTORED/borg$IMG"
  measure cp restore "$RESTORED/cp" cp --sparse=always "$CP_DIR/vm-disk.img" "$RESTORED/cp/vm-disk.img"
  check_restored cp "$RESTORED/cp/vm-disk.img"
}

run_phase full
modify_image
run_phase incremental
restore_phase

# --- report ---
if ! python3 - "$WORK" "${BENCH_OUT:-$OUT_DIR/results.json}" "$VMBACK_ORIG" "$SCRIPT_DIR" <<'PY'
import json, os, sys, datetime

work, out_path, vmback = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, sys.argv[4])
from bench_common import (MIB, binary_info, binary_json, binary_line, fmt, goal, goal_lines, load_json,  # noqa: E402
                          load_runs, tool_stats, read_text, rows_by_phase, table, ver, write_json)
TOOLS = ["vmback", "vmback-dir", "restic", "borg", "cp"]
OTHERS = ["restic", "borg", "cp"]
PHASES = ["full", "incremental", "restore"]
BACKUPS = ["full", "incremental"]


runs = load_runs(work)
for tool, phases in runs.items():
    for phase, r in phases.items():
        del r["page_cache_warmed"]
        if phase in BACKUPS:
            r["tool_stats"] = tool_stats(work, tool, phase)
        if r["wall_s"] is not None and r["sync_after_s"] is not None:
            r["wall_plus_sync_s"] = round(r["wall_s"] + r["sync_after_s"], 2)
        else:
            r["wall_plus_sync_s"] = None
restored = {}
try:
    for line in open(os.path.join(work, "restored.tsv")):
        tool, same, alloc = line.rstrip("\n").split("\t")
        restored[tool] = {"identical": same == "yes", "allocated_bytes": int(alloc)}
except OSError:
    pass
for tool, check in restored.items():
    if "restore" in runs.get(tool, {}):
        runs[tool]["restore"]["restored"] = check

gen = load_json(os.path.join(work, "gen.json")) or {}
mod = load_json(os.path.join(work, "modify.json")) or {}


def get(tool, phase, key):
    return runs.get(tool, {}).get(phase, {}).get(key)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def ok(tool, phase):
    good = get(tool, phase, "exit_status") == 0
    if phase == "restore":
        good = good and restored.get(tool, {}).get("identical", False)
    return good


# The time a phase took: a restore is done when its data is on disk (vmback
# syncs before it exits; the others leave it to the sync that follows).
def took(tool, phase):
    return get(tool, phase, "wall_plus_sync_s" if phase == "restore" else "wall_s")


# ratios: vmback (store, or dir target) / other (below 1 = vmback better)
ratios = {}
for phase in PHASES:
    for mine in ("vmback", "vmback-dir"):
        for other in OTHERS:
            both = ok(mine, phase) and ok(other, phase)
            ratios.setdefault(phase, {})["%s_vs_%s" % (mine, other)] = {
                "wall": ratio(took(mine, phase), took(other, phase)) if both else None,
                "bytes_written": ratio(get(mine, phase, "bytes_written"), get(other, phase, "bytes_written"))
                if both and phase in BACKUPS else None,
            }


# goals (printed, not asserted)
def speedup(phase, other, mine="vmback"):
    r = ratios[phase]["%s_vs_%s" % (mine, other)]["wall"]
    return None if not r else 1 / r


def vs(phase, other, mine="vmback"):
    return ratios[phase]["%s_vs_%s" % (mine, other)]["wall"]


vm_rss = [get("vmback", p, "peak_rss_bytes") for p in PHASES]
vm_rss = max(x for x in vm_rss if x is not None) / MIB if any(x is not None for x in vm_rss) else None
goals = [
    goal("incremental: vmback >= 3x faster than restic (restic wall / vmback wall)", speedup("incremental", "restic"), 3, ">=", "%.2fx"),
    goal("incremental: vmback >= 3x faster than borg (borg wall / vmback wall)", speedup("incremental", "borg"), 3, ">=", "%.2fx"),
    goal("incremental: vmback bytes <= 1/3 of restic's (vmback / restic)", ratios["incremental"]["vmback_vs_restic"]["bytes_written"], 0.333, "<=", "%.3f"),
    goal("incremental: vmback bytes <= 1/3 of borg's (vmback / borg)", ratios["incremental"]["vmback_vs_borg"]["bytes_written"], 0.333, "<=", "%.3f"),
    goal("full: vmback >= 2x faster than restic (restic wall / vmback wall)", speedup("full", "restic"), 2, ">=", "%.2fx"),
    goal("full: vmback wall <= 1.5x cp --sparse's (vmback / cp)", vs("full", "cp"), 1.5, "<=", "%.2fx"),
    goal("full: vmback CPU (user+sys) <= 6 s", get("vmback", "full", "cpu_s"), 6, "<=", "%.2f s"),
    goal("full: dir target wall <= 1.5x cp --sparse's (vmback-dir / cp)", vs("full", "cp", "vmback-dir"), 1.5, "<=", "%.2fx"),
    goal("restore: vmback <= 1/2 of restic's wall+sync (vmback / restic)", vs("restore", "restic"), 0.5, "<=", "%.2fx"),
    goal("restore: vmback <= 2x cp --sparse's wall+sync (vmback / cp)", vs("restore", "cp"), 2, "<=", "%.2fx"),
    goal("restore: dir target <= 2x cp --sparse's wall+sync (vmback-dir / cp)", vs("restore", "cp", "vmback-dir"), 2, "<=", "%.2fx"),
    goal("vmback peak RSS < 256 MiB (max over all phases, MiB)", vm_rss, 256, "<", "%.1f"),
]

# ---- table ----
drop_states = {r["page_cache_dropped"] for t in runs.values() for p, r in t.items() if p != "init"}
hdr = ["phase", "tool", "status", "wall s", "+sync s", "cpu s", "user s", "sys s", "written MiB", "repo MiB",
       "peak RSS MiB", "cache", "others %", "vmback/x", "dir/x", "bytes vm/x"]
def row(phase, tool, r):
    def cell(mine):
        w = ratios[phase].get("%s_vs_%s" % (mine, tool), {}).get("wall") if tool in OTHERS else None
        return "-" if tool not in OTHERS else (fmt(w, "%.3f") + (" (%.2fx)" % (1 / w) if w else ""))
    status = "ok" if r["exit_status"] == 0 else "FAIL(%d)" % r["exit_status"]
    if phase == "restore" and r["exit_status"] == 0 and not restored.get(tool, {}).get("identical"):
        status = "DIFFERS"
    return [
        phase, tool, status,
        fmt(r["wall_s"], "%.2f"), fmt(r["wall_plus_sync_s"], "%.2f"), fmt(r["cpu_s"], "%.2f"),
        fmt(r["user_s"], "%.2f"), fmt(r["sys_s"], "%.2f"),
        "%.1f" % (r["bytes_written"] / MIB) if phase in BACKUPS else
        fmt((restored.get(tool, {}).get("allocated_bytes") or 0) / MIB, "%.1f a"),
        "%.1f" % (r["repo_bytes_after"] / MIB) if phase in BACKUPS else "-",
        fmt(None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / MIB, "%.1f"),
        "dropped" if r["page_cache_dropped"] and (r["image_resident_bytes_at_start"] or 0) < 16 * MIB
        else ("drop-ok?" if r["page_cache_dropped"] else "warm"),
        fmt(r["other_processes_pct_of_machine"], "%.0f"),
        cell("vmback"), cell("vmback-dir"),
        fmt(ratios[phase].get("vmback_vs_" + tool, {}).get("bytes_written"), "%.3f") if tool in OTHERS else "-",
    ]


rows = rows_by_phase(runs, PHASES, TOOLS, len(hdr), lambda phase, tool: [phase, tool], row)
versions = {
    "vmback": ver([vmback, "--version"]),
    "restic": ver(["restic", "version"]),
    "borg": ver(["borg", "--version"]),
}
vm_id_start, vm_id_end = binary_info(work, vmback)
preflight = read_text(work, "preflight.txt")
restic_cfg = load_json(os.path.join(work, "restic-config.json")) or {}
vm_cfg = load_json(os.path.join(work, "vmback-store", "config.json")) or {}

print()
print("vmback store benchmark  (%s, %d cores)" % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
print("versions: %s | %s | %s" % (versions["vmback"], versions["restic"], versions["borg"]))
print(binary_line(vmback, vm_id_start, vm_id_end))
print("vmback pre-flight: %s" % preflight)
print("settings: vmback store defaults %s | restic repo version %s (default compression) | borg -e none, default chunker/lz4 | cp --sparse=always"
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
for line in table(hdr, rows, right={3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15}):
    print(line)
print()
print("written = du -sb of the repository after - before (apparent bytes; restore rows: the restored image's")
print("          allocated bytes, 'a'); repo = du -sb after; cpu = user + sys; +sync = wall + the sync run right after")
print("vmback/x, dir/x = the time of vmback's store (dir target) / that tool's: wall for backups, wall + sync for")
print("          restores (vmback syncs before it exits, the others do not); below 1: vmback better, (Nx) = how many")
print("          times faster vmback is; bytes vm/x = the same for bytes written")
print("restore rows: each result compared with the day-2 image by cmp (status DIFFERS if not identical)")
print("others %% = CPU used by other processes on this machine during the run, %% of all %d cores (from /proc/stat;" % os.cpu_count())
print("           each run waited up to BENCH_QUIET_MAX s for a quiet machine first) - high values make wall times unreliable")
for p, s in [(p, get("vmback", p, "tool_stats")) for p in BACKUPS]:
    if s:
        v = (s.get("volumes") or [{}])[0]
        print("vmback %-11s own stats: read %.1f MiB of %.1f MiB, %s new of %s blocks (%s zero), stored %.1f MiB (raw %.1f MiB), %s packs"
              % (p, v.get("bytes_read", 0) / MIB, v.get("bytes", 0) / MIB, v.get("new_blocks"), v.get("blocks"),
                 v.get("zero_blocks"), s.get("bytes_written", 0) / MIB, s.get("raw_bytes_written", 0) / MIB, s.get("packs_written")))
for p in BACKUPS:
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
for line in goal_lines(goals):
    print(line)

result = {
    "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
    "cpus": os.cpu_count(),
    "versions": versions,
    "vmback_binary": binary_json(vmback, vm_id_start, vm_id_end, preflight),
    "settings": {"vmback_store_config": vm_cfg, "restic_repo_config": {k: v for k, v in restic_cfg.items() if k != "chunker_polynomial"},
                 "borg": "borg init -e none; borg create defaults; borg extract --sparse",
                 "cp": "cp --sparse=always"},
    "image": gen,
    "modification": mod,
    "page_cache_dropped_all_runs": drop_states == {True},
    "runs": runs,
    "ratios_vmback_over_other": ratios,
    "goals": goals,
}
write_json(out_path, result)
PY
then
  BENCH_KEEP=1
  echo "store_bench: the report failed; raw results in $WORK/results.tsv and $WORK/logs" >&2
  exit 1
fi
