// The in-place sink: mirrors a source (an image file, a block device or a
// directory tree) into a path on a target file system, rewriting only the
// blocks whose content changed, in place. A file is never replaced by a new
// file + rename: on ZFS or btrfs that would break the sharing of unchanged
// blocks between the target's snapshots. Block size = the target's record
// size, so a changed block never makes the file system rewrite a neighbour.
//
// Finding changes without reading the target: beside every mirrored file a
// blockmap (the SHA-256 of each of its blocks; layout and format in
// blockmap.h and docs/FORMAT.md, "In-place targets: blockmaps") lives inside
// the target, so every snapshot of the target carries the hashes of its own
// content, in MAPROOT/.vmback-blockmaps/XX/<H>.map (H: the hash of the
// file's path relative to MAPROOT).
//
// MAPROOT is dest for a tree and DirName(dest) for a file or device (the map
// key is then BaseName(dest)). Naming maps by the hash of the path, rather
// than in a parallel tree, means no source name can collide with a map name
// (a file "a" and a directory "a.map"), no name grows past NAME_MAX, and type
// changes and directory deletions in the mirror need no mirroring in the map
// tree: after a complete tree sync, every map that no live file claimed is
// deleted (one sweep). The map's header names the path, for humans and for a
// check.
//
// A map is trusted only when it is consistent: magic, version, state
// "complete", block size, path, length and SHA-256 trailer are right, and it
// describes the target file as it is now: same inode, size, mtime and ctime
// (no ordinary tool can set a ctime back, so an edit of the target shows
// even when its mtime was put back; the sync restamps the maps of inodes
// whose ctime its own metadata changes and hard-link changes moved).
// Anything else (someone edited or replaced the target file; the block size
// changed; a crash mid-update) makes the
// sync compare the source with the target's data instead, write what
// differs, and write a fresh map; it says so in a warning and counts it in
// blockmaps_rebuilt.
//
// Order of writes, so that no map that can be trusted ever claims blocks
// that are not on disk, whether the process dies (kill -9) or the machine
// (a power cut that loses whatever was not yet written back):
//   1. Before the first change to a target file (block write, hole punch,
//      truncate) whose map could be trusted, the map is invalidated durably:
//      its state field is set to "being written" (no fsync) and the copy is
//      queued; one syncfs(2) of the target makes the invalidations of all
//      the queued files durable before any of them is touched (at most
//      kMaxQueuedCopies wait). (A full read of a source whose size and
//      mtime did not change is copied at once; should a block differ after
//      all, the map's invalidation is fsynced before it is written.) A map
//      there that cannot be trusted (it no
//      longer fits its file) is truncated to nothing and fsynced instead:
//      on disk it might still be complete. A map made where none was is
//      created without an fsync: it has no header on disk until step 4, so
//      it is never trusted before.
//   2. Changed blocks are written with pwrite at their offset (WriteAt);
//      all-zero blocks are punched (fallocate PUNCH_HOLE|KEEP_SIZE) or,
//      where the file system cannot, written as zeros; the size is set
//      (shrink: before the blocks; grow: after them, leaving a hole).
//      The map's changed entries are written in place alongside. The
//      metadata is applied. No fsync: the map's completion (its header with
//      the file's new identity and state "complete", and its trailer) is
//      held back in memory.
//   3. A barrier: one syncfs(2) of the target file system makes the data,
//      metadata and map entries of every file written so far durable, and
//      the directories.
//   4. Only then are the held-back completions written (no fsync), and a
//      final syncfs makes them durable before SyncInPlace returns. A sync
//      holding kMaxPendingMaps completions (sync_file.cpp) passes a barrier
//      and writes them before it goes on, so memory stays bounded.
// So after a crash at any moment every map is either complete and true for
// data that is on disk, or not trusted (state "being written", no header,
// empty, or a header that does not fit): the next sync compares those
// files with the source and repairs whatever was half written. A metadata
// change alone, or a link count change, rewrites a map's header without an
// fsync: the data did not change, so the map is true whichever reaches the
// disk first (at worst it does not fit, and is rebuilt by a compare).
// This rests on syncfs(2) writing back everything dirty on the file system
// and reporting a writeback error (Linux 5.8 and later report those).
//
// The map index (trees; blockmap.h, docs/FORMAT.md "The map index"): the
// headers of all maps of the tree in MAPROOT/.vmback-blockmaps/index, read
// once at the start, so that an unchanged file (source size and mtime, and
// the target file's inode, size, mtime and ctime, as recorded) is told
// without opening its map. In the order of writes it is removed before step
// 1's syncfs (or, before a file copied at once is touched, removed and its
// directory fsynced), so no entry of it ever outlives a change of a file's
// data; after step 4 a new one is written (temporary + rename, made durable
// by the last syncfs) when it differs from the one on disk. An index
// written "exact" (the map directory held its maps and nothing else) lets
// the sweep of dead maps remove those of the files gone by name, without
// listing the map directories; it is removed, durably, before the first
// new map (so that no map outlives a crash beside an exact index).
//
// Quick check: a regular source file whose size and mtime equal those the
// map recorded is not read (unless options.full_read); only its metadata is
// brought up to date. Block devices are always read.
//
// Change lists (options.changes, util/change_set.h): a file the quick check
// does not skip, whose map can be trusted and records the file's size now,
// is read only where its change list touches: those blocks are compared
// with the map and written when they differ; every other block, and its
// entry, stays as it is, unread (its entry still goes into the map's
// trailer, so the map is the one a full read makes). A new file, a missing
// or untrusted map, a size change or a full read: no list is asked for, the
// file is read as above, and the first such reason is in the stats.
//
// Reading: the source in large reads (4 MiB batches) of its data regions
// only (SEEK_DATA/SEEK_HOLE); blocks hashed on a thread pool; at most 8
// batches in flight, so memory is flat in the file size (the map is streamed
// too, never held whole).
//
// A tree's mirror has its metadata read ahead by a thread of its own (a
// walk of lstat calls through directory descriptors, nothing written), so
// that on a cold disk the sync's lstat of each mirror entry seldom waits.
// Another thread asks the kernel for the data of the source files the sync
// is about to copy (source_prefetch.h; not with read_limit), a bounded way
// ahead of it, so that each small file is not read cold in its turn.
//
// Trees are mirrored with the same rules as the store (rsync -aH, like
// backup/restore): type, mode, owner, mtime (ns), symlink targets, device
// numbers, fifos, sockets, xattrs (ACLs, capabilities), hard links within the
// tree; one file system (a mount point is kept as an empty directory).
// Entries that vanished from the source are deleted from the mirror, and
// their maps with them; deletion never crosses into another file system
// mounted inside the mirror (an error). A top-level source entry named
// .vmback-blockmaps is left out (reported as an error); a top-level .zfs
// (ZFS's control directory) is neither mirrored nor deleted. A block device source is mirrored as a
// regular file with mode 0600 and no metadata of the device node.
//
// Errors: a failure to write the target throws vmback::Error (kNoSpace for
// ENOSPC). A source entry that cannot be read (other than the source root)
// is reported, counted in errors and left as it is in the mirror; the map
// sweep is then skipped (it could not tell that entry's map from a dead one).
// A caller should take no target snapshot when errors > 0.
//
// Durability: no fsync per written file, map or directory (only a map
// that no longer fits, when it is emptied); the sync makes everything
// durable with syncfs(2) of the target: one before the queued copies of
// changed files (step 1), one before the maps are completed (step 3), one
// after (step 4), and one more per kMaxQueuedCopies changed files or
// kMaxPendingMaps files written. A sync that changed nothing syncs
// nothing. All of it before SyncInPlace returns. Between barriers, after
// every writeback_every bytes written, a syncfs on a thread of its own
// (not waited for) starts writing back what is there, so that the last
// barrier does not write the whole run at once; it orders nothing.
//
// Seams: file data, maps, directory creation, removal of files and fsync go
// through Env (so FaultEnv can inject faults there); a directory tree is
// removed through Dir (os/dir.h: descriptors, no symlink followed, no mount
// crossed). Outside Env, as raw system calls (Env has no such methods yet):
// hole punching, symlink/mknod/link, metadata (chown, chmod, xattrs,
// utimensat) and syncfs.
//
// Restores (RestoreFromTarget) do not write through this sink: they walk
// their destination with Dir, which this path-based sink does not.
//
// Runs as root: as another user, owners that cannot be set are warnings
// (as in restore) and device nodes cannot be made (an error).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "destination/backup_types.h"
#include "inplace/blockmap.h"
#include "os/env.h"
#include "scan/exclude_filter.h"
#include "util/change_set.h"
#include "util/log.h"
#include "util/sha256.h"

