#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "inplace/syncer.h"
#include "os/open_files.h"
#include "util/encoding.h"

namespace vmback {
namespace inplace_internal {

namespace {

// Maps held back for a barrier at most (memory: a few hundred bytes each):
// a sync of more files than this pays one syncfs(2) per this many files.
constexpr size_t kMaxPendingMaps = 16384;
// Copies queued for a barrier at most (SyncFile): a sync that changes more
// files than this pays one syncfs(2) per this many.
constexpr size_t kMaxQueuedCopies = 4096;
// A new map is made by its completion (BlockmapWriter::Start::kLater) when
// its entries take at most this many bytes (a file of up to 256 blocks:
// almost every file of a root file system), and the entries so held for
// the next barrier stay under kLaterMapsBudget.
constexpr uint64_t kMaxLaterMapBytes = 8192;
constexpr uint64_t kLaterMapsBudget = uint64_t{32} << 20;

// Whether m describes the mirror file as it is now (its lstat st): same
// inode, size, mtime and ctime.
bool FitsTarget(const Blockmap& m, const FileStatus& st) {
  return m.target_ino == static_cast<uint64_t>(st.ino) && m.file_size == st.size &&
         m.target_mtime_ns == st.mtime_ns && m.target_ctime_ns == st.ctime_ns;
}

// The same for a file SkipUnchangedFile may tell: a regular file of one
// link, the source's ctime recorded.
bool FitsIndexed(const Blockmap& m, const FileStatus& st) {
  return st.kind == FileKind::kFile && st.nlink == 1 && m.source_ctime_ns != Blockmap::kNoCtime && FitsTarget(m, st);
}

template <typename T>
void SortUnique(std::vector<T>* v) {
  std::sort(v->begin(), v->end());
  v->erase(std::unique(v->begin(), v->end()), v->end());
}

bool IsHex(const std::string& s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

}  // namespace

void Syncer::RestampRelinkedMaps() {
  for (const auto& key : relinked_) {
    auto it = mapped_.find(key);
    if (it == mapped_.end()) continue;  // no longer in the mirror
    const auto& [dst, map_path] = it->second;
    const FileStatus now = env_->Status(dst);
    if (now.kind == FileKind::kMissing || now.dev != key.dev || now.ino != key.ino) continue;
    if (!env_->Exists(map_path)) continue;
    auto f = env_->OpenRead(map_path);
    Blockmap h;
    if (!CheckBlockmap(f.get(), &h).empty()) continue;
    if (h.target_ino != static_cast<uint64_t>(now.ino) || h.file_size != now.size ||
        h.target_mtime_ns != now.mtime_ns || h.target_ctime_ns == now.ctime_ns)
      continue;
    h.target_ctime_ns = now.ctime_ns;
    RewriteMapHeader(f.get(), map_path, h);
    auto entry = index_new_.find(h.path);
    if (entry != index_new_.end()) h.source_ctime_ns = entry->second.source_ctime_ns;
    index_new_.insert_or_assign(h.path, h);
  }
  relinked_.clear();
}

void Syncer::SweepMaps() {
  if (stats_->errors > 0) {
    log_->Warn("some source entries could not be read; old blockmaps in " + map_dir_ + " are kept");
    return;
  }
  SortUnique(&live_maps_);
  SortUnique(&index_claimed_);
  // Temporaries of the map index a crash left (a killed WriteIndex's).
  auto remove_temporary = [&](const std::string& name) {
    if (name.rfind(std::string(kMapIndexName) + ".tmp-", 0) != 0) return false;
    const std::string tmp = JoinPath(map_dir_, name);
    try {
      CheckOwnEntry(env_, tmp, false);  // a regular file of ours, nothing planted
      env_->Remove(tmp);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kCrash) throw;
      log_->Warn("left " + tmp + " as it is: " + err.what());
    }
    return true;
  };
  if (index_exact_) {
    // The directory holds the index's maps and nothing else, but for those
    // this sync made: the maps of the files met (claimed) stay, and those
    // of the index's files not met go, by their names. Not every map
    // directory is listed (on a cold disk, a read of each); only the top,
    // for temporaries, and only on a day when a map was made or is to go
    // (a day with neither lists nothing). Something at a map's name that
    // is not a regular file is left, and the next index is not exact, so
    // the next sync lists and says so.
    if (maps_created_ || index_claimed_.size() != index_old_.size())
      for (const auto& name : env_->ListDir(map_dir_)) remove_temporary(name);
    std::string subdir_checked;
    FileKind subdir_kind = FileKind::kMissing;
    for (const Blockmap& record : index_old_.records()) {
      const Blockmap* m = &record;
      if (std::binary_search(index_claimed_.begin(), index_claimed_.end(), m)) continue;
      const std::string path = BlockmapPath(map_root_, m->path);
      const std::string dir = DirName(path);
      if (dir != subdir_checked) {  // (the index is in path order, not by map name)
        subdir_checked = dir;
        subdir_kind = env_->Status(dir).kind;
      }
      if (subdir_kind != FileKind::kDir) {
        map_dir_unknown_ = map_dir_unknown_ || subdir_kind != FileKind::kMissing;
        continue;
      }
      const FileKind kind = env_->Status(path).kind;
      if (kind == FileKind::kMissing) continue;
      if (kind != FileKind::kFile) {
        map_dir_unknown_ = true;
        continue;
      }
      env_->Remove(path);
      stats_->maps_deleted++;
      MarkDirty(dir);
    }
    maps_seen_ = live_maps_.size();
    swept_ = true;
    return;
  }
  size_t seen = 0;  // live maps found
  for (const auto& sub : env_->ListDir(map_dir_)) {
    if (remove_temporary(sub)) continue;
    if (sub.size() != 2 || !IsHex(sub)) continue;
    std::string dir = JoinPath(map_dir_, sub);
    if (env_->Status(dir).kind != FileKind::kDir) continue;
    for (const auto& name : env_->ListDir(dir)) {
      if (name.size() != 68 || name.compare(64, 4, ".map") != 0) continue;
      const std::string hex = name.substr(0, 64);
      Hash h;
      // (A name in upper-case hex is no live map's: deleted.)
      if (IsHex(hex) && Hash::FromHex(hex, &h) && std::binary_search(live_maps_.begin(), live_maps_.end(), h)) {
        seen++;
        continue;
      }
      env_->Remove(JoinPath(dir, name));
      stats_->maps_deleted++;
      MarkDirty(dir);
    }
  }
  live_map_missing_ = seen != live_maps_.size();
  maps_seen_ = seen;
  swept_ = true;
}

void Syncer::LoadIndex(bool tree) {
  index_path_ = JoinPath(map_dir_, kMapIndexName);
  CheckOwnEntry(env_, index_path_, false);
  index_on_disk_ = env_->Exists(index_path_);
  if (!tree || !index_on_disk_) return;
  index_mtime_ns_ = env_->Status(index_path_).mtime_ns;
  const std::string why = ReadMapIndex(env_, index_path_, bs_, &index_old_, &index_exact_);
  if (!why.empty()) log_->Info("map index " + index_path_ + " " + why + "; the blockmaps are read instead");
}

void Syncer::DropIndex(Durability d) {
  if (!index_on_disk_) return;
  env_->Remove(index_path_);
  if (d == Durability::kNow) env_->SyncDir(map_dir_);
  index_on_disk_ = false;
  written_ = true;
}

void Syncer::WriteIndex() {
  if (!swept_) return;  // a map's fate unknown: no index rather than a wrong one
  if (live_map_missing_) {
    // Someone removed maps: their files get no entry (their next change
    // then reads the map, finds it missing and compares).
    CarryOver();
    for (auto it = index_new_.begin(); it != index_new_.end();)
      it = env_->Exists(BlockmapPath(map_root_, it->first)) ? std::next(it) : index_new_.erase(it);
  }
  // Each map written or restamped by this sync, as it is now: an entry
  // is used only while its map stays so. One that is not a regular file
  // gets no entry.
  for (auto it = index_new_.begin(); it != index_new_.end();) {
    if (it->second.map_ino != 0) {
      ++it;
      continue;
    }
    const FileStatus st = env_->Status(BlockmapPath(map_root_, it->first));
    if (st.kind != FileKind::kFile) {
      it = index_new_.erase(it);
      continue;
    }
    RecordMapFile(&it->second, st);
    ++it;
  }
  // The index is written in a later clock tick than every map it
  // records (file times come from a clock that may lag by a tick), so
  // that IndexedMapIntact can trust them: at most a few ms of waiting.
  int64_t newest = 0;
  for (const auto& kv : index_new_) newest = std::max(newest, kv.second.map_ctime_ns);
  for (int i = 0; i < 100 && env_->NowNanos() <= newest + kClockTickNs; i++)
    SleepFor(std::chrono::milliseconds(2));
  // Exact: every map in the directory has its entry. The files told by
  // the old index (carried_) keep their entries as they were.
  SortUnique(&carried_);
  // Carried entries whose path has a new entry too (none, as a file carried
  // was not synced; the new one would win).
  std::vector<const Blockmap*> replaced;
  for (const auto& kv : index_new_) {
    const Blockmap* old = index_old_.Find(kv.first);
    if (old && std::binary_search(carried_.begin(), carried_.end(), old)) replaced.push_back(old);
  }
  std::sort(replaced.begin(), replaced.end());
  const size_t entries = index_new_.size() + carried_.size() - replaced.size();
  if (index_on_disk_ && !index_racy_ && (!map_dir_unknown_ && entries == maps_seen_) == index_exact_ &&
      entries == index_old_.size() &&
      replaced.empty() && std::all_of(index_new_.begin(), index_new_.end(), [&](const auto& kv) {
        const Blockmap* old = index_old_.Find(kv.first);
        return old && SameMapHeader(*old, kv.second);
      }))
    return;  // the one on disk says the same
  // The entries by address, not copied, sorted by path: the carried ones
  // in the old index's order (sorted as vmback wrote it; EncodeMapIndex
  // sorts what is not), merged with index_new_'s.
  auto by_path = [](const Blockmap* a, const Blockmap* b) { return a->path < b->path; };
  std::vector<const Blockmap*> fresh;
  fresh.reserve(index_new_.size());
  for (const auto& kv : index_new_) fresh.push_back(&kv.second);
  std::sort(fresh.begin(), fresh.end(), by_path);
  std::vector<const Blockmap*> all;
  all.reserve(entries);
  auto next = fresh.begin();
  for (const Blockmap& record : index_old_.records()) {
    const Blockmap* m = &record;
    if (!std::binary_search(carried_.begin(), carried_.end(), m) ||
        std::binary_search(replaced.begin(), replaced.end(), m))
      continue;
    for (; next != fresh.end() && by_path(*next, m); ++next) all.push_back(*next);
    if (next == fresh.end() || by_path(m, *next)) all.push_back(m);
  }
  all.insert(all.end(), next, fresh.end());
  const bool exact = !map_dir_unknown_ && all.size() == maps_seen_;
  // Written beside and renamed over the old one, without an fsync: the
  // final barrier (Finish) makes it durable. Should the machine stop first,
  // whatever is at index_path_ is the old index (true: this sync changed no
  // file's data while it was there), nothing, or a new one torn or whole;
  // a torn one fails its checksum and is not used.
  const LargeMemory data = EncodeMapIndex(std::move(all), bs_, exact);
  if (data.size() > kMaxMapIndexSize) {  // it would never be read: none
    DropIndex(Durability::kAtBarrier);
    return;
  }
  // The map headers written since the last barrier (CompleteMaps, the
  // restamps) are made durable first: an index must never reach the disk
  // before a map it says is complete.
  env_->SyncFileSystem(map_root_);
  const std::string tmp = TempPathFor(index_path_);
  try {
    auto out = env_->OpenWrite(tmp, CreateMode::kExclusive, 0600);
    out->Append(data.data(), data.size());
    out->Close();
    env_->Rename(tmp, index_path_);
  } catch (const Error& err) {
    if (err.kind() == ErrorKind::kCrash) throw;
    try {
      env_->Remove(tmp);
    } catch (const Error&) {
    }
    // (A full disk, say.) The mirror and its maps are complete; an index
    // still there is the old one, true as it is (this sync changed no data
    // while it was there); without one the next sync reads the maps.
    log_->Warn("cannot write the map index " + index_path_ + " (" + err.what() +
               "); the mirror is complete, the next sync reads its blockmaps instead");
    return;
  }
  index_on_disk_ = true;
  written_ = true;
}

void Syncer::AddToIndex(Blockmap h, const FileStatus& src_st, bool meta_ok) {
  const bool settled = src_st.ctime_ns < started_ns_ - kRacyCtimeNs;
  h.source_ctime_ns = meta_ok && settled ? src_st.ctime_ns : Blockmap::kNoCtime;
  std::string key = h.path;
  index_new_.insert_or_assign(std::move(key), std::move(h));
}

bool Syncer::IndexedMapIntact(const Blockmap& m, const FileStatus& map_st) {
  if (!MapFileUnchanged(m, map_st)) return false;
  // Racily clean (as git calls it): a map written in the clock tick the
  // index was written in could have been changed later in that tick without
  // a new ctime. Its map is read; the next index records it anew.
  if (m.map_ctime_ns >= index_mtime_ns_) {
    index_racy_ = true;
    return false;
  }
  return true;
}

bool Syncer::ExpectRead(const std::string& dst, const std::string& rel, const FileStatus& st) const {
  if (opts_.full_read) return true;
  if (const Blockmap* indexed = index_old_.Find(rel))
    return indexed->file_size != st.size || indexed->source_mtime_ns != st.mtime_ns;
  const FileStatus m = env_->Status(JoinPath(dst, rel));
  return m.kind != FileKind::kFile || m.size != st.size || m.mtime_ns != st.mtime_ns;
}

const Blockmap* Syncer::IndexedMirrorFile(const std::string& rel, const FileStatus& dst_st) const {
  if (opts_.full_read) return nullptr;
  const Blockmap* m = index_old_.Find(rel);
  return m && FitsIndexed(*m, dst_st) ? m : nullptr;
}

bool Syncer::SkipUnchangedFile(const std::string& dst, const std::string& rel, const FileStatus& src_st,
                               ReadableDir* dst_dir, const MirrorScan::Seen* seen) {
  if (opts_.full_read) return false;
  const Blockmap* found = nullptr;
  if (seen) {
    found = seen->indexed;  // the mirror scan looked it up, for this same lstat of the mirror file
  } else {
    found = index_old_.Find(rel);
  }
  if (!found) return false;
  const Blockmap& m = *found;
  if (m.source_ctime_ns != src_st.ctime_ns || m.file_size != src_st.size || m.source_mtime_ns != src_st.mtime_ns)
    return false;
  const FileStatus dst_st = seen ? seen->st : dst_dir ? dst_dir->Status(BaseName(dst)) : env_->Status(dst);
  // (The rest is implied by the two ctimes; checked all the same.)
  if (!FitsIndexed(m, dst_st) || dst_st.mode != src_st.mode || dst_st.uid != src_st.uid ||
      dst_st.gid != src_st.gid || dst_st.mtime_ns != src_st.mtime_ns)
    return false;
  // Nor the map since the index was written (a damaged or replaced map is
  // read and checked as always). The file was met and its map is live
  // either way (SyncFile takes it up otherwise).
  if (seen && seen->map_looked) {
    ClaimMap(&m, seen->map_hash);
    if (!IndexedMapIntact(m, seen->map_st)) return false;
  } else if (!IndexedMapIntact(m, env_->Status(MapPathFor(rel, &m)))) {
    return false;
  }
  stats_->files++;
  stats_->files_skipped++;
  // Not in mapped_: with one link on both sides no sync step relinks it.
  carried_.push_back(&m);
  return true;
}

std::string Syncer::MapPathFor(const std::string& rel, const Blockmap* old) {
  if (!old) old = index_old_.Find(rel);
  const Hash h = Sha256(rel);
  ClaimMap(old, h);
  return BlockmapPathOf(map_root_, h);
}

void Syncer::ClaimMap(const Blockmap* old, const Hash& map_hash) {
  if (old) index_claimed_.push_back(old);
  live_maps_.push_back(map_hash);
}

void Syncer::CarryOver() {
  for (const Blockmap* m : carried_) index_new_.emplace(m->path, *m);
  carried_.clear();
}

void Syncer::EnsureMapSubdir(const std::string& map_path) {
  std::string dir = DirName(map_path);
  if (made_subdirs_.count(dir)) return;
  CheckOwnEntry(env_, dir, true);
  if (!env_->Exists(dir)) {
    env_->MakeDir(dir);
    env_->SetMode(dir, 0700);
    MarkDirty(DirName(dir));
    new_subdirs_.insert(dir);
  }
  made_subdirs_.insert(dir);
}

std::string Syncer::LoadMap(const std::string& map_path, const std::string& rel, const FileStatus& dst_st,
                            Blockmap* h, std::unique_ptr<ReadableFile>* file) {
  const FileStatus map_st = env_->Status(map_path);
  CheckOwnEntry(map_path, map_st, false);
  if (map_st.kind == FileKind::kMissing) return "is missing";
  auto f = env_->OpenRead(map_path);
  std::string why = CheckBlockmap(f.get(), h);
  if (!why.empty()) return why;
  if (h->block_size != bs_)
    return "was written for blocks of " + std::to_string(h->block_size) + " bytes, not " + std::to_string(bs_);
  if (h->path != rel) return "names another file (" + h->path + ")";
  if (!FitsTarget(*h, dst_st))
    return "does not fit the target file, which was changed after it was written";
  *file = std::move(f);
  return "";
}

void Syncer::SyncFile(const std::string& src, const std::string& dst, const std::string& rel,
                      const FileStatus& src_st, const Entry* meta, ReadableDir* src_dir, ReadableDir* dst_dir) {
  stats_->files++;
  const std::string map_path = MapPathFor(rel);
  FileStatus dst_st;
  const bool exists = ClearWayForFile(dst, src_st, &dst_st, dst_dir);
  Blockmap old;
  std::unique_ptr<ReadableFile> old_map;
  // Quick check: the source is as the map (or the index) recorded it.
  auto unchanged = [&](const Blockmap& m) {
    return src_st.type != S_IFBLK && !opts_.full_read && m.file_size == src_st.size &&
           m.source_mtime_ns == src_st.mtime_ns;
  };
  if (exists) {
    // The index alone tells an unchanged file: its map is not opened.
    const Blockmap* indexed = index_old_.Find(rel);
    if (indexed && FitsTarget(*indexed, dst_st) && unchanged(*indexed) &&
        IndexedMapIntact(*indexed, env_->Status(map_path))) {
      stats_->files_skipped++;
      if (meta) {
        SyncMetadataOnly(*meta, dst, dst_st, src_st, map_path, *indexed, nullptr);
      } else {
        AddToIndex(*indexed, src_st, false);
      }
      mapped_.insert_or_assign(InodeKey{dst_st.dev, dst_st.ino}, std::make_pair(dst, map_path));
      return;
    }
  }
  std::string why;
  if (exists) why = LoadMap(map_path, rel, dst_st, &old, &old_map);
  const bool trusted = exists && why.empty();

  if (trusted && unchanged(old)) {
    stats_->files_skipped++;
    if (meta) {
      SyncMetadataOnly(*meta, dst, dst_st, src_st, map_path, old, old_map.get());
    } else {
      AddToIndex(old, src_st, false);
    }
    mapped_.insert_or_assign(InodeKey{dst_st.dev, dst_st.ino}, std::make_pair(dst, map_path));
    return;
  }

  const bool source_changed =
      src_st.type == S_IFBLK || old.file_size != src_st.size || old.source_mtime_ns != src_st.mtime_ns;
  if (trusted && source_changed) {
    // The map is complete on disk: it must be invalid there before the
    // file changes. Invalidated now without an fsync, the copy waits for
    // one barrier shared by many files. The index goes first, and
    // durably: an index outliving a map it names as complete (the sync
    // stopped before the copy) would have that map trusted unread.
    DropIndex(Durability::kNow);
    stats_->map_bytes_written += SetBlockmapState(env_, map_path, MapState::kBeingWritten);
    written_ = true;
    queued_.push_back(QueuedCopy{src, dst, rel, map_path, src_st,
                                 meta ? std::optional<Entry>(*meta) : std::nullopt, std::move(old), dst_st.size});
    if (queued_.size() >= kMaxQueuedCopies) RunQueuedCopies();
    return;
  }
  const CopyBasis basis = !exists ? CopyBasis::kFresh : trusted ? CopyBasis::kMap : CopyBasis::kCompare;
  if (basis == CopyBasis::kCompare) {
    stats_->blockmaps_rebuilt++;
    log_->Warn("blockmap " + map_path + " of " + dst + " " + why +
               "; comparing with the target's data and rebuilding it");
  }
  FileCopy c;
  c.basis = basis;
  c.old_size = exists ? dst_st.size : 0;
  c.old_map = old_map.get();
  c.old = &old;
  c.map_path = &map_path;
  c.dst = &dst;
  std::unique_ptr<ReadableFile> in;
  if (src_dir) in = FromSource([&] { return src_dir->OpenRead(BaseName(src)); });
  SyncContent(src, rel, src_st, meta, &c, why, std::move(in));
}

bool Syncer::ClearWayForFile(const std::string& dst, const FileStatus& src_st, FileStatus* dst_st,
                             ReadableDir* dst_dir) {
  *dst_st = dst_dir ? dst_dir->Status(BaseName(dst)) : env_->Status(dst);
  if (dst_st->kind == FileKind::kMissing) return false;
  bool clear = dst_st->kind != FileKind::kFile;
  if (!clear && dst_st->nlink > 1) {
    InodeKey target{dst_st->dev, dst_st->ino}, source{src_st.dev, src_st.ino};
    auto [it, first] = claims_.emplace(target, source);
    clear = !first && !(it->second == source);
  }
  if (!clear) return true;
  RemoveTree(dst);
  MarkDirty(DirName(dst));
  return false;
}

void Syncer::SyncMetadataOnly(const Entry& meta, const std::string& dst, const FileStatus& dst_st,
                              const FileStatus& src_st, const std::string& map_path, const Blockmap& old,
                              ReadableFile* old_map) {
  const uint64_t warnings = stats_->warnings;
  const bool changed = ApplyMetadata(meta, dst, &dst_st);
  const bool meta_ok = stats_->warnings == warnings;
  if (!changed) {
    AddToIndex(old, src_st, meta_ok);
    return;
  }
  std::unique_ptr<ReadableFile> opened;
  if (!old_map) {
    // From the index: the map is read and checked now that it must be
    // restamped. One that is not sound is left to the next sync, which
    // finds that it does not fit and compares.
    Blockmap checked;
    if (!LoadMap(map_path, old.path, dst_st, &checked, &opened).empty() ||
        EncodeBlockmapHeader(checked) != EncodeBlockmapHeader(old))
      return;
    old_map = opened.get();
  }
  // No fsync of the file: its data is what the map says, whichever of the
  // two (the file's new times, the map's new header) reaches the disk first.
  const FileStatus now = ExistingStatus(env_, dst);
  Blockmap h = old;
  h.target_ino = now.ino;
  h.target_mtime_ns = now.mtime_ns;
  h.target_ctime_ns = now.ctime_ns;
  RewriteMapHeader(old_map, map_path, h);
  h.map_ino = 0;  // the map is recorded as it is at the end (WriteIndex)
  AddToIndex(std::move(h), src_st, meta_ok);
}

void Syncer::SyncContent(const std::string& src, const std::string& rel, const FileStatus& src_st,
                         const Entry* meta, FileCopy* c, const std::string& map_why,
                         std::unique_ptr<ReadableFile> in, BlockmapWriter::Start map_start) {
  const std::string& dst = *c->dst;
  const bool exists = c->basis != CopyBasis::kFresh;
  if (exists) DropIndex(Durability::kNow);  // a queued copy's is gone already
  if (!in) in = FromSource([&] { return env_->OpenRead(src); });
  c->in = in.get();
  c->size = in->Size();
  std::vector<ByteRange> changed;
  UseChangeList(src, rel, map_why, c, &changed);
  std::unique_ptr<ReadableFile> target;  // compare mode: the data to compare with
  if (c->basis == CopyBasis::kCompare) target = env_->OpenRead(dst);
  c->target = target.get();
  auto out = env_->OpenWrite(dst, exists ? CreateMode::kExisting : CreateMode::kExclusive, 0600);
  if (!exists) MarkDirty(DirName(dst));
  c->out = out.get();
  auto map = OpenMapWriter(*c->map_path, rel, c->basis, map_start, c->size);
  c->map = map.get();
  written_ = true;
  const bool entries_changed = copier_.Copy(*c);
  StartWritebackIfDue();
  const uint64_t warnings = stats_->warnings;
  if (meta) ApplyMetadata(*meta, dst, nullptr, out.get());
  const bool meta_ok = meta && stats_->warnings == warnings;
  // (A close changes no time: the file's status is taken before it.)
  const FileStatus now = out->MetadataByDescriptor() ? out->Status() : ExistingStatus(env_, dst);
  out->Close();  // no fsync: the barrier before the map's completion makes it durable
  target.reset();

  mapped_.insert_or_assign(InodeKey{now.dev, now.ino}, std::make_pair(dst, *c->map_path));
  Blockmap h;
  h.block_size = bs_;
  h.file_size = c->size;
  h.source_mtime_ns = src_st.mtime_ns;
  h.target_ino = now.ino;
  h.target_mtime_ns = now.mtime_ns;
  h.target_ctime_ns = now.ctime_ns;
  h.path = rel;
  const bool resized = c->basis == CopyBasis::kMap && BlockCount(c->size, bs_) != BlockCount(c->old->file_size, bs_);
  if (c->basis == CopyBasis::kMap && !map->invalidated() && !entries_changed && !resized &&
      EncodeBlockmapHeader(h) == EncodeBlockmapHeader(*c->old)) {
    map->Close();  // nothing changed at all
    AddToIndex(std::move(h), src_st, meta_ok);
    return;
  }
  AddToIndex(h, src_st, meta_ok);  // complete at the next barrier
  // The map is completed only after the next barrier (CompleteMaps) has
  // made this file's data and metadata durable.
  const bool keep_open = !map->later() && map_fds_kept_ < map_fds_budget_;
  map_fds_kept_ += keep_open;
  pending_.push_back(map->Finish(h, resized, keep_open));
  // (Also from within RunQueuedCopies: every file pending is written by then.)
  if (pending_.size() >= kMaxPendingMaps) CompleteMaps();
}

size_t Syncer::MapFdsBudget() { return std::min<size_t>(kMaxPendingMaps, OpenFileLimit() / 4); }

void Syncer::StartWritebackIfDue() {
  if (opts_.writeback_every == 0 || stats_->bytes_written - written_at_writeback_ < opts_.writeback_every) return;
  written_at_writeback_ = stats_->bytes_written;
  if (!writeback_) {
    writeback_ = std::make_unique<CoalescingRunner>([this] {
      try {
        env_->SyncFileSystem(map_root_);
      } catch (const std::exception&) {
        // Only a head start: a barrier meets, and reports, what failed here.
      }
    });
  }
  writeback_->Kick();
}

void Syncer::RunQueuedCopies() {
  if (queued_.empty()) return;
  DropIndex(Durability::kAtBarrier);
  env_->SyncFileSystem(map_root_);  // every queued map invalid on disk, and the index gone
  std::vector<QueuedCopy> jobs = std::move(queued_);
  queued_.clear();
  for (auto& j : jobs) {
    try {
      std::unique_ptr<ReadableFile> in;
      try {
        in = FromSource([&] { return env_->OpenRead(j.src); });
      } catch (const SourceError&) {
        // Nothing of the file was touched: its map is true again.
        stats_->map_bytes_written += SetBlockmapState(env_, j.map_path, MapState::kComplete);
        throw;
      }
      auto old_map = env_->OpenRead(j.map_path);
      FileCopy c;
      c.basis = CopyBasis::kMap;
      c.old_size = j.old_size;
      c.old_map = old_map.get();
      c.old = &j.old;
      c.map_path = &j.map_path;
      c.dst = &j.dst;
      SyncContent(j.src, j.rel, j.src_st, j.meta ? &*j.meta : nullptr, &c, "", std::move(in),
                  BlockmapWriter::Start::kInvalidated);
    } catch (const SourceError& err) {
      if (single_) throw;
      // As in the walk: the mirror keeps what it had (its map stays invalid).
      stats_->errors++;
      log_->Error(std::string(err.what()) + " (left as it was in the mirror)");
    }
  }
}

void Syncer::CompleteMaps() {
  RunQueuedCopies();
  if (pending_.empty()) return;
  env_->SyncFileSystem(map_root_);
  for (auto& c : pending_) {
    FileStatus st;
    stats_->map_bytes_written += WriteBlockmapCompletion(env_, &c, &st);
    // The next index records the map as it is now, from this fstat rather
    // than an lstat by its path in WriteIndex. A later change of the map in
    // this sync (a restamp) records it anew, with no identity (map_ino 0).
    auto it = index_new_.find(c.path);
    if (st.kind == FileKind::kFile && it != index_new_.end() && it->second.map_ino == 0)
      RecordMapFile(&it->second, st);
  }
  pending_.clear();
  map_fds_kept_ = 0;
  later_bytes_ = 0;
  written_ = true;  // the completions: durable at the next barrier
}

void Syncer::UseChangeList(const std::string& src, const std::string& rel, const std::string& map_why,
                           FileCopy* c, std::vector<ByteRange>* changed) {
  if (!opts_.changes) return;
  const std::string change_rel = single_ ? "" : rel;
  ChangeSet cs;
  if (opts_.full_read) {
    cs.why = "a full read (--full-read, or full_read_every)";
  } else if (c->basis == CopyBasis::kFresh) {
    cs.why = "not in the mirror yet";
  } else if (c->basis == CopyBasis::kCompare) {
    cs.why = "its blockmap " + map_why;
  } else if (c->old->file_size != c->size) {
    cs.why = "its size changed";
  } else {
    cs = opts_.changes(change_rel, src);
  }
  if (!cs.HasList()) {
    if (!cs.why.empty() && stats_->change_why.empty())
      stats_->change_why = (change_rel.empty() ? source_ : change_rel) + ": " + cs.why;
    return;
  }
  *changed = NormalizeRanges(std::move(cs.changed), c->size);
  c->changed = changed;
  stats_->files_by_change_list++;
  stats_->change_method = ChangeMethodName(cs.method);
}

std::unique_ptr<BlockmapWriter> Syncer::OpenMapWriter(const std::string& map_path, const std::string& rel,
                                                      CopyBasis basis, BlockmapWriter::Start map_start,
                                                      uint64_t size) {
  EnsureMapSubdir(map_path);
  uint64_t* const bytes = &stats_->map_bytes_written;
  if (basis == CopyBasis::kMap) return std::make_unique<BlockmapWriter>(env_, map_path, rel, map_start, bytes);
  // (Day 1 of a tree: one lstat a file fewer.)
  const bool own_dir = new_subdirs_.count(DirName(map_path)) != 0;
  const FileStatus st = own_dir ? FileStatus{} : env_->Status(map_path);
  CheckOwnEntry(map_path, st, false);
  const bool there = st.kind != FileKind::kMissing;
  if (!there && !maps_created_) {
    // An exact index would no longer say every map there is: removed, and
    // durably, before the map is made (one fsync of the map directory a
    // sync), so that after a crash the next sync has no exact index and
    // lists the map directories (the map of a file gone since would stay
    // for good beside an exact one).
    if (index_exact_) DropIndex(Durability::kNow);
    maps_created_ = true;
  }
  // A small map in a map directory of this sync's own is made whole by its
  // completion (one open and one write, after the barrier), not created
  // now and written in three steps.
  const uint64_t entry_bytes = BlockCount(size, bs_) * kBlockmapEntrySize;
  if (own_dir && entry_bytes <= kMaxLaterMapBytes && later_bytes_ + entry_bytes <= kLaterMapsBudget) {
    later_bytes_ += entry_bytes;
    return std::make_unique<BlockmapWriter>(env_, map_path, rel, BlockmapWriter::Start::kLater, bytes);
  }
  return std::make_unique<BlockmapWriter>(env_, map_path, rel,
                                          there ? BlockmapWriter::Start::kFresh : BlockmapWriter::Start::kNew, bytes);
}

void Syncer::RewriteMapHeader(ReadableFile* map, const std::string& map_path, const Blockmap& h) {
  stats_->map_bytes_written += RewriteBlockmapHeader(env_, map, map_path, h);
  written_ = true;
}

}  // namespace inplace_internal
}  // namespace vmback
