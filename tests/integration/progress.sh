#!/usr/bin/env bash
# Progress where it is needed (issue 16): without a terminal (a systemd
# unit's journal, a pipe), backup, restore, verify and store sync log a
# line "progress: WHAT: DONE VERB of TOTAL, RATE, TIME left" every
# --progress-interval seconds (default 30; 0: none; -q: none); on a
# terminal (driven here through script(1)), a live line redrawn with "\r".
# The reads are slowed with --read-limit where the command has it, and the
# intervals made short, so that each command runs across several intervals.
#
# Usage: bash tests/integration/progress.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"

command -v script >/dev/null || die "needs script (util-linux)"
STORE=$WORK/store
mkdir -p "$WORK/src"
rand_file "$WORK/src/disk.img" $((96 * 1024 * 1024))
vm store init "$STORE"
expect_rc 0 "store init"

# (--full-read: an unchanged file is read all the same, so there is
# progress to show or not to show.)
# progress_lines VERB: the progress lines of the last run that count VERB.
progress_lines() { grep -c "^vmback: progress: .* $1" "$VM_ERR" || true; }

section "backup: a line every interval, with total, rate and time left"
vm backup --store "$STORE" "$WORK/src/disk.img" --read-limit 48M --progress-interval 0.3
expect_rc 0 "backup"
check "backup: at least two progress lines" test "$(progress_lines read)" -ge 2
expect_err_re "progress: disk.img: [0-9.]+ [KMG]iB read of 96.0 MiB, [0-9.]+ [KMG]iB/s, [0-9]+:[0-9]{2} left" \
  "backup: a line names the volume, done of total, rate and time left"
check "backup: the summary still follows" grep -q "committed" "$VM_OUT"

section "no lines by default for a short command, with -q, or with an interval of 0"
vm backup --store "$STORE" "$WORK/src/disk.img"
expect_rc 0 "backup, default interval"
check_eq "$(progress_lines read)" 0 "default interval (30 s): no line in a short backup"
vm backup -q --store "$STORE" "$WORK/src/disk.img" --full-read --read-limit 48M --progress-interval 0.3
expect_rc 0 "backup -q"
check_eq "$(progress_lines read)" 0 "-q: no progress line"
vm backup --store "$STORE" "$WORK/src/disk.img" --full-read --read-limit 48M --progress-interval 0
expect_rc 0 "backup, interval 0"
check_eq "$(progress_lines read)" 0 "--progress-interval 0: no progress line"
vm backup --store "$STORE" "$WORK/src/disk.img" --progress-interval -1
expect_rc 2 "a negative interval is refused"

section "verify, restore and store sync log progress too"
vm verify --store "$STORE" --read-limit 48M --progress-interval 0.3
expect_rc 0 "verify"
check "verify: progress lines" test "$(progress_lines checked)" -ge 1
expect_err_re "progress: verify of $STORE: [0-9.]+ [KMG]iB checked of [0-9.]+ [KMG]iB" "verify: done of total"

vm restore --store "$STORE" latest disk.img --to "$WORK/r.img" --progress-interval 0.02
expect_rc 0 "restore"
check "restore: progress lines" test "$(progress_lines restored)" -ge 1
expect_err "of 96.0 MiB" "restore: the file's size as the total"
check_same_file "$WORK/src/disk.img" "$WORK/r.img" "restored image"

vm store sync --store "$STORE" --mirror "$WORK/copy" --progress-interval 0.02
expect_rc 0 "store sync onto a new copy"
check "store sync: progress lines" test "$(progress_lines copied)" -ge 1

section "on a terminal: a live line, redrawn in place and cleared at the end"
# script(1) gives vmback a terminal for stdout and stderr; its transcript
# holds the bytes vmback wrote.
script -qfec "$(printf '%q ' "$VMBACK" backup --store "$STORE" "$WORK/src/disk.img" --full-read --read-limit 48M --progress-interval 0)" \
  "$WORK/tty.log" >/dev/null </dev/null
check "terminal: the line is redrawn with carriage returns" grep -qa $'\r\033\\[Kdisk.img: .* read of 96.0 MiB' "$WORK/tty.log"
check "terminal: no 'progress:' log lines" bash -c "! grep -qa 'vmback: progress:' '$WORK/tty.log'"
check "terminal: the summary" grep -qa "committed" "$WORK/tty.log"

section "-v and -q after the command"
vm verify --store "$STORE" -q
expect_rc 0 "verify -q (after the command)"
vm verify --store "$STORE" -v
expect_rc 0 "verify -v (after the command)"

finish
