// vmback dump: one file's or image's content of a point, to standard output.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/dump.h"
#include "destination/point_select.h"
#include "util/error.h"

namespace vmback {

namespace {

class DumpCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT", point_, kPointHelp)->required();
    cmd->add_option("PATH", path_, "VOLUME (a file volume, an image) or VOLUME/path/to/file")->required();
    cmd->add_flag("--force", force_, "write to standard output even when it is a terminal");
    cmd->footer("\nWrites the content of one file of a point to standard output, for a pipe:\n"
                "every block is checked as restore checks it (against its id in a store,\n"
                "against the point's blockmap in an in-place target); holes and zero blocks\n"
                "come out as zeros. A block that cannot be read or is wrong stops dump with an\n"
                "error naming the file and the bytes, and a non-zero exit status: what was\n"
                "written before it is incomplete and must be discarded (check the exit status\n"
                "before using the output). A directory, a link or a device is refused: use\n"
                "'vmback restore' for those. Standard output on a terminal is refused unless\n"
                "--force.\n\n"
                "Examples:\n"
                "  vmback dump --store /mnt/usb/vmback latest root/etc/fstab\n"
                "  vmback dump -c /etc/vmback/vmback.toml latest web.img | dd of=/dev/vg0/web bs=1M\n"
                "  vmback dump --dir /mnt/usb/mirror current images/db.qcow2 | ssh host 'cat > db.qcow2'");
  }

  Findings Run(CommandContext& ctx) override {
    if (ctx.out_is_terminal && !force_)
      ThrowConfig("standard output is a terminal: dump writes a file's raw bytes; send it to a pipe or a file"
                  " (| dd of=..., > FILE), or give --force");
    Config config = ResolveConfig(target_);
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    DumpToStream(dest.get(), ResolvePointName(dest.get(), point_), PointPath(path_), ctx.out, ctx.log);
    return {};
  }

 private:
  TargetArgs target_;
  std::string point_, path_;
  bool force_ = false;
};

}  // namespace

std::unique_ptr<Command> NewDumpCommand() { return std::make_unique<DumpCommand>(); }

}  // namespace vmback
