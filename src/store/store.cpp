#include "store/store.h"


#include <cerrno>

#include <algorithm>
#include <chrono>
#include <ctime>
#include <functional>
#include <optional>
#include <set>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {
constexpr char kFormatName[] = "vmback-store";
constexpr size_t kMaxIndexFiles = 32;

// A store holds root's backups (/etc/shadow among them): private to root.
constexpr mode_t kDirMode = 0700;
constexpr mode_t kFileMode = 0600;

// Lays out one copy of a store in an empty directory.
void InitCopy(Env* env, const std::string& dir, const nlohmann::json& config) {
  env->MakeDir(dir);
  if (env->Status(dir).mode != kDirMode) env->SetMode(dir, kDirMode);  // an empty directory the user made
  for (const char* sub : {"packs", "index", "points", "tmp"}) env->MakeDir(JoinPath(dir, sub));
  WriteFileAtomic(env, JoinPath(dir, "config.json"), config.dump(2) + "\n");
  env->SyncDir(dir);
}

// Walks one copy of a store (its top level, packs/XX/ and the files in
// them) before anything in it is opened. Every entry must be a regular file
// or a directory: a symlink (a disk someone else handled may hold `lock ->
// /etc/passwd` or `tmp -> /`) or a device node or fifo is refused, naming
// it, before vmback writes, deletes or locks anything. With `tighten` (a
// writer), modes wider than 0700 / 0600 are narrowed; returns how many.
size_t CheckCopyLayout(Env* env, const std::string& dir, bool tighten, int depth = 0) {
  size_t tightened = 0;
  auto check = [&](const std::string& path, const FileStatus& st) {
    if (st.kind == FileKind::kSymlink)
      ThrowCorrupt(path + " is a symbolic link; a vmback store holds none (the disk was tampered "
                          "with?): refused, nothing written or deleted");
    if (st.kind != FileKind::kFile && st.kind != FileKind::kDir)
      ThrowCorrupt(path + " is not a regular file or directory; a vmback store holds only those "
                          "(the disk was tampered with?): refused, nothing written or deleted");
    mode_t want = st.kind == FileKind::kDir ? kDirMode : kFileMode;
    if (tighten && (st.mode & ~kDirMode) != 0) {
      env->SetMode(path, want);
      tightened++;
    }
  };
  if (depth == 0) check(dir, env->Status(dir));
  for (const auto& name : env->ListDir(dir)) {
    std::string path = JoinPath(dir, name);
    FileStatus st = env->Status(path);
    if (st.kind == FileKind::kMissing) continue;  // removed meanwhile
    check(path, st);
    // STORE/packs/XX/ is the deepest level vmback uses.
    if (st.kind == FileKind::kDir && depth < 2) tightened += CheckCopyLayout(env, path, tighten, depth + 1);
  }
  return tightened;
}

struct CopyConfig {
  nlohmann::json json;
  std::string store_id;
  std::string copy_id;
};

CopyConfig ReadCopyConfig(Env* env, const std::string& dir) {
  std::string config_path = JoinPath(dir, "config.json");
  CopyConfig c;
  try {
    c.json = nlohmann::json::parse(ReadFileToString(env, config_path, kMaxSmallFileSize));
    if (!c.json.is_object() || c.json.value("format", "") != kFormatName)
      ThrowCorrupt(config_path + ": not a vmback store config");
    int version = c.json.at("version").get<int>();
    if (version > kStoreFormatVersion)
      throw Error(ErrorKind::kConfig, dir + " has store format version " + std::to_string(version) +
                                          ", newer than this vmback supports (" +
                                          std::to_string(kStoreFormatVersion) + "); upgrade vmback");
    if (version < 1) ThrowCorrupt(config_path + ": bad format version");
    c.store_id = c.json.value("store_id", "");
    c.copy_id = c.json.value("copy_id", "");
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(config_path + ": damaged store config (" + e.what() + ")");
  }
  return c;
}

// The marker written first into a new copy (kCopyMarker).
std::string CopyMarker(const std::string& store_id, const std::string& copy_id) {
  return nlohmann::json{{"format", "vmback-copy"}, {"store_id", store_id}, {"copy_id", copy_id}}.dump() + "\n";
}

