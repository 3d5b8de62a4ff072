#include "cli/cli.h"

#include <CLI/CLI.hpp>

#include <iostream>
#include <string>
#include <vector>

#include "cli/command.h"
#include "util/encoding.h"
#include "os/terminal.h"
#include "util/error.h"
#include "util/progress.h"

namespace vmback {

namespace {

constexpr char kExitCodesHelp[] = R"(Exit status:
  0  success
  5  success with warnings (e.g. a mirror copy absent, a damaged copy repaired,
     blocks recorded lost by 'vmback repair')
  1  the operation failed; nothing was committed
  2  bad command line or configuration
  3  damage found (verify, dump), or a point was committed without some entries that could not be read
  4  the store is locked by another vmback process
  130, 143  stopped by SIGINT (Ctrl-C), SIGTERM (128 + the signal; 129 for SIGHUP):
     what was being written is removed, nothing committed)";

const CommandInfo kCommands[] = {
    {"store", "manage a built-in store", nullptr},
    {"store init", "create a new, empty store in DIR", NewStoreInitCommand},
    {"store sync", "bring every copy of a store up to date with the others", NewStoreSyncCommand, ShowsProgress::kYes},
    {"target", "set up an in-place target (ZFS), and replicate it", nullptr},
    {"target init", "create a target on new disks", nullptr},
    {"target init zfs", "create a ZFS pool mirrored over the devices, with a dataset POOL/vmback",
     NewTargetInitZfsCommand},
    {"target replicate", "send a ZFS target's points to each [[replicate]] dataset (zfs send | zfs recv)",
     NewTargetReplicateCommand},
    {"backup", "back up sources into the target and commit a point (no VMs)", NewBackupCommand,
     ShowsProgress::kYes},
    {"list", "list the points in the target", NewListCommand},
    {"ls", "list what a point holds: its volumes, a directory's entries, -R all below", NewLsCommand},
    {"diff", "what changed between two points: added, removed, changed (content bytes, metadata)",
     NewDiffCommand},
    {"find", "which points hold the paths a glob matches, and where their content changed", NewFindCommand},
    {"restore", "restore a point, a volume, a file or a subtree", NewRestoreCommand, ShowsProgress::kYes},
    {"mount", "every point as a read-only file system (FUSE), each block checked as it is read",
     NewMountCommand},
    {"instant-restore", "boot a VM straight from a point, and move it onto real disks while it runs",
     NewInstantRestoreCommand},
    {"dump", "write one file or image of a point to standard output, every block checked", NewDumpCommand},
    {"stats", "sizes of the points and copies, compression and deduplication, what each point alone holds",
     NewStatsCommand},
    {"verify", "re-read and re-hash everything in the target", NewVerifyCommand, ShowsProgress::kYes},
    {"repair", "rewrite the store's packs damaged on every copy without their bad blocks", NewRepairCommand},
    {"run", "the whole job: quiesce the VMs, snapshot, resume, back up, prune", NewRunCommand, ShowsProgress::kYes},
    {"plan", "show what 'run' would do, every command, and stop", NewPlanCommand},
    {"prune", "delete the points the retention policy does not keep", NewPruneCommand},
    {"key", "the keys of an encrypted store", nullptr},
    {"key list", "list the store's keys (labels and kinds)", NewKeyListCommand},
    {"key add", "add a passphrase or key file that opens the store", NewKeyAddCommand},
    {"key remove", "remove one of the store's keys", NewKeyRemoveCommand},
    {"key passwd", "give a key a new passphrase (or key file)", NewKeyPasswdCommand},
    {"key export", "print the master key as a paper recovery form (--paper)", NewKeyExportCommand},
    {"key import", "open the store with a paper key and add a new key", NewKeyImportCommand},
};

}  // namespace

std::span<const CommandInfo> CommandTable() { return kCommands; }

