// vmback backup: sources given as PATHs, or the volumes of a config read as
// `vmback run` reads them (without the VMs and the prune).
#include <CLI/CLI.hpp>

#include "cli/command.h"
#include "cli/common.h"
#include "hypervisor/hypervisor.h"
#include "job/excludes.h"
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
        << ", " << v.new_blocks << (r.inplace.empty() ? " new of " : " written of ") << Counted(v.blocks, "block")
        << "\n";
  }
  out << "point " << r.point << " committed: wrote " << FormatBytes(r.bytes_written);
  if (r.inplace.empty()) out << " in " << Counted(r.packs_written, "pack");
  out << ", " << FormatSeconds(r.seconds) << "\n";
}

class BackupCommand : public Command {
 public:
  void AddOptions(CLI::App* cmd) override;

  Findings Run(CommandContext& ctx) override {
    Config config = ResolveConfig(target_);
    if (!dry_run_) ctx.report->Start("backup", config);  // a dry run leaves no report
    const bool from_config = ReadsConfigFile(target_);
    std::vector<VolumeSpec> volumes = VolumesOfPaths(from_config);
    extra_ = CommandLinePatterns(ctx.env);
    const std::vector<std::string>& extra = extra_;
    if (exclude_caches_)
      for (auto& v : config.volumes) v.exclude_caches = true;
    BackupExcludes excludes = from_config ? ExcludesOfConfig(config, extra) : ExcludesOfPaths(config, volumes, extra);
    if (dry_run_) {
      if (from_config)
        for (const auto& v : config.volumes) volumes.push_back({.name = v.name, .source = v.source, .one_file_system = v.one_file_system});
      DryRun(volumes, excludes, from_config, ctx);
      return Findings{};
    }
    BackupOptions bopts;
    bopts.full_read = full_read_;
    bopts.threads = threads_;
    bopts.read_limit = config.run.read_limit;
    bopts.full_read_every_ns = config.run.full_read_every_ns;
    if (!read_limit_text_.empty()) ParseReadLimit(read_limit_text_, &bopts.read_limit);
    bopts.tags = tags_;
    SignalCancel signals;
    bopts.cancel = signals.flag();
    BackupDone d = from_config ? FromConfig(config, bopts, ctx) : ToDestination(config, volumes, bopts, excludes, ctx);
    if (json_)
      ctx.out << ctx.report->body.dump(2) << "\n";
    else
      PrintBackup(d, ctx.out);
    const BackupResult& r = d.result;
    if (r.errors)
      ctx.log->Error("point " + r.point + " lacks " + Counted(r.errors, "entry", "entries") +
                     " that could not be read (see above)");
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
      volumes.push_back({.name = name, .source = p, .one_file_system = true});
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
    jo.exclude = extra_;
    std::unique_ptr<Hypervisor> conn;
    jo.connect = [&] { return (conn = ConnectLibvirt(config.libvirt_uri, ctx.log)).get(); };
    JobReport jr = RunJob(config, ctx.env, nullptr, jo, ctx.log);
    ctx.report->body = BackupResultToJson(jr.backup);
    ctx.report->body["sources"] = SourcesToJson(jr.sources);
    if (!jr.replicas.empty()) ctx.report->body["replicas"] = ReplicaReportsToJson(jr.replicas);
    ctx.report->metrics.volumes = VolumeBytesOf(jr.backup);
    return {jr.backup, jr.sources, 0};
  }

  // The PATHs into the destination of config, as one point.
  BackupDone ToDestination(const Config& config, const std::vector<VolumeSpec>& volumes, const BackupOptions& bopts,
                           BackupExcludes excludes, CommandContext& ctx) {
    auto dest = OpenDestinationFor(config, target_, DestinationAccess::kBackup, ctx.log, std::move(excludes));
    CheckTags(*dest, bopts.tags);
    BackupResult r = dest->Backup(volumes, bopts, ctx.log);
    ctx.report->body = BackupResultToJson(r);
    ctx.report->metrics.volumes = VolumeBytesOf(r);
    return {r, {}, dest->Health().absent_copies};
  }

  // --exclude and the patterns of each --exclude-file, in that order, each
  // checked: Error(kConfig) naming the pattern (and the file and line).
  std::vector<std::string> CommandLinePatterns(Env* env) const {
    std::vector<std::string> out;
    for (const auto& p : exclude_) {
      std::string why = CheckExcludePattern(p);
      if (!why.empty()) ThrowConfig("--exclude \"" + p + "\": " + why);
      out.push_back(p);
    }
    for (const auto& f : exclude_files_) {
      std::vector<std::string> more = ReadExcludeFile(env, f);
      out.insert(out.end(), more.begin(), more.end());
    }
    if (out.size() > kMaxExcludePatterns)
      ThrowConfig("more than " + std::to_string(kMaxExcludePatterns) + " patterns in --exclude and --exclude-file");
    return out;
  }

  // The PATHs' excludes: the command line's patterns, --exclude-caches and
  // vmback's own paths below each.
  BackupExcludes ExcludesOfPaths(const Config& config, const std::vector<VolumeSpec>& volumes,
                                 const std::vector<std::string>& extra) const {
    BackupExcludes out;
    const std::vector<OwnLocation> own = OwnLocations(config);
    for (const auto& v : volumes) out.emplace(v.name, ExcludesFor(v.name, v.source, extra, exclude_caches_, own));
    return out;
  }

