"""Shared parts of the benchmark reports: reading the runs that bench/lib.sh's
measure recorded, tool versions, the vmback binary's identity, table lines."""
import datetime
import hashlib
import json
import os
import subprocess

MIB = 1024 * 1024


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


def read_text(work, name):
    try:
        return open(os.path.join(work, name)).read().strip()
    except OSError:
        return None


def load_runs(work):
    """{tool: {phase: run}} from WORK/results.tsv (see measure in lib.sh)."""
    runs = {}
    hz = os.sysconf("SC_CLK_TCK")
    with open(os.path.join(work, "results.tsv")) as f:
        for line in f:
            (tool, phase, rc, wall, user, sys_, rss, before, after, cache, resident, sync_s,
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
                "peak_rss_bytes": num(rss, int) * 1024 if num(rss, int) is not None else None,
                "repo_bytes_before": int(before),
                "repo_bytes_after": int(after),
                "bytes_written": int(after) - int(before),
                "page_cache_dropped": cache == "yes",
                "page_cache_warmed": cache == "warm",
                "image_resident_bytes_at_start": num(resident, int),
                "sync_after_s": num(sync_s),
            }
            r["cpu_s"] = round(r["user_s"] + r["sys_s"], 2) if r["user_s"] is not None and r["sys_s"] is not None else None
            # CPU used by everything else on the machine during the run (shared host)
            r["machine_busy_pct_before"] = int(busy_before)
            machine_cpu = int(busy_j) / hz
            if r["wall_s"] and r["cpu_s"] is not None:
                r["other_processes_cpu_s"] = round(max(0.0, machine_cpu - r["cpu_s"]), 2)
                r["other_processes_pct_of_machine"] = round(
                    100 * r["other_processes_cpu_s"] / (r["wall_s"] * os.cpu_count()), 1)
            else:
                r["other_processes_cpu_s"] = r["other_processes_pct_of_machine"] = None
            runs.setdefault(tool, {})[phase] = r
    return runs


def tool_stats(work, tool, phase):
    """A tool's own statistics from its --json output in WORK/logs (restic:
    its summary line; vmback, borg: the document; others: None)."""
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
    if tool not in ("vmback", "vmback-dir", "borg"):
        return None
    return load_json(path)


def binary_info(work, vmback):
    """(sha256+mtime at the start, the same now) of the vmback binary named."""
    start = read_text(work, "vmback-id-start")
    start = start.split(" ", 1)[1] if start else None
    try:
        with open(vmback, "rb") as f:
            h = hashlib.sha256(f.read()).hexdigest()[:16]
        end = "%s %s" % (h, datetime.datetime.fromtimestamp(os.stat(vmback).st_mtime).strftime("%Y-%m-%d %H:%M:%S"))
    except OSError:
        end = None
    return start, end


def binary_line(vmback, start, end):
    return "vmback binary: %s (sha256 %s; the runs used a copy taken at the start)%s" % (
        vmback, start, "" if end == start else "; note: %s was rebuilt meanwhile, now %s" % (vmback, end))


def fmt(v, f):
    return "-" if v is None else f % v


def table(hdr, rows, right):
    """The lines of a table; columns whose index is in RIGHT are right-aligned;
    a row None is a blank line."""
    widths = [max(len(str(x)) for x in col) for col in zip(hdr, *[r for r in rows if r is not None])]

    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    out = [line(hdr), line(["-" * w for w in widths])]
    out += ["" if r is None else line(r) for r in rows]
    return out


def goal(name, value, target, cmp, fmt_):
    """A goal printed beside its figure, never asserted."""
    met = None if value is None else (
        value >= target if cmp == ">=" else value <= target if cmp == "<=" else value < target)
    return {"goal": name, "measured": value, "target": "%s %s" % (cmp, target), "met": met, "fmt": fmt_}


def goal_lines(goals):
    gw = max(len(g["goal"]) for g in goals)
    out = []
    for g in goals:
        m = "-" if g["measured"] is None else g["fmt"] % g["measured"]
        status = "n/a" if g["met"] is None else ("met" if g["met"] else "MISSED")
        out.append("  %s  %10s  (target %s)  %s" % (g["goal"].ljust(gw), m, g["target"], status))
    return out


def binary_json(vmback, start, end, preflight):
    return {"path": vmback, "sha256_mtime_at_start": start, "sha256_mtime_at_end": end,
            "rebuilt_during_run": end != start, "runs_used_copy_taken_at_start": True, "preflight": preflight}


def write_json(out_path, result):
    """Writes RESULT (goals without their print format) and says where."""
    result = dict(result)
    if "goals" in result:
        result["goals"] = [{k: v for k, v in g.items() if k != "fmt"} for g in result["goals"]]
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(result, f, indent=2)
    print()
    print("JSON: " + out_path)


def rows_by_phase(runs, phases, tools, width, lead, row):
    """Table rows, phase by phase (a blank line between): row(phase, tool, run)
    for each run, lead(phase, tool) + "not run" for a missing one."""
    rows = []
    for phase in phases:
        if rows:
            rows.append(None)
        for tool in tools:
            r = runs.get(tool, {}).get(phase)
            if r is None:
                cells = lead(phase, tool) + ["not run"]
                rows.append(cells + ["-"] * (width - len(cells)))
            else:
                rows.append(row(phase, tool, r))
    return rows