// The copy_id in dir's marker if it marks an unfinished copy of store_id
// (a marker and no config.json); empty otherwise. The marker comes from a
// disk: read capped, and anything unexpected is no marker.
std::optional<std::string> UnfinishedCopy(Env* env, const std::string& dir, const std::string& store_id) {
  std::string path = JoinPath(dir, kCopyMarker);
  if (env->Status(dir).kind != FileKind::kDir || env->Status(path).kind != FileKind::kFile ||
      env->Exists(JoinPath(dir, "config.json")))
    return std::nullopt;
  try {
    auto j = nlohmann::json::parse(ReadFileToString(env, path, kMaxSmallFileSize));
    if (j.is_object() && j.value("format", "") == "vmback-copy" && !store_id.empty() &&
        j.value("store_id", "") == store_id)
      return j.value("copy_id", "");
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

// What a directory named as a copy holds when it holds no store, for
// messages: "is not there", "is an empty directory (...)", ...
std::string WhatIsThere(Env* env, const std::string& dir) {
  FileStatus st = env->Status(dir);
  if (st.kind == FileKind::kMissing) return "is not there";
  if (st.kind != FileKind::kDir) return "is not a directory";
  try {
    if (env->ListDir(dir).empty()) return "is an empty directory";
  } catch (const Error& e) {
    return std::string("cannot be read (") + e.what() + ")";
  }
  return "holds no vmback store (no config.json)";
}

bool IsEmptyDir(Env* env, const std::string& dir) {
  return env->Status(dir).kind == FileKind::kDir && env->ListDir(dir).empty();
}

// One lock file of a copy: "lock" or "write.lock".
std::unique_ptr<FileLock> TakeLock(Env* env, const std::string& dir, const char* name, LockMode mode,
                                   double wait_seconds, Logger* log) {
  Clock* clock = env->clock();
  const auto start = clock->Now();
  bool said = false;
  for (;;) {
    try {
      auto lock = env->Lock(JoinPath(dir, name), mode);
      if (!lock)
        log->Info(dir + " is on a read-only file system and has no lock file; reading it without a lock");
      for (const auto& r : env->TakeStaleLockReports())
        log->Info("lock " + r + "; the kernel released it, going on");
      return lock;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kLocked) throw;
      double waited = std::chrono::duration<double>(clock->Now() - start).count();
      if (waited >= wait_seconds)
        throw Error(ErrorKind::kLocked,
                    std::string(e.what()) +
                        (wait_seconds > 0 ? "; waited " + std::to_string(static_cast<int>(waited)) + " s"
                                          : "") +
                        "; use --lock-wait SECONDS to wait for it");
      if (!said) log->Info(std::string(e.what()) + "; waiting");
      said = true;
      clock->SleepFor(std::chrono::milliseconds(100));
    }
  }
}
}  // namespace

std::vector<std::string> WarnAboutCopiesOnRootFileSystem(const std::vector<std::string>& copies, Logger* log) {
  std::vector<std::string> on_root, own;
  for (const auto& c : copies) (OnRootFileSystem(c) ? on_root : own).push_back(c);
  if (own.empty()) return {};  // all on one file system: a choice, not a disk gone
  for (const auto& c : on_root)
    log->Warn("copy " + c + " is on the root file system, while the other cop" +
              (own.size() == 1 ? "y is" : "ies are") + " on a file system of " +
              (own.size() == 1 ? "its" : "their") +
              " own: is its disk not mounted? (vmback writes no new copy into an empty directory "
              "unless the command says so)");
  return on_root;
}

std::vector<std::string> Store::Init(Env* env, const std::string& dir, uint32_t block_size,
                                     const std::vector<std::string>& mirrors) {
  if (!IsValidBlockSize(block_size, kMinStoreBlockSize))
    ThrowConfig("block size " + std::to_string(block_size) +
                " must be a power of two between 4 KiB and 16 MiB");
  // Symlinks in the paths the user gave are resolved once, here, and a
  // relative path is read against the working directory: the directories
  // recorded (and used from now on, from any directory) are the real ones.
  std::vector<std::string> all = {CanonicalPath(dir)};
  for (const auto& m : mirrors) all.push_back(CanonicalPath(m));
  for (size_t i = 0; i < all.size(); i++)
    for (size_t k = 0; k < i; k++)
      if (all[i] == all[k]) ThrowConfig(all[i] + " is named twice as a copy of the store");
  for (auto& d : all) {
    env->MakeDir(d);
    d = CanonicalPath(d);
    if (env->Exists(JoinPath(d, "config.json"))) ThrowConfig(d + " is already a vmback store");
    if (!env->ListDir(d).empty())
      ThrowConfig(d + " is not empty; a new store needs an empty or new directory");
  }
  // Every copy records the others by path and by its own copy_id, so that
  // a store directory copied elsewhere is not mistaken for a mirror of its
  // original.
  nlohmann::json copies = nlohmann::json::array();
  for (const auto& d : all) copies.push_back({{"path", d}, {"copy_id", RandomHex(8)}});
  nlohmann::json config = {
      {"format", kFormatName},
      {"version", kStoreFormatVersion},
      {"store_id", RandomHex(16)},
      {"block_size", block_size},
      {"compression", "zstd"},
      {"zstd_level", kDefaultZstdLevel},
      {"copies", copies},
  };
  for (const auto& c : copies) {
    config["copy_id"] = c["copy_id"];
    const std::string path = c["path"].get<std::string>();
    WriteFileAtomic(env, JoinPath(path, kCopyMarker),
                    CopyMarker(config["store_id"].get<std::string>(), c["copy_id"].get<std::string>()));
    InitCopy(env, path, config);
  }
  return all;
}

