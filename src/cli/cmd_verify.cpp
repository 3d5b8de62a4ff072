// vmback verify.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"

namespace vmback {

namespace {

class VerifyCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--json", json_, "print the report as JSON");
    cmd->add_option("--read-data-subset", subset_,
                    "store: read only part N of M of the pack data (N/M), this week's part\n"
                    "(auto/M), or a random share (10%); the points' structure is always checked");
    cmd->add_option("--read-limit", limit_text_, "store: read each copy at most this fast, per second (e.g. 50M)");
    cmd->footer("\nThe store: every pack is read in full and every block re-hashed; each damaged\n"
                "or missing block is traced to the points and files it affects. Every copy\n"
                "is read at once, each at its own pace; the report gives each copy's read\n"
                "speed (--json: copies[].read_bytes_per_second).\n"
                "--read-data-subset auto/4 in a weekly timer reads each pack once a month\n"
                "(packaging/vmback-verify.timer does so).\n"
                "A zfs or btrfs target: the file system's scrub (what it repaired from the\n"
                "other disk is a warning, exit 5), then every point's files re-hashed against\n"
                "the blockmaps stored in that point. Exit status 3 when anything is wrong.\n"
                "A pack damaged on every copy: verify says which bad blocks a newer copy\n"
                "already heals and which are lost, and that 'vmback repair' rewrites it.\n"
                "Blocks recorded lost by repair are a note per file (exit 5), not damage.\n\n"
                "Examples:\n  vmback verify --store /mnt/usb/vmback\n"
                "  vmback verify -c /etc/vmback/vmback.toml --json\n"
                "  vmback verify -c /etc/vmback/vmback.toml --read-data-subset auto/4 --read-limit 40M");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    ctx.report->Start("verify", config);
    VerifyRequest request;
    request.read_data_subset = subset_;
    if (!limit_text_.empty()) ParseReadLimit(limit_text_, &request.read_limit);
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kRead, ctx.log);
    VerifyOutcome r = dest->Verify(request, ctx.log);
    ctx.report->body = r.json;
    ctx.report->metrics.verify_errors = r.errors;
    if (json_)
      ctx.out << ctx.report->body.dump(2) << "\n";
    else
      ctx.out << r.text;
    Findings f;
    f.damage = !r.ok;
    f.repairs = r.repaired;
    f.not_healed = r.not_healed;
    f.blocks_lost = r.blocks_lost;
    f.absent_copies = dest->Health().absent_copies;
    return f;
  }

 private:
  TargetArgs target_;
  bool json_ = false;
  std::string subset_, limit_text_;
};

}  // namespace

std::unique_ptr<Command> NewVerifyCommand() { return std::make_unique<VerifyCommand>(); }

}  // namespace vmback
