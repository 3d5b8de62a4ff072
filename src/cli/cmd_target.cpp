// vmback target init zfs, vmback target replicate.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "inplace/zfs_replicate.h"
#include "os/subprocess.h"
#include "inplace/target.h"
#include "util/error.h"

namespace vmback {

namespace {

class TargetInitZfsCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    cmd->add_option("POOL", pool_, "name of the new pool")->required();
    cmd->add_option("DEVICE", devices_, "two (or more) disks or partitions, mirrored")->required();
    cmd->add_option("--mountpoint", mountpoint_, "where the pool is mounted (default /POOL)");
    cmd->add_flag("--dry-run", dry_run_, "print the exact commands and run nothing");
    cmd->footer(
        "\nRuns: zpool create POOL mirror DEV DEV; zfs set compression=on, checksum=sha256,\n"
        "atime=off; zfs create POOL/vmback. ALL DATA ON THE DEVICES IS LOST.\n\n"
        "Then point the config at it:\n  [target]\n  type = \"zfs\"\n  dataset = \"POOL/vmback\"\n\n"
        "Example:\n  vmback target init zfs usbpool /dev/disk/by-id/usb-A /dev/disk/by-id/usb-B --dry-run");
  }

  Findings Run(CommandContext& ctx) override {
    if (devices_.size() < 2)
      ctx.log->Warn("a pool on one device has no second copy to repair from; give two devices for a mirror");
    for (const auto& argv : ZfsInitCommands(pool_, devices_, mountpoint_)) {
      std::string line;
      for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
      ctx.out << (dry_run_ ? "would run: " : "running: ") << line << "\n";
      if (dry_run_) continue;
      RunResult r = ctx.env->Run(argv);
      if (r.exit_code != 0) throw Error(ErrorKind::kOther, DescribeFailure(argv, r));
    }
    if (!dry_run_)
      ctx.out << "created pool " << pool_ << " and dataset " << pool_ << "/vmback; in the config:\n"
              << "  [target]\n  type = \"zfs\"\n  dataset = \"" << pool_ << "/vmback\"\n";
    return {};
  }

 private:
  std::string pool_, mountpoint_;
  std::vector<std::string> devices_;
  bool dry_run_ = false;
};

class TargetReplicateCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    cmd->add_option("-c,--config", config_path_,
                    "configuration file (TOML); default: the file VMBACK_CONFIG names, else /etc/vmback/vmback.toml");
    cmd->add_flag("--dry-run", dry_run_, "list both sides and say what would be sent; change nothing");
    cmd->add_flag("--json", json_, "the replicas' reports as JSON");
    cmd->footer(
        "\nA zfs target's points go to each [[replicate]] of the config: another pool here\n"
        "(a second disk set) or over ssh (host = \"user@site\", BatchMode: a key, no\n"
        "password prompt). 'vmback run' and 'backup -c' do this after each point; run\n"
        "it by hand to catch up, e.g. when the off-site disks are plugged in.\n\n"
        "Each replica: every point since the newest one both sides have, in one\n"
        "'zfs send -I BASE POINT | zfs recv -F DATASET' (the first time a full send of\n"
        "the newest point). The source's newest point sent is held (zfs hold\n"
        "vmback-replica-ID) so that prune keeps it as the next send's base. A broken\n"
        "chain (the receiver's newest point is not on the source) renames the receiving\n"
        "dataset aside (DATASET-vmback-aside-TIME, nothing destroyed) and sends a full\n"
        "stream. Then the receiver's own retention ([replicate.retention], else\n"
        "[retention]) destroys the points it does not keep, never its newest.\n\n"
        "  [[replicate]]\n  dataset = \"offsite/vmback\"\n  host = \"backup@site\"   # optional\n"
        "  [replicate.retention]\n  monthly = 24\n\n"
        "Exit 5 when a replica failed (the others are still sent to).\n\n"
        "Example:\n  vmback target replicate -c /etc/vmback/vmback.toml --dry-run");
  }

  Findings Run(CommandContext& ctx) override {
    TargetArgs args;
    args.config = config_path_;
    const Config config = ResolveConfig(args);
    if (config.replicas.empty())
      ThrowConfig(config.file + " has no [[replicate]]: nothing to send to (see 'vmback target replicate --help')");
    SignalCancel signals;  // a send stopped by Ctrl-C: both ends killed, nothing half received
    const auto reports = ReplicateConfigured(ctx.env, config, signals.flag(), dry_run_, ctx.log);
    ctx.report->body = {{"replicas", ReplicaReportsToJson(reports)}};
    if (json_) ctx.out << ctx.report->body.dump(2) << "\n";
    else
      for (const auto& line : ReplicaReportLines(reports)) ctx.out << line << "\n";
    Findings f;
    for (const auto& r : reports) f.warnings += (r.error.empty() ? 0 : 1) + r.warnings.size();
    return f;
  }

 private:
  std::string config_path_;
  bool dry_run_ = false;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewTargetReplicateCommand() { return std::make_unique<TargetReplicateCommand>(); }

std::unique_ptr<Command> NewTargetInitZfsCommand() { return std::make_unique<TargetInitZfsCommand>(); }

}  // namespace vmback
