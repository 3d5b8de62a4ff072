#!/usr/bin/env bash
# Backup of a tree of many small files (issue 17): vmback into its store and
# into a dir target, beside restic, borg and rsync -aH --delete. A
# benchmark, not a test: goals are printed next to the figures, never
# asserted.
#
#   bench/tree_bench.sh
#
# 1. generates a deterministic tree like a host's root file system
#    (bench/gen_tree.py: BENCH_FILES entries, log-normal sizes from 200 B to
#    a few MiB, about BENCH_TREE_BYTES in all, text and random content,
#    symlinks and hard links, up to 10 levels deep);
# 2. day 1: a full backup with each tool (page cache dropped before each);
# 3. day 2, nothing changed: each tool again, with the page cache dropped
#    and then the source tree warmed (the whole tree read, and its
#    metadata, right before each run, as a host's root file system is in
#    the cache), so that every tool's destination is cold alike;
# 4. day 2, 1% changed (gen_tree.py modify: 1% of the files rewritten in
#    part or appended to, 0.1% new, 0.1% deleted, mtimes moved forward):
#    each tool again, destination cold and source warm as on day 2;
# 5. prints wall, CPU (user+sys), peak RSS (/usr/bin/time), bytes added to
#    the repository (du -sb after - before) and vmback/other ratios as a
#    table, and writes the same as JSON to bench/out/tree_results.json.
#
# Tools: vmback backup --store (a store made by vmback store init), vmback
# backup --dir (a plain directory as an in-place target), restic backup
# (repository v2 defaults), borg create (borg init -e none), rsync -aH
# --delete into a plain directory.
#
# Environment:
#   BENCH_FILES       entries in the tree (default 100000)
#   BENCH_TREE_BYTES  bytes in its files (default 2 GiB x BENCH_FILES / 100000)
#   BENCH_DIR         parent of the work dir (default /tmp)
#   BENCH_SEED        generator seed (default 42)
#   BENCH_KEEP=1      keep the work dir
#   VMBACK            vmback binary (default build/vmback of this checkout)
#   BENCH_OUT         where the JSON goes (default bench/out/tree_results.json)
#   BENCH_TIMEOUT     per measured run, seconds (default 1800)
#   BENCH_FORCE=1     run even if vmback fails the pre-flight sanity check
#   BENCH_QUIET_MAX   wait up to this many s for a quiet machine before each run (default 120)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$SCRIPT_DIR/lib.sh"
require_tools tree_bench "$VMBACK" restic borg rsync python3 "$TIME" du fincore timeout sha256sum find xargs

FILES=${BENCH_FILES:-100000}
TREE_BYTES=${BENCH_TREE_BYTES:-$((2 * 1024 * 1024 * 1024 * FILES / 100000))}

make_work vmback-tree-bench
trap remove_work EXIT

SRC=$WORK/src
VM_STORE=$WORK/vmback-store
VM_DIR=$WORK/vmback-dir
RSYNC_DIR=$WORK/rsync-dir
use_restic_borg_repos

use_vmback_copy
preflight_or_exit tree_bench

log "work dir $WORK; generating a tree of $FILES entries, $TREE_BYTES bytes (seed $SEED)"
python3 "$SCRIPT_DIR/gen_tree.py" create "$SRC" --files "$FILES" --bytes "$TREE_BYTES" --seed "$SEED" >"$WORK/gen.json"
log "$(cat "$WORK/gen.json")"
# measure reports how much of IMG is in the page cache: the biggest file.
IMG=$(find "$SRC" -type f -printf '%s %p\n' | sort -n | tail -n 1 | cut -d' ' -f2-)

# warm_tree: the tree's data and metadata read into the page cache (lib.sh's
# warm_caches runs one cat per file: minutes for 100,000 files).
warm_tree() {
  find "$SRC" -type f -print0 | xargs -0 -n 512 cat >/dev/null
  find "$SRC" -printf '' >/dev/null
}

# --- repositories (init is not part of the measured backups, but timed) ---
measure vmback init "$VM_STORE" "$VMBACK" -q store init "$VM_STORE"
mkdir -p "$VM_DIR" "$RSYNC_DIR"
init_restic_borg
restic cat config >"$WORK/restic-config.json" 2>/dev/null || echo '{}' >"$WORK/restic-config.json"

