// vmback run, vmback plan: the whole job, and what it would do.
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "hypervisor/hypervisor.h"
#include "job/job.h"
#include "util/encoding.h"

namespace vmback {

namespace {

// The libvirt connection the job of config needs (none when it names no VM).
std::unique_ptr<Hypervisor> ConnectFor(const Config& config, Logger* log) {
  return ConnectForJob(config, [&] { return ConnectLibvirt(config.libvirt_uri, log); }, log);
}

void PrintJobReport(const JobReport& r, std::ostream& out) {
  for (const auto& vm : r.vms) out << "VM " << vm.name << ": " << vm.method << ", quiet for " << FormatSeconds(vm.freeze_seconds) << "\n";
  PrintLiveReads(r.sources, out);
  // Volumes with track_changes: how much was read, and how the changes were found.
  for (const auto& v : r.backup.volumes) {
    if (v.change_method == "full-read" && v.change_why.empty()) continue;
    out << "volume " << v.name << ": read " << FormatBytes(v.bytes_read) << " of " << FormatBytes(v.bytes);
    if (v.files_by_change_list > 0) out << " (" << v.change_method << ")";
    if (!v.change_why.empty()) out << "; read in full: " << v.change_why;
    out << "\n";
  }
  out << "point " << r.point << " committed";
  if (!r.pruned.empty()) out << "; pruned " << Counted(r.pruned.size(), "point");
  out << "\n";
  for (const auto& line : ReplicaReportLines(r.replicas)) out << line << "\n";
}

class RunCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    cmd->add_option("-c,--config", config_path_,
                    "configuration file (TOML); default: the file VMBACK_CONFIG names, else /etc/vmback/vmback.toml");
    cmd->add_flag("--json", json_, "print the run's report (with each VM's freeze window) as JSON");
    cmd->add_flag("--full-read", full_read_,
                  "read every file and every block, trusting no quick check and no change list "
                  "([run] full_read_every does it periodically)");
    cmd->add_option("--upload-limit", upload_limit_,
                    "at most this many bytes per second to copies in buckets (s3://), e.g. 5M;\n"
                    "default: [s3] upload_limit, else no limit");
    cmd->add_flag("--recover-only", recover_only_,
                  "only clean up after a run that did not finish (its journal: resume VMs, unmount, drop "
                  "snapshots), then stop (vmback.service: ExecStopPost=)");
    cmd->footer(
        "\nIn order: take the run lock; clean up after a crashed earlier run (from the\n"
        "journal in [run] state_dir); check the plan; quiesce every VM (guest-agent\n"
        "fsfreeze, or Alt+SysRq+S and suspend); snapshot every volume; resume every VM;\n"
        "then per volume [fsck, mount read-only] back it up and drop its snapshot at once;\n"
        "commit the point; send it to each [[replicate]] (zfs send | zfs recv); prune by\n"
        "[retention], keeping each replica's base. VMs are resumed and snapshots dropped on\n"
        "every path, also on SIGINT/SIGTERM.\n\n"
        "btrfs and reflink snapshots are made in the source's own file system: inside a\n"
        "source directory as SOURCE/.vmback-VOLUME-RUNID (beside an image file), so a\n"
        "source that is a mount point works; top-level .vmback-* entries of a source\n"
        "are not backed up.\n"
        "A volume without 'vms' quiesces the running VMs with a disk on it (\"auto\");\n"
        "a [[vm]] on no volume is a configuration error (exit 2). A volume without\n"
        "'snapshot' is read live, a warning (exit 5) when a running VM has a disk on it;\n"
        "snapshot = \"none\" says a live read is meant (no warning; the report's\n"
        "\"sources\" say \"by_choice\").\n"
        "track_changes = true (reflink, btrfs) keeps each snapshot as the next run's\n"
        "base and reads only the extents the two no longer share; the report gives\n"
        "each volume's change_method and, for a full read, change_why.\n\nExample:\n  vmback run -c /etc/vmback/vmback.toml --json");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = LoadConfig(ConfigPathOrDefault(config_path_));
    TargetArgs limits;
    limits.upload_limit = upload_limit_;
    ConfigureBuckets(config, limits);
    if (recover_only_) {
      std::unique_ptr<Hypervisor> conn;
      auto connect = [&] { return (conn = ConnectLibvirt(config.libvirt_uri, ctx.log)).get(); };
      RecoverJob(config, ctx.env, connect, ctx.log);  // logs what it did
      return {};
    }
    std::unique_ptr<Hypervisor> hv = ConnectFor(config, ctx.log);
    ctx.report->Start("run", config);
    SignalCancel signals;
    JobOptions jo;
    jo.cancel = signals.flag();
    jo.hook = CrashHookForTesting();
    jo.full_read = full_read_;
    JobReport r = RunJob(config, ctx.env, hv.get(), jo, ctx.log);
    ctx.report->body = JobReportToJson(r);
    ctx.report->metrics.volumes = VolumeBytesOf(r.backup);
    for (const auto& vm : r.vms) ctx.report->metrics.freeze_seconds.push_back({vm.name, vm.freeze_seconds});
    if (json_)
      ctx.out << JobReportToJson(r).dump(2) << "\n";
    else
      PrintJobReport(r, ctx.out);
    Findings f;
    f.damage = r.backup.errors > 0;
    f.warnings = r.warnings.size();
    return f;
  }

