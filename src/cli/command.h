// The command table: every vmback command is a Command (its options and
// what it does) listed in kCommands (cli.cpp) with its place on the
// command line and a one-line summary. RunCli builds the parser from the
// table, runs the one command given and turns what it returns into the
// exit status.
#pragma once

#include <memory>
#include <ostream>
#include <span>

#include "cli/exit_status.h"
#include "cli/monitoring.h"
#include "os/env.h"
#include "util/log.h"

namespace CLI {
class App;
}

namespace vmback {

// The Env every command works through: the system's, in which the paths
// s3://BUCKET/PREFIX are copies of a store in a bucket (s3/bucket_env.h).
// Until ConfigureBuckets (common.h), buckets are reached as the environment
// says (AWS_ENDPOINT_URL, the AWS_* keys).
Env* CliEnv();

// What a command works with. Valid for the duration of Run.
struct CommandContext {
  Env* env;
  Logger* log;
  std::ostream& out;
  ReportData* report;  // a command that reports fills it (Start, body, metrics)
  bool out_is_terminal = false;  // out is standard output, and that is a terminal
};

class Command {
 public:
  virtual ~Command() = default;
  // Adds the command's arguments, options and help footer to cmd, bound to
  // members of this object (which outlives the parse).
  virtual void AddOptions(CLI::App* cmd) = 0;
  // Runs the command once its options are parsed; returns what it found,
  // which gives the exit status (ExitStatusFor). Throws Error.
  virtual Findings Run(CommandContext& ctx) = 0;
};

// Progress while the command runs (backup, run, restore, verify, store sync):
// a live line on a terminal, a log line every --progress-interval otherwise.
enum class ShowsProgress { kNo, kYes };

struct CommandInfo {
  const char* path;     // the words on the command line: "list", "store init"
  const char* summary;  // one line, for --help
  // Makes the command; nullptr for a group of commands ("store", "target").
  std::unique_ptr<Command> (*make)();
  ShowsProgress progress = ShowsProgress::kNo;
};

// The table, in the order --help lists the commands; a group comes before
// its commands.
std::span<const CommandInfo> CommandTable();

// One per command, each in its cmd_<name>.cpp.
std::unique_ptr<Command> NewStoreInitCommand();
std::unique_ptr<Command> NewStoreSyncCommand();
std::unique_ptr<Command> NewTargetInitZfsCommand();
std::unique_ptr<Command> NewTargetReplicateCommand();
std::unique_ptr<Command> NewBackupCommand();
std::unique_ptr<Command> NewListCommand();
std::unique_ptr<Command> NewLsCommand();
std::unique_ptr<Command> NewDiffCommand();
std::unique_ptr<Command> NewFindCommand();
std::unique_ptr<Command> NewRestoreCommand();
std::unique_ptr<Command> NewVerifyCommand();
std::unique_ptr<Command> NewRepairCommand();
std::unique_ptr<Command> NewRunCommand();
std::unique_ptr<Command> NewPlanCommand();
std::unique_ptr<Command> NewPruneCommand();
std::unique_ptr<Command> NewDumpCommand();
std::unique_ptr<Command> NewMountCommand();
std::unique_ptr<Command> NewInstantRestoreCommand();
std::unique_ptr<Command> NewStatsCommand();
std::unique_ptr<Command> NewKeyListCommand();
std::unique_ptr<Command> NewKeyAddCommand();
std::unique_ptr<Command> NewKeyPasswdCommand();
std::unique_ptr<Command> NewKeyRemoveCommand();
std::unique_ptr<Command> NewKeyExportCommand();
std::unique_ptr<Command> NewKeyImportCommand();

}  // namespace vmback
