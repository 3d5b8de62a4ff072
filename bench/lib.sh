# Shared pieces of the vmback benchmarks (sourced, not run).
#
# Sourcing sets the settings every benchmark reads from the environment:
# VMBACK (default build/vmback of this checkout), SEED, SIZE, OUT_DIR
# (bench/out), TIME (/usr/bin/time). make_work then sets WORK (its private
# work directory, with logs/) and RESULTS (the TSV measure appends to); the
# script sets IMG (measure records how much of it is cached) and optionally
# MEASURE_CACHE: "drop" (default: drop the page cache before each run) or
# "warm" (read WARM_FILES... into the cache before each run).

BENCH_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VMBACK=${VMBACK:-$(dirname "$BENCH_LIB_DIR")/build/vmback}
SEED=${BENCH_SEED:-42}
SIZE=${BENCH_SIZE:-4G}
OUT_DIR=$BENCH_LIB_DIR/out
TIME=/usr/bin/time

# make_work NAME: a fresh WORK=BENCH_DIR/NAME.XXXXXX (default BENCH_DIR
# /tmp) with logs/, an empty RESULTS, and OUT_DIR. The caller's EXIT trap
# removes WORK.
make_work() {
  local parent=${BENCH_DIR:-/tmp}
  mkdir -p "$parent"
  WORK=$(mktemp -d "$parent/$1.XXXXXX")
  mkdir -p "$OUT_DIR" "$WORK/logs"
  RESULTS=$WORK/results.tsv
  : >"$RESULTS"
}

# remove_work: removes WORK unless BENCH_KEEP=1 (then says where it is).
remove_work() {
  if [[ "${BENCH_KEEP:-0}" == 1 ]]; then
    echo "work dir kept: $WORK" >&2
  else
    rm -rf -- "$WORK"
  fi
}

# restic and borg repositories in WORK (restic-repo, borg-repo), unencrypted
# for borg, a fixed password for restic.
use_restic_borg_repos() {
  export RESTIC_PASSWORD=vmback-bench RESTIC_REPOSITORY=$WORK/restic-repo RESTIC_CACHE_DIR=$WORK/restic-cache
  export BORG_BASE_DIR=$WORK/borg-base BORG_REPO=$WORK/borg-repo
  export BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes BORG_RELOCATED_REPO_ACCESS_IS_OK=yes
}

log() { printf '[%(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

# require_tools NAME TOOL...: exits 2 naming the first one missing.
require_tools() {
  local name=$1 t
  shift
  for t in "$@"; do
    command -v "$t" >/dev/null || { echo "$name: missing $t" >&2; exit 2; }
  done
}

# Drops the page cache; prints "yes" if the kernel accepted it, else "no".
drop_caches() {
  sync
  if (echo 3 >/proc/sys/vm/drop_caches) 2>/dev/null; then echo yes; else echo no; fi
}

# Reads each file once so that the next run finds it in the page cache;
# prints "warm".
warm_caches() {
  local f
  for f in "$@"; do cat -- "$f" >/dev/null; done
  echo warm
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
# Columns: tool phase exit wall user sys rss(KiB) repo-before repo-after
# cache(yes|no|warm) image-resident sync-after busy-before busy-jiffies
# total-jiffies. Phase "init" does not wait for a quiet machine.
measure() {
  local tool=$1 phase=$2 repo=$3
  shift 3
  local base=$WORK/logs/$tool-$phase
  local cache resident before after rc t0 t1 sync_s wall user sys rss busy_pct b0 j0 b1 j1
  if [[ $phase == init ]]; then busy_pct=-1; else busy_pct=$(wait_quiet); fi
  if [[ ${MEASURE_CACHE:-drop} == warm ]]; then cache=$(warm_caches "${WARM_FILES[@]}"); else cache=$(drop_caches); fi
  resident=$(resident_bytes "$IMG")
  before=$(repo_bytes "$repo")
  log "$tool $phase: $* (machine busy before: ${busy_pct}%, page cache: $cache, image resident: $resident B)"
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
    "$cache" "$resident" "$sync_s" "$busy_pct" "$((b1 - b0))" "$((j1 - j0))" >>"$RESULTS"
  if [[ $rc -ne 0 ]]; then
    log "$tool $phase FAILED (exit $rc); stderr tail:"
    tail -n 20 "$base.err" >&2
  else
    log "$tool $phase: ${wall}s wall, repo $before -> $after B, peak RSS ${rss} KiB"
  fi
}

# init_restic_borg, measure_restic_borg PHASE: the repositories of
# use_restic_borg_repos made, and a backup of IMG into each (defaults; borg
# without encryption).
init_restic_borg() {
  measure restic init "$RESTIC_REPOSITORY" restic init
  measure borg init "$BORG_REPO" borg init -e none "$BORG_REPO"
}
measure_restic_borg() {
  measure restic "$1" "$RESTIC_REPOSITORY" restic backup --json --host bench "$IMG"
  measure borg "$1" "$BORG_REPO" borg create --json "$BORG_REPO::$1" "$IMG"
}

# modify_image: the day-2 change of every benchmark (bench/gen_image.py
# modify), its summary in WORK/modify.json.
modify_image() {
  log "modifying the image in place"
  python3 "$BENCH_LIB_DIR/gen_image.py" modify "$IMG" --seed "$SEED" >"$WORK/modify.json"
  log "$(cat "$WORK/modify.json")"
}

# Which vmback is measured: the build dir may be rebuilt while we run, so a
# private copy of the binary is what every run executes. Sets VMBACK_ORIG
# (the binary named) and VMBACK (the copy in $WORK/bin).
binary_id() { echo "$(sha256sum <"$1" | cut -c1-16) $(stat -c %y "$1" | cut -c1-19)"; }
use_vmback_copy() {
  VMBACK_ORIG=$(command -v "$VMBACK")
  VMBACK_ID_START=$(binary_id "$VMBACK_ORIG")
  mkdir -p "$WORK/bin"
  cp "$VMBACK_ORIG" "$WORK/bin/vmback"
  VMBACK=$WORK/bin/vmback
  echo "$VMBACK_ORIG $VMBACK_ID_START" >"$WORK/vmback-id-start"
  log "vmback binary $VMBACK_ORIG ($VMBACK_ID_START), run from a copy in $WORK/bin"
}

# Pre-flight: an 8 MiB dense file must become 8 MiB / block size blocks.
# A broken build (e.g. a stale object after a header change) can make vmback
# read a whole file as one block, with gigabytes of memory; do not spend
# minutes (and the machine's memory) on a 4 GiB image in that case.
preflight() {
  local d=$WORK/preflight
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

# preflight_or_exit NAME: runs preflight; exits 3 on a bad vmback unless
# BENCH_FORCE=1.
preflight_or_exit() {
  local result
  result=$(preflight)
  echo "$result" >"$WORK/preflight.txt"
  log "vmback pre-flight: $result"
  if [[ "$result" != ok:* && "${BENCH_FORCE:-0}" != 1 ]]; then
    echo "$1: vmback failed the pre-flight check, not benchmarking it:" >&2
    echo "  $VMBACK_ORIG ($VMBACK_ID_START): $result" >&2
    echo "  (set BENCH_FORCE=1 to run anyway, or VMBACK=/path/to/a/good/vmback)" >&2
    exit 3
  fi
  rm -rf "$WORK/preflight"
}
