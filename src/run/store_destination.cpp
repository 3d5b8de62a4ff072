#include "run/store_destination.h"

#include <sstream>

#include "destination/point_find.h"
#include "inplace/inplace_destination.h"
#include "run/backup.h"
#include "run/prune.h"
#include "run/browse.h"
#include "run/point_reader_store.h"
#include "run/restore.h"
#include "run/stats.h"
#include "run/verify.h"
#include "store/manifest.h"
#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

LockMode LockModeFor(DestinationAccess access) {
  switch (access) {
    case DestinationAccess::kBackup: return LockMode::kAppend;
    case DestinationAccess::kPrune: return LockMode::kExclusive;
    default: return LockMode::kShared;
  }
}

// A store point from its manifest.
PointSummary PointOfManifest(const std::string& name, const Manifest& m) {
  PointSummary p;
  p.name = name;
  p.time = m.time;
  p.time_ns = m.time_ns;
  for (const auto& v : m.volumes) p.volumes.push_back(v.name);
  p.tags = std::vector<std::string>(m.tags.begin(), m.tags.end());
  p.stats = m.stats;
  return p;
}

// What heal set aside (*.bad-<ns>), for verify and stats.
nlohmann::json SetAsideJson(const std::vector<SetAsideFile>& files) {
  uint64_t bytes = 0;
  for (const auto& f : files) bytes += f.bytes;
  nlohmann::json j = {{"count", files.size()}, {"bytes", bytes}};
  if (!files.empty()) {
    j["oldest_ns"] = files.front().time_ns;
    j["oldest"] = FormatTimeUtc(files.front().time_ns);
  }
  return j;
}

std::string SetAsideText(const std::vector<SetAsideFile>& files) {
  if (files.empty()) return "";
  uint64_t bytes = 0;
  for (const auto& f : files) bytes += f.bytes;
  return Counted(files.size(), "damaged file") + " set aside (*.bad-*): " + FormatBytes(bytes) +
         ", the oldest from " + FormatTimeUtc(files.front().time_ns) +
         "; prune removes those older than [store] keep_bad (default 30d)\n";
}

std::string VerifyText(const VerifyReport& r) {
  std::ostringstream out;
  // Packs and blobs are counted once; the bytes are what was read, from
  // every copy.
  const std::string state =
      !r.ok() ? Counted(r.problems.size(), "problem")
      : r.repaired ? "all good after repairing " + Counted(r.repaired, "damaged or missing file") +
                         " from another copy (listed below)"
                   : "all good";
  out << "checked " << Counted(r.packs, "pack") << ", " << Counted(r.blobs, "blob") << ", " << FormatBytes(r.bytes)
      << " read" << (r.copies.size() > 1 ? " from " + std::to_string(r.copies.size()) + " copies" : "")
      << (r.subset.empty() ? "" : " (part " + r.subset + "; " + Counted(r.packs_skipped, "pack") +
                                      " left for other parts)")
      << ", " << Counted(r.points, "point") << ", " << Counted(r.files_checked, "file") << ": " << state << "\n";
  if (r.copies.size() > 1 || r.repaired) {
    for (const auto& c : r.copies)
      out << "  copy " << c.dir << ": " << Counted(c.packs_checked, "pack") << " checked, " << c.packs_missing
          << " missing, " << c.packs_damaged << " damaged, " << Counted(c.manifests_damaged, "manifest")
          << " damaged; repaired "
          << c.repaired << ", unrepairable " << c.unrepairable << "; read " << FormatBytes(c.bytes_read)
          << (c.read_seconds > 0 ? " at " + FormatBytes(static_cast<uint64_t>(c.bytes_read / c.read_seconds)) + "/s"
                                 : std::string())
          << "\n";
  }
  if (!r.lost.empty())
    out << "note: " << Counted(r.lost.size(), "file") << " in the points above hold blocks recorded lost by "
        << "'vmback repair' (listed above); a restore leaves them zero\n";
  if (!r.next_step.empty()) out << "next step: " << r.next_step << "\n";
  return out.str();
}

