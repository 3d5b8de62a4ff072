#!/usr/bin/env python3
"""The table and JSON of bench/cbt_bench.sh.

  cbt_report.py WORK OUT_JSON VMBACK SIZE
"""
import datetime
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_common import (MIB, binary_info, binary_json, binary_line, fmt, goal, goal_lines,  # noqa: E402
                          load_json, load_runs, read_text, rows_by_phase, table, ver, write_json)

VMBACK_SETUPS = {
    "vmback-store": "store, shared extents",
    "vmback-dir": "dir target, shared extents",
    "vmback-full": "store, --full-read",
}
TOOLS = list(VMBACK_SETUPS) + ["rsync", "restic", "borg"]
OTHER_SETUPS = {
    "rsync": "-a --inplace --no-whole-file onto day-1 copy",
    "restic": "backup (defaults)",
    "borg": "create (-e none, defaults)",
}
PHASES = ["day1", "day2"]


def vmback_report(work, tool, phase):
    """The volume's figures from `vmback run --json` (None if unreadable)."""
    rep = load_json(os.path.join(work, "logs", "%s-%s.out" % (tool, phase)))
    if not rep:
        return None
    backup = rep.get("backup", rep)
    vols = backup.get("volumes") or [{}]
    v = dict(vols[0])
    inplace = backup.get("inplace") or []
    if inplace:
        v["inplace"] = inplace[0]
    v["full_read"] = backup.get("full_read")
    return v


