#include "store/store.h"

#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <optional>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {
constexpr char kFormatName[] = "vmback-store";
constexpr size_t kMaxIndexFiles = 32;

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

bool PointNameLess(const std::string& a, const std::string& b) {
  // "NAME" is the first point of its second, then "NAME.2", "NAME.3", ...
  auto split = [](const std::string& s) -> std::pair<std::string, uint64_t> {
    auto dot = s.rfind('.');
    if (dot == std::string::npos || dot + 1 == s.size() || dot + 10 < s.size()) return {s, 1};
    uint64_t n = 0;
    for (size_t i = dot + 1; i < s.size(); i++) {
      if (s[i] < '0' || s[i] > '9') return {s, 1};
      n = n * 10 + static_cast<uint64_t>(s[i] - '0');
    }
    return {s.substr(0, dot), n};
  };
  return split(a) < split(b);
}

void Store::Init(Env* env, const std::string& dir, uint32_t block_size) {
  if (block_size < 4096 || block_size > (16u << 20) || (block_size & (block_size - 1)))
    ThrowConfig("block size " + std::to_string(block_size) +
                " must be a power of two between 4 KiB and 16 MiB");
  env->MakeDir(dir);
  if (env->Exists(JoinPath(dir, "config.json")))
    ThrowConfig(dir + " is already a vmback store");
  if (!env->ListDir(dir).empty())
    ThrowConfig(dir + " is not empty; a new store needs an empty or new directory");
  for (const char* sub : {"packs", "index", "points", "tmp"}) env->MakeDir(JoinPath(dir, sub));
  nlohmann::json config = {
      {"format", kFormatName},
      {"version", kStoreFormatVersion},
      {"block_size", block_size},
      {"compression", "zstd"},
      {"zstd_level", 3},
  };
  WriteFileAtomic(env, JoinPath(dir, "config.json"), config.dump(2) + "\n");
  env->SyncDir(dir);
}

Store::Store(Env* env, std::string dir, Logger* log) : env_(env), dir_(std::move(dir)), log_(log) {}

Store::~Store() {
  // An unfinished pack belongs to a failed run: nothing names it. Best effort.
  if (writer_) {
    try {
      env_->Remove(writer_->tmp_path());
    } catch (...) {
    }
  }
}

std::unique_ptr<Store> Store::Open(Env* env, const std::string& dir, LockMode mode, Logger* log) {
  if (!env->Exists(dir)) ThrowNotFound("store " + dir + " does not exist (create it with 'vmback store init')");
  std::string config_path = JoinPath(dir, "config.json");
  if (!env->Exists(config_path)) ThrowNotFound(dir + " is not a vmback store (no config.json)");
  std::unique_ptr<Store> s(new Store(env, dir, log));
  nlohmann::json config;
  try {
    config = nlohmann::json::parse(ReadFileToString(env, config_path));
    if (config.at("format").get<std::string>() != kFormatName)
      ThrowCorrupt(config_path + ": not a vmback store config");
    int version = config.at("version").get<int>();
    if (version > kStoreFormatVersion)
      throw Error(ErrorKind::kConfig, dir + " has store format version " + std::to_string(version) +
                                          ", newer than this vmback supports (" +
                                          std::to_string(kStoreFormatVersion) + "); upgrade vmback");
    if (version < 1) ThrowCorrupt(config_path + ": bad format version");
    s->block_size_ = config.at("block_size").get<uint32_t>();
    s->zstd_level_ = config.value("zstd_level", 3);
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(config_path + ": damaged store config (" + e.what() + ")");
  }
  if (s->block_size_ < 4096 || (s->block_size_ & (s->block_size_ - 1)))
    ThrowCorrupt(config_path + ": bad block_size");
  s->lock_ = env->Lock(JoinPath(dir, "lock"), mode);
  s->exclusive_ = mode == LockMode::kExclusive;
  if (mode == LockMode::kExclusive) {
    // Leftovers of a run that died: nothing names them.
    std::string tmp = JoinPath(dir, "tmp");
    for (const auto& name : env->ListDir(tmp)) env->Remove(JoinPath(tmp, name));
    for (const auto& name : env->ListDir(dir))
      if (name.find(".tmp-") != std::string::npos) env->Remove(JoinPath(dir, name));
    for (const char* sub : {"points", "index"}) {
      std::string d = JoinPath(dir, sub);
      for (const auto& name : env->ListDir(d))
        if (name.find(".tmp-") != std::string::npos) env->Remove(JoinPath(d, name));
    }
  }
  s->LoadIndex();
  std::string damaged = JoinPath(dir, "damaged");
  if (env->Exists(damaged)) {
    std::string text = ReadFileToString(env, damaged);
    for (size_t pos = 0; pos + 64 <= text.size(); pos += 65) {
      Hash h;
      if (Hash::FromHex(std::string_view(text).substr(pos, 64), &h)) s->damaged_.insert(h);
    }
  }
  return s;
}

