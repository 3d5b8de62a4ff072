// Looks at a mirror tree ahead of the in-place sync (inplace.h), on two
// threads of its own: one lists each mirror directory and lstats its
// entries, the other, for each file the map index says may be unchanged,
// lstats that file's map; each directory's findings go to the sync's walk
// when it comes there (Take). On a day when little changed these lstats
// are most of the sync's work, and on a cold disk most of its waiting: done
// here, the walk only lstats the source, and the disk has several reads to
// work on at once.
//
// The walk order is the sync's: a directory's entries (names sorted
// bytewise) before its subdirectories, each subdirectory in that order (so
// directories come in path order). Read-only, through directory
// descriptors: no symlink followed, no other file system entered, neither
// the top's .vmback-blockmaps nor ZFS's control directory. Any error ends
// (a part of) the scan quietly: the sync looks for itself where the scan
// has nothing. What it found may be older than the sync's own look would
// be; the sync uses it only to tell a file it then leaves untouched (every
// change is made after lstats of its own), and only in a directory that is
// still the one the scan saw. The destructor stops and joins the threads.
#pragma once

#include <sys/types.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "inplace/blockmap.h"
#include "os/env.h"
#include "util/sha256.h"

namespace vmback {
namespace inplace_internal {

class MirrorScan {
 public:
  struct Seen {
    std::string name;
    FileStatus st;           // the entry's lstat
    // A regular file: its record in the map index when WantMap gave one.
    const Blockmap* indexed = nullptr;
    bool map_looked = false;  // map_st, map_hash hold its map's
    FileStatus map_st;        // lstat of its map (kMissing: none)
    Hash map_hash;            // Sha256(rel): the map is "<hex>.map" in "<hex[0:2]>"
  };
  struct Dir {
    std::string rel;           // "" for the top
    std::vector<Seen> seen;    // sorted by name
    // The entry of that name, or null.
    const Seen* Find(const std::string& name) const;
  };
  // The index record of the mirror file at rel (its lstat st) when its map
  // is worth an lstat, else null. Called on a thread of the scan.
  using WantMap = std::function<const Blockmap*(const std::string& rel, const FileStatus& st)>;

  // Entries found but not taken at most, in each of the two hand-overs
  // (memory: a few hundred bytes each); a directory with more is handed
  // over whole.
  static constexpr size_t kAheadEntries = 8192;

  // root: the mirror directory, on the file system dev; map_dir: its
  // .vmback-blockmaps.
  MirrorScan(Env* env, const std::string& root, const std::string& map_dir, dev_t dev, WantMap want_map);
  ~MirrorScan();
  MirrorScan(const MirrorScan&) = delete;
  MirrorScan& operator=(const MirrorScan&) = delete;

  // The mirror directory rel as the scan found it, or null when the scan
  // has none (the mirror had no such directory, or the scan could not read
  // it). Asked in walk order; a directory asked for after a later one is
  // null, and what the scan found before rel is dropped.
  std::unique_ptr<Dir> Take(const std::string& rel);

  // Lstats of maps made so far (for tests).
  uint64_t maps_looked() const { return maps_looked_; }

 private:
  // Directories in walk order, handed from one thread to the next.
  struct Queue {
    std::deque<std::unique_ptr<Dir>> dirs;
    size_t entries = 0;
    bool closed = false;  // nothing more comes
  };

  // The first thread: lists and lstats the mirror into listed_.
  void Walk(const std::string& root, dev_t dev);
  void WalkDir(ReadableDir* dir, const std::string& rel, dev_t dev);
  // The second: the maps of what listed_ holds, then into found_
  // (LookAtMapsOf), which is closed after, whatever happened.
  void LookAtMaps();
  void LookAtMapsOf();
  // Looks at the map of the file rel into s (kept quiet on errors).
  void LookAtMap(const std::string& rel, Seen* s);
  // Hands d over into q (waits for room); false when stopped.
  bool Push(Queue* q, std::unique_ptr<Dir> d);
  // Takes the first directory out of q (mu_ held).
  std::unique_ptr<Dir> PopFront(Queue* q);
  void Close(Queue* q);

  Env* env_;
  const std::string map_dir_;
  const WantMap want_map_;
  // The map directory's subdirectories, opened as first needed (null:
  // could not be opened; its maps are left to the sync).
  std::array<std::unique_ptr<ReadableDir>, 256> map_subdirs_;
  std::array<bool, 256> map_subdir_tried_{};
  std::atomic<uint64_t> maps_looked_{0};

  std::mutex mu_;
  std::condition_variable cv_;
  Queue listed_;  // lstat'ed, maps not looked at yet
  Queue found_;   // ready, not taken yet
  std::atomic<bool> stop_{false};  // set with mu_ held (the waits test it)
  std::thread walker_;
  std::thread mapper_;
  // Stops and joins the threads started.
  void Stop();
};

}  // namespace inplace_internal
}  // namespace vmback