namespace {

// A command of the table, added to the parser.
struct CommandEntry {
  const CommandInfo* info;
  CLI::App* app;
  std::unique_ptr<Command> command;  // null for a group
};

// Adds every command of the table under app, each under its group.
std::vector<CommandEntry> AddCommands(CLI::App* app) {
  std::vector<CommandEntry> entries;
  for (const CommandInfo& info : CommandTable()) {
    std::string path = info.path;
    CLI::App* parent = app;
    const size_t space = path.rfind(' ');
    if (space != std::string::npos)
      for (const CommandEntry& e : entries)
        if (path.compare(0, space, e.info->path) == 0) parent = e.app;
    CommandEntry e{&info, parent->add_subcommand(path.substr(space + 1), info.summary), nullptr};
    e.app->fallthrough();  // -v and -q after the command too (`vmback verify -v`)
    if (info.make == nullptr) {
      e.app->require_subcommand(1);
    } else {
      e.command = info.make();
      e.command->AddOptions(e.app);
    }
    entries.push_back(std::move(e));
  }
  return entries;
}

// A command missing or unknown (CLI11 says only "A subcommand is
// required"): the message names the word that is not a command, or the
// group that needs one, and lists the commands there.
std::string MissingCommandMessage(CLI::App* app, int argc, char** argv) {
  std::string path = "vmback", unknown;
  for (int i = 1; i < argc; i++) {
    const std::string word = argv[i];
    if (word.empty() || word[0] == '-') continue;  // -v, -q
    CLI::App* sub = nullptr;
    for (CLI::App* s : app->get_subcommands({}))
      if (s->get_name() == word) sub = s;
    if (sub == nullptr) {
      unknown = word;
      break;
    }
    app = sub;
    path += " " + word;
  }
  std::string names;
  for (CLI::App* s : app->get_subcommands({})) names += (names.empty() ? "" : ", ") + s->get_name();
  std::string head;
  if (!unknown.empty())
    head = "unknown command '" + (path == "vmback" ? "" : path + " ") + EscapeForTerminal(unknown) +
           "'; the commands are: ";
  else if (path == "vmback")
    head = "give a command; the commands are: ";
  else
    head = "'" + path + "' needs a command: ";
  return "vmback: error: " + head + names + "\n'vmback --help' tells more\n";
}

// Runs command; an error becomes its kind's exit status and, in *failure,
// the message the report records.
int RunCommand(Command* command, CommandContext& ctx, std::string* failure) {
  try {
    return ExitStatusFor(command->Run(ctx));
  } catch (const Error& e) {
    ctx.log->Error(e.what());
    *failure = e.what();
    return ExitStatusAfterSignal(CancelSignal(), ExitStatusFor(e));
  } catch (const std::exception& e) {
    ctx.log->Error(std::string("unexpected: ") + e.what());
    *failure = e.what();
    return kExitFailed;
  }
}

}  // namespace

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "vmback: consistent, incremental, verified backups of KVM/libvirt VMs and their host.\n"
      "Sources (directory trees, VM image files, block devices) are cut into blocks, hashed\n"
      "with SHA-256, compressed and deduplicated into a store; every backup is a point\n"
      "you can list, verify and restore.",
      "vmback"};
  app.footer(std::string("\nQuick start:\n"
                         "  vmback store init /mnt/usb/vmback\n"
                         "  vmback backup --store /mnt/usb/vmback /var/lib/libvirt/images /etc\n"
                         "  vmback list --store /mnt/usb/vmback\n"
                         "  vmback restore --store /mnt/usb/vmback latest etc --to /tmp/etc\n\n") +
             kExitCodesHelp);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vmback ") + VMBACK_VERSION);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "more detail on stderr (also after the command)");
  app.add_flag("-q,--quiet", quiet, "only warnings and errors on stderr (also after the command)");
  double progress_interval = 30;
  app.add_option("--progress-interval", progress_interval,
                 "without a terminal, a progress line on stderr every SECONDS (default 30; 0: none) for "
                 "backup, run, restore, verify and store sync; on a terminal a live line instead")
      ->check(CLI::Range(0.0, 86400.0))
      ->option_text("SECONDS");
  std::vector<CommandEntry> entries = AddCommands(&app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::RequiredError& e) {
    if (std::string(e.what()).find("A subcommand is required") == std::string::npos) {
      app.exit(e, out, err);
      return kExitUsage;
    }
    err << MissingCommandMessage(&app, argc, argv);
    return kExitUsage;
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  }
  const CommandEntry* chosen = nullptr;
  for (const CommandEntry& e : entries)
    if (e.command && e.app->parsed()) chosen = &e;
  if (chosen == nullptr) return kExitUsage;  // require_subcommand makes this unreachable

  Logger log(quiet ? LogLevel::kWarning : verbose ? LogLevel::kDebug : LogLevel::kInfo);
  // Progress (bytes, rate, time left): a live line on a terminal; a log
  // line every --progress-interval otherwise (a unit's journal).
  ProgressMode mode = ProgressMode::kOff;
  if (!quiet && chosen->info->progress == ShowsProgress::kYes)
    mode = StderrIsTerminal() ? ProgressMode::kLive : progress_interval > 0 ? ProgressMode::kLines : ProgressMode::kOff;
  ProgressDisplay progress(mode, std::chrono::milliseconds(static_cast<int64_t>(progress_interval * 1000)),
                           [&log](const std::string& line) { log.Info(line); });
  Env* env = CliEnv();
  ReportData report;
  report.started_ns = env->NowNanos();
  CommandContext ctx{env, &log, out, &report};
  ctx.out_is_terminal = &out == &std::cout && StdoutIsTerminal();
  std::string failure;
  int rc = RunCommand(chosen->command.get(), ctx, &failure);
  LeaveReport(&report, rc, failure, &log);
  return rc;
}

}  // namespace vmback