class StoreDestination : public Destination {
 public:
  StoreDestination(Env* env, const TargetConfig& target, DestinationAccess access, double lock_wait,
                   BackupExcludes excludes, Logger* log)
      : env_(env), path_(target.path), mode_(LockModeFor(access)), excludes_(std::move(excludes)) {
    options_.mirrors = target.mirrors;
    options_.lock_wait_seconds = lock_wait;
    options_.keys = KeySources::FromEnvironment(target.key_file);
    options_.require_encrypted = target.encrypt;
    store_ = Store::Open(env, path_, mode_, log, options_);
    if (access == DestinationAccess::kBackup && (store_->copies().size() > 1 || !store_->absent_copies().empty()))
      store_->Sync();
  }

  std::string Describe() const override { return store_->dir(); }
  std::string MetricLabel() const override { return path_; }
  bool RestoreWarningsCount() const override { return false; }
  bool TakesTags() const override { return true; }

  BackupResult Backup(const std::vector<VolumeSpec>& volumes, const BackupOptions& options, Logger* log) override {
    return RunBackup(store_.get(), volumes, options, log, excludes_);
  }

  std::vector<std::string> PointNames() override { return store_->ListPoints(); }

  PointList ListPoints() override {
    PointList list;
    list.where = store_->dir();
    for (const auto& name : store_->ListPoints())
      list.points.push_back(PointOfManifest(name, store_->ReadPoint(name)));
    return list;
  }

  RestoreStats Restore(const std::string& point, const std::string& path, const std::string& to,
                       const RestoreOptions& options, Logger* log) override {
    return vmback::Restore(store_.get(), point, path, to, options, log);
  }

  std::vector<PointEntry> ListEntries(const std::string& point, const std::string& path,
                                      bool recursive) override {
    return ListPointEntries(store_.get(), point, path, recursive);
  }

  PointDiff Diff(const std::string& from, const std::string& to, const std::string& path) override {
    return DiffPoints(store_.get(), from, to, path);
  }

  std::vector<PointEntry> FindEntries(const std::string& point, const std::string& pattern,
                                      std::string* resolved) override {
    if (pattern != find_pattern_) {
      find_memo_ = FindMemo{};
      find_pattern_ = pattern;
    }
    return FindPointEntries(
        store_.get(), point, [&](const std::string& path) { return GlobMatch(pattern, path); }, resolved,
        &find_memo_);
  }

  std::unique_ptr<PointReader> OpenPointReader(const std::string& point, uint64_t cache_bytes,
                                               Logger* log) override {
    return OpenStorePointReader(store_.get(), point, cache_bytes, log);
  }

  std::vector<VmRecord> PointVms(const std::string& point, std::string* resolved) override {
    *resolved = ResolvePoint(store_.get(), point);
    return store_->ReadPoint(*resolved).vms;
  }

  uint64_t Dump(const std::string& point, const std::string& path, WritableFile* out, Logger* log) override {
    return DumpFile(store_.get(), point, path, out, log);
  }

  DestinationStats Stats(const std::vector<std::string>& points, Logger*) override {
    const StoreStats st = ComputeStoreStats(store_.get(), points);
    const std::vector<SetAsideFile> set_aside = store_->ListSetAside();
    DestinationStats s{StoreStatsToJson(st), StoreStatsText(st) + SetAsideText(set_aside)};
    s.json["set_aside"] = SetAsideJson(set_aside);
    return s;
  }

  VerifyOutcome Verify(const VerifyRequest& request, Logger* log) override;
  PruneSummary Prune(const RetentionPolicy& policy, const PruneRequest& request, Logger* log) override;

  CopyHealth Health() const override { return {store_->repairs(), store_->absent_copies().size()}; }

 private:
  // Reopens the store with mode (this process's lock goes first: flock
  // locks are per open file).
  void Reopen(LockMode mode, Logger* log) {
    store_.reset();
    store_ = Store::Open(env_, path_, mode, log, options_);
  }