run_phase() {
  local phase=$1 t
  for t in vmback vmback-dir restic borg rsync; do
    if [[ $phase != day1 ]]; then
      # Every destination cold (a backup disk's metadata a day later), the
      # source warm (a host's root file system is in its cache): the same
      # for every tool, whatever ran before it.
      drop_caches >/dev/null
      MEASURE_CACHE=warm WARM_FILES=()
      warm_tree
    else
      MEASURE_CACHE=drop
    fi
    case $t in
      vmback) measure vmback "$phase" "$VM_STORE" "$VMBACK" -q backup --store "$VM_STORE" "$SRC" --json ;;
      vmback-dir) measure vmback-dir "$phase" "$VM_DIR" "$VMBACK" -q backup --dir "$VM_DIR" "$SRC" --json ;;
      restic) measure restic "$phase" "$RESTIC_REPOSITORY" restic backup --json --host bench "$SRC" ;;
      borg) measure borg "$phase" "$BORG_REPO" borg create --json "$BORG_REPO::$phase" "$SRC" ;;
      rsync) measure rsync "$phase" "$RSYNC_DIR" rsync -aH --delete "$SRC/" "$RSYNC_DIR/src/" ;;
    esac
  done
}

run_phase day1
run_phase day2-same
log "changing 1% of the tree"
python3 "$SCRIPT_DIR/gen_tree.py" modify "$SRC" --seed "$SEED" >"$WORK/modify.json"
log "$(cat "$WORK/modify.json")"
run_phase day2-1pct

# --- report ---
if ! python3 - "$WORK" "${BENCH_OUT:-$OUT_DIR/tree_results.json}" "$VMBACK_ORIG" "$SCRIPT_DIR" <<'PY'
import json, os, sys, datetime

work, out_path, vmback = sys.argv[1], sys.argv[2], sys.argv[3]
sys.path.insert(0, sys.argv[4])
from bench_common import (MIB, binary_info, binary_json, binary_line, fmt, goal, goal_lines, load_json,  # noqa: E402
                          load_runs, tool_stats, read_text, rows_by_phase, table, ver, write_json)
TOOLS = ["vmback", "vmback-dir", "restic", "borg", "rsync"]
VMBACKS = ["vmback", "vmback-dir"]
OTHERS = ["restic", "borg", "rsync"]
PHASES = ["day1", "day2-same", "day2-1pct"]
PHASE_NAMES = {"day1": "day 1 (full)", "day2-same": "day 2, nothing changed", "day2-1pct": "day 2, 1% changed"}


runs = load_runs(work)
for tool, phases in runs.items():
    for phase, r in phases.items():
        if phase != "init":
            r["tool_stats"] = tool_stats(work, tool, phase)
            r["page_cache"] = "warm" if r["page_cache_warmed"] else ("dropped" if r["page_cache_dropped"] else "not dropped")
            # Done = on disk: vmback makes what it wrote durable before it
            # exits (syncfs, fsync); rsync leaves it to the kernel, and the
            # sync run right after each tool pays for what it left.
            w, sy = r.get("wall_s"), r.get("sync_after_s")
            r["wall_plus_sync_s"] = None if w is None or sy is None else round(w + sy, 2)

gen = load_json(os.path.join(work, "gen.json")) or {}
mod = load_json(os.path.join(work, "modify.json")) or {}


def get(tool, phase, key):
    return runs.get(tool, {}).get(phase, {}).get(key)


def ratio(vm, other, phase, key):
    if get(vm, phase, "exit_status") != 0 or get(other, phase, "exit_status") != 0:
        return None
    a, b = get(vm, phase, key), get(other, phase, key)
    if a is None or b is None or b == 0:
        return None
    return a / b


# ratios: vmback / other, for both kinds of vmback target (below 1 = vmback better)
ratios = {p: {"%s_vs_%s" % (vm, o): {"wall": ratio(vm, o, p, "wall_s"), "cpu": ratio(vm, o, p, "cpu_s"),
                                     "wall_plus_sync": ratio(vm, o, p, "wall_plus_sync_s"),
                                     "peak_rss": ratio(vm, o, p, "peak_rss_bytes")}
              for vm in VMBACKS for o in OTHERS} for p in PHASES}


def worst(vm, key="wall"):
    """The highest vmback/other ratio of key over every row and other tool."""
    vals = [ratios[p]["%s_vs_%s" % (vm, o)][key] for p in PHASES for o in OTHERS]
    return None if not vals or None in vals else max(vals)


