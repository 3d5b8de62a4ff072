// The in-place sink's state for one sync (inplace.h), shared by the walk of
// a tree (inplace.cpp) and the sync of one file with its blockmap
// (sync_file.cpp). Internal to src/inplace. Not thread-safe: one Syncer per
// SyncInPlace, which holds the map root's lock while it runs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "inplace/block_copy.h"
#include "inplace/blockmap.h"
#include "inplace/inplace.h"
#include "inplace/mirror_scan.h"
#include "inplace/source_prefetch.h"
#include "scan/exclude_filter.h"
#include "os/env.h"
#include "store/tree.h"
#include "util/coalescing_runner.h"
#include "util/error.h"
#include "util/log.h"

namespace vmback {
namespace inplace_internal {

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const InodeKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
  bool operator==(const InodeKey& o) const { return dev == o.dev && ino == o.ino; }
};

class Syncer {
 public:
  Syncer(Env* env, uint32_t block_size, const InplaceOptions& opts, Logger* log, InplaceStats* stats,
         std::string map_root)
      : env_(env),
        bs_(block_size),
        opts_(opts),
        log_(log),
        stats_(stats),
        map_root_(std::move(map_root)),
        map_dir_(JoinPath(map_root_, kBlockmapDir)),
        copier_(block_size, opts, stats, log),
        filter_(env, opts.excludes, log),
        started_ns_(env->NowNanos()) {}

  // A file or block device (resolved) onto the file dest.
  void SyncSingle(const std::string& src, const std::string& dst);

  // A directory tree onto the directory dest (which exists; scan_mirror:
  // it may hold a mirror already, to be looked at ahead by a MirrorScan).
  void SyncTree(const std::string& src, const std::string& dst, bool scan_mirror);

  // Linking and unlinking names of a target inode (hard links) moves its
  // ctime after its map recorded it; the maps of such inodes are brought up
  // to date here, once the tree is done. Only a map that is sound and fits
  // the file in all but the ctime is touched.
  void RestampRelinkedMaps();

  // After a complete tree sync: removes the maps no file claimed (and
  // temporaries of the map index a crash left). With an exact index (it
  // said which maps there were; every map made since is this sync's own)
  // the maps of its files not met are removed by name and only the map
  // directory's top is listed, for temporaries; else every map directory.
  void SweepMaps();

  // Reads the map index (blockmap.h) of the map root: used for a tree,
  // only noted for a file (whose map root may hold a tree's index, which
  // must go before the file is changed).
  void LoadIndex(bool tree);

  // After a complete tree sync whose maps are all complete and durable
  // (CompleteMaps, RestampRelinkedMaps, SweepMaps): writes the map index of
  // the maps that fit their files, when it differs from the one on disk.
  // Nothing when the sweep was skipped (source errors).
  void WriteIndex();

  // Runs the copies queued so far (SyncFile): one syncfs(2) of the target
  // makes their maps' invalidations durable, then each file is copied.
  void RunQueuedCopies();

  // The barrier that completes the maps held back so far (after the queued
  // copies are run): one syncfs(2) of the target (every file written, its
  // entries, directories), then their headers and trailers written (no
  // fsync: durable at the next barrier or Finish). Called when
  // kMaxPendingMaps wait, before the maps are restamped, and by Finish.
  void CompleteMaps();

  // Makes every change durable: the pending maps completed (CompleteMaps),
  // then one more syncfs(2) when anything was written, so that every
  // complete map, directory and metadata change is on disk when it returns.
  void Finish();

  // The directory dir's entries changed (durable at the next barrier).
  void MarkDirty(const std::string& dir) { written_ = true; }

 private:
  // --- Trees ---

  // Mirrors the entries of the directory src into dst (none when not
  // entered: a mount point is kept empty) and deletes what src lacks.
  // scanned: dst is the directory the mirror scan looked at (its lstats
  // may be used).
  void SyncDirContents(const std::string& src, const std::string& dst, const std::string& rel, bool enter,
                       bool scanned);