def main():
    work, out_path, vmback, size = sys.argv[1:5]
    runs = load_runs(work)
    gen = load_json(os.path.join(work, "gen.json")) or {}
    mod = load_json(os.path.join(work, "modify.json")) or {}
    changed_blocks = load_json(os.path.join(work, "changed.json")) or {}
    changed = mod.get("changed_bytes")
    for tool in VMBACK_SETUPS:
        for phase in PHASES:
            if phase in runs.get(tool, {}):
                runs[tool][phase]["vmback_report"] = vmback_report(work, tool, phase)

    def get(tool, phase, key):
        return runs.get(tool, {}).get(phase, {}).get(key)

    def ok(tool, phase):
        return get(tool, phase, "exit_status") == 0

    def bytes_read(tool, phase):
        v = get(tool, phase, "vmback_report")
        return v.get("bytes_read") if v else None

    def ratio(a, b):
        return None if a is None or b is None or b == 0 else a / b

    hdr = ["day", "tool", "setup", "status", "wall s", "cpu s", "peak RSS MiB", "read MiB", "read/changed",
           "change method", "written MiB", "others %"]
    def lead(phase, tool):
        return [phase, tool, VMBACK_SETUPS.get(tool) or OTHER_SETUPS[tool]]

    def row(phase, tool, r):
        v = r.get("vmback_report") or {}
        br = v.get("bytes_read")
        written = r["bytes_written"]
        if tool == "vmback-dir" and v.get("inplace"):  # rewritten in place: the target's own count
            written = v["inplace"].get("bytes_written", 0) + v["inplace"].get("map_bytes_written", 0)
        return lead(phase, tool) + [
            "ok" if r["exit_status"] == 0 else "FAIL(%d)" % r["exit_status"],
            fmt(r["wall_s"], "%.2f"), fmt(r["cpu_s"], "%.2f"),
            fmt(None if r["peak_rss_bytes"] is None else r["peak_rss_bytes"] / MIB, "%.1f"),
            fmt(None if br is None else br / MIB, "%.1f") if tool in VMBACK_SETUPS else "(all)",
            fmt(ratio(br, changed), "%.2f") if phase == "day2" and tool in VMBACK_SETUPS else "-",
            v.get("change_method") or "-",
            "%.1f%s" % (written / MIB, "*" if tool == "vmback-dir" else ""),
            fmt(r["other_processes_pct_of_machine"], "%.0f"),
        ]
    rows = rows_by_phase(runs, PHASES, TOOLS, len(hdr), lead, row)

    def rss_mib(tools, phase):
        xs = [get(t, phase, "peak_rss_bytes") for t in tools]
        xs = [x for x in xs if x is not None]
        return max(xs) / MIB if xs else None
    day1_rss = rss_mib(VMBACK_SETUPS, "day1")
    day2_cbt_rss = rss_mib(("vmback-store", "vmback-dir"), "day2")
    day2_full_rss = rss_mib(("vmback-full",), "day2")

    def wall_ratio(tool, other):
        if not (ok(tool, "day2") and ok(other, "day2")):
            return None
        return ratio(get(tool, "day2", "wall_s"), get(other, "day2", "wall_s"))

    goals = []
    for tool, what in (("vmback-store", "store"), ("vmback-dir", "dir target")):
        goals += [
            goal("day 2, %s: bytes read / changed bytes" % what,
                 ratio(bytes_read(tool, "day2"), changed) if ok(tool, "day2") else None, 2, "<=", "%.2f"),
            goal("day 2, %s: wall / vmback's own full-read day 2" % what, wall_ratio(tool, "vmback-full"), 0.1,
                 "<=", "%.3f"),
            goal("day 2, %s: wall / rsync's day 2" % what, wall_ratio(tool, "rsync"), 0.0333, "<=", "%.4f"),
        ]
    # "Flat": reading a change list costs no more memory than reading it all
    # (10% slack for noise), and stays in the store benchmark's bound.
    goals += [
        goal("peak memory flat: day-2 shared-extents peak RSS / full-read day 2's", ratio(day2_cbt_rss, day2_full_rss),
             1.1, "<=", "%.2f"),
        goal("peak memory flat: vmback peak RSS, MiB (max of all its runs)",
             max((x for x in (day1_rss, day2_cbt_rss, day2_full_rss) if x is not None), default=None), 256, "<",
             "%.1f"),
    ]

    versions = {"vmback": ver([vmback, "--version"]), "rsync": ver(["rsync", "--version"]),
                "restic": ver(["restic", "version"]), "borg": ver(["borg", "--version"])}
    id_start, id_end = binary_info(work, vmback)
    preflight = read_text(work, "preflight.txt")
    vm_cfg = load_json(os.path.join(work, "store", "config.json")) or {}

    print()
    print("vmback changed-block tracking benchmark, day 2  (%s, %d cores)"
          % (datetime.datetime.now().isoformat(timespec="seconds"), os.cpu_count()))
    print("versions: %s" % " | ".join(versions.values()))
    print(binary_line(vmback, id_start, id_end))
    print("vmback pre-flight: %s" % preflight)
    print("vmback: one volume per setup, source = the image on a loop XFS (reflink=1), snapshot = \"reflink\", "
          "track_changes = true, mode = \"block\", vms = []; store defaults %s"
          % ({k: v for k, v in vm_cfg.items() if k in ("block_size", "compression", "zstd_level", "version")} or "?"))
    if gen:
        print("image: %s apparent (%.0f MiB), %.0f MiB allocated; %d x %d KiB regions: %d random, %d compressible, "
              "%d holes (seed %s)" % (size, gen["apparent_bytes"] / MIB, gen["allocated_bytes"] / MIB, gen["regions"],
                                      gen["region_bytes"] // 1024, gen["random_regions"], gen["compressible_regions"],
                                      gen["hole_regions"], gen["seed"]))
    if mod:
        print("change (in place): %d random 4 KiB blocks + 64 MiB run at offset %d = %.1f MiB changed (union of the "
              "4 KiB blocks written)" % (mod["changed_4k_blocks"], mod["run_offset"], changed / MIB))
    if changed_blocks:
        print("  changed by content, in blocks of " + ", ".join(
            "%d KiB: %.1f MiB" % (int(bs) // 1024, n / MIB)
            for bs, n in sorted(changed_blocks.items(), key=lambda x: int(x[0]))))
    print("page cache: warm (the image, for rsync also its day-1 copy, read just before each run; not dropped)")
    checks = read_text(work, "checks.txt")
    if checks:
        print("checks after day 2 (not timed): " + "; ".join(checks.splitlines()))
    print()
    for line in table(hdr, rows, right={4, 5, 6, 7, 8, 10, 11}):
        print(line)
    print()
    print("read = vmback's bytes_read from its report (the others read the whole image); read/changed = read / the")
    print("  changed bytes; written = du -sb of the store/repository after - before (* the dir target rewrites in")
    print("  place: the bytes vmback wrote into it, blockmaps included, from its report); cpu = user + sys;")
    print("others %% = CPU used by other processes during the run, %% of all %d cores (from /proc/stat; each run"
          % os.cpu_count())
    print("  waited up to BENCH_QUIET_MAX s for a quiet machine first) - high values make wall times unreliable")
    for tool in VMBACK_SETUPS:
        v = get(tool, "day2", "vmback_report")
        if v:
            why = v.get("change_why")
            print("%s day 2: %s%s" % (tool, v.get("change_method"), " (%s)" % why if why else ""))
    print()
    print("goals of issue 14 (informational, not asserted):")
    for line in goal_lines(goals):
        print(line)
    print("  vmback peak RSS, MiB: day 1 max %s, day 2 shared extents max %s, day 2 full read %s"
          % (fmt(day1_rss, "%.1f"), fmt(day2_cbt_rss, "%.1f"),
             fmt(day2_full_rss, "%.1f")))
    # The least a reader with a given block size can read is the changed
    # bytes counted in its blocks (a 4 KiB write costs a whole block).
    def block_size(tool):
        if tool != "vmback-dir":
            return vm_cfg.get("block_size")
        v = get(tool, "day2", "vmback_report") or {}
        blocks = (v.get("inplace") or {}).get("blocks")
        return v.get("bytes") // blocks if blocks and v.get("bytes") else None
    print("the least a reader can read is the changed bytes counted in its blocks:")
    for tool, what in (("vmback-store", "store"), ("vmback-dir", "dir target")):
        bs = block_size(tool)
        least = changed_blocks.get(str(bs)) if bs else None
        print("  %s: read / changed bytes counted in its %s KiB blocks (%s MiB) = %s" % (
            what, fmt(None if bs is None else bs // 1024, "%d"), fmt(None if least is None else least / MIB, "%.1f"),
            fmt(ratio(bytes_read(tool, "day2"), least), "%.2f")))

    result = {
        "timestamp": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "versions": versions,
        "vmback_binary": binary_json(vmback, id_start, id_end, preflight),
        "vmback_store_config": vm_cfg,
        "image": gen,
        "modification": mod,
        "changed_bytes": changed,
        "changed_bytes_by_block_size": changed_blocks,
        "page_cache": "warm",
        "checks": (checks or "").splitlines(),
        "setups": {**VMBACK_SETUPS, **OTHER_SETUPS},
        "runs": runs,
        "goals": goals,
    }
    write_json(out_path, result)


if __name__ == "__main__":
    main()
