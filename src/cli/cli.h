// The command line: parses argv with CLI11, runs the command, maps errors to
// documented exit codes. Output goes to the given streams (tests capture it).
#pragma once

#include <iosfwd>

namespace vmback {

// Exit codes (also in README.md and --help).
enum ExitCode : int {
  kExitOk = 0,
  kExitFailed = 1,     // the operation failed; nothing was committed
  kExitUsage = 2,      // bad command line or configuration
  kExitDamaged = 3,    // verify found damage, or a point lacks entries that could not be read
  kExitLocked = 4,     // another vmback process holds the store's lock
  kExitWarnings = 5,   // done, with warnings (a mirror absent, a copy repaired)
};

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err);

}  // namespace vmback
