// The store at work: its packs and their index, putting and getting blobs,
// and the damaged and lost blobs it records. Opening it is in open.cpp.
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
constexpr size_t kMaxIndexFiles = 32;
}  // namespace

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
      LargeMemory data;
      try {
        data = ReadFileToMemory(env_, path, kMaxIndexFileSize);
      } catch (const Error& e) {
        // A writer beside this reader folded it into a new one: its packs
        // are indexed from their own tables below.
        if (!exclusive_ && e.kind() != ErrorKind::kCorrupt && !env_->Exists(path)) continue;
        throw;
      }
      bool reserved = false;
      VisitIndexFile(data.view(), path, Keyed(), [&](const Hash& pack, const std::vector<PackEntry>& entries) {
        // Room for what this file can name (each entry takes
        // kPackEntrySize bytes of it), so that the table grows once per
        // file, not again and again as its entries go in. Only once the
        // file has passed every check: a forged one allocates nothing.
        if (!reserved) {
          index_.Reserve(index_.size() + data.size() / kPackEntrySize);
          reserved = true;
        }
        if (!is_present.count(pack)) {
          log_->Warn("pack " + PackPath(pack) + " is named by " + path +
                     " but missing; run 'vmback verify' to see what it affects");
          return;
        }
        index_.AddEntries(index_.AddPack(pack), entries);
      });
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
        entries = ReadPackEntries(file.get(), Keyed());
        damage.reset();
        break;
      } catch (const Error& e) {
        if (e.kind() != ErrorKind::kCorrupt) throw;
        if (!damage) damage = e;
      }
    }
    if (damage) {
      auto file = env_->OpenRead(PackPath(is_present[pack][0], pack));
      entries = ScanPackBlobs(file.get(), Keyed());
      log_->Warn(std::string(damage->what()) + "; recovered " + std::to_string(entries.size()) +
                 " blobs by scanning it");
      index_.AddEntries(index_.AddPack(pack), entries);
      continue;
    }
    index_.AddEntries(index_.AddPack(pack), entries);
    rebuilt.packs.emplace_back(pack, std::move(entries));
  }
  if (!rebuilt.packs.empty() && exclusive_)
    log_->Info("indexed " + Counted(rebuilt.packs.size(), "pack") + " of " + dir_ +
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
    std::string data = EncodeIndexFile(all, Keyed());
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
    std::string data = EncodeIndexFile(rebuilt, Keyed());
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
  Keyed();  // its index is not loaded without the key
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
  const PackStream stream = StreamOf(blob.type);
  std::unique_ptr<PackWriter>& writer = writers_[stream];
  if (!writer) {
    // A random name, created O_EXCL: nothing planted under it is opened.
    writer = std::make_unique<PackWriter>(env_, TempPathFor(dir_ + "/tmp/pack"), Keyed());
  }
  writer->Add(blob);
  {
    std::unique_lock l(mu_);
    pending_[blob.id] = true;
  }
  stats_.blobs_written++;
  stats_.raw_bytes_written += blob.raw_len;
  stats_.stored_bytes_written += blob.stored.size() + kBlobHeaderSize;
  if (writer->size() >= pack_target_) FinishPack(stream);
  return true;
}

void Store::Rewrite(BlobType type, std::string_view raw) {
  Hash id = BlobId(raw);
  EncodedBlob blob = EncodeBlob(id, type, raw, zstd_level_, Keyed());
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
    if (Writing() || !session_index_.packs.empty())
      throw Error(ErrorKind::kOther, "internal: DropPacks before Flush");
    // A pack just remade is not doomed: rewriting a damaged pack's blobs in
    // their old order makes the pack it was, the same bytes under the same
    // name, and its file is now the good one.
    std::unordered_set<Hash, HashHasher> doomed;
    for (const auto& p : doomed_list)
      if (!remade_packs_.count(p)) doomed.insert(p);
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
    std::string data = EncodeIndexFile(all, Keyed());
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
    remade_packs_.clear();
    std::unique_lock l(mu_);
    index_ = BlobIndex();
    l.unlock();
    LoadIndex();
  });
}

Hash Store::PutRaw(BlobType type, std::string_view raw) {
  Hash id = BlobId(raw);
  if (!Has(id)) Put(EncodeBlob(id, type, raw, zstd_level_, Keyed()));
  return id;
}

void Store::FinishPack(PackStream stream) {
  if (!writers_[stream]) return;
  std::unique_ptr<PackWriter> w = std::move(writers_[stream]);
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
    if (index_.HasPack(id)) remade_packs_.insert(id);  // renamed over its damaged file
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
    FinishPack(kDataPack);
    FinishPack(kMetaPack);
    if (session_index_.packs.empty()) return;
    std::string data = EncodeIndexFile(session_index_, Keyed());
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
  // With several copies, each range of a pack is read from one of them
  // (ReadBalancer): the kernel's readahead would read the other copies'
  // ranges too, and every disk would read nearly everything.
  if (copies_.size() > 1) f->DisableReadahead();
  open_packs_[key] = f;
  return f;
}

std::string Store::ReadBlobFrom(size_t copy, const BlobLocation& loc, const Hash& id) const {
  // ReadBlob bounds the index's lengths by the pack's size before allocating.
  return ReadBlob(OpenPack(copy, loc.pack).get(), loc.ToEntry(id), Keyed());
}

std::string Store::Get(const Hash& id) const {
  Keyed();  // its index is not loaded without the key
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
    // Spread over the copies, so that every disk reads at once.
    for (size_t c : balancer_.Order(loc.pack, loc.offset, loc.stored_len, copies_.size())) {
      try {
        ReadBalancer::Read timed(&balancer_, c, loc.stored_len);
        std::string data = ReadBlobFrom(c, loc, id);
        timed.Finish(true);
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

}  // namespace vmback