namespace {

// The copies named, resolved; the path first.
std::vector<std::string> NamedCopies(const std::string& dir, const StoreOptions& options) {
  std::vector<std::string> named = {CanonicalPath(dir)};
  for (const auto& m : options.mirrors) named.push_back(CanonicalPath(m));
  return named;
}

// The error when no named copy holds a store: each one and what is there.
[[noreturn]] void ThrowNoCopy(Env* env, const std::vector<std::string>& named) {
  std::string what, init = "vmback store init " + named[0];
  for (size_t i = 0; i < named.size(); i++) {
    what += (i ? "; " : "") + named[i] + " " + WhatIsThere(env, named[i]);
    if (i) init += " --mirror " + named[i];
  }
  if (named.size() == 1)
    ThrowNotFound("no vmback store at " + named[0] + ": it " + WhatIsThere(env, named[0]) +
                  ". If the store is on a disk that is not mounted, mount it (or open another copy of the "
                  "store); a new store is made with '" + init + "'");
  ThrowNotFound("no copy of the store is there: " + what +
                ". Mount a disk that holds a copy; only if there never was a store, make one with '" + init +
                "'");
}

// Locate's work, with the primary's config (read after its layout is
// checked, when `check` is given) for Open.
StoreCopies LocateCopies(Env* env, const std::string& given_dir, const StoreOptions& options, Logger* log,
                         const std::function<void(const std::string&)>& check, CopyConfig* primary) {
  const std::vector<std::string> named = NamedCopies(given_dir, options);
  StoreCopies out;
  for (const auto& c : named)
    if (env->Exists(JoinPath(c, "config.json"))) {
      out.primary = c;
      break;
    }
  if (out.primary.empty()) ThrowNoCopy(env, named);
  if (check) check(out.primary);
  *primary = ReadCopyConfig(env, out.primary);
  out.all = {out.primary};
  auto add = [&](const std::string& c) {
    if (std::find(out.all.begin(), out.all.end(), c) == out.all.end()) out.all.push_back(c);
  };
  if (!options.mirrors.empty()) {
    // The copies the user named, in their order.
    for (const auto& c : named) add(c);
  } else if (primary->json.contains("copies") && primary->json["copies"].is_array()) {
    // Those recorded. If the copy recorded under this copy's id is still at
    // its recorded path and that is not here, this directory is a duplicate
    // (cp -a) of it, not that copy: it must not write into the original's
    // mirrors.
    const auto& recorded = primary->json["copies"];
    bool duplicate = false;
    for (const auto& c : recorded) {
      if (!c.is_object() || c.value("copy_id", "") != primary->copy_id) continue;
      std::string path = c.value("path", "");
      if (!path.empty() && path.front() == '/' && CanonicalPath(path) != out.primary &&
          env->Exists(JoinPath(path, "config.json"))) {
        try {
          duplicate = ReadCopyConfig(env, path).copy_id == primary->copy_id;
        } catch (const Error&) {
        }
      }
    }
    if (duplicate) {
      if (recorded.size() > 1 && log)
        log->Warn(out.primary + " is a duplicate of a copy that is still at its recorded place; its "
                  "mirrors are not used (name them with --mirror to use them)");
    } else {
      for (const auto& c : recorded) {
        if (!c.is_object() || !c.contains("path") || !c["path"].is_string()) continue;
        if (c.value("copy_id", "") == primary->copy_id) continue;  // this copy, wherever it is now
        std::string path = c["path"].get<std::string>();
        if (path.empty()) continue;
        if (path.front() != '/') {  // written by something else than vmback: where would it be?
          if (log) log->Warn(out.primary + "/config.json records a copy at the relative path " + path +
                             "; not used (name the copy with --mirror)");
          continue;
        }
        add(CanonicalPath(path));
      }
    }
  }
  for (const auto& c : options.new_copies) add(CanonicalPath(c));
  return out;
}

}  // namespace

StoreCopies Store::Locate(Env* env, const std::string& dir, const StoreOptions& options) {
  CopyConfig primary;
  return LocateCopies(env, dir, options, nullptr, nullptr, &primary);
}

Store::Store(Env* env, std::string dir, Logger* log) : env_(env), dir_(std::move(dir)), log_(log) {}

Store::~Store() {
  // An unfinished pack belongs to a failed run: nothing names it. Best effort.
  try {
    if (writer_) env_->Remove(writer_->tmp_path());
  } catch (...) {
  }
}

