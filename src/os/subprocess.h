// Runs a program from an argv vector (never a shell), as ninja's
// subprocess-posix: stdin from /dev/null, its own process group, every other
// descriptor close-on-exec, stdout and stderr captured, always reaped.
#pragma once

#include <string>
#include <vector>

#include "os/env.h"

namespace vmback {

// Throws Error when the program cannot be started (naming it); a non-zero
// exit is reported in the result, not thrown.
RunResult RunSubprocess(const std::vector<std::string>& argv);

// "prog arg1 arg2 failed (exit 3): <stderr>" for error messages.
std::string DescribeFailure(const std::vector<std::string>& argv, const RunResult& r);

}  // namespace vmback
