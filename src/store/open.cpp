// Opening a store: laying out a new one (Init), finding its copies (Locate),
// checking each copy's layout before anything in it is touched, taking its
// locks (Open, Upgrade), and adding or recording copies.
#include <algorithm>
#include <chrono>
#include <functional>
#include <optional>
#include <set>

#include "store/store.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {
constexpr char kFormatName[] = "vmback-store";

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
    if (version > kEncryptedStoreFormatVersion)
      throw Error(ErrorKind::kConfig, dir + " has store format version " + std::to_string(version) +
                                          ", newer than this vmback supports (" +
                                          std::to_string(kEncryptedStoreFormatVersion) + "); upgrade vmback");
    if (version < 1) ThrowCorrupt(config_path + ": bad format version");
    // Version 2 is exactly an encrypted store.
    if ((version == kEncryptedStoreFormatVersion) != c.json.contains("encryption"))
      ThrowCorrupt(config_path + ": format version " + std::to_string(version) +
                   (version == kEncryptedStoreFormatVersion ? " without" : " with") + " an 'encryption' object");
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

// The "generation" of a config.json's "encryption" object: how many key
// changes made it (0 when it says none).
uint64_t KeysGeneration(const nlohmann::json& encryption) {
  auto it = encryption.find("generation");
  return it != encryption.end() && it->is_number_unsigned() ? it->get<uint64_t>() : 0;
}

// Empty, but for vmback's own lock files: a new copy whose making was cut
// short before its marker was written holds only those.
bool IsEmptyDir(Env* env, const std::string& dir) {
  if (env->Status(dir).kind != FileKind::kDir) return false;
  for (const auto& name : env->ListDir(dir))
    if (name != "write.lock" && name != "lock") return false;
  return true;
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
        log->Info("lock " + r + "; taken over, going on");
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
  for (const auto& c : copies)
    if (!IsBucketUrl(c)) (OnRootFileSystem(c) ? on_root : own).push_back(c);  // a bucket: no disk to mount
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
                                     const std::vector<std::string>& mirrors, const StoreInitEncryption* encrypt) {
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
  const std::string store_id = RandomHex(16);
  nlohmann::json config = {
      {"format", kFormatName},
      {"version", kStoreFormatVersion},
      {"store_id", store_id},
      {"block_size", block_size},
      {"compression", "zstd"},
      {"zstd_level", kDefaultZstdLevel},
      {"copies", copies},
  };
  if (encrypt) {
    // The first key before anything is written: without one there is no store.
    StoreEncryption e;
    const SecretKey master = SecretKey::Random();
    e.keys.push_back(WrapFromSources(env, encrypt->sources, master, store_id, encrypt->label, encrypt->kdf));
    e.key_check = KeyCheck(master);
    config["version"] = kEncryptedStoreFormatVersion;
    config["encryption"] = EncryptionToJson(e);
  }
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
        // A copy in a bucket is used only where the command or its config
        // names it: a config.json from a disk must not send the backups to
        // a bucket it names, nor make every command reach the network.
        if (IsBucketUrl(path)) continue;
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
    for (const auto& w : writers_)
      if (w) env_->Remove(w->tmp_path());
  } catch (...) {
  }
}