goals = [
    goal("vmback store ahead of restic, borg and rsync on every row (highest wall vmback/other)", worst("vmback"), 1, "<", "%.3f"),
    goal("vmback dir target ahead of restic, borg and rsync on every row (highest wall vmback/other)", worst("vmback-dir"), 1, "<", "%.3f"),
    goal("the same, the backup on disk: vmback store (highest wall+sync vmback/other)", worst("vmback", "wall_plus_sync"), 1, "<", "%.3f"),
    goal("the same, the backup on disk: vmback dir target (highest wall+sync vmback/other)", worst("vmback-dir", "wall_plus_sync"), 1, "<", "%.3f"),
    goal("day 2 with nothing changed under 1 s: vmback store (wall s)", get("vmback", "day2-same", "wall_s"), 1, "<", "%.2f"),
    goal("day 2 with nothing changed under 1 s: vmback dir target (wall s)", get("vmback-dir", "day2-same", "wall_s"), 1, "<", "%.2f"),
]

hdr = ["phase", "tool", "status", "wall s", "wall+sync s", "cpu s", "user s", "sys s", "peak RSS MiB", "added MiB",
       "repo MiB", "cache", "others %", "wall store/x", "w+s store/x", "cpu store/x", "wall dir/x", "w+s dir/x",
       "cpu dir/x"]


def row(phase, tool, r):
    def rt(vm, key):
        if tool in VMBACKS:
            return "-"
        v = ratios[phase]["%s_vs_%s" % (vm, tool)][key]
        return fmt(v, "%.3f")
    return [
        phase, tool,
        "ok" if r["exit_status"] == 0 else "FAIL(%d)" % r["exit_status"],
        fmt(r["wall_s"], "%.2f"), fmt(r["wall_plus_sync_s"], "%.2f"), fmt(r["cpu_s"], "%.2f"), fmt(r["user_s"], "%.2f"),
        fmt(r["sys_s"], "%.2f"),
        fmt(None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / MIB, "%.1f"),
        "%.1f" % (r["bytes_written"] / MIB), "%.1f" % (r["repo_bytes_after"] / MIB),
        r["page_cache"], fmt(r["other_processes_pct_of_machine"], "%.0f"),
        rt("vmback", "wall"), rt("vmback", "wall_plus_sync"), rt("vmback", "cpu"),
        rt("vmback-dir", "wall"), rt("vmback-dir", "wall_plus_sync"), rt("vmback-dir", "cpu"),
    ]


rows = rows_by_phase(runs, PHASES, TOOLS, len(hdr), lambda phase, tool: [phase, tool], row)
versions = {"vmback": ver([vmback, "--version"]), "restic": ver(["restic", "version"]),
            "borg": ver(["borg", "--version"]), "rsync": ver(["rsync", "--version"])}
vm_id_start, vm_id_end = binary_info(work, vmback)
preflight = read_text(work, "preflight.txt")
restic_cfg = load_json(os.path.join(work, "restic-config.json")) or {}
vm_cfg = load_json(os.path.join(work, "vmback-store", "config.json")) or {}