  // st: what lstat says of src. Returns false when the source entry
  // vanished (st kMissing; its mirror is deleted).
  // src_dir, dst_dir: src's and dst's directories when open (a file is then
  // opened, and lstat'ed, by its one name). seen: what the mirror scan
  // found at dst, when it did.
  bool SyncChild(const std::string& src, const FileStatus& st, const std::string& dst, const std::string& rel,
                 ReadableDir* src_dir, ReadableDir* dst_dir, const MirrorScan::Seen* seen);

  // A regular file of one link (src_st) whose index entry records its
  // size, mtime and ctime, and whose mirror file fits the entry (one link
  // too): neither its data nor its metadata changed since the sync that
  // mirrored both, so nothing of it is read (not even its xattrs) and
  // nothing written. Returns whether it was such a file (counted, its map
  // kept, its entry carried into the next index). seen: the mirror scan's
  // lstats of the mirror file and its map, used instead of the walk's own.
  bool SkipUnchangedFile(const std::string& dst, const std::string& rel, const FileStatus& src_st,
                         ReadableDir* dst_dir, const MirrorScan::Seen* seen);

  // rel's record in index_old_ when the mirror file (its lstat dst_st) is
  // as the record says, with one link and the source's ctime recorded: a
  // file SkipUnchangedFile may tell. Reads only index_old_ (the mirror
  // scan's thread asks it too).
  const Blockmap* IndexedMirrorFile(const std::string& rel, const FileStatus& dst_st) const;

  // Whether the map (its lstat map_st) is as the index entry m recorded
  // it, and was so before the index was written (not in the same clock
  // tick).
  bool IndexedMapIntact(const Blockmap& m, const FileStatus& map_st);

  // Whether a sync is expected to read the data of the source file at rel
  // (its lstat st): not when the index, or else the mirror file (dst: the
  // tree's mirror), has its size and mtime. For SourcePrefetch's thread:
  // reads only what does not change during the walk (index_old_).
  bool ExpectRead(const std::string& dst, const std::string& rel, const FileStatus& st) const;

  // A later name of a multiply-linked inode: a hard link to the first one.
  void SyncHardLink(const std::string& first, const std::string& dst);

  // Symlinks, devices, fifos, sockets: kept when already right, else made anew.
  void SyncSpecial(const Entry& e, const std::string& dst);

  // Deletes path, and everything below it when it is a directory.
  void RemoveTree(const std::string& path);

  // Brings owner, mode, xattrs and mtime of dst to e's, touching only what
  // differs (every change moves the ctime the blockmap records). Returns
  // whether anything changed. Failures are warnings, as in restore.
  // dst_st: the lstat of dst when the caller has it (else taken here).
  // open: dst open for writing, when the caller has it: read and changed
  // through its descriptor where it can (no path looked up again).
  bool ApplyMetadata(const Entry& e, const std::string& dst, const FileStatus* dst_st = nullptr,
                     WritableFile* open = nullptr);

  void Warn(const std::string& message);

  // --- Files ---

  // Removes the map index, when there is one, before the first change to
  // the data of an existing mirror file (so that no entry of it can claim
  // data that is not on disk): durable now (directory fsync), or at the
  // caller's next barrier.
  enum class Durability { kNow, kAtBarrier };
  void DropIndex(Durability d);

  // Where rel's map lives; marks it live for SweepMaps. old: rel's record in
  // index_old_ when the caller has it (else it is looked up).
  std::string MapPathFor(const std::string& rel, const Blockmap* old = nullptr);
  // The same, for a map whose name's hash (Sha256(rel)) the caller has.
  void ClaimMap(const Blockmap* old, const Hash& map_hash);
  // Moves the entries of carried_ into index_new_ (one there stays).
  void CarryOver();

  // h (a complete map's header, or one complete at the next barrier) into
  // the next index; with the source's ctime (src_st) when the file's
  // metadata was mirrored without a failure (meta_ok).
  // h's map identity (map_ino and the rest) only when the map is as the
  // old index recorded it, else map_ino 0: WriteIndex then lstats the map.
  void AddToIndex(Blockmap h, const FileStatus& src_st, bool meta_ok);

  // Makes the map's XX directory (0700) once per sync.
  void EnsureMapSubdir(const std::string& map_path);

  // Returns "" and the open map when the map at map_path can be trusted for
  // the target file dst (its lstat dst_st), else why not.
  std::string LoadMap(const std::string& map_path, const std::string& rel, const FileStatus& dst_st,
                      Blockmap* h, std::unique_ptr<ReadableFile>* file);

