#include "cli/exit_status.h"

namespace vmback {

int ExitStatusFor(const Findings& f) {
  if (f.damage) return kExitDamaged;
  if (f.warnings > 0 || f.repairs > 0 || f.absent_copies > 0 || f.not_healed || f.blocks_lost)
    return kExitWarnings;
  return kExitOk;
}

int ExitStatusFor(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::kConfig: return kExitUsage;
    case ErrorKind::kLocked: return kExitLocked;
    case ErrorKind::kCorrupt: return kExitDamaged;
    default: return kExitFailed;
  }
}

int ExitStatusAfterSignal(int sig, int failed_status) { return sig > 0 && sig < 64 ? 128 + sig : failed_status; }

}  // namespace vmback
