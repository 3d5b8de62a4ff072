// The one rule for vmback's exit status: an error gives its kind's code; a
// finished command gives 3 when it found damage or left data out, 5 when it
// is done with warnings (a warning it counts, a copy repaired or absent,
// something left to heal, blocks recorded lost), else 0.
#pragma once

#include <cstdint>

#include "cli/cli.h"
#include "util/error.h"

namespace vmback {

// What a finished command found, beside its output: the facts its exit
// status is made of. Each command sets the ones it counts (list none of
// them; backup its logged warnings, restore from a store its repairs).
struct Findings {
  // Damage found (verify), or data left out of what was made or restored (a
  // point lacking entries, a restore with ranges left zero): exit 3.
  bool damage = false;
  // Each of these, without damage, is "done, with warnings": exit 5.
  uint64_t warnings = 0;       // warnings logged or reported
  uint64_t repairs = 0;        // damaged copies repaired from another (store or file system)
  uint64_t absent_copies = 0;  // store copies that were not there
  bool not_healed = false;     // something to heal was left for later (the store was busy)
  bool blocks_lost = false;    // points hold blocks recorded lost by 'vmback repair'
};

int ExitStatusFor(const Findings& f);
int ExitStatusFor(const Error& e);
// The one rule for an interrupt, for every command: a command that failed
// after signal `sig` (SIGINT, SIGTERM, SIGHUP) asked it to stop exits
// 128 + sig, as a shell reports a process the signal killed (130 for
// Ctrl-C, 143 for SIGTERM); failed_status when no signal came (sig 0).
int ExitStatusAfterSignal(int sig, int failed_status);
// The signal that set SignalCancel's flag (cli/common.h) in this process,
// the first one; 0 when none came.
int CancelSignal();

}  // namespace vmback
