// The mirror side of the store: writing to every copy, repairing one copy
// from another, and bringing copies in step (Sync).
#include <algorithm>
#include <future>
#include <map>
#include <mutex>
#include <set>

#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace vmback {

namespace {

// Packs sent to copies in buckets at once by Sync.
constexpr size_t kBucketUploads = 4;

std::set<std::string> ListOrEmpty(Env* env, const std::string& dir) {
  // A missing subdirectory is empty; any other listing failure throws, so a
  // copy that cannot be listed is never taken for an empty one.
  if (!env->Exists(dir)) return {};
  auto names = env->ListDir(dir);
  std::set<std::string> out;
  for (auto& n : names)
    if (n.find(".tmp-") == std::string::npos) out.insert(std::move(n));
  return out;
}

}  // namespace

void Store::WriteEverywhere(const std::string& rel_path, const std::string& data) {
  for (size_t c = copies_.size(); c-- > 0;) WriteFileAtomic(env_, JoinPath(copies_[c], rel_path), data);
}

void Store::RemoveEverywhere(const std::string& rel_path) {
  for (size_t c = 0; c < copies_.size(); c++) {
    std::string path = JoinPath(copies_[c], rel_path);
    if (env_->Exists(path)) {
      env_->Remove(path);
      env_->SyncDir(DirName(path));
    }
  }
}

void Store::KeepAside(const std::string& path) const {
  if (!env_->Exists(path)) return;
  env_->Rename(path, path + ".bad-" + std::to_string(env_->NowNanos()));
}

std::vector<SetAsideFile> Store::ListSetAside() const {
  std::vector<SetAsideFile> out;
  auto scan = [&](const std::string& dir) {
    for (const auto& name : env_->ListDir(dir)) {
      const size_t at = name.rfind(".bad-");
      if (at == std::string::npos) continue;
      const std::string digits = name.substr(at + 5);
      if (digits.empty() || digits.size() > 19 ||
          !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
        continue;
      const std::string path = JoinPath(dir, name);
      const FileStatus st = env_->Status(path);
      if (st.kind != FileKind::kFile) continue;  // never followed nor counted
      out.push_back({path, st.size, static_cast<int64_t>(std::stoull(digits))});
    }
  };
  for (const auto& copy : copies_) {
    for (const char* sub : {"index", "points"}) scan(JoinPath(copy, sub));
    const std::string packs = JoinPath(copy, "packs");
    scan(packs);
    for (const auto& fan : env_->ListDir(packs))
      if (env_->Status(JoinPath(packs, fan)).kind == FileKind::kDir) scan(JoinPath(packs, fan));
  }
  std::stable_sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.time_ns < b.time_ns; });
  return out;
}

void Store::CopyPack(const Hash& pack, size_t from, size_t to) {
  std::string src = PackPath(from, pack);
  std::string dst = PackPath(to, pack);
  auto in = env_->OpenRead(src);
  // A random name, created O_EXCL: nothing planted under it is opened.
  std::string tmp = TempPathFor(copies_[to] + "/tmp/copy-" + pack.Hex().substr(0, 16));
  auto out = env_->OpenWrite(tmp, CreateMode::kExclusive);
  out->ExpectSize(in->Size());  // into a bucket: held in memory, allocated once
  try {
    Sha256Stream hash;
    std::string buf(kCopyBufferBytes, '\0');
    for (uint64_t off = 0; off < in->Size();) {
      size_t n = in->ReadAt(off, buf.data(), buf.size());
      if (n == 0) break;
      hash.Update(buf.data(), n);
      out->Append(buf.data(), n);
      Progress::Get().AddRead(n);
      off += n;
    }
    if (hash.Finish() != pack) ThrowCorrupt(src + ": pack does not match its name; not copied to " + copies_[to]);
    out->Sync();
    out->Close();
  } catch (const Error& e) {
    out.reset();
    if (e.kind() == ErrorKind::kCrash) throw;  // a crash leaves its files behind
    try {
      env_->Remove(tmp);
    } catch (const Error&) {
      // Best effort: the next writer's Open empties tmp/ anyway.
    }
    throw;
  }
  std::string sub = DirName(dst);
  if (!env_->Exists(sub)) {
    env_->MakeDir(sub);
    env_->SyncDir(JoinPath(copies_[to], "packs"));
  }
  KeepAside(dst);
  env_->Rename(tmp, dst);
  env_->SyncDir(sub);
  std::lock_guard<std::mutex> l(files_mu_);
  open_packs_.clear();  // handles on the replaced file are stale
}

