// Runs a program from an argv vector (never a shell), as ninja's
// subprocess-posix: stdin from /dev/null, its own process group, every other
// descriptor close-on-exec, stdout and stderr captured, always reaped.
//
// Nothing waits forever: every command has a deadline (RunLimits, or
// kDefaultCommandTimeout), and a cancel flag (set by SIGINT/SIGTERM) ends it
// within kCancelPoll. Either way the command's whole process group is
// killed (SIGTERM, then SIGKILL after kKillGrace), so that a helper it
// started does not outlive it, and Error names the command.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "os/env.h"

namespace vmback {

// The deadline of a command run without one: generous, so that only a hang
// reaches it.
constexpr std::chrono::minutes kDefaultCommandTimeout{10};
// What a command may print on its stdout or stderr (captured in memory): a
// command past it (a hostile host at the other end of ssh) is killed and
// Error says so.
constexpr size_t kMaxCommandOutput = size_t{64} << 20;
// How often the cancel flag is looked at while a command runs.
constexpr std::chrono::milliseconds kCancelPoll{50};
// Between SIGTERM and SIGKILL to the process group of a command killed.
constexpr std::chrono::milliseconds kKillGrace{200};

// Throws Error when the program cannot be started (naming it), and when it
// is killed at its deadline or on cancel (naming it, how long it ran, and its
// stderr so far); a non-zero exit is reported in the result, not thrown.
RunResult RunSubprocess(const std::vector<std::string>& argv, const RunLimits& limits = {});

// producer | consumer through vmback (Env::RunPipe): the bytes are relayed
// (and counted) by this process, so that a stall is seen. Each runs in its
// own process group; both are killed on a stall, at the deadline (none by
// default: a stream may take hours, the stall bound ends a hang) or on
// cancel, and Error names the pipe. A consumer that ends before the
// producer (it refused the stream) ends the producer: the result then has
// the consumer's exit and words, and producer.exit_code -1.
PipeResult RunPipeSubprocesses(const std::vector<std::string>& producer, const std::vector<std::string>& consumer,
                               const PipeLimits& limits);

// Whether a program of that name is on PATH (an executable regular file in
// one of its directories), as posix_spawnp would find it.
bool OnPath(const std::string& program);

// "lvm is not installed (no lvm on PATH): install lvm2": what to say when
// program cannot be found, with the Debian package that has it when known.
std::string NotInstalledMessage(const std::string& program);

// "prog arg1 arg2 failed (exit 3): <stderr>" for error messages.
std::string DescribeFailure(const std::vector<std::string>& argv, const RunResult& r);

// "prog arg1 arg2", for messages.
std::string CommandLine(const std::vector<std::string>& argv);

}  // namespace vmback
