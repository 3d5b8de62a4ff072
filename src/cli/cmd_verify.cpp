// vmback verify.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "inplace/target_ops.h"
#include "run/verify.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

void PrintTargetReport(const TargetVerifyReport& r, std::ostream& out) {
  if (r.scrub.ran || !r.scrub.summary.empty()) out << r.scrub.summary << "\n";
  out << "checked " << r.points << " points, " << r.files << " files, " << r.blocks << " blocks ("
      << FormatBytes(r.bytes) << ") against their blockmaps: "
      << (r.problems.empty() ? "all good" : std::to_string(r.problems.size()) + " problem(s)") << "\n";
  for (const auto& p : r.problems) out << "  " << EscapeForTerminal(p) << "\n";
}

void PrintStoreReport(const VerifyReport& r, std::ostream& out) {
  out << "checked " << r.packs << " packs, " << r.blobs << " blobs (" << FormatBytes(r.bytes) << ")"
      << (r.subset.empty() ? "" : " (part " + r.subset + "; " + std::to_string(r.packs_skipped) +
                                      " packs left for other parts)")
      << ", " << r.points << " points, " << r.files_checked << " files: "
      << (r.ok() ? "all good" : std::to_string(r.problems.size()) + " problem(s)") << "\n";
  if (r.copies.size() > 1 || r.repaired) {
    for (const auto& c : r.copies)
      out << "  copy " << c.dir << ": " << c.packs_checked << " packs checked, " << c.packs_missing << " missing, "
          << c.packs_damaged << " damaged, " << c.manifests_damaged << " manifests damaged; repaired "
          << c.repaired << ", unrepairable " << c.unrepairable << "\n";
  }
  if (!r.lost.empty())
    out << "note: " << r.lost.size() << " file(s) in the points above hold blocks recorded lost by "
        << "'vmback repair' (listed above); a restore leaves them zero\n";
  if (!r.next_step.empty()) out << "next step: " << r.next_step << "\n";
}

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
                "or missing block is traced to the points and files it affects.\n"
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
    return IsInplace(config) ? VerifyInplace(config, ctx) : VerifyStore(config, ctx);
  }

 private:
  Findings VerifyInplace(const Config& config, CommandContext& ctx) {
    if (!subset_.empty() || !limit_text_.empty())
      ThrowConfig("--read-data-subset and --read-limit are for a store; an in-place target is checked by "
                  "its file system's scrub and its blockmaps");
    auto target = OpenInplaceTarget(ctx.env, config.target, ctx.log);
    TargetVerifyReport r = VerifyTarget(target.get(), ctx.env, ctx.log);
    ctx.report->body = TargetVerifyToJson(r);
    ctx.report->metrics.verify_errors = r.problems.size() + r.scrub.unrepaired;
    if (json_)
      ctx.out << ctx.report->body.dump(2) << "\n";
    else
      PrintTargetReport(r, ctx.out);
    Findings f;
    f.damage = !r.ok();
    f.repairs = r.scrub.repaired;
    return f;
  }

  // The check takes the shared lock, so backups go on beside it; only when
  // there is something to heal (a copy's pack or manifest from another, the
  // damage record) does it take the exclusive lock, and check again under
  // it. On read-only media it can only read.
  Findings VerifyStore(const Config& config, CommandContext& ctx) {
    Logger* log = ctx.log;
    bool read_only = IsReadOnlyFileSystem(config.target.path);
    if (read_only) log->Info(config.target.path + " is on a read-only file system: verify reads only, repairs nothing");
    auto store = OpenStore(config, target_, LockMode::kShared, log);
    VerifyOptions vopts;
    if (!subset_.empty()) ParseReadDataSubset(subset_, ctx.env->NowNanos(), &vopts);
    if (!limit_text_.empty()) ParseReadLimit(limit_text_, &vopts.read_limit);
    VerifyReport r = Verify(store.get(), log, vopts);
    bool not_healed = false;
    if (r.to_heal > 0 && !read_only) {
      // This process's shared lock goes first (flock locks are per open file).
      store.reset();
      log->Info("found " + std::to_string(r.to_heal) +
                " thing(s) to heal from other copies: checking again under the store's exclusive lock");
      try {
        store = OpenStore(config, target_, LockMode::kExclusive, log);
        r = Verify(store.get(), log, vopts);
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kLocked) throw;
        not_healed = true;
        log->Warn("not healed: " + std::string(e.what()) +
                  "; run 'vmback verify' again when no backup runs (or with --lock-wait)");
        store = OpenStore(config, target_, LockMode::kShared, log);
      }
    }
    ctx.report->body = VerifyReportToJson(r);
    ctx.report->metrics.verify_errors = r.problems.size();
    if (json_)
      ctx.out << ctx.report->body.dump(2) << "\n";
    else
      PrintStoreReport(r, ctx.out);
    Findings f;
    f.damage = !r.ok();
    f.repairs = r.repaired;
    f.not_healed = not_healed;
    // Blocks recorded lost: the store is sound and nothing is left to do,
    // but those points are incomplete for good; a warning, not damage.
    f.blocks_lost = !r.lost.empty();
    f.absent_copies = store->absent_copies().size();
    return f;
  }

  TargetArgs target_;
  bool json_ = false;
  std::string subset_, limit_text_;
};

}  // namespace

std::unique_ptr<Command> NewVerifyCommand() { return std::make_unique<VerifyCommand>(); }

}  // namespace vmback