std::unique_ptr<Store> Store::Open(Env* env, const std::string& given_dir, LockMode mode, Logger* log,
                                   const StoreOptions& options) {
  // The one place symlinks in the user's paths are followed; below it none.
  const bool writer = mode != LockMode::kShared;
  auto check_layout = [&](const std::string& dir) {
    if (size_t n = CheckCopyLayout(env, dir, writer))
      log->Info("tightened the modes of " + std::to_string(n) + " file(s) and directories in " + dir +
                " (a store is private: directories 0700, files 0600)");
  };
  CopyConfig primary;
  StoreCopies located = LocateCopies(env, given_dir, options, log, check_layout, &primary);
  const std::string& dir = located.primary;
  std::unique_ptr<Store> s(new Store(env, dir, log));
  std::string config_path = JoinPath(dir, "config.json");
  try {
    s->block_size_ = primary.json.at("block_size").get<uint32_t>();
    s->zstd_level_ = primary.json.value("zstd_level", kDefaultZstdLevel);
    s->config_ = primary.json;
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(config_path + ": damaged store config (" + e.what() + ")");
  }
  if (!IsValidBlockSize(s->block_size_, kMinStoreBlockSize))
    ThrowCorrupt(config_path + ": bad block_size " + std::to_string(s->block_size_) +
                 " (a power of two from 4096 to 16 MiB)");

  // Only a directory the user named in this command as a new copy may be
  // made one from an empty directory (Sync), or one that holds the marker
  // of an unfinished copy of this store: the paths recorded in config.json
  // come from a disk anyone may have written, and a path named in a config
  // file is an empty mount point whenever its disk is not mounted.
  for (const auto& c : options.new_copies) s->may_init_.insert(CanonicalPath(c));
  if (options.init_named)
    for (const auto& c : NamedCopies(given_dir, options)) s->may_init_.insert(c);
  s->copies_.push_back(dir);
  s->copy_ids_.push_back(primary.copy_id);
  struct Away {
    std::string copy, what, hint;
  };
  std::vector<Away> away;
  const std::string back = "once it is back, 'vmback store sync' brings it up to date";
  for (size_t i = 1; i < located.all.size(); i++) {
    const std::string& m = located.all[i];
    std::string what, hint = back;
    try {
      if (!env->Exists(JoinPath(m, "config.json"))) {
        what = WhatIsThere(env, m);
        if (UnfinishedCopy(env, m, primary.store_id)) {
          what = "holds an unfinished copy of the store";
          hint = "the next store sync, backup or run finishes it";
        } else if (s->may_init_.count(m)) {
          hint = env->Exists(m) && !IsEmptyDir(env, m) ? "a new copy is made only in an empty directory"
                                                       : "'vmback store sync' makes it a new copy";
        } else if (env->Exists(m)) {
          hint = "if its disk is not mounted, mount it; an empty directory is made a new copy only when the "
                 "command says so: 'vmback store sync --store " + dir + " --mirror " + m +
                 "', or 'vmback store sync -c CONFIG --init' with a config that names it";
        }
      } else {
        check_layout(m);
        CopyConfig other = ReadCopyConfig(env, m);
        if (other.store_id != primary.store_id) what = "holds a different store";
        else if (!other.copy_id.empty() && other.copy_id == primary.copy_id) continue;  // the same copy
        else s->copy_ids_.push_back(other.copy_id);
      }
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kConfig) throw;
      what = std::string("cannot be read (") + e.what() + ")";
    }
    if (what.empty()) {
      s->copies_.push_back(m);
    } else {
      s->absent_.push_back(m);
      away.push_back({m, what, hint});
    }
  }
  std::string present;
  for (const auto& c : s->copies_) present += (present.empty() ? "" : ", ") + c;
  const size_t n = s->copies_.size();
  for (const auto& a : away)
    log->Warn("copy " + a.copy + " " + a.what + "; going on with " + std::to_string(n) + " cop" +
              (n == 1 ? "y" : "ies") + " (" + present + "); " + a.hint);
  s->exclusive_ = writer;
  s->sole_ = mode == LockMode::kExclusive;
  // Writers one at a time ("write.lock", taken first: another writer's
  // message then names the holder); readers share "lock" with an appending
  // writer, and only prune and its kind keep them out.
  for (const auto& c : s->copies_) {
    if (writer)
      if (auto lock = TakeLock(env, c, "write.lock", LockMode::kExclusive, options.lock_wait_seconds, log))
        s->locks_.push_back(std::move(lock));
    if (auto lock = TakeLock(env, c, "lock", s->sole_ ? LockMode::kExclusive : LockMode::kShared,
                             options.lock_wait_seconds, log))
      s->read_locks_.push_back(std::move(lock));
  }
  // A reader's view: the points committed now. Listed before the index is
  // loaded, so every blob they name is in it (a manifest is written after
  // its packs and index files).
  if (!writer) s->pinned_points_ = s->ListPoints();
  if (writer) {
    for (const auto& c : s->copies_) {
      // Leftovers of a run that died: nothing names them.
      std::string tmp = JoinPath(c, "tmp");
      for (const auto& name : env->ListDir(tmp)) env->Remove(JoinPath(tmp, name));
      for (const auto& name : env->ListDir(c))
        if (name.find(".tmp-") != std::string::npos) env->Remove(JoinPath(c, name));
      for (const char* sub : {"points", "index"}) {
        std::string d = JoinPath(c, sub);
        for (const auto& name : env->ListDir(d))
          if (name.find(".tmp-") != std::string::npos) env->Remove(JoinPath(d, name));
      }
    }
  }
  s->LoadIndex();
  std::string damaged = JoinPath(dir, "damaged");
  if (env->Exists(damaged)) {
    std::string text = ReadFileToString(env, damaged, kMaxManifestSize);
    for (size_t pos = 0; pos + 64 <= text.size(); pos += 65) {
      Hash h;
      if (Hash::FromHex(std::string_view(text).substr(pos, 64), &h)) s->damaged_.insert(h);
    }
  }
  s->LoadLost();
  return s;
}

bool Store::MayMakeCopy(const std::string& dir) const {
  if (env_->Exists(JoinPath(dir, "config.json"))) return false;
  if (UnfinishedCopy(env_, dir, config_.value("store_id", ""))) {
    // What it holds is checked as any copy's layout; refused, it stays absent.
    try {
      CheckCopyLayout(env_, dir, false);
      return true;
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorrupt) throw;
      log_->Warn(std::string(e.what()) + "; the unfinished copy " + dir + " is left as it is");
      return false;
    }
  }
  if (!may_init_.count(dir)) return false;
  FileStatus st = env_->Status(dir);
  if (st.kind == FileKind::kMissing) return env_->Status(DirName(dir)).kind == FileKind::kDir;
  return IsEmptyDir(env_, dir);
}

void Store::MakeCopy(const std::string& dir) {
  const std::string store_id = config_.value("store_id", "");
  std::optional<std::string> unfinished = UnfinishedCopy(env_, dir, store_id);
  if (!env_->Exists(dir)) env_->MakeDir(dir);  // below an existing directory the user named
  if (unfinished) CheckCopyLayout(env_, dir, true);  // as MayMakeCopy did; modes narrowed
  if (env_->Status(dir).mode != kDirMode) env_->SetMode(dir, kDirMode);  // a directory the user made
  std::unique_ptr<FileLock> write_lock = env_->Lock(JoinPath(dir, "write.lock"), LockMode::kExclusive);
  auto lock = env_->Lock(JoinPath(dir, "lock"), sole_ ? LockMode::kExclusive : LockMode::kShared);
  // The same copy_id as the copy recorded at this path (a replaced disk),
  // or as the marker says; else a new one.
  std::string copy_id = unfinished ? *unfinished : "";
  if (copy_id.empty() && config_.contains("copies") && config_["copies"].is_array())
    for (const auto& c : config_["copies"])
      if (c.is_object() && c.value("path", "") == dir) copy_id = c.value("copy_id", "");
  if (copy_id.empty()) copy_id = RandomHex(8);
  // The marker first, config.json last: a copy cut short is recognised
  // (and finished by the next Sync), never taken for a whole one.
  WriteFileAtomic(env_, JoinPath(dir, kCopyMarker), CopyMarker(store_id, copy_id));
  nlohmann::json config = config_;
  config["copy_id"] = copy_id;
  InitCopy(env_, dir, config);
  copies_.push_back(dir);
  copy_ids_.push_back(copy_id);
  locks_.push_back(std::move(write_lock));
  read_locks_.push_back(std::move(lock));
  log_->Info("made " + dir + " a new copy of the store");
}