bool Store::RepairPack(const Hash& pack, size_t to) {
  std::lock_guard<std::mutex> l(repair_mu_);
  for (size_t c = 0; c < copies_.size(); c++) {
    if (c == to || !env_->Exists(PackPath(c, pack))) continue;
    try {
      CopyPack(pack, c, to);
      repairs_++;
      log_->Warn("repaired " + PackPath(to, pack) + " from " + copies_[c] +
                 " (the damaged file, if any, is kept as .bad-*)");
      return true;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCrash) throw;
      log_->Warn(std::string("cannot repair from ") + copies_[c] + ": " + e.what());
    }
  }
  return false;
}

std::vector<uint64_t> Store::RepairIndexFiles(bool check_only) {
  std::vector<uint64_t> fixed(copies_.size(), 0);
  // name -> per copy: absent, whole or damaged
  enum class State { kAbsent, kWhole, kDamaged };
  std::map<std::string, std::vector<State>> files;
  auto scan = [&] {
    for (size_t c = 0; c < copies_.size(); c++) {
      std::string dir = JoinPath(copies_[c], "index");
      for (const auto& n : ListOrEmpty(env_, dir)) {
        if (!EndsWith(n, ".idx")) continue;
        auto& st = files.try_emplace(n, copies_.size(), State::kAbsent).first->second;
        std::string path = JoinPath(dir, n);
        try {
          DecodeIndexFile(ReadFileToString(env_, path, kMaxIndexFileSize), path, Keyed());
          st[c] = State::kWhole;
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::kIo) {
            // Unreadable is not damaged: report, never rewrite or set aside.
            log_->Warn(std::string(e.what()) + " (an I/O error; not repaired)");
            continue;
          }
          if (check_only && e.kind() == ErrorKind::kNotFound) continue;
          if (e.kind() != ErrorKind::kCorrupt) throw;
          log_->Warn(e.what());
          st[c] = State::kDamaged;
        }
      }
    }
  };
  if (check_only) {
    scan();
    for (const auto& [name, st] : files)
      for (size_t c = 0; c < copies_.size(); c++) fixed[c] += st[c] == State::kDamaged;
    return fixed;
  }
  Guard([&] {
    scan();
    std::lock_guard<std::mutex> l(repair_mu_);
    for (const auto& [name, st] : files) {
      std::string good;
      for (size_t c = 0; c < copies_.size() && good.empty(); c++)
        if (st[c] == State::kWhole)
          good = ReadFileToString(env_, JoinPath(JoinPath(copies_[c], "index"), name), kMaxIndexFileSize);
      for (size_t c = 0; c < copies_.size(); c++) {
        if (st[c] != State::kDamaged) continue;
        std::string path = JoinPath(JoinPath(copies_[c], "index"), name);
        KeepAside(path);
        if (!good.empty()) {
          WriteFileAtomic(env_, path, good);
          log_->Warn("repaired " + path + " from another copy");
        } else {
          env_->SyncDir(DirName(path));
          log_->Warn("set aside " + path + " (whole on no copy; its packs are indexed from their own tables)");
        }
        repairs_++;
        fixed[c]++;
      }
    }
  });
  return fixed;
}

void Store::DeletePoint(const std::string& point) {
  Guard([&] {
    // The tombstone first: a copy that comes back later must not bring the
    // point back through Sync.
    WriteEverywhere("points/" + point + ".deleted", FormatTimeUtc(env_->NowNanos()) + "\n");
    RemoveEverywhere("points/" + point + ".json");
  });
}

