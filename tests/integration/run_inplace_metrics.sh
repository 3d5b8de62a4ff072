#!/usr/bin/env bash
# `vmback run` into an in-place target (a dir target) with two volumes: its
# Prometheus textfile and its JSON report give each volume's real bytes read
# and written, the figures `vmback backup -c` gives for the same target and
# sources (issue 13: run used to report 0 bytes written per volume).
#
# Usage: bash tests/integration/run_inplace_metrics.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
command -v python3 >/dev/null || die "needs python3"

mkdir -p "$WORK/src/tree" "$WORK/state" "$WORK/metrics" "$WORK/T-run" "$WORK/T-backup"
rand_file "$WORK/src/tree/a" 200000
rand_file "$WORK/src/disk.img" 1M

# config FILE TARGET: a config of the two volumes into the dir target TARGET.
config() {
  cat >"$1" <<TOML
[target]
type = "dir"
path = "$2"

[run]
state_dir = "$WORK/state"

[report]
dir = "$WORK/reports"
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
TOML
}
config "$WORK/run.toml" "$WORK/T-run"
config "$WORK/backup.toml" "$WORK/T-backup"

# sample FILE NAME LABELS: the value of one sample, or "none".
sample() {
  python3 - "$1" "$2" "$3" <<'PY'
import sys
path, name, labels = sys.argv[1:4]
want = name + "{" + labels + "}"
for line in open(path):
    if not line.startswith("#") and line.strip() and line.rsplit(" ", 1)[0] == want:
        print(int(float(line.rsplit(" ", 1)[1])))
        break
else:
    print("none")
PY
}

section "vmback run into a dir target: bytes per volume"
vm run -c "$WORK/run.toml"
expect_rc 0 "run into a dir target"
prom=$WORK/metrics/vmback.prom
# A first backup into an empty target reads and writes every byte.
check_eq "$(sample "$prom" vmback_last_run_bytes_read 'command="run",volume="tree"')" 200000 "run: bytes read, tree"
check_eq "$(sample "$prom" vmback_last_run_bytes_read 'command="run",volume="disk"')" 1048576 "run: bytes read, disk"
check_eq "$(sample "$prom" vmback_last_run_bytes_written 'command="run",volume="tree"')" 200000 "run: bytes written, tree"
check_eq "$(sample "$prom" vmback_last_run_bytes_written 'command="run",volume="disk"')" 1048576 "run: bytes written, disk"
report=$(ls "$WORK"/reports/*-run.json)
check_eq "$(json_field "$report" '[(v["name"], v["bytes_read"], v["bytes_written"]) for v in d["backup"]["inplace"]]')" \
  "[('tree', 200000, 200000), ('disk', 1048576, 1048576)]" "run: the JSON report's bytes per volume"

section "vmback backup -c into a dir target: the same figures"
vm backup -c "$WORK/backup.toml"
expect_rc 0 "backup -c into a dir target"
prom=$WORK/metrics/vmback-backup.prom
check_eq "$(sample "$prom" vmback_last_run_bytes_written 'command="backup",volume="tree"')" 200000 "backup: bytes written, tree"
check_eq "$(sample "$prom" vmback_last_run_bytes_written 'command="backup",volume="disk"')" 1048576 "backup: bytes written, disk"
report=$(ls "$WORK"/reports/*-backup.json)
check_eq "$(json_field "$report" '[(v["name"], v["bytes_read"], v["bytes_written"]) for v in d["inplace"]]')" \
  "[('tree', 200000, 200000), ('disk', 1048576, 1048576)]" "backup: the JSON report's bytes per volume"

section "a second run: nothing changed, nothing written"
vm run -c "$WORK/run.toml"
expect_rc 0 "second run"
check_eq "$(sample "$WORK/metrics/vmback.prom" vmback_last_run_bytes_written 'command="run",volume="disk"')" 0 "second run: bytes written, disk"

finish
