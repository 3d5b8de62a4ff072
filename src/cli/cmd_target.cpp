// vmback target init zfs.
#include <CLI/CLI.hpp>

#include "cli/command.h"
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

}  // namespace

std::unique_ptr<Command> NewTargetInitZfsCommand() { return std::make_unique<TargetInitZfsCommand>(); }

}  // namespace vmback
