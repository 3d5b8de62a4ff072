#!/usr/bin/env bash
# What vmback leaves for monitoring, with [report] in the config:
#   - a JSON report per command run (run, backup, verify, prune) in
#     [report] dir, the newest `keep` of each kind kept;
#   - Prometheus textfiles for node_exporter: [report] metrics_file for run,
#     <stem>-<command>.prom beside it for the others; each checked with
#     promtool (Debian's prometheus package) and with the fields expected;
#   - a failed run reports its exit code and keeps the last success time.
#
# Usage: bash tests/integration/monitoring.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
for tool in python3 promtool; do command -v "$tool" >/dev/null || die "needs $tool"; done

S=$WORK/store
mkdir -p "$WORK/src/tree" "$WORK/state"
rand_file "$WORK/src/tree/a" 200000
rand_file "$WORK/src/disk.img" 1M
"$VMBACK" -q store init "$S" >/dev/null
cat >"$WORK/vmback.toml" <<EOF
[target]
path = "$S"

[retention]
keep_last = 2

[run]
state_dir = "$WORK/state"

[report]
dir = "$WORK/reports"
keep = 3
metrics_file = "$WORK/metrics/vmback.prom"

# Read live by choice, no VM on them: libvirt is not asked.
[[volume]]
name = "tree"
source = "$WORK/src/tree"
snapshot = "none"
vms = []

[[volume]]
name = "disk"
source = "$WORK/src/disk.img"
snapshot = "none"
vms = []
EOF
mkdir -p "$WORK/metrics"

# sample FILE NAME [LABELS]: the value of one sample (python's float), or "none".
sample() {
  python3 - "$1" "$2" "${3:-}" <<'EOF'
import sys
path, name, labels = sys.argv[1:4]
want = name + ("{" + labels + "}" if labels else "")
for line in open(path):
    if line.startswith("#") or not line.strip():
        continue
    key, value = line.rsplit(" ", 1)
    if key == want:
        print(float(value))
        break
else:
    print("none")
EOF
}

section "vmback run: report and metrics"
vm run -c "$WORK/vmback.toml"
# 0: volumes read live by choice (snapshot = "none") are no warning.
expect_rc 0 "run"
check "the run's metrics pass promtool" promtool check metrics <"$WORK/metrics/vmback.prom"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_run_exit_code 'command="run"')" 0.0 "exit code metric"
check "last success is recent" python3 -c "import sys,time; v=float(sys.argv[1]); sys.exit(0 if abs(time.time()-v) < 600 else 1)" \
  "$(sample "$WORK/metrics/vmback.prom" vmback_last_success_timestamp_seconds 'command="run"')"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_run_bytes_read 'command="run",volume="disk"')" 1048576.0 "bytes read from the disk volume"
check "per-run values are gauges, not counters (a counter only grows)" bash -c \
  "grep -qx '# TYPE vmback_last_run_bytes_read gauge' '$WORK/metrics/vmback.prom' && ! grep -q ' counter$' '$WORK/metrics/vmback.prom'"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_points "command=\"run\",target=\"$S\"")" 1.0 "points in the store"
run_report=$(ls "$WORK"/reports/*-run.json)
check_eq "$(json_field "$run_report" 'd["command"], d["exit_code"], len(d["backup"]["volumes"])')" "('run', 0, 2)" "the run's JSON report"

section "backup, verify, prune: their own files"
vm backup -c "$WORK/vmback.toml"
expect_rc 0 "backup"
vm verify -c "$WORK/vmback.toml"
expect_rc 0 "verify"
vm prune -c "$WORK/vmback.toml"
expect_rc 0 "prune"
for kind in backup verify prune; do
  check "$kind metrics pass promtool" promtool check metrics <"$WORK/metrics/vmback-$kind.prom"
  check "$kind report exists" ls "$WORK"/reports/*-"$kind".json
done
check_eq "$(sample "$WORK/metrics/vmback-verify.prom" vmback_verify_errors 'command="verify"')" 0.0 "no verify errors"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_run_exit_code 'command="run"')" 0.0 "the run's file is untouched by the others"

section "a failed run keeps the last success and says what failed"
before=$(sample "$WORK/metrics/vmback.prom" vmback_last_success_timestamp_seconds 'command="run"')
mv "$WORK/src/disk.img" "$WORK/src/gone.img"
sleep 1
vm run -c "$WORK/vmback.toml"
expect_nonzero "run with a source missing"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_run_exit_code 'command="run"')" "$VM_RC.0" "the failed exit code"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_success_timestamp_seconds 'command="run"')" "$before" "last success kept"
newest=$(ls "$WORK"/reports/*-run.json | sort | tail -n 1)
check "the failed run's report names the source" grep -q "disk.img" "$newest"
mv "$WORK/src/gone.img" "$WORK/src/disk.img"

section "keep: only the newest reports of each kind"
for _ in 1 2 3 4; do "$VMBACK" -q backup -c "$WORK/vmback.toml" >/dev/null 2>&1 || true; done
check_eq "$(ls "$WORK"/reports/*-backup.json | wc -l)" 3 "keep = 3 backup reports"

finish