std::unique_ptr<Store> Store::Open(Env* env, const std::string& given_dir, LockMode mode, Logger* log,
                                   const StoreOptions& options) {
  // The one place symlinks in the user's paths are followed; below it none.
  const bool writer = mode != LockMode::kShared;
  auto check_layout = [&](const std::string& dir) {
    if (size_t n = CheckCopyLayout(env, dir, writer))
      log->Info("tightened the modes of " + Counted(n, "file") + " and directories in " + dir +
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
  if (options.require_encrypted && !primary.json.contains("encryption"))
    ThrowConfig("store " + dir + " is not encrypted, and the configuration says it must be ([target] encrypt = "
                "true): refused, nothing written (was the disk swapped?)");
  if (primary.json.contains("encryption")) {
    // Before any lock is taken: a prompt may wait for a person.
    StoreEncryption enc = EncryptionFromJson(primary.json["encryption"], config_path);
    s->keys_ = enc.keys;
    s->key_check_ = enc.key_check;
    if (options.without_key) {
      s->keyless_ = true;
    } else {
      s->master_ = UnlockMasterKey(env, options.keys, enc, primary.store_id, dir);
      s->sealer_ = std::make_unique<Sealer>(*s->master_);
    }
  }

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
          if (!env->Exists(m) || IsEmptyDir(env, m)) {
            // Named by this command (store sync) to become a copy: it is made
            // by the sync that follows, nothing to warn about.
            log->Info("copy " + m + " " + what + ": it is made a new copy of the store");
            s->absent_.push_back(m);
            continue;
          }
          hint = "a new copy is made only in an empty directory";
        } else if (env->Exists(m)) {
          hint = "if its disk is not mounted, mount it; an empty directory is made a new copy only when the "
                 "command says so: 'vmback store sync --store " + dir + " --mirror " + m +
                 "', or 'vmback store sync -c CONFIG --init' with a config that names it";
        }
      } else {
        check_layout(m);
        CopyConfig other = ReadCopyConfig(env, m);
        if (other.store_id != primary.store_id) {
          what = "holds a different store";
          hint = "it is not a copy of this one (another store's disk, or the wrong one mounted there), and "
                 "nothing is ever written to it; name the right disk, or remove it from the copies with "
                 "'vmback store sync --mirror' naming the copies to keep";
        }
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
  if (s->keyless_) return s;  // its index is sealed: copies only
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

void Store::ThrowKeyless() const {
  ThrowConfig("store " + dir_ + " is encrypted and was opened without its key, which this needs: give --key-file "
              "FILE, VMBACK_PASSPHRASE_FILE or a systemd credential");
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
  if (st.kind == FileKind::kMissing)  // a prefix in a bucket has nothing above it to check
    return IsBucketUrl(dir) || env_->Status(DirName(dir)).kind == FileKind::kDir;
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
  // An encrypted store's keys: every present copy gets those of the newest
  // generation among them (a key added, removed or given a new passphrase
  // while a copy was absent), taken only from a copy whose key check is
  // this store's and whose keys are well formed.
  nlohmann::json newest_keys;
  if (encrypted()) {
    newest_keys = config_["encryption"];
    for (size_t c = 0; c < copies_.size(); c++) {
      const nlohmann::json& e = configs[c].contains("encryption") ? configs[c]["encryption"] : nlohmann::json();
      if (!e.is_object() || e.value("key_check", "") != key_check_ ||
          KeysGeneration(e) <= KeysGeneration(newest_keys))
        continue;
      try {
        EncryptionFromJson(e, JoinPath(copies_[c], "config.json"));
        newest_keys = e;
      } catch (const Error& err) {
        if (err.kind() != ErrorKind::kCorrupt) throw;
        log_->Warn(err.what());
      }
    }
  }
  for (size_t c = copies_.size(); c-- > 0;) {  // mirrors first, the primary last
    const std::string path = JoinPath(copies_[c], "config.json");
    bool changed = false;
    if (configs[c]["copies"] != list) {
      configs[c]["copies"] = list;
      log_->Info("recorded every copy in " + path);
      changed = true;
    }
    if (!newest_keys.is_null() && configs[c]["encryption"] != newest_keys) {
      configs[c]["encryption"] = newest_keys;
      log_->Info("brought the keys in " + path + " up to date (key change " +
                 std::to_string(KeysGeneration(newest_keys)) + ")");
      changed = true;
    }
    if (changed) WriteFileAtomic(env_, path, configs[c].dump(2) + "\n");
  }
  config_["copies"] = list;
  if (!newest_keys.is_null()) {
    config_["encryption"] = newest_keys;
    keys_ = EncryptionFromJson(newest_keys, JoinPath(dir_, "config.json")).keys;
  }
}

void Store::SetKeys(const std::vector<WrappedKey>& keys) {
  Guard([&] {
    if (!encrypted()) ThrowConfig("store " + dir_ + " is not encrypted");
    StoreEncryption e{keys, key_check_};
    nlohmann::json j = EncryptionToJson(e);
    EncryptionFromJson(j, "the new keys");  // the same checks a reader makes
    // Counted past every present copy's count, so that Sync brings a copy
    // absent now up to these keys (RecordCopies).
    std::vector<nlohmann::json> configs;
    uint64_t generation = KeysGeneration(config_["encryption"]);
    for (const auto& c : copies_) {
      configs.push_back(ReadCopyConfig(env_, c).json);
      if (configs.back().contains("encryption"))
        generation = std::max(generation, KeysGeneration(configs.back()["encryption"]));
    }
    j["generation"] = generation + 1;
    for (size_t c = copies_.size(); c-- > 0;) {  // mirrors first, the primary last
      configs[c]["encryption"] = j;
      WriteFileAtomic(env_, JoinPath(copies_[c], "config.json"), configs[c].dump(2) + "\n");
    }
    config_["encryption"] = j;
    keys_ = keys;
  });
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
