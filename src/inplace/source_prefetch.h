// Asks the kernel for a source tree's file data ahead of the in-place sync
// (inplace.h): a thread of its own walks the source in the sync's order
// (names sorted bytewise, each directory entered where it stands) and, for
// each regular file the sync is expected to read, opens it and asks for its
// first bytes (posix_fadvise WILLNEED), so the disk works on the next files
// while the sync copies and hashes this one. Without it each small file
// was read cold in its turn.
//
// Only a hint: it reads nothing into memory of its own and writes nothing;
// an entry it cannot look at is passed over quietly. It stays at most
// kAheadFiles files and kAheadBytes bytes ahead of the sync (Passed), and
// leaves out what the sync leaves out (excludes, vmback's own entries, other
// file systems with one_file_system, ZFS's control directory, the map
// directory's name at the top). The destructor stops and joins it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "inplace/inplace.h"
#include "os/env.h"
#include "scan/exclude_filter.h"

namespace vmback {
namespace inplace_internal {

class SourcePrefetch {
 public:
  // Whether the sync will read the data of the regular file at rel (its
  // lstat st). Called from the prefetch thread: must be safe to call while
  // the sync runs.
  using WillRead = std::function<bool(const std::string& rel, const FileStatus& st)>;

  static constexpr size_t kAheadFiles = 128;
  static constexpr uint64_t kAheadBytes = 64u << 20;
  // Asked of a larger file: its first bytes only (the copier reads the
  // rest in large batches of its own).
  static constexpr uint64_t kMaxPerFile = 4u << 20;

  // root: the source directory (the tree's top), on the file system dev.
  // What it needs of opts is copied, but opts.excludes must outlive it.
  SourcePrefetch(Env* env, const std::string& root, dev_t dev, const InplaceOptions& opts, WillRead will_read);
  ~SourcePrefetch();
  SourcePrefetch(const SourcePrefetch&) = delete;
  SourcePrefetch& operator=(const SourcePrefetch&) = delete;

  // The sync has come to the entry rel (in walk order): what lies before it
  // is done with.
  void Passed(const std::string& rel);

  // Files asked for so far, and whether the walk is over (for tests).
  uint64_t asked() const { return asked_; }
  bool done() const { return done_; }

 private:
  void Walk(const std::string& root);
  void WalkDir(ReadableDir* dir, const std::string& rel);
  // Whether the sync has gone past rel (its pages would be read again for
  // nothing: the sync drops what it has read from the cache).
  bool Behind(const std::string& rel);
  // Forgets what the sync has passed (mu_ held).
  void DropPassed();
  // Waits until bytes more may be asked for; false when stopped.
  bool WaitForRoom(uint64_t bytes);

  Env* env_;
  const dev_t dev_;
  const bool one_file_system_;
  const std::string own_prefix_;
  const WillRead will_read_;
  ExcludeFilter filter_;  // its own: the sync's is not thread-safe
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> asked_{0};
  std::atomic<bool> done_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::string at_;  // where the sync is (Passed)
  struct Asked {
    std::string rel;
    uint64_t bytes;
  };
  std::deque<Asked> ahead_;  // asked for, in walk order, not passed yet
  uint64_t ahead_bytes_ = 0;
  bool waiting_ = false;  // the walk waits for room (WaitForRoom)
  std::thread thread_;  // last: started once the rest is set
};

}  // namespace inplace_internal
}  // namespace vmback
