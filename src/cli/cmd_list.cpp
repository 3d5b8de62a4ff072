// vmback list.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/listing.h"

namespace vmback {

namespace {

class ListCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--json", json_, "print the points as JSON");
    cmd->footer("\nOne line per point, oldest first: name, UTC time, volumes. On a zfs or btrfs\n"
                "target the points are vmback's snapshots; a dir target has one, \"current\".\n\n"
                "Examples:\n  vmback list --store /mnt/usb/vmback\n  vmback list --zfs usbpool/vmback --json\n"
                "  vmback list -c /etc/vmback/vmback.toml");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    PointList list = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log)->ListPoints();
    if (json_)
      ctx.out << PointsToJson(list.points).dump(2) << "\n";
    else
      PrintPoints(list, ctx.out);
    return {};
  }

 private:
  TargetArgs target_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewListCommand() { return std::make_unique<ListCommand>(); }

}  // namespace vmback