void Store::RecordCopies() {
  // Union of the lists, keyed by copy_id (by path for an entry without
  // one); a relative path (not written by vmback) is dropped.
  nlohmann::json list = nlohmann::json::array();
  std::set<std::string> keys;
  auto add = [&](const std::string& path, const std::string& copy_id) {
    if (path.empty() || path.front() != '/') return;
    if (keys.insert(copy_id.empty() ? "path " + path : copy_id).second)
      list.push_back({{"path", path}, {"copy_id", copy_id}});
  };
  std::vector<nlohmann::json> configs;
  for (const auto& c : copies_) {
    configs.push_back(ReadCopyConfig(env_, c).json);
    const auto& recorded = configs.back()["copies"];
    if (!recorded.is_array()) continue;
    for (const auto& e : recorded)
      if (e.is_object() && e.contains("path") && e["path"].is_string())
        add(e["path"].get<std::string>(), e.value("copy_id", ""));
  }
  for (size_t c = 0; c < copies_.size(); c++) add(copies_[c], copy_ids_[c]);
  for (size_t c = copies_.size(); c-- > 0;) {  // mirrors first, the primary last
    if (configs[c]["copies"] == list) continue;
    configs[c]["copies"] = list;
    WriteFileAtomic(env_, JoinPath(copies_[c], "config.json"), configs[c].dump(2) + "\n");
    log_->Info("recorded every copy in " + JoinPath(copies_[c], "config.json"));
  }
  config_["copies"] = list;
}

std::string Store::PackPath(size_t copy, const Hash& pack) const {
  std::string hex = pack.Hex();
  return copies_[copy] + "/packs/" + hex.substr(0, 2) + "/" + hex + ".pack";
}

std::vector<Hash> Store::ListPackFiles() const { return ListPackFiles(0); }

std::vector<Hash> Store::ListPackFiles(size_t copy) const {
  std::vector<Hash> packs;
  std::string root = JoinPath(copies_[copy], "packs");
  for (const auto& sub : env_->ListDir(root)) {
    if (sub.size() != 2) continue;
    for (const auto& name : env_->ListDir(JoinPath(root, sub))) {
      Hash h;
      if (EndsWith(name, ".pack") && name.compare(0, 2, sub) == 0 &&
          Hash::FromHex(name.substr(0, name.size() - 5), &h))
        packs.push_back(h);
    }
  }
  std::sort(packs.begin(), packs.end());
  return packs;
}

