// vmback prune.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "cli/listing.h"

namespace vmback {

namespace {

class PruneCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_option("--keep-last", flags_policy_.keep_last, "keep the N newest points");
    cmd->add_option("--keep-within", keep_within_text_,
                    "keep every point within DURATION of the newest one (e.g. 7d, 36h, 2w)");
    cmd->add_option("--keep-hourly", flags_policy_.hourly, "keep the newest point of each of the last N hours");
    cmd->add_option("--keep-daily", flags_policy_.daily, "... of each of the last N days");
    cmd->add_option("--keep-weekly", flags_policy_.weekly, "... of each of the last N ISO weeks");
    cmd->add_option("--keep-monthly", flags_policy_.monthly, "... of each of the last N months");
    cmd->add_option("--keep-yearly", flags_policy_.yearly, "... of each of the last N years");
    cmd->add_flag("--dry-run", dry_run_, "show what would be kept and deleted, and why; change nothing");
    cmd->add_option("--repack-below", repack_below_,
                    "repack a pack whose live share is below this fraction (default 0.5)");
    cmd->add_flag("--json", json_, "print the decisions and what was reclaimed as JSON");
    cmd->footer(
        "\nRules from the flags replace the config's [retention] table. Periods are UTC\n"
        "calendar hours, days, ISO weeks, months and years; only periods that have points\n"
        "count. A point is kept if any rule keeps it; the newest point is always kept.\n"
        "Blocks no remaining point names are then reclaimed (garbage collection).\n\n"
        "Examples:\n"
        "  vmback prune --store /mnt/usb/vmback --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n"
        "  vmback prune -c /etc/vmback/vmback.toml");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    ctx.report->Start("prune", config);
    if (!keep_within_text_.empty()) flags_policy_.keep_within_ns = ParseDuration(keep_within_text_);
    RetentionPolicy policy = flags_policy_.empty() ? config.retention : flags_policy_;
    // A dry run only reads: a store's shared lock, and no housekeeping of its index.
    auto dest = OpenDestinationFor(config, target_, dry_run_ ? DestinationAccess::kRead : DestinationAccess::kPrune,
                                   ctx.log);
    PruneRequest request;
    request.dry_run = dry_run_;
    request.repack_below = repack_below_;
    request.keep_bad_ns = config.store.keep_bad_ns;
    PruneSummary summary = dest->Prune(policy, request, ctx.log);
    if (json_) {
      // The report carries the decisions only when they are asked for.
      ctx.report->body = PruneSummaryToJson(summary);
      ctx.out << ctx.report->body.dump(2) << "\n";
    } else {
      PrintPruneSummary(summary, ctx.out);
    }
    Findings f;
    f.absent_copies = dest->Health().absent_copies;
    return f;
  }

 private:
  TargetArgs target_;
  RetentionPolicy flags_policy_;
  std::string keep_within_text_;
  bool dry_run_ = false, json_ = false;
  double repack_below_ = 0.5;
};

}  // namespace

std::unique_ptr<Command> NewPruneCommand() { return std::make_unique<PruneCommand>(); }

}  // namespace vmback