  // Mirrors the content (and, with meta, the metadata) of src onto dst. A
  // file whose map can be trusted and whose source changed (size, mtime; a
  // device always) is queued (RunQueuedCopies): its map is invalidated now,
  // without an fsync, and the copy waits for the barrier that makes the
  // invalidation durable. (A full read of an unchanged source is copied at
  // once: it seldom writes, and then fsyncs the map's invalidation.)
  // src_dir, dst_dir: as SyncChild's (may be null).
  void SyncFile(const std::string& src, const std::string& dst, const std::string& rel,
                const FileStatus& src_st, const Entry* meta, ReadableDir* src_dir = nullptr,
                ReadableDir* dst_dir = nullptr);

  // Where the file dst goes: removes what is there when it is not a regular
  // file, or when it is a second source inode's claim on a target inode
  // with several names (that one gets a file of its own). Returns whether a
  // file stays at dst (its lstat in *dst_st).
  bool ClearWayForFile(const std::string& dst, const FileStatus& src_st, FileStatus* dst_st, ReadableDir* dst_dir);

  // A file whose content is unchanged: its metadata is brought up to date,
  // and when that changed anything, its map is restamped with the file's
  // new identity (durable at Finish's barrier). The map's header goes into
  // the next index.
  // dst_st: the lstat of dst. old_map: the map, open and checked; null
  // when old came from the index (the map is then read and checked here
  // only if it must be restamped).
  void SyncMetadataOnly(const Entry& meta, const std::string& dst, const FileStatus& dst_st,
                        const FileStatus& src_st, const std::string& map_path, const Blockmap& old,
                        ReadableFile* old_map);

  // Copies the content of src onto *c->dst (c: basis, old map), applies the
  // metadata and holds the map's completion back for the next barrier
  // (CompleteMaps).
  // map_why: why the map cannot be trusted ("" when it can, or is none).
  // in: the source, open (else opened here). map_start: how c's map is
  // taken up when c's basis is kMap: kInvalidated for a queued copy (its
  // map invalid on disk already), else kUpdate.
  void SyncContent(const std::string& src, const std::string& rel, const FileStatus& src_st,
                   const Entry* meta, FileCopy* c, const std::string& map_why,
                   std::unique_ptr<ReadableFile> in = nullptr,
                   BlockmapWriter::Start map_start = BlockmapWriter::Start::kUpdate);

  // With opts_.changes: sets c->changed to the change list of src (rel: its
  // map's path) into *changed when c's map can be trusted and has c's size,
  // else notes why not (InplaceStats::change_why).
  void UseChangeList(const std::string& src, const std::string& rel, const std::string& map_why, FileCopy* c,
                     std::vector<ByteRange>* changed);

  // The map: updated in place (basis kMap, taken up as map_start says), or
  // started anew (an old map there emptied durably before the target file
  // is touched; a new one needs no fsync: it has no header until completed).
  // size: the file's new size.
  std::unique_ptr<BlockmapWriter> OpenMapWriter(const std::string& map_path, const std::string& rel,
                                                CopyBasis basis, BlockmapWriter::Start map_start, uint64_t size);

  // Starts the target's write-back (opts_.writeback_every) when that many
  // bytes were written since it was last started.
  void StartWritebackIfDue();

  // Rewrites header and trailer of a sound map whose entries stay.
  void RewriteMapHeader(ReadableFile* map, const std::string& map_path, const Blockmap& h);