void Store::LoadIndex() {
  // A pack counts if any copy has it; which copies lack it is Sync's and
  // verify's business.
  std::string index_dir = JoinPath(dir_, "index");
  std::vector<std::string> index_files, damaged_files;
  std::vector<std::string> index_paths;  // the primary's, then what only mirrors have
  std::unordered_set<std::string> index_names;
  for (size_t c = 0; c < copies_.size(); c++)
    for (const auto& name : env_->ListDir(JoinPath(copies_[c], "index")))
      if (EndsWith(name, ".idx") && index_names.insert(name).second)
        index_paths.push_back(JoinPath(JoinPath(copies_[c], "index"), name));
  // The packs after the index files: every pack an index file names was
  // durable before it, so a backup running beside a reader never makes a
  // named pack look missing (packs newer than the listing are indexed from
  // their own tables).
  std::unordered_map<Hash, std::vector<size_t>, HashHasher> is_present;  // pack -> the copies that have it
  std::vector<Hash> present;
  for (size_t c = 0; c < copies_.size(); c++)
    for (const auto& p : ListPackFiles(c)) {
      auto& holders = is_present[p];
      if (holders.empty()) present.push_back(p);
      holders.push_back(c);
    }
  std::sort(present.begin(), present.end());
  for (const auto& path : index_paths) {
    const bool primary = DirName(path) == index_dir;
    try {
      std::string data;
      try {
        data = ReadFileToString(env_, path, kMaxIndexFileSize);
      } catch (const Error& e) {
        // A writer beside this reader folded it into a new one: its packs
        // are indexed from their own tables below.
        if (!exclusive_ && e.kind() != ErrorKind::kCorrupt && !env_->Exists(path)) continue;
        throw;
      }
      IndexFile f = DecodeIndexFile(data, path);
      for (auto& [pack, entries] : f.packs) {
        if (!is_present.count(pack)) {
          log_->Warn("pack " + PackPath(pack) + " is named by " + path +
                     " but missing; run 'vmback verify' to see what it affects");
          continue;
        }
        index_.AddEntries(index_.AddPack(pack), entries);
      }
      if (primary) index_files.push_back(path);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorrupt) throw;
      log_->Warn(std::string(e.what()) + "; rebuilding from the packs");
      if (primary) damaged_files.push_back(path);
    }
  }

  // Packs no index file covers (a crash between pack and index, or a deleted
  // index): read their own entry tables, from the first copy where the table
  // is whole. Where it is whole nowhere, the blobs a scan finds are indexed
  // for this session only: an index file is never written from a damaged
  // copy, or it would hide the pack's other blobs after a repair.
  IndexFile rebuilt;
  for (const auto& pack : present) {
    if (index_.HasPack(pack)) continue;
    unindexed_packs_.push_back(pack);
    std::vector<PackEntry> entries;
    std::optional<Error> damage;
    for (size_t c : is_present[pack]) {
      auto file = env_->OpenRead(PackPath(c, pack));
      try {
        entries = ReadPackEntries(file.get());
        damage.reset();
        break;
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kCorrupt) throw;
        if (!damage) damage = e;
      }
    }
    if (damage) {
      auto file = env_->OpenRead(PackPath(is_present[pack][0], pack));
      entries = ScanPackBlobs(file.get());
      log_->Warn(std::string(damage->what()) + "; recovered " + std::to_string(entries.size()) +
                 " blobs by scanning it");
      index_.AddEntries(index_.AddPack(pack), entries);
      continue;
    }
    index_.AddEntries(index_.AddPack(pack), entries);
    rebuilt.packs.emplace_back(pack, std::move(entries));
  }
  if (!rebuilt.packs.empty() && exclusive_)
    log_->Info("indexed " + std::to_string(rebuilt.packs.size()) + " pack(s) of " + dir_ +
               " that no index file covered");
  if (!exclusive_) return;

  // Writers keep the index tidy: persist what was rebuilt, and fold many
  // small index files into one (written before the old ones go).
  // A damaged index file is only a cache and its packs were re-read above.
  // It goes first: a rebuilt file may have the very same name.
  for (const auto& path : damaged_files) RemoveEverywhere("index/" + BaseName(path));
  if (index_files.size() + (rebuilt.packs.empty() ? 0 : 1) > kMaxIndexFiles) {
    IndexFile all;
    std::vector<std::vector<PackEntry>> by_pack(index_.packs().size());
    for (const auto& [id, loc] : index_.entries()) by_pack[loc.pack].push_back(loc.ToEntry(id));
    for (const auto& [id, locs] : index_.alternates())
      for (const auto& loc : locs) by_pack[loc.pack].push_back(loc.ToEntry(id));
    for (size_t i = 0; i < by_pack.size(); i++)
      all.packs.emplace_back(index_.packs()[i], std::move(by_pack[i]));
    std::string data = EncodeIndexFile(all);
    std::string name = Sha256(data).Hex() + ".idx";
    WriteEverywhere("index/" + name, data);
    for (const auto& old : index_files)
      if (BaseName(old) != name) RemoveEverywhere("index/" + BaseName(old));
  } else if (!rebuilt.packs.empty()) {
    // A crashed run may have renamed these packs without the directory
    // fsync: make them durable before an index names them.
    std::unordered_set<std::string> dirs;
    for (const auto& [pack, entries] : rebuilt.packs) dirs.insert(DirName(PackPath(pack)));
    for (const auto& d : dirs)
      if (env_->Exists(d)) env_->SyncDir(d);
    env_->SyncDir(JoinPath(dir_, "packs"));
    std::string data = EncodeIndexFile(rebuilt);
    WriteEverywhere("index/" + Sha256(data).Hex() + ".idx", data);
  }
}

bool Store::AnyDamaged(const std::vector<Hash>& ids) const {
  std::shared_lock l(mu_);
  if (damaged_.empty() && lost_.empty()) return false;
  for (const auto& id : ids)
    if (damaged_.count(id) || lost_.count(id)) return true;
  return false;
}

bool Store::Has(const Hash& id) const {
  std::shared_lock l(mu_);
  if (pending_.count(id)) return true;
  return index_.Find(id) != nullptr && !damaged_.count(id);
}

void Store::SetDamaged(const std::vector<Hash>& ids) {
  {
    std::unique_lock l(mu_);
    damaged_.clear();
    damaged_.insert(ids.begin(), ids.end());
  }
  SaveDamaged();
}

void Store::SaveDamaged() {
  std::string text;
  {
    std::shared_lock l(mu_);
    std::vector<Hash> sorted(damaged_.begin(), damaged_.end());
    std::sort(sorted.begin(), sorted.end());
    for (const auto& h : sorted) text += h.Hex() + "\n";
  }
  if (!exclusive_) return;  // a reader (read-only media) keeps it in memory only
  if (!text.empty()) WriteEverywhere("damaged", text);
  else RemoveEverywhere("damaged");
}

// The file "lost": "vmback-lost 1\n", one 64-hex blob id per line, sorted,
// then "sha256:" and the hex SHA-256 of everything before that line.
namespace {
constexpr char kLostHeader[] = "vmback-lost 1\n";
constexpr uint64_t kMaxLostSize = 8u << 20;  // about 120,000 ids

std::string EncodeLost(std::vector<Hash> ids) {
  std::sort(ids.begin(), ids.end());
  std::string body = kLostHeader;
  for (const auto& h : ids) body += h.Hex() + "\n";
  return body + "sha256:" + Sha256(body).Hex() + "\n";
}

std::vector<Hash> DecodeLost(const std::string& data, const std::string& path) {
  const std::string header = kLostHeader;
  auto sum_at = data.rfind("sha256:");
  if (data.compare(0, header.size(), header) != 0 || sum_at == std::string::npos || sum_at < header.size() ||
      data.size() != sum_at + 7 + 64 + 1 || data.back() != '\n')
    ThrowCorrupt(path + ": not a vmback list of lost blobs (bad header or checksum line)");
  std::string body = data.substr(0, sum_at);
  if (Sha256(body).Hex() != data.substr(sum_at + 7, 64)) ThrowCorrupt(path + ": checksum mismatch");
  std::vector<Hash> ids;
  for (size_t pos = header.size(); pos < body.size(); pos += 65) {
    Hash h;
    if (pos + 65 > body.size() || body[pos + 64] != '\n' || !Hash::FromHex(std::string_view(body).substr(pos, 64), &h))
      ThrowCorrupt(path + ": malformed blob id on line " + std::to_string((pos - header.size()) / 65 + 2));
    ids.push_back(h);
  }
  return ids;
}
}  // namespace

