#!/usr/bin/env bash
# The passphrase prompt of an encrypted store, driven through a real
# pseudo-terminal (python3's pty): vmback asks only when a person is there.
#
#   * store init --encrypt on a terminal asks twice, echo off (the typed
#     text never comes back on the terminal); two different answers change
#     nothing (exit 2, no store);
#   * a command on a terminal asks once; the right passphrase opens the
#     store, a wrong one exits 2 saying so;
#   * the same command with standard input not a terminal (a systemd unit,
#     cron) never asks and never waits: exit 2 at once, naming the sources
#     to give.
#
# Usage: bash tests/integration/passphrase_prompt.sh /path/to/vmback
set -euo pipefail
source "$(dirname -- "$0")/lib.sh" "$@"
command -v python3 >/dev/null || die "needs python3"

# on_tty TIMEOUT PROMPT ANSWER [PROMPT ANSWER ...] -- ARGS...: runs vmback
# ARGS on a new pseudo-terminal, answering each PROMPT (awaited in its
# output) with ANSWER and a newline. Sets TTY_RC (the exit status; 124 when
# a prompt never came or it did not end in time) and TTY_OUT (a file with
# everything the terminal showed).
on_tty() {
  TTY_OUT=$WORK/tty.$RANDOM.out
  TTY_RC=0
  python3 - "$VMBACK" "$TTY_OUT" "$@" <<'PY' || TTY_RC=$?
import os, pty, select, sys, time
vmback, out_path, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
rest = sys.argv[4:]
cut = rest.index("--")
pairs, args = rest[:cut], rest[cut + 1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(vmback, [vmback] + args)
seen = b""
deadline = time.monotonic() + timeout

def read_some():
    global seen
    r, _, _ = select.select([fd], [], [], max(0.0, deadline - time.monotonic()))
    if not r:
        return False
    try:
        data = os.read(fd, 4096)
    except OSError:  # EIO: the child closed the terminal
        return False
    if not data:
        return False
    seen += data
    return True

status = 124
for prompt, answer in zip(pairs[0::2], pairs[1::2]):
    want = prompt.encode()
    while want not in seen:
        if not read_some():
            break
    if want not in seen:
        break
    seen = seen.replace(want, b"<" + want.strip() + b">", 1)  # each prompt answered once
    os.write(fd, answer.encode() + b"\n")
else:
    while read_some():
        pass
    end = time.monotonic() + max(1.0, deadline - time.monotonic())
    while time.monotonic() < end:
        done, st = os.waitpid(pid, os.WNOHANG)
        if done:
            status = os.waitstatus_to_exitcode(st)
            break
        time.sleep(0.05)
if status == 124:
    os.kill(pid, 9)
    os.waitpid(pid, 0)
open(out_path, "wb").write(seen)
sys.exit(status)
PY
}

S=$WORK/store
mkdir -p "$WORK/src"
rand_file "$WORK/src/file" 100000

section "store init on a terminal: asked twice, echo off"
on_tty 60 "New passphrase:" "first" "The same again:" "second" -- \
  store init "$WORK/differ" --encrypt --kdf-memory 1M --kdf-ops 1
check_eq "$TTY_RC" 2 "two different passphrases: exit 2"
check "it says they differ" grep -q "differ" "$TTY_OUT"
check "no store was made" test ! -e "$WORK/differ/config.json"
on_tty 60 "New passphrase:" "tty secret words" "The same again:" "tty secret words" -- \
  store init "$S" --encrypt --kdf-memory 1M --kdf-ops 1
check_eq "$TTY_RC" 0 "store init --encrypt with the passphrase typed twice"
check "config.json names a passphrase key" grep -q '"passphrase"' "$S/config.json"
check "the typed passphrase was not echoed" bash -c '! grep -q "tty secret" "$1"' _ "$TTY_OUT"

section "a command on a terminal asks once"
on_tty 60 "Passphrase:" "tty secret words" -- backup --store "$S" "$WORK/src"
check_eq "$TTY_RC" 0 "backup with the passphrase typed"
on_tty 60 "Passphrase:" "tty secret words" -- list --store "$S"
check_eq "$TTY_RC" 0 "list with the passphrase typed"
check "list shows the point" grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' "$TTY_OUT"
on_tty 60 "Passphrase:" "not it" -- list --store "$S"
check_eq "$TTY_RC" 2 "a wrong passphrase: exit 2"
check "it says the passphrase typed opens no key" grep -q "the passphrase typed: opens none" "$TTY_OUT"

section "no terminal: never asks, never waits"
t0=$(date +%s)
env -u VMBACK_PASSPHRASE_FILE -u CREDENTIALS_DIRECTORY "$VMBACK" list --store "$S" </dev/null \
  >"$WORK/notty.out" 2>"$WORK/notty.err" && rc=0 || rc=$?
check_eq "$rc" 2 "list with standard input not a terminal: exit 2"
check "it asked for nothing" bash -c '! grep -q "Passphrase:" "$1"' _ "$WORK/notty.err"
check "it names the sources to give" grep -q "use --key-file FILE, VMBACK_PASSPHRASE_FILE" "$WORK/notty.err"
check "it did not wait (under 10 s)" test $(($(date +%s) - t0)) -lt 10

finish