std::string Store::PackPath(const Hash& pack) const {
  std::string hex = pack.Hex();
  return dir_ + "/packs/" + hex.substr(0, 2) + "/" + hex + ".pack";
}

std::string Store::ManifestPath(const std::string& point) const {
  return dir_ + "/points/" + point + ".json";
}

std::vector<Hash> Store::ListPackFiles() const {
  std::vector<Hash> packs;
  std::string root = JoinPath(dir_, "packs");
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
  std::vector<Hash> present = ListPackFiles();
  std::unordered_map<Hash, bool, HashHasher> is_present;
  for (const auto& p : present) is_present[p] = true;

  std::string index_dir = JoinPath(dir_, "index");
  std::vector<std::string> index_files, damaged_files;
  for (const auto& name : env_->ListDir(index_dir)) {
    if (!EndsWith(name, ".idx")) continue;
    std::string path = JoinPath(index_dir, name);
    try {
      IndexFile f = DecodeIndexFile(ReadFileToString(env_, path), path);
      for (auto& [pack, entries] : f.packs) {
        if (!is_present.count(pack)) {
          log_->Warn("pack " + PackPath(pack) + " is named by " + path +
                     " but missing; run 'vmback verify' to see what it affects");
          continue;
        }
        index_.AddEntries(index_.AddPack(pack), entries);
      }
      index_files.push_back(path);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorrupt) throw;
      log_->Warn(std::string(e.what()) + "; rebuilding from the packs");
      damaged_files.push_back(path);
    }
  }

  // Packs no index file covers (a crash between pack and index, or a deleted
  // index): read their own entry tables.
  IndexFile rebuilt;
  for (const auto& pack : present) {
    if (index_.HasPack(pack)) continue;
    std::string path = PackPath(pack);
    auto file = env_->OpenRead(path);
    std::vector<PackEntry> entries;
    try {
      entries = ReadPackEntries(file.get());
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorrupt) throw;
      entries = ScanPackBlobs(file.get());
      log_->Warn(std::string(e.what()) + "; recovered " + std::to_string(entries.size()) +
                 " blobs by scanning it");
    }
    index_.AddEntries(index_.AddPack(pack), entries);
    rebuilt.packs.emplace_back(pack, std::move(entries));
  }
  if (!rebuilt.packs.empty())
    log_->Info("indexed " + std::to_string(rebuilt.packs.size()) + " pack(s) of " + dir_ +
               " that no index file covered");
  if (!exclusive_) return;

  // Writers keep the index tidy: persist what was rebuilt, and fold many
  // small index files into one (written before the old ones go).
  // A damaged index file is only a cache and its packs were re-read above.
  // It goes first: a rebuilt file may have the very same name.
  for (const auto& path : damaged_files) env_->Remove(path);
  if (index_files.size() + (rebuilt.packs.empty() ? 0 : 1) > kMaxIndexFiles) {
    IndexFile all;
    std::vector<std::vector<PackEntry>> by_pack(index_.packs().size());
    for (const auto& [id, loc] : index_.entries()) by_pack[loc.pack].push_back(loc.ToEntry(id));
    for (const auto& [id, locs] : index_.alternates())
      for (const auto& loc : locs) by_pack[loc.pack].push_back(loc.ToEntry(id));
    for (size_t i = 0; i < by_pack.size(); i++)
      all.packs.emplace_back(index_.packs()[i], std::move(by_pack[i]));
    std::string data = EncodeIndexFile(all);
    std::string path = index_dir + "/" + Sha256(data).Hex() + ".idx";
    WriteFileAtomic(env_, path, data);
    for (const auto& old : index_files)
      if (old != path) env_->Remove(old);
    env_->SyncDir(index_dir);
  } else if (!rebuilt.packs.empty()) {
    // A crashed run may have renamed these packs without the directory
    // fsync: make them durable before an index names them.
    std::unordered_set<std::string> dirs;
    for (const auto& [pack, entries] : rebuilt.packs) dirs.insert(DirName(PackPath(pack)));
    for (const auto& d : dirs) env_->SyncDir(d);
    env_->SyncDir(JoinPath(dir_, "packs"));
    std::string data = EncodeIndexFile(rebuilt);
    WriteFileAtomic(env_, index_dir + "/" + Sha256(data).Hex() + ".idx", data);
  }
}

bool Store::AnyDamaged(const std::vector<Hash>& ids) const {
  std::shared_lock l(mu_);
  if (damaged_.empty()) return false;
  for (const auto& id : ids)
    if (damaged_.count(id)) return true;
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
  std::string path = JoinPath(dir_, "damaged");
  if (!text.empty()) WriteFileAtomic(env_, path, text);
  else if (env_->Exists(path)) env_->Remove(path);
}

template <typename Fn>
auto Store::Guard(Fn fn) -> decltype(fn()) {
  if (broken_) throw Error(ErrorKind::kOther, "store " + dir_ + " is unusable after a failed write");
  if (!exclusive_) throw Error(ErrorKind::kOther, "internal: store " + dir_ + " opened read-only");
  try {
    return fn();
  } catch (...) {
    broken_ = true;
    throw;
  }
}