void Store::LoadLost() {
  std::string path = JoinPath(dir_, "lost");
  if (!env_->Exists(path)) return;
  try {
    std::vector<Hash> ids = DecodeLost(ReadFileToString(env_, path, kMaxLostSize), path);
    std::unique_lock l(mu_);
    lost_.insert(ids.begin(), ids.end());
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kCorrupt) throw;
    log_->Warn(std::string(e.what()) + "; ignored: the blocks it recorded lost are reported as damage");
  }
}

bool Store::IsLost(const Hash& id) const {
  std::shared_lock l(mu_);
  return lost_.count(id) > 0;
}

std::vector<Hash> Store::Lost() const {
  std::shared_lock l(mu_);
  return {lost_.begin(), lost_.end()};
}

void Store::AddLost(const std::vector<Hash>& ids) {
  Guard([&] {
    {
      std::unique_lock l(mu_);
      lost_.insert(ids.begin(), ids.end());
    }
    SaveLost();
  });
}

void Store::ForgetLost(const std::vector<Hash>& ids) {
  Guard([&] {
    {
      std::unique_lock l(mu_);
      for (const auto& id : ids) lost_.erase(id);
    }
    SaveLost();
  });
}

void Store::SaveLost() {
  std::vector<Hash> ids = Lost();
  if (ids.empty()) RemoveEverywhere("lost");
  else WriteEverywhere("lost", EncodeLost(std::move(ids)));
}

bool Store::Put(const EncodedBlob& blob) {
  return Guard([&] { return PutLocked(blob); });
}

bool Store::PutLocked(const EncodedBlob& blob) {
  if (Has(blob.id)) return false;
  if (!writer_) {
    // A random name, created O_EXCL: nothing planted under it is opened.
    writer_ = std::make_unique<PackWriter>(env_, TempPathFor(dir_ + "/tmp/pack"));
  }
  writer_->Add(blob);
  {
    std::unique_lock l(mu_);
    pending_[blob.id] = true;
  }
  stats_.blobs_written++;
  stats_.raw_bytes_written += blob.raw_len;
  stats_.stored_bytes_written += blob.stored.size() + kBlobHeaderSize;
  if (writer_->size() >= pack_target_) FinishPack();
  return true;
}

void Store::Rewrite(BlobType type, std::string_view raw) {
  Hash id = Sha256(raw);
  EncodedBlob blob = EncodeBlob(id, type, raw, zstd_level_);
  Guard([&] {
    {
      std::unique_lock l(mu_);
      damaged_.insert(id);  // makes PutLocked write it; a finished pack clears it
    }
    PutLocked(blob);
  });
}

void Store::DropPacks(const std::vector<Hash>& doomed_list) {
  Guard([&] {
    if (writer_ || !session_index_.packs.empty())
      throw Error(ErrorKind::kOther, "internal: DropPacks before Flush");
    std::unordered_set<Hash, HashHasher> doomed(doomed_list.begin(), doomed_list.end());
    IndexFile all;
    {
      std::shared_lock l(mu_);
      std::vector<std::vector<PackEntry>> by_pack(index_.packs().size());
      for (const auto& [id, loc] : index_.entries()) by_pack[loc.pack].push_back(loc.ToEntry(id));
      for (const auto& [id, locs] : index_.alternates())
        for (const auto& loc : locs) by_pack[loc.pack].push_back(loc.ToEntry(id));
      for (size_t i = 0; i < by_pack.size(); i++)
        if (!doomed.count(index_.packs()[i])) all.packs.emplace_back(index_.packs()[i], std::move(by_pack[i]));
    }
    std::string data = EncodeIndexFile(all);
    std::string name = Sha256(data).Hex() + ".idx";
    WriteEverywhere("index/" + name, data);
    for (const auto& c : copies_) {
      std::string dir = JoinPath(c, "index");
      for (const auto& n : env_->ListDir(dir))
        if (EndsWith(n, ".idx") && n != name) env_->Remove(JoinPath(dir, n));
      env_->SyncDir(dir);
    }
    for (size_t c = 0; c < copies_.size(); c++) {
      std::unordered_set<std::string> dirs;
      for (const auto& p : doomed) {
        std::string path = PackPath(c, p);
        if (env_->Exists(path)) {
          env_->Remove(path);
          dirs.insert(DirName(path));
        }
      }
      for (const auto& d : dirs) env_->SyncDir(d);
    }
    {
      std::lock_guard<std::mutex> fl(files_mu_);
      open_packs_.clear();
    }
    std::unique_lock l(mu_);
    index_ = BlobIndex();
    l.unlock();
    LoadIndex();
  });
}

Hash Store::PutRaw(BlobType type, std::string_view raw) {
  Hash id = Sha256(raw);
  if (!Has(id)) Put(EncodeBlob(id, type, raw, zstd_level_));
  return id;
}

