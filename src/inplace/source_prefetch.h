// Walks a source tree ahead of the in-place sync (inplace.h) on a thread of
// its own, in the sync's order (names sorted bytewise, each directory
// entered where it stands), and does two things there:
// - it lists each directory and lstats its entries, and hands the listing
//   to the sync's walk when it comes there (Take): the walk's thread, the
//   one the sync waits on, then makes none of these calls itself (on a day
//   when little changed they were most of its work);
// - for each regular file the sync is expected to read, it opens it and
//   asks for its first bytes (posix_fadvise WILLNEED), so the disk works on
//   the next files while the sync copies and hashes this one. Without it
//   each small file was read cold in its turn.
//
// It reads nothing of a file into memory of its own and writes nothing; an
// entry it cannot look at is left for the walk to look at (and report). A
// listing may be older than the walk's own look would be, as any walk of a
// live tree is; the walk uses it only for the directory it has open itself
// (the same device and inode). The file data asked for stays at most
// kAheadFiles files and kAheadBytes bytes ahead of the sync (Passed), the
// listings kAheadEntries entries. It leaves out what the sync leaves out
// (excludes, vmback's own entries, other file systems with
// one_file_system, ZFS's control directory, the map directory's name at
// the top). The destructor stops and joins it.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

  // A source directory as the thread listed it.
  struct Listing {
    std::string rel;                 // "" for the top
    FileStatus self;                 // fstat of the directory listed
    std::vector<std::string> names;  // sorted bytewise
    std::vector<FileStatus> st;      // st[i]: lstat of names[i] (where known[i])
    std::vector<char> known;         // 0: the lstat failed; the walk makes its own
  };

  static constexpr size_t kAheadFiles = 128;
  // Entries listed but not taken at most (memory: about 200 bytes each); a
  // directory with more is handed over whole.
  static constexpr size_t kAheadEntries = 8192;
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

  // The source directory rel as the thread listed it, or null when it has
  // none (it could not list it, or left it out). Asked in walk order; a
  // directory asked for after a later one is null, and what was listed
  // before rel is dropped.
  std::shared_ptr<const Listing> Take(const std::string& rel);

  // Files asked for so far, and whether the walk is over (for tests).
  uint64_t asked() const { return asked_; }
  bool done() const { return done_; }

 private:
  void Walk(const std::string& root);
  void WalkDir(ReadableDir* dir, const std::string& rel);
  // Lists dir (lstats included) into a Listing; throws what listing it throws.
  std::shared_ptr<const Listing> List(ReadableDir* dir, const std::string& rel);
  // Hands l over to Take (waits for room); false when stopped.
  bool Push(std::shared_ptr<const Listing> l);
  // The thread has come to the entry rel: a Take of a directory before it
  // that was not listed need not wait any longer.
  void At(const std::string& rel);
  // Takes the first listing out of listed_ (mu_ held).
  std::shared_ptr<const Listing> PopListing();
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
  std::deque<std::shared_ptr<const Listing>> listed_;  // not taken yet, in walk order
  size_t listed_entries_ = 0;
  bool listed_closed_ = false;  // nothing more comes
  bool started_ = false;        // pos_ is set
  std::string pos_;             // the entry the thread is at (At)
  bool taking_ = false;         // the walk waits in Take
  std::condition_variable listed_cv_;
  std::thread thread_;  // last: started once the rest is set
};

}  // namespace inplace_internal
}  // namespace vmback
