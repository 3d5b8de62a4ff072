// vmback stats: what the points take, and what sharing and compression save.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "destination/point_select.h"

namespace vmback {

namespace {

class StatsCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("POINT", points_, std::string("points to count (default: all); each ") + kPointHelp);
    cmd->add_flag("--json", json_, "the figures as JSON");
    cmd->footer("\nFor a store: each copy's size (the files in packs/, index/ and points/), the\n"
                "points' logical size (their files' sizes, summed), the distinct blocks they\n"
                "hold, plain and as stored (compression = plain / stored; deduplication =\n"
                "logical / plain, holes and zero blocks counting as saved), and per point the\n"
                "blocks no other point holds: what deleting it would free. Every point's\n"
                "trees and block lists are read; the data blocks are not.\n"
                "For a ZFS target: zfs get used,referenced,written of each point's snapshot\n"
                "(used: what destroying it alone would free); for btrfs and dir: du of the point.\n\n"
                "Examples:\n  vmback stats -c /etc/vmback/vmback.toml\n"
                "  vmback stats --store /mnt/usb/vmback latest --json");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    std::vector<std::string> points;
    for (const auto& p : points_) points.push_back(ResolvePointName(dest.get(), p));
    const DestinationStats s = dest->Stats(points, ctx.log);
    if (json_) ctx.out << s.json.dump(2) << "\n";
    else ctx.out << s.text;
    return {};
  }

 private:
  TargetArgs target_;
  std::vector<std::string> points_;
  bool json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewStatsCommand() { return std::make_unique<StatsCommand>(); }

}  // namespace vmback