void Store::FinishPack() {
  if (!writer_) return;
  std::unique_ptr<PackWriter> w = std::move(writer_);
  if (w->count() == 0) {
    env_->Remove(w->tmp_path());
    return;
  }
  Hash id = w->Finish();
  std::string path = PackPath(id);
  std::string sub = DirName(path);
  if (!synced_dirs_.count(sub)) {
    // The entry of packs/XX in packs/ must be durable too, also when an
    // earlier run that crashed made the directory.
    env_->MakeDir(sub);
    env_->SyncDir(JoinPath(dir_, "packs"));
    synced_dirs_.insert(sub);
  }
  env_->Rename(w->tmp_path(), path);
  env_->SyncDir(sub);
  // Mirrors get a verified byte copy (from the page cache, so cheap).
  for (size_t c = 1; c < copies_.size(); c++) CopyPack(id, 0, c);
  {
    std::unique_lock l(mu_);
    index_.AddEntries(index_.AddPack(id), w->entries());
    for (const auto& e : w->entries()) {
      pending_.erase(e.id);
      if (damaged_.erase(e.id)) damaged_changed_ = true;  // a fresh copy exists now
    }
  }
  session_index_.packs.emplace_back(id, w->entries());
  stats_.packs_written++;
}

void Store::Flush() {
  Guard([&] {
    FinishPack();
    if (session_index_.packs.empty()) return;
    std::string data = EncodeIndexFile(session_index_);
    WriteEverywhere("index/" + Sha256(data).Hex() + ".idx", data);
    session_index_.packs.clear();
    if (damaged_changed_) SaveDamaged();
    damaged_changed_ = false;
  });
}

std::shared_ptr<ReadableFile> Store::OpenPack(size_t copy, uint32_t pack) const {
  std::lock_guard<std::mutex> l(files_mu_);
  auto key = std::make_pair(copy, pack);
  auto it = open_packs_.find(key);
  if (it != open_packs_.end()) return it->second;
  Hash id;
  {
    std::shared_lock il(mu_);
    id = index_.packs().at(pack);
  }
  if (open_packs_.size() >= 64) open_packs_.clear();
  std::shared_ptr<ReadableFile> f = env_->OpenRead(PackPath(copy, id));
  open_packs_[key] = f;
  return f;
}

std::string Store::ReadBlobFrom(size_t copy, const BlobLocation& loc, const Hash& id) const {
  // ReadBlob bounds the index's lengths by the pack's size before allocating.
  return ReadBlob(OpenPack(copy, loc.pack).get(), loc.ToEntry(id));
}

std::string Store::Get(const Hash& id) const {
  std::vector<BlobLocation> locs;
  {
    std::shared_lock l(mu_);
    locs = index_.Locations(id);
    if (locs.empty()) {
      if (pending_.count(id))
        throw Error(ErrorKind::kOther, "internal: blob " + id.Hex() + " read before its pack was finished");
      if (lost_.count(id))
        ThrowNotFound("blob " + id.Hex() + " of store " + dir_ +
                      " was recorded lost by 'vmback repair' (no copy had it whole)");
      ThrowNotFound("blob " + id.Hex() + " is missing from store " + dir_);
    }
  }
  // Every copy of every location is tried before the blob is declared
  // damaged. Copies that gave wrong or no bytes are repaired from the one
  // that was right; an I/O error is only reported.
  std::optional<Error> first_error;
  for (const auto& loc : locs) {
    std::vector<size_t> bad_copies;
    for (size_t c = 0; c < copies_.size(); c++) {
      try {
        std::string data = ReadBlobFrom(c, loc, id);
        for (size_t b : read_repair_ ? bad_copies : std::vector<size_t>{}) {
          Hash pack;
          {
            std::shared_lock l(mu_);
            pack = index_.packs().at(loc.pack);
          }
          const_cast<Store*>(this)->RepairPack(pack, b);
        }
        return data;
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kCorrupt && e.kind() != ErrorKind::kIo && e.kind() != ErrorKind::kNotFound)
          throw;
        if (e.kind() == ErrorKind::kIo) log_->Warn(std::string(e.what()) + " (an I/O error; trying another copy)");
        else bad_copies.push_back(c);
        if (!first_error) first_error = e;
      }
    }
  }
  if (first_error->kind() == ErrorKind::kCorrupt) {
    // No good copy: let the next Put of this id write a fresh one.
    std::unique_lock l(mu_);
    damaged_.insert(id);
  }
  throw *first_error;
}

std::string Store::Get(const Hash& id, BlobType type) const {
  {
    std::shared_lock l(mu_);
    const BlobLocation* p = index_.Find(id);
    if (p && p->type != type)
      ThrowCorrupt("blob " + id.Hex() + " in " + dir_ + " has the wrong type");
  }
  return Get(id);
}

BlobIndex Store::IndexSnapshot() const {
  std::shared_lock l(mu_);
  return index_;
}

void Store::Upgrade(double wait_seconds) {
  if (sole_) return;
  if (!exclusive_) throw Error(ErrorKind::kOther, "internal: store " + dir_ + " opened read-only");
  // flock(2) locks belong to the open file: the shared one goes first. This
  // process holds "write.lock" all along, so no other writer comes between.
  read_locks_.clear();
  try {
    for (const auto& c : copies_)
      if (auto lock = TakeLock(env_, c, "lock", LockMode::kExclusive, wait_seconds, log_))
        read_locks_.push_back(std::move(lock));
  } catch (const Error&) {
    read_locks_.clear();
    for (const auto& c : copies_)
      if (auto lock = TakeLock(env_, c, "lock", LockMode::kShared, wait_seconds, log_))
        read_locks_.push_back(std::move(lock));
    throw;
  }
  sole_ = true;
}

}  // namespace vmback
