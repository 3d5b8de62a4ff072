// vmback restore.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "util/encoding.h"

namespace vmback {

namespace {

class RestoreCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT", point_, "point name from 'vmback list', or 'latest'")->required();
    cmd->add_option("PATH", path_, "VOLUME or VOLUME/path/inside (default: the whole point)");
    cmd->add_option("--to", to_, "destination: a new directory or file, or a block device")->required();
    cmd->add_flag("--force", force_, "overwrite an existing destination (needed for a block device)");
    cmd->add_flag("--fail-fast", fail_fast_,
                  "stop at the first block no copy can give back (by default it is left zero, listed, "
                  "and the restore goes on; exit status 3)");
    cmd->add_flag("--no-owner", no_owner_, "do not restore owners: files belong to the restoring user");
    cmd->add_flag("--no-special", no_special_, "leave out device nodes, fifos and sockets");
    cmd->add_flag("--no-privileges", no_privileges_,
                  "drop setuid/setgid bits and security.* xattrs (capabilities, SELinux labels)");
    cmd->footer(
        "\nBy default a restore is faithful, for disaster recovery: owners, setuid\n"
        "bits, device nodes and every xattr come back as they were backed up. To\n"
        "get files of a guest or another user back as root, add\n"
        "--no-owner --no-special --no-privileges. Nothing outside --to is ever\n"
        "written or deleted: --to may not be a symlink (except a /dev/VG/LV link\n"
        "to a block device, with --force), and --force never deletes across a\n"
        "mount point.\n"
        "\nExamples:\n"
        "  vmback restore --store /mnt/usb/vmback latest --to /srv/restore\n"
        "  vmback restore --store /mnt/usb/vmback 2026-11-26T180102Z images/web.qcow2 --to /tmp/web.qcow2\n"
        "  vmback restore -c /etc/vmback.toml latest vm-disk --to /dev/vg0/web --force");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    RestoreOptions options;
    options.overwrite = force_ ? Overwrite::kAllow : Overwrite::kRefuse;
    options.owner = !no_owner_;
    options.special = !no_special_;
    options.privileges = !no_privileges_;
    options.fail_fast = fail_fast_;
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    RestoreStats s = dest->Restore(point_, path_, to_, options, ctx.log);
    ctx.out << "restored " << s.files << " files, " << s.dirs << " directories, " << s.other
            << " other entries (" << FormatBytes(s.bytes) << ") to " << EscapeForTerminal(to_)
            << (s.skipped ? ", " + std::to_string(s.skipped) + " special files left out" : std::string()) << "\n";
    if (s.damaged) {
      for (const auto& d : s.damage) ctx.log->Error("damaged: " + d);
      ctx.log->Error("restore incomplete: " + std::to_string(s.damaged) + " damaged range(s)" +
                     (s.damaged > s.damage.size() ? " (the first " + std::to_string(s.damage.size()) + " listed)"
                                                  : "") +
                     " left zero; everything else was restored. 'vmback verify' tells which points share the "
                     "damage; an older or newer point may hold the lost blocks");
    }
    Findings f;
    f.damage = s.damaged > 0;
    if (dest->RestoreWarningsCount()) f.warnings = ctx.log->warnings();
    f.repairs = dest->Health().repairs;
    f.absent_copies = dest->Health().absent_copies;
    return f;
  }

 private:
  TargetArgs target_;
  std::string point_, path_, to_;
  bool force_ = false, no_owner_ = false, no_special_ = false, no_privileges_ = false, fail_fast_ = false;
};

}  // namespace

std::unique_ptr<Command> NewRestoreCommand() { return std::make_unique<RestoreCommand>(); }

}  // namespace vmback