  // --dry-run: each volume's source walked as it is now (not a snapshot),
  // what would be read and what left out, and why (--json: as JSON). Opens
  // no store or target, takes no lock, writes nothing.
  void DryRun(const std::vector<VolumeSpec>& volumes, const BackupExcludes& excludes, bool from_config,
              CommandContext& ctx) {
    std::vector<VolumePreview> previews;
    std::vector<std::vector<std::string>> described;
    uint64_t files = 0, bytes = 0;
    for (const auto& v : volumes) {
      auto ex = excludes.find(v.name);
      const VolumeExcludes* e = ex == excludes.end() ? nullptr : &ex->second;
      previews.push_back(PreviewVolume(ctx.env, v.name, CanonicalPath(v.source), v.one_file_system, e, nullptr, ctx.log));
      previews.back().source = v.source;
      described.push_back(e ? DescribeExcludes(*e) : std::vector<std::string>{});
      files += previews.back().files;
      bytes += previews.back().bytes;
    }
    if (json_) {
      nlohmann::json j = {{"dry_run", true}, {"files", files}, {"bytes", bytes}, {"volumes", nlohmann::json::array()}};
      for (size_t i = 0; i < previews.size(); i++) {
        const VolumePreview& p = previews[i];
        nlohmann::json listed = nlohmann::json::array();
        for (const auto& x : p.listed)
          listed.push_back({{"path", x.rel}, {"reason", ExcludeReasonName(x.reason)}, {"detail", x.detail}});
        j["volumes"].push_back({{"name", p.name}, {"source", p.source}, {"files", p.files}, {"dirs", p.dirs},
                                {"other", p.other}, {"bytes", p.bytes}, {"errors", p.errors},
                                {"excluded", p.excluded}, {"excludes", described[i]}, {"excluded_entries", listed}});
      }
      // Names need not be UTF-8: replaced, never a failed dump.
      ctx.out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
      return;
    }
    std::ostream& out = ctx.out;
    out << "dry run: nothing is written (no point, no lock, no report)";
    if (from_config) out << "; each source is walked live, not from its snapshot";
    out << "\n";
    for (size_t i = 0; i < previews.size(); i++) {
      const VolumePreview& p = previews[i];
      out << "volume " << EscapeForTerminal(p.name) << " (" << EscapeForTerminal(p.source) << "): would read "
          << Counted(p.files, "file") << ", " << FormatBytes(p.bytes) << "; " << p.excluded << " excluded";
      if (p.errors) out << "; " << p.errors << " could not be read";
      out << "\n";
      for (const auto& line : described[i]) out << "  exclude " << EscapeForTerminal(line) << "\n";
      for (const auto& x : p.listed) {
        out << "  excluded " << EscapeForTerminal(x.rel) << " (";
        if (x.reason == ExcludeReason::kPattern)
          out << "pattern " << EscapeForTerminal(x.detail);
        else if (x.reason == ExcludeReason::kCacheDir)
          out << kCacheDirTag << " in " << (x.detail.empty() ? "/" : EscapeForTerminal(x.detail));
        else
          out << "vmback's own: " << EscapeForTerminal(x.detail);
        out << ")\n";
      }
      if (p.excluded > p.listed.size()) out << "  ... and " << p.excluded - p.listed.size() << " more excluded\n";
    }
    out << "total: would read " << Counted(files, "file") << ", " << FormatBytes(bytes) << "\n";
  }

  TargetArgs target_;
  std::vector<std::string> paths_, tags_, exclude_, exclude_files_;
  bool dry_run_ = false, exclude_caches_ = false;
  std::vector<std::string> extra_;  // CommandLinePatterns, once read
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
  cmd->add_option("--exclude", exclude_,
                  "leave out entries matching PATTERN (repeatable; gitignore-style: '/' first anchors\n"
                  "at the volume's root, '*.tmp' matches at any depth, a trailing '/' only directories)")
      ->allow_extra_args(false)
      ->type_name("PATTERN");
  cmd->add_option("--exclude-file", exclude_files_,
                  "read exclude patterns from FILE, one a line ('#' comments); repeatable")
      ->allow_extra_args(false)
      ->type_name("FILE");
  cmd->add_flag("--exclude-caches", exclude_caches_,
                "leave out the entries of directories holding a CACHEDIR.TAG (the tag is kept),\n"
                "for every volume (a config volume: as exclude_caches = true)");
  cmd->add_flag("--dry-run", dry_run_,
                "walk the sources and list what would be read (files, bytes per volume) and\n"
                "what is excluded and why; writes nothing, opens no store or target");
  cmd->add_option("--read-limit", read_limit_text_,
                  "read the sources at most this fast, per second (e.g. 50M), so the VMs keep\n"
                  "their disk bandwidth; default: [run] read_limit, else no limit");
  cmd->footer(
      "\nExamples:\n"
      "  vmback backup --store /mnt/usb/vmback /var/lib/libvirt/images /etc\n"
      "  vmback backup -c /etc/vmback/vmback.toml --json\n"
      "  vmback backup --store /mnt/usb/vmback --tag before-upgrade /etc\n"
      "  vmback backup -c /etc/vmback/vmback.toml --dry-run --exclude '*.tmp'\n\n"
      "Excludes: a volume's exclude patterns and exclude_caches, then --exclude and\n"
      "--exclude-file for every volume. vmback's own store, its copies, an in-place\n"
      "target and the state directory are left out of any source they lie under,\n"
      "with a notice. An in-place target deletes from its mirror what became excluded.\n\n"
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