namespace vmback {

struct InplaceOptions {
  bool full_read = false;        // read every file, ignoring the quick check
  bool one_file_system = true;   // do not descend into other mounts
  bool punch_holes = true;       // false: all-zero blocks are written as zeros
  unsigned threads = 0;          // hashing threads; 0 = one per CPU
  // The source is itself a mirror (a restore out of a target's point): its
  // top-level .vmback-blockmaps is skipped quietly instead of being an error.
  bool source_is_mirror = false;
  // Not empty: top-level source entries named with this prefix are vmback's
  // own (its snapshots inside a source) and not mirrored (LeaveOutOwnEntry);
  // a mirror of one is removed.
  std::string own_prefix = "";
  // What the tree leaves out (patterns, cache directories, vmback's own
  // paths; may be null). What the mirror holds of an entry left out is
  // deleted, as rsync --delete-excluded does. Outlives the sync.
  const VolumeExcludes* excludes = nullptr;
  uint64_t read_limit = 0;    // source reads paced to this many bytes/s; 0: no limit
  bool drop_cache = true;     // drop source pages from the page cache behind the reader
  // After each this many bytes written to the target, its disk is asked to
  // start writing them back (syncfs(2) on a thread of its own, not waited
  // for), so that the barriers, and the last one above all, find little
  // left to write. Only a head start: durability comes from the barriers.
  // 0: never.
  uint64_t writeback_every = 128u << 20;
  const std::atomic<bool>* cancel = nullptr;  // polled between batches
  // Changed-block tracking (VolumeSpec::changes): asked, for a file (or
  // device) whose map can be trusted and whose size is the one the map
  // records, what may have changed since the previous run (rel: its path
  // below the source, "" when the source is the file; path: where it is
  // read). With a list, only the blocks its ranges touch are read and
  // compared with the map; the others, and their entries, stay as they are.
  // Not asked on a full read, nor for a file the quick check skips; a file
  // without a trusted map of its size is read in full, the reason in
  // InplaceStats::change_why.
  std::function<ChangeSet(const std::string& rel, const std::string& path)> changes = nullptr;
};

// InplaceStats (the sink's figures per volume): destination/backup_types.h.

// Mirrors source (a regular file, a block device or a directory; a symlink to
// one is followed) to dest (a file for a file or device source; a directory
// for a tree; created if missing, its parent must exist). block_size: the
// target's record size, a power of two from 512 bytes to 16 MiB. Throws
// vmback::Error: kConfig for bad arguments (dest inside source or source
// inside dest, a tree onto a file, a file onto a directory), kLocked when
// another sync holds the map root, target I/O errors as they come.
InplaceStats SyncInPlace(Env* env, const std::string& source, const std::string& dest,
                         uint32_t block_size, const InplaceOptions& options, Logger* log);

// Throws kConfig naming path when it exists and is not what vmback made
// there: a directory (want_dir) or a regular file, never a symlink. For the
// files and directories vmback keeps inside a target (locks, blockmaps,
// their directories, mirrored file volumes).
void CheckOwnEntry(Env* env, const std::string& path, bool want_dir);
// The same for st, the lstat of path already taken.
void CheckOwnEntry(const std::string& path, const FileStatus& st, bool want_dir);

}  // namespace vmback