print()
print("vmback tree benchmark  (%s, %d cores)" % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
print("versions: %s | %s | %s | %s" % (versions["vmback"], versions["restic"], versions["borg"], versions["rsync"]))
print(binary_line(vmback, vm_id_start, vm_id_end))
print("vmback pre-flight: %s" % preflight)
print("settings: vmback store defaults %s; vmback --dir defaults | restic repo version %s (default compression) | "
      "borg -e none, defaults | rsync -aH --delete" % (
          {k: v for k, v in vm_cfg.items() if k in ("block_size", "compression", "zstd_level", "version")} or "?",
          restic_cfg.get("version", "?")))
if gen:
    print("tree: %d entries (%d files, %d symlinks, %d hard links) in %d directories, max depth %d; %.0f MiB "
          "(%.0f MiB text-like, %.0f MiB random); sizes: median %d B, 99th percentile %d B, max %d B (seed %s, %s s)"
          % (gen["entries"], gen["regular_files"], gen["symlinks"], gen["hard_links"], gen["directories"],
             gen["max_depth"], gen["bytes"] / MIB, gen["text_bytes"] / MIB, gen["random_bytes"] / MIB,
             gen["size_median"], gen["size_p99"], gen["size_max"], gen["seed"], gen["seconds"]))
if mod:
    print("day-2 change: %d of %d files changed (%d rewritten in part, %d appended to), %d new, %d deleted, "
          "%.1f MiB written; their mtimes moved a day forward" % (
              mod["changed"], mod["regular_files_before"], mod["rewritten_in_part"], mod["appended"], mod["created"],
              mod["deleted"], mod["bytes_written"] / MIB))
day1_cache = {get(t, "day1", "page_cache") for t in TOOLS} - {None}
print("page cache: day 1 %s before each run; day 2 rows: dropped, then the source WARM (the whole tree, data "
      "and metadata, read right before each run, as a host's root file system is in the cache), every "
      "destination cold" % "/".join(sorted(day1_cache)))
inits = ", ".join("%s %.2f s" % (t, runs[t]["init"]["wall_s"]) for t in TOOLS
                  if "init" in runs.get(t, {}) and runs[t]["init"]["wall_s"] is not None)
print("repository init (not included below): " + inits)
print()
for line in table(hdr, rows, right={3, 4, 5, 6, 7, 8, 9, 10, 12, 13, 14, 15, 16, 17, 18}):
    print(line)
print()
print("phases: " + "; ".join("%s = %s" % (k, v) for k, v in PHASE_NAMES.items()))
print("vmback = vmback backup --store; vmback-dir = vmback backup --dir (in-place mirror); cpu = user + sys")
print("added = du -sb of the repository (rsync: its directory) after - before, apparent bytes; an in-place")
print("        target (vmback-dir, rsync) rewrites files where they are, so its day-2 figure is the growth only")
print("wall+sync = wall + the sync run right after the tool: the time until the backup is on disk (vmback syncs")
print("        before it exits; rsync leaves its writes to the kernel)")
print("wall store/x, w+s store/x (wall+sync), cpu store/x = vmback store / that tool; the same for dir/x = vmback dir target")
print("        (below 1: vmback better)")
print("others %% = CPU used by other processes on this machine during the run, %% of all %d cores (from /proc/stat;" % os.cpu_count())
print("           each run waited up to BENCH_QUIET_MAX s for a quiet machine first) - high values make wall times unreliable")
for p in PHASES:
    s = get("vmback", p, "tool_stats")
    if s:
        v = (s.get("volumes") or [{}])[0]
        print("vmback %-9s own stats: %s files (%s reused unread), read %.1f MiB of %.1f MiB, %s new of %s blocks, "
              "stored %.1f MiB" % (p, v.get("files"), v.get("files_unchanged"), v.get("bytes_read", 0) / MIB,
                                   v.get("bytes", 0) / MIB, v.get("new_blocks"), v.get("blocks"),
                                   s.get("bytes_written", 0) / MIB))
for p in PHASES:
    s = get("restic", p, "tool_stats")
    if s:
        print("restic %-9s own stats: %s new, %s changed, %s unmodified files; data added %.1f MiB"
              % (p, s.get("files_new"), s.get("files_changed"), s.get("files_unmodified"), s.get("data_added", 0) / MIB))
    b = get("borg", p, "tool_stats")
    if b and "archive" in b:
        st = b["archive"]["stats"]
        print("borg   %-9s own stats: %s files, original %.1f MiB, deduplicated %.1f MiB"
              % (p, st.get("nfiles"), st.get("original_size", 0) / MIB, st.get("deduplicated_size", 0) / MIB))
print()
print("goals (informational, not asserted):")
for line in goal_lines(goals):
    print(line)

for t in runs.values():
    for r in t.values():
        r.pop("page_cache_warmed", None)
result = {
    "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
    "cpus": os.cpu_count(),
    "versions": versions,
    "vmback_binary": binary_json(vmback, vm_id_start, vm_id_end, preflight),
    "settings": {"vmback_store_config": vm_cfg,
                 "restic_repo_config": {k: v for k, v in restic_cfg.items() if k != "chunker_polynomial"},
                 "borg": "borg init -e none; borg create defaults", "rsync": "rsync -aH --delete",
                 "page_cache": "day1: dropped before each run when permitted; day2 rows: warm (tree read first)"},
    "tree": gen,
    "modification": mod,
    "phases": PHASE_NAMES,
    "runs": runs,
    "ratios_vmback_over_other": ratios,
    "goals": goals,
}
write_json(out_path, result)
PY
then
  BENCH_KEEP=1
  echo "tree_bench: the report failed; raw results in $WORK/results.tsv and $WORK/logs" >&2
  exit 1
fi