 private:
  std::string config_path_;
  std::string upload_limit_;
  bool json_ = false, recover_only_ = false, full_read_ = false;
};

class PlanCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override {
    cmd->add_option("-c,--config", config_path_,
                    "configuration file (TOML); default: the file VMBACK_CONFIG names, else /etc/vmback/vmback.toml");
    cmd->footer("\nChecks what run checks (VMs known to libvirt, each [[vm]] on a volume,\n"
                "sources, the programs each snapshot needs, reflink sources on a file system\n"
                "that clones, free space in the volume group, the target, the [report] paths)\n"
                "and prints every step and command in order: the VMs quiesced, the volumes\n"
                "read live and whether by choice; touches no VM and changes nothing. Every\n"
                "problem found is listed, each with what to do, and then plan exits 2.\n"
                "The snapshot, mount and drop commands are printed by the run's own code,\n"
                "with each command written down instead of run; blkid and lvm vgs, which\n"
                "only look, run and show as \"(checked: ...)\".\n\nExample:\n"
                "  vmback plan -c /etc/vmback/vmback.toml");
  }

  Findings Run(CommandContext& ctx) override {
    Config config = LoadConfig(ConfigPathOrDefault(config_path_));
    ConfigureBuckets(config, {});
    std::unique_ptr<Hypervisor> hv = ConnectFor(config, ctx.log);
    const PlanResult plan = PlanJob(config, ctx.env, hv.get(), ctx.log);
    ctx.out << plan.text;
    if (plan.problems.empty()) return {};
    ctx.out.flush();
    const size_t n = plan.problems.size();
    for (size_t i = 0; i < n; i++) {
      const Problem& p = plan.problems[i];
      const std::string line = "problem " + std::to_string(i + 1) + " of " + std::to_string(n) + ": " + p.text;
      if (p.fails_run)
        ctx.log->Error(line);
      else
        ctx.log->Warn(line + " (the run would go on without it)");
    }
    ThrowConfig("the plan found " + Counted(n, "problem") + " (above); fix " + (n == 1 ? "it" : "each") +
                " and run 'vmback plan' again");
  }

 private:
  std::string config_path_;
};

}  // namespace

std::unique_ptr<Command> NewRunCommand() { return std::make_unique<RunCommand>(); }
std::unique_ptr<Command> NewPlanCommand() { return std::make_unique<PlanCommand>(); }

}  // namespace vmback