  Env* env_;
  const uint32_t bs_;
  const InplaceOptions& opts_;
  Logger* log_;
  InplaceStats* stats_;
  const std::string map_root_;
  const std::string map_dir_;
  BlockCopier copier_;
  ExcludeFilter filter_;  // what the tree leaves out (and the mirror loses)
  std::string source_;    // the source as given
  bool single_ = false;   // the source is one file (or device), not a tree
  dev_t root_dev_ = 0;
  dev_t target_dev_ = 0;  // trees: the mirror's file system
  // A copy waiting for the barrier after its map's invalidation.
  struct QueuedCopy {
    std::string src, dst, rel, map_path;
    FileStatus src_st;
    std::optional<Entry> meta;
    Blockmap old;       // the header of the map, sound when it was queued
    uint64_t old_size;  // the target file's size then
  };
  std::vector<QueuedCopy> queued_;
  bool written_ = false;  // anything changed on the target since the last barrier
  // Maps written, whose completion waits for the next barrier.
  std::vector<BlockmapCompletion> pending_;
  // How many of pending_ keep their map open for the completion (an open
  // by path, a status, two fcntl and a close fewer each): a quarter of the
  // descriptor limit at most, so that a deep tree's walks keep theirs.
  static size_t MapFdsBudget();
  size_t map_fds_budget_ = MapFdsBudget();
  size_t map_fds_kept_ = 0;
  uint64_t later_bytes_ = 0;  // entries of pending_'s maps made by their completion (kLater)
  std::map<InodeKey, std::string> links_;    // source inode -> dest of its first name
  std::map<InodeKey, InodeKey> claims_;      // multiply-linked target inode -> source inode
  std::map<InodeKey, std::pair<std::string, std::string>> mapped_;  // target inode -> file, its map
  std::set<InodeKey> relinked_;              // target inodes whose link count this sync changed
  // The map name's hash (Sha256(rel)) of every file synced (ClaimMap);
  // sorted, each once, by SweepMaps.
  std::vector<Hash> live_maps_;
  // The map index (blockmap.h). index_old_: the one read at the start, when
  // sound (trees only). index_new_: the header of every map that is
  // complete (or will be at the next barrier) and fits its file, but for
  // the files told unchanged by index_old_ (carried_).
  std::string index_path_;
  bool index_on_disk_ = false;  // an index file is there (sound or not)
  MapIndex index_old_;
  MapsByPath index_new_;
  bool index_exact_ = false;      // index_old_ was written exact (blockmap.h)
  int64_t index_mtime_ns_ = 0;    // when index_old_ was written
  bool index_racy_ = false;       // an entry was not used for its map's ctime: write a new index
  bool maps_created_ = false;     // this sync made a map where none was
  bool swept_ = false;            // SweepMaps ran through
  size_t maps_seen_ = 0;          // live maps in the map directory (SweepMaps)
  bool map_dir_unknown_ = false;  // SweepMaps left something it could not tell: the index is not exact
  bool live_map_missing_ = false;  // some file's map is not in the map directory
  std::set<std::string> made_subdirs_;  // map directories (XX) checked or made
  // The map directories this sync made itself (0700, as root): no map is
  // in one but those this sync creates there, each once (O_EXCL), so a
  // new map there needs no lstat first.
  std::set<std::string> new_subdirs_;
  // Files of index_old_ this sync met (ClaimMap): with an exact index the
  // maps of the others are the ones the sweep removes. By address:
  // index_old_ is not changed once read. Sorted, each once, by SweepMaps.
  std::vector<const Blockmap*> index_claimed_;
  // Files told unchanged by index_old_ (SkipUnchangedFile): their entries
  // go into the next index as they are, by address (copied into index_new_
  // only when some map went missing: CarryOver).
  std::vector<const Blockmap*> carried_;
  // When this sync began: a source ctime this recent (within kRacyCtimeNs)
  // is not recorded in the index, as a change in the same clock tick
  // after it was read would leave it as it is (git's "racily clean").
  int64_t started_ns_;
  static constexpr int64_t kRacyCtimeNs = 2'000'000'000;
  // Longer than the tick of the kernel's coarse clock, which stamps files
  // (10 ms at HZ=100).
  static constexpr int64_t kClockTickNs = 12'000'000;
  uint64_t written_at_writeback_ = 0;  // stats_->bytes_written when write-back was last started
  std::unique_ptr<CoalescingRunner> writeback_;  // made at the first start
  // Trees: the source's data asked for ahead of the walk (none with a read
  // limit: nothing is read ahead of a pace). Last: its thread uses the
  // members above, so it is stopped before they go.
  std::unique_ptr<SourcePrefetch> ahead_;
  // Trees: the mirror looked at ahead of the walk (when there was one).
  // Its thread reads index_old_.
  std::unique_ptr<MirrorScan> mirror_;
};

}  // namespace inplace_internal
}  // namespace vmback