  Env* env_;
  std::string path_;
  LockMode mode_;
  BackupExcludes excludes_;  // what Backup leaves out of each volume
  StoreOptions options_;
  std::unique_ptr<Store> store_;
  // `vmback find`: what the last pattern matched below each directory.
  std::string find_pattern_;
  FindMemo find_memo_;
};

// The check takes the shared lock, so backups go on beside it; only when
// there is something to heal (a copy's pack or manifest from another, the
// damage record) does it take the exclusive lock, and check again under it.
// On read-only media it can only read.
VerifyOutcome StoreDestination::Verify(const VerifyRequest& request, Logger* log) {
  bool read_only = IsReadOnlyFileSystem(path_);
  if (read_only) log->Info(path_ + " is on a read-only file system: verify reads only, repairs nothing");
  VerifyOptions vopts;
  if (!request.read_data_subset.empty()) ParseReadDataSubset(request.read_data_subset, env_->NowNanos(), &vopts);
  vopts.read_limit = request.read_limit;
  VerifyReport r = vmback::Verify(store_.get(), log, vopts);
  VerifyOutcome o;
  if (r.to_heal > 0 && !read_only) {
    log->Info("found " + Counted(r.to_heal, "thing") +
              " to heal from other copies: checking again under the store's exclusive lock");
    try {
      Reopen(LockMode::kExclusive, log);
      r = vmback::Verify(store_.get(), log, vopts);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kLocked) throw;
      o.not_healed = true;
      log->Warn("not healed: " + std::string(e.what()) +
                "; run 'vmback verify' again when no backup runs (or with --lock-wait)");
      Reopen(LockMode::kShared, log);
    }
  }
  const std::vector<SetAsideFile> set_aside = store_->ListSetAside();
  o.json = VerifyReportToJson(r);
  o.json["set_aside"] = SetAsideJson(set_aside);
  o.text = VerifyText(r) + SetAsideText(set_aside);
  o.errors = r.problems.size();
  o.ok = r.ok();
  o.repaired = r.repaired;
  // Blocks recorded lost: the store is sound and nothing is left to do,
  // but those points are incomplete for good; a warning, not damage.
  o.blocks_lost = !r.lost.empty();
  return o;
}

PruneSummary StoreDestination::Prune(const RetentionPolicy& policy, const PruneRequest& request, Logger* log) {
  PruneSummary s;
  s.dry_run = request.dry_run;
  if (mode_ == LockMode::kAppend) {
    // After a backup: the prune needs the store to itself.
    try {
      store_->Upgrade(request.lock_wait_seconds);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kLocked) throw;
      log->Warn("not pruned this time: " + std::string(e.what()) +
                " (a restore, list or verify is reading the store; the next run prunes)");
      s.skipped = true;
      return s;
    }
    mode_ = LockMode::kExclusive;
  }
  GcOptions gc;
  gc.dry_run = request.dry_run;
  gc.repack_below = request.repack_below;
  PruneResult r = vmback::Prune(store_.get(), policy, gc, log);
  s.decisions = r.decisions;
  s.deleted = r.deleted;
  s.gc = r.gc;
  // Damaged files set aside longer ago than keep_bad: inspected by now, or
  // never will be.
  s.keep_bad_ns = request.keep_bad_ns;
  const int64_t cutoff = env_->NowNanos() - request.keep_bad_ns;
  for (const SetAsideFile& f : store_->ListSetAside()) {
    if (f.time_ns >= cutoff) continue;
    if (!request.dry_run) {
      env_->Remove(f.path);
      log->Info("removed " + f.path + " (set aside as damaged " + FormatTimeUtc(f.time_ns) + ")");
    }
    s.set_aside_removed.push_back(f);
  }
  return s;
}

}  // namespace

std::unique_ptr<Destination> OpenDestination(Env* env, const TargetConfig& target, DestinationAccess access,
                                             double lock_wait_seconds, Logger* log, BackupExcludes excludes) {
  if (target.type == TargetType::kStore)
    return std::make_unique<StoreDestination>(env, target, access, lock_wait_seconds, std::move(excludes), log);
  return OpenInplaceDestination(env, target, log, std::move(excludes));
}

}  // namespace vmback