bool Store::Put(const EncodedBlob& blob) {
  return Guard([&] { return PutLocked(blob); });
}

bool Store::PutLocked(const EncodedBlob& blob) {
  if (Has(blob.id)) return false;
  if (!writer_) {
    std::string tmp = dir_ + "/tmp/pack-" + std::to_string(::getpid()) + "-" +
                      std::to_string(++pack_counter_);
    writer_ = std::make_unique<PackWriter>(env_, tmp);
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
    WriteFileAtomic(env_, dir_ + "/index/" + Sha256(data).Hex() + ".idx", data);
    session_index_.packs.clear();
    if (damaged_changed_) SaveDamaged();
    damaged_changed_ = false;
  });
}

std::shared_ptr<ReadableFile> Store::OpenPack(uint32_t pack) const {
  std::lock_guard<std::mutex> l(files_mu_);
  auto it = open_packs_.find(pack);
  if (it != open_packs_.end()) return it->second;
  Hash id;
  {
    std::shared_lock il(mu_);
    id = index_.packs().at(pack);
  }
  if (open_packs_.size() >= 64) open_packs_.clear();
  std::shared_ptr<ReadableFile> f = env_->OpenRead(PackPath(id));
  open_packs_[pack] = f;
  return f;
}

std::string Store::Get(const Hash& id) const {
  std::vector<BlobLocation> locs;
  {
    std::shared_lock l(mu_);
    locs = index_.Locations(id);
    if (locs.empty()) {
      if (pending_.count(id))
        throw Error(ErrorKind::kOther, "internal: blob " + id.Hex() + " read before its pack was finished");
      ThrowNotFound("blob " + id.Hex() + " is missing from store " + dir_);
    }
  }
  // Every copy is tried before the blob is declared damaged.
  std::optional<Error> first_error;
  for (const auto& loc : locs) {
    try {
      auto file = OpenPack(loc.pack);
      std::string stored(loc.stored_len, '\0');
      if (file->ReadAt(loc.offset, stored.data(), stored.size()) != stored.size())
        ThrowCorrupt(file->path() + ": truncated at offset " + std::to_string(loc.offset));
      return DecodeBlob(loc.ToEntry(id), stored, file->path() + " offset " + std::to_string(loc.offset));
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kCorrupt && e.kind() != ErrorKind::kIo && e.kind() != ErrorKind::kNotFound)
        throw;
      if (!first_error) first_error = e;
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

std::vector<std::string> Store::ListPoints() const {
  std::vector<std::string> points;
  for (const auto& name : env_->ListDir(JoinPath(dir_, "points")))
    if (EndsWith(name, ".json")) points.push_back(name.substr(0, name.size() - 5));
  std::sort(points.begin(), points.end(), PointNameLess);
  return points;
}

nlohmann::json Store::ReadManifest(const std::string& point) const {
  std::string path = ManifestPath(point);
  if (point.empty() || point.find('/') != std::string::npos || !env_->Exists(path))
    ThrowNotFound("point '" + point + "' not found in store " + dir_);
  std::string data = ReadFileToString(env_, path);
  auto pos = data.rfind("\nsha256:");
  if (pos == std::string::npos) ThrowCorrupt(path + ": manifest truncated (no checksum line)");
  std::string body = data.substr(0, pos);
  std::string sum = data.substr(pos + 8);
  while (!sum.empty() && sum.back() == '\n') sum.pop_back();
  if (Sha256(body).Hex() != sum) ThrowCorrupt(path + ": manifest checksum mismatch");
  try {
    nlohmann::json m = nlohmann::json::parse(body);
    if (m.at("version").get<int>() > kStoreFormatVersion)
      ThrowCorrupt(path + ": manifest version is newer than this vmback supports");
    const auto& vols = m.at("volumes");
    if (!vols.is_array()) ThrowCorrupt(path + ": manifest has no volume list");
    for (const auto& v : vols)
      if (!v.at("name").is_string() || !v.at("root").is_object())
        ThrowCorrupt(path + ": manifest has a malformed volume");
    return m;
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(path + ": manifest is not valid (" + e.what() + ")");
  }
}

void Store::WriteManifest(const std::string& point, const nlohmann::json& manifest) {
  Guard([&] {
    if (writer_ || !session_index_.packs.empty())
      throw Error(ErrorKind::kOther, "internal: manifest written before Flush");
    std::string body = manifest.dump();
    WriteFileAtomic(env_, ManifestPath(point), body + "\nsha256:" + Sha256(body).Hex() + "\n");
  });
}

std::string Store::NewPointName() const {
  time_t secs = static_cast<time_t>(env_->NowNanos() / 1000000000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[32];
  strftime(buf, sizeof buf, "%Y-%m-%dT%H%M%SZ", &tm);
  std::string name = buf;
  for (int i = 2; env_->Exists(ManifestPath(name)); i++) name = std::string(buf) + "." + std::to_string(i);
  return name;
}

}  // namespace vmback
