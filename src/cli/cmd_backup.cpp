// vmback backup: sources given as PATHs, or the volumes of a config read as
// `vmback run` reads them (without the VMs and the prune).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "hypervisor/hypervisor.h"
#include "job/job.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

// What a backup did, whichever way it went.
struct BackupDone {
  BackupResult result;
  std::vector<SourceReport> sources;  // with -c only
  size_t absent_copies = 0;          // store copies that were not there
};

void PrintBackup(const BackupDone& d, std::ostream& out) {
  const BackupResult& r = d.result;
  PrintLiveReads(d.sources, out);
  for (const auto& v : r.volumes) {
    out << v.name << ": " << Counted(v.files, "file") << ", " << FormatBytes(v.bytes) << ", read " << FormatBytes(v.bytes_read)
        << ", " << v.new_blocks << (r.inplace.empty() ? " new of " : " written of ") << v.blocks << " blocks\n";
  }
  out << "point " << r.point << " committed: wrote " << FormatBytes(r.bytes_written);
  if (r.inplace.empty()) out << " in " << r.packs_written << " pack(s)";
  out << ", " << FormatSeconds(r.seconds) << "\n";
}

class BackupCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override;

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    ctx.report->Start("backup", config);
    const bool from_config = ReadsConfigFile(target_);
    std::vector<VolumeSpec> volumes = VolumesOfPaths(from_config);
    BackupOptions bopts;
    bopts.full_read = full_read_;
    bopts.threads = threads_;
    bopts.read_limit = config.run.read_limit;
    bopts.full_read_every_ns = config.run.full_read_every_ns;
    if (!read_limit_text_.empty()) ParseReadLimit(read_limit_text_, &bopts.read_limit);
    bopts.tags = tags_;
    SignalCancel signals;
    bopts.cancel = signals.flag();
    BackupDone d = from_config ? FromConfig(config, bopts, ctx) : ToDestination(config, volumes, bopts, ctx);
    if (json_)
      ctx.out << ctx.report->body.dump(2) << "\n";
    else
      PrintBackup(d, ctx.out);
    const BackupResult& r = d.result;
    if (r.errors)
      ctx.log->Error("point " + r.point + " lacks " + std::to_string(r.errors) +
                     " entr(y/ies) that could not be read (see above)");
    Findings f;
    f.damage = r.errors > 0;
    f.warnings = ctx.log->warnings();
    f.absent_copies = d.absent_copies;
    return f;
  }

 private:
  // The volumes named by the PATHs (none with -c, which names its own).
  std::vector<VolumeSpec> VolumesOfPaths(bool from_config) const {
    std::vector<VolumeSpec> volumes;
    if (from_config) {
      if (!paths_.empty()) ThrowConfig("give sources either in the config or as PATHs, not both");
      return volumes;
    }
    for (const auto& p : paths_) {
      std::string name = BaseName(p);
      if (name == "/" || name.empty()) name = "root";
      if (!IsValidVolumeName(name)) ThrowConfig("cannot name a volume after " + p);
      volumes.push_back({name, p, true});
    }
    return volumes;
  }

  // The job without the VMs: the snapshots and mounts the config asks for,
  // under the run's journal.
  BackupDone FromConfig(const Config& config, const BackupOptions& bopts, CommandContext& ctx) {
    JobOptions jo;
    jo.kind = JobKind::kBackup;
    jo.cancel = bopts.cancel;
    jo.hook = CrashHookForTesting();
    jo.full_read = bopts.full_read;
    jo.threads = bopts.threads;
    jo.read_limit = bopts.read_limit;
    jo.tags = tags_;
    std::unique_ptr<Hypervisor> conn;
    jo.connect = [&] { return (conn = ConnectLibvirt(config.libvirt_uri, ctx.log)).get(); };
    JobReport jr = RunJob(config, ctx.env, nullptr, jo, ctx.log);
    ctx.report->body = BackupResultToJson(jr.backup);
    ctx.report->body["sources"] = SourcesToJson(jr.sources);
    ctx.report->metrics.volumes = VolumeBytesOf(jr.backup);
    return {jr.backup, jr.sources, 0};
  }

  // The PATHs into the destination of config, as one point.
  BackupDone ToDestination(const Config& config, const std::vector<VolumeSpec>& volumes, const BackupOptions& bopts,
                           CommandContext& ctx) {
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kBackup, ctx.log);
    CheckTags(*dest, bopts.tags);
    BackupResult r = dest->Backup(volumes, bopts, ctx.log);
    ctx.report->body = BackupResultToJson(r);
    ctx.report->metrics.volumes = VolumeBytesOf(r);
    return {r, {}, dest->Health().absent_copies};
  }

  TargetArgs target_;
  std::vector<std::string> paths_, tags_;
  bool full_read_ = false, json_ = false;
  unsigned threads_ = 0;
  std::string read_limit_text_;
};

void BackupCommand::AddOptions(CLI::App* cmd) {
  AddTargetOptions(cmd, &target_);
  cmd->add_option("PATH", paths_,
                  "with --store: directories, image files or block devices to back up;\n"
                  "each becomes a volume named after its last path component");
  cmd->add_flag("--full-read", full_read_, "read every file, even those whose size and mtime are unchanged");
  cmd->add_option("--threads", threads_, "hashing/compression threads (default: one per core)");
  cmd->add_flag("--json", json_, "print the run's statistics as JSON on stdout");
  cmd->add_option("--tag", tags_,
                  "label the point (repeatable; letters, digits, . _ + : @ = -): a tagged point is\n"
                  "its own retention group, so prune never counts it against the nightly points")
      ->allow_extra_args(false);  // one value per --tag: the paths follow
  cmd->add_option("--read-limit", read_limit_text_,
                  "read the sources at most this fast, per second (e.g. 50M), so the VMs keep\n"
                  "their disk bandwidth; default: [run] read_limit, else no limit");
  cmd->footer(
      "\nExamples:\n"
      "  vmback backup --store /mnt/usb/vmback /var/lib/libvirt/images /etc\n"
      "  vmback backup -c /etc/vmback.toml --json\n"
      "  vmback backup --store /mnt/usb/vmback --tag before-upgrade /etc\n\n"
      "A file whose size, mtime, ctime and inode number match the previous point of\n"
      "its volume is not read again; otherwise it is read in full and only blocks\n"
      "the store does not have yet are written.\n\n"
      "Retention (prune) groups points by host, volume set and tags: a one-off\n"
      "backup of other paths, or a tagged one, never displaces a nightly point.\n\n"
      "With -c, each volume is read as 'vmback run' reads it: from the snapshot its\n"
      "'snapshot' asks for (lvm, btrfs, reflink), fsck'ed and mounted read-only for\n"
      "mode = \"filesystem\", the snapshots journaled in [run] state_dir so that a\n"
      "crashed backup is cleaned up by the next backup or run. The VMs are not\n"
      "quiesced (libvirt is not asked; a snapshot is then crash-consistent) and\n"
      "nothing is pruned: for both, use 'vmback run'.");
}

}  // namespace

std::unique_ptr<Command> NewBackupCommand() { return std::make_unique<BackupCommand>(); }

}  // namespace vmback
