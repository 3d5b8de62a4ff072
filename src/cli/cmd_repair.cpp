// vmback repair.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "run/verify.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

void PrintRepair(const RepairReport& r, bool dry_run, std::ostream& out) {
  const std::string would = dry_run ? "would be " : "";
  if (r.packs_rewritten == 0) {
    out << "nothing to repair: no pack is damaged on every copy"
        << (r.verify.ok() ? "" : " (verify names " + Counted(r.verify.problems.size(), "problem") +
                                     " that repair cannot mend; run 'vmback verify')")
        << "\n";
    return;
  }
  for (const auto& p : r.lost)
    out << (dry_run ? "would lose: " : "lost: ") << EscapeForTerminal(p.point) << ": " << EscapeForTerminal(p.path)
        << ": " << p.reason << "\n";
  out << (dry_run ? "would rewrite " : "rewrote ") << Counted(r.packs_rewritten, "pack")
      << " damaged on every copy: " << Counted(r.blobs_moved, "good blob") << " " << would << "moved to a new pack, "
      << Counted(r.blobs_healed, "bad blob") << " " << would << "dropped (a good copy is in another pack), " << r.blobs_lost
      << " " << would << "recorded lost\n";
  if (!dry_run)
    out << (r.blobs_lost ? "'vmback verify' now notes the lost blocks (exit 5); restore leaves them zero\n"
                         : "nothing was lost; 'vmback verify' is clean again\n");
}

class RepairCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    AddTargetOptions(cmd, &target_);
    cmd->add_flag("--dry-run", dry_run_, "check and show what would be rewritten and lost; change no pack");
    cmd->add_flag("--json", json_, "print the report as JSON");
    cmd->footer("\nFirst a full verify (which heals each copy it can from the others). Then each\n"
                "pack damaged on every copy is rewritten without its bad blocks: its good\n"
                "blocks move to a new pack; a bad block a later backup wrote afresh into\n"
                "another pack is simply dropped (nothing lost); a block nothing can give back\n"
                "is recorded as lost (the file 'lost' in the store) and the points and files\n"
                "that lose it are listed, once. The old pack is deleted only after the new\n"
                "pack and index are durable. Afterwards verify is clean; blocks recorded lost\n"
                "are a note (exit 5), restore leaves them zero and names them (exit 3).\n"
                "To get a block back rather than lose it, back up the same data again first.\n"
                "Exit status 0 when nothing was lost, 5 when blocks were recorded lost.\n\n"
                "Examples:\n  vmback repair --store /mnt/usb/vmback --dry-run\n"
                "  vmback repair -c /etc/vmback/vmback.toml");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    if (IsInplace(config))
      ThrowConfig(std::string("repair is for the built-in store; a ") + TargetTypeName(config.target.type) +
                  " target is repaired by its file system's scrub ('vmback verify')");
    auto store = OpenStore(config, target_, LockMode::kExclusive, ctx.log);
    RepairReport r = Repair(store.get(), ctx.log, dry_run_);
    if (r.verify.repaired && !json_)
      ctx.out << "first healed " << Counted(r.verify.repaired, "damaged or missing file") << " from other copies\n";
    if (json_)
      ctx.out << RepairReportToJson(r).dump(2) << "\n";
    else
      PrintRepair(r, dry_run_, ctx.out);
    Findings f;
    // Nothing rewritten: verify's damage stands. Rewritten: verify is clean
    // again, but the blocks recorded lost are a warning.
    if (dry_run_ || r.packs_rewritten == 0)
      f.damage = !r.verify.ok();
    else
      f.blocks_lost = r.blobs_lost > 0;
    return f;
  }

 private:
  TargetArgs target_;
  bool dry_run_ = false, json_ = false;
};

}  // namespace

std::unique_ptr<Command> NewRepairCommand() { return std::make_unique<RepairCommand>(); }

}  // namespace vmback