SyncStats Store::Sync(bool say_done) {
  SyncStats stats;
  Guard([&] {
    // A new or replaced disk: an empty directory (or one not there yet,
    // below an existing one) that this command named as a new copy, or a
    // copy whose making was cut short, becomes one. Never merely because a
    // config names it: with its disk not mounted, that is an empty mount
    // point on another file system.
    std::vector<std::string> still_absent;
    for (const auto& a : absent_) {
      if (MayMakeCopy(a)) {
        MakeCopy(a);
        stats.copies_initialized++;
      } else {
        still_absent.push_back(a);
      }
    }
    absent_ = still_absent;
    RecordCopies();
    stats.copied_to.assign(copies_.size(), 0);
    if (copies_.size() < 2) return;

    // Packs: every copy gets every pack some copy has whole.
    Progress::Get().Start("store sync", 0, "copied");
    std::vector<std::set<Hash>> packs(copies_.size());
    std::set<Hash> all;
    for (size_t c = 0; c < copies_.size(); c++) {
      auto list = ListPackFiles(c);
      packs[c].insert(list.begin(), list.end());
      all.insert(list.begin(), list.end());
    }
    std::vector<std::pair<Hash, size_t>> wanted;  // a pack, and the copy that lacks it
    for (const auto& p : all)
      for (size_t c = 0; c < copies_.size(); c++)
        if (!packs[c].count(p)) wanted.emplace_back(p, c);
    std::mutex stats_mu;
    auto copy_one = [&](const Hash& p, size_t c) {
      for (size_t from = 0; from < copies_.size(); from++) {
        if (!packs[from].count(p)) continue;
        try {
          CopyPack(p, from, c);
          std::lock_guard<std::mutex> l(stats_mu);
          stats.packs_copied++;
          stats.copied_to[c]++;
          return;
        } catch (const Error& e) {
          if (e.kind() != ErrorKind::kCorrupt) throw;
          log_->Warn(e.what());
        }
      }
    };
    // Into a bucket, several uploads at once: each waits on the network
    // and the gateway, not on a disk. Every one is waited for before an
    // error is passed on, so none is left running.
    const bool to_bucket = std::any_of(copies_.begin(), copies_.end(), [](const auto& c) { return IsBucketUrl(c); });
    if (!to_bucket || wanted.size() < 2) {
      for (const auto& [p, c] : wanted) copy_one(p, c);
    } else {
      ThreadPool pool(static_cast<unsigned>(std::min<size_t>(kBucketUploads, wanted.size())));
      std::vector<std::future<void>> done;
      for (const auto& [p, c] : wanted) done.push_back(pool.Submit([&, p = p, c = c] { copy_one(p, c); }));
      std::exception_ptr first;
      for (auto& f : done) {
        try {
          f.get();
        } catch (...) {
          if (!first) first = std::current_exception();
        }
      }
      if (first) std::rethrow_exception(first);
    }

    // Points: union, less what was deleted anywhere.
    std::vector<std::set<std::string>> points(copies_.size());
    std::set<std::string> tombstones, names;
    for (size_t c = 0; c < copies_.size(); c++) {
      for (const auto& n : ListOrEmpty(env_, JoinPath(copies_[c], "points"))) {
        if (EndsWith(n, ".deleted")) tombstones.insert(n.substr(0, n.size() - 8));
        else if (EndsWith(n, ".json")) points[c].insert(n.substr(0, n.size() - 5));
      }
      names.insert(points[c].begin(), points[c].end());
    }
    for (const auto& t : tombstones) {
      for (size_t c = 0; c < copies_.size(); c++) {
        std::string tomb = copies_[c] + "/points/" + t + ".deleted";
        if (!env_->Exists(tomb)) {
          std::string text = "synced\n";
          for (const auto& other : copies_)
            if (env_->Exists(other + "/points/" + t + ".deleted"))
              text = ReadFileToString(env_, other + "/points/" + t + ".deleted", kMaxSmallFileSize);
          WriteFileAtomic(env_, tomb, text);
        }
        if (points[c].count(t)) {
          env_->Remove(copies_[c] + "/points/" + t + ".json");
          env_->SyncDir(copies_[c] + "/points");
          stats.points_removed++;
        }
      }
    }
    // Index files first, then manifests, so a copy never shows a point
    // whose blobs it cannot find.
    for (const char* sub : {"index", "points"}) {
      std::vector<std::set<std::string>> files(copies_.size());
      std::set<std::string> union_files;
      for (size_t c = 0; c < copies_.size(); c++) {
        for (const auto& n : ListOrEmpty(env_, JoinPath(copies_[c], sub))) {
          bool wanted = std::string(sub) == "index" ? EndsWith(n, ".idx")
                                                    : EndsWith(n, ".json") &&
                                                          !tombstones.count(n.substr(0, n.size() - 5));
          if (wanted) {
            files[c].insert(n);
            union_files.insert(n);
          }
        }
      }
      for (const auto& n : union_files) {
        for (size_t c = 0; c < copies_.size(); c++) {
          if (files[c].count(n)) continue;
          for (size_t from = 0; from < copies_.size(); from++) {
            if (!files[from].count(n)) continue;
            std::string data = ReadFileToString(env_, JoinPath(JoinPath(copies_[from], sub), n),
                                                std::string(sub) == "index" ? kMaxIndexFileSize : kMaxManifestSize);
            WriteFileAtomic(env_, JoinPath(JoinPath(copies_[c], sub), n), data);
            stats.files_copied++;
            if (std::string(sub) == "points") stats.copied_to[c]++;
            break;
          }
        }
      }
    }
  });
  if (say_done && (stats.packs_copied || stats.files_copied || stats.points_removed))
    log_->Info("synced the copies: " + Counted(stats.packs_copied, "pack") + " and " +
               Counted(stats.files_copied, "file") + " copied, " +
               Counted(stats.points_removed, "pruned point") + " removed");
  return stats;
}

}  // namespace vmback
