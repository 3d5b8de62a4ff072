#include <sys/stat.h>

#include <algorithm>
#include <cstring>

#include "inplace/syncer.h"
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
  }
  relinked_.clear();
}

void Syncer::SweepMaps() {
  if (stats_->errors > 0) {
    log_->Warn("some source entries could not be read; old blockmaps in " + map_dir_ + " are kept");
    return;
  }
  for (const auto& sub : env_->ListDir(map_dir_)) {
    if (sub.size() != 2 || !IsHex(sub)) continue;
    std::string dir = JoinPath(map_dir_, sub);
    if (env_->Status(dir).kind != FileKind::kDir) continue;
    for (const auto& name : env_->ListDir(dir)) {
      if (name.size() != 68 || name.compare(64, 4, ".map") != 0 || live_maps_.count(name)) continue;
      env_->Remove(JoinPath(dir, name));
      stats_->maps_deleted++;
      MarkDirty(dir);
    }
  }
}

std::string Syncer::MapPathFor(const std::string& rel) {
  std::string path = BlockmapPath(map_root_, rel);
  live_maps_.insert(BaseName(path));
  return path;
}

void Syncer::EnsureMapSubdir(const std::string& map_path) {
  std::string dir = DirName(map_path);
  if (made_subdirs_.count(dir)) return;
  CheckOwnEntry(env_, dir, true);
  if (!env_->Exists(dir)) {
    env_->MakeDir(dir);
    env_->SetMode(dir, 0700);
    MarkDirty(DirName(dir));
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
  if (h->target_ino != static_cast<uint64_t>(dst_st.ino) || h->file_size != dst_st.size ||
      h->target_mtime_ns != dst_st.mtime_ns || h->target_ctime_ns != dst_st.ctime_ns)
    return "does not fit the target file, which was changed after it was written";
  *file = std::move(f);
  return "";
}

void Syncer::SyncFile(const std::string& src, const std::string& dst, const std::string& rel,
                      const FileStatus& src_st, const Entry* meta) {
  stats_->files++;
  const std::string map_path = MapPathFor(rel);
  FileStatus dst_st;
  const bool exists = ClearWayForFile(dst, src_st, &dst_st);
  Blockmap old;
  std::unique_ptr<ReadableFile> old_map;
  std::string why;
  if (exists) why = LoadMap(map_path, rel, dst_st, &old, &old_map);
  const bool trusted = exists && why.empty();

  // Quick check: the source is as the map recorded it.
  if (trusted && src_st.type != S_IFBLK && !opts_.full_read && old.file_size == src_st.size &&
      old.source_mtime_ns == src_st.mtime_ns) {
    stats_->files_skipped++;
    if (meta) SyncMetadataOnly(*meta, dst, dst_st, map_path, old, old_map.get());
    mapped_.insert_or_assign(InodeKey{dst_st.dev, dst_st.ino}, std::make_pair(dst, map_path));
    return;
  }

  const bool source_changed =
      src_st.type == S_IFBLK || old.file_size != src_st.size || old.source_mtime_ns != src_st.mtime_ns;
  if (trusted && source_changed) {
    // The map is complete on disk: it must be invalid there before the
    // file changes. Invalidated now without an fsync, the copy waits for
    // one barrier shared by many files.
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
  SyncContent(src, rel, src_st, meta, &c, why);
}

bool Syncer::ClearWayForFile(const std::string& dst, const FileStatus& src_st, FileStatus* dst_st) {
  *dst_st = env_->Status(dst);
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
                              const std::string& map_path, const Blockmap& old, ReadableFile* old_map) {
  if (!ApplyMetadata(meta, dst, &dst_st)) return;
  // No fsync of the file: its data is what the map says, whichever of the
  // two (the file's new times, the map's new header) reaches the disk first.
  const FileStatus now = ExistingStatus(env_, dst);
  Blockmap h = old;
  h.target_ino = now.ino;
  h.target_mtime_ns = now.mtime_ns;
  h.target_ctime_ns = now.ctime_ns;
  RewriteMapHeader(old_map, map_path, h);
}

void Syncer::SyncContent(const std::string& src, const std::string& rel, const FileStatus& src_st,
                         const Entry* meta, FileCopy* c, const std::string& map_why,
                         std::unique_ptr<ReadableFile> in, BlockmapWriter::Start map_start) {
  const std::string& dst = *c->dst;
  const bool exists = c->basis != CopyBasis::kFresh;
  if (!in) in = FromSource([&] { return env_->OpenRead(src); });
  in->DisableReadahead();
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
  auto map = OpenMapWriter(*c->map_path, rel, c->basis, map_start);
  c->map = map.get();
  written_ = true;
  const bool entries_changed = copier_.Copy(*c);
  if (meta) ApplyMetadata(*meta, dst);
  out->Close();  // no fsync: the barrier before the map's completion makes it durable
  target.reset();

  const FileStatus now = ExistingStatus(env_, dst);
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
    return;
  }
  // The map is completed only after the next barrier (CompleteMaps) has
  // made this file's data and metadata durable.
  pending_.push_back(map->Finish(h, resized));
  // (Also from within RunQueuedCopies: every file pending is written by then.)
  if (pending_.size() >= kMaxPendingMaps) CompleteMaps();
}

void Syncer::RunQueuedCopies() {
  if (queued_.empty()) return;
  env_->SyncFileSystem(map_root_);  // every queued map invalid on disk
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
  for (const auto& c : pending_) stats_->map_bytes_written += WriteBlockmapCompletion(env_, c);
  pending_.clear();
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
                                                      CopyBasis basis, BlockmapWriter::Start map_start) {
  EnsureMapSubdir(map_path);
  uint64_t* const bytes = &stats_->map_bytes_written;
  if (basis == CopyBasis::kMap) return std::make_unique<BlockmapWriter>(env_, map_path, rel, map_start, bytes);
  const FileStatus st = env_->Status(map_path);
  CheckOwnEntry(map_path, st, false);
  const bool there = st.kind != FileKind::kMissing;
  return std::make_unique<BlockmapWriter>(env_, map_path, rel,
                                          there ? BlockmapWriter::Start::kFresh : BlockmapWriter::Start::kNew, bytes);
}

void Syncer::RewriteMapHeader(ReadableFile* map, const std::string& map_path, const Blockmap& h) {
  stats_->map_bytes_written += RewriteBlockmapHeader(env_, map, map_path, h);
  written_ = true;
}

}  // namespace inplace_internal
}  // namespace vmback
