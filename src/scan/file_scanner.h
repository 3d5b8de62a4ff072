// Turns one file or block device into a list of block ids in the store:
// reads it once in large sequential reads, skipping holes (SEEK_DATA /
// SEEK_HOLE) and, on a full unpaced read, asking the kernel to read a few
// batches ahead; hashes every block with SHA-256 and compresses the blocks
// the store lacks on a thread pool, and appends those to the store in order
// (for a large file from a thread of its own, store/put_thread.h, so that
// writing the packs overlaps the reading). Memory is bounded by the number
// of batches in flight and the put queue, whatever the size.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "util/change_set.h"
#include "os/env.h"
#include "util/rate_pacer.h"
#include "store/store.h"
#include "util/log.h"
#include "util/thread_pool.h"

namespace vmback {

struct ScanStats {
  uint64_t bytes_read = 0;
  uint64_t blocks = 0;
  uint64_t new_blocks = 0;
  uint64_t zero_blocks = 0;  // holes and all-zero blocks, of those read
  uint64_t blocks_reused = 0;  // outside the change list: the base's ids, not read
};

// What a file's version in the parent point lets a scan skip: the list blob
// ids of that version (the file had the same size then), and a change list
// that says which bytes may differ since. Blocks that meet no changed range
// take the parent's block ids without being read (a whole list at once when
// none of its blocks changed); the others are read. A parent's list that
// cannot be read or has the wrong length is not trusted: its blocks are read.
struct ScanBase {
  const std::vector<Hash>* content = nullptr;
  const std::vector<ByteRange>* changed = nullptr;  // normalized (NormalizeRanges)
};

class FileScanner {
 public:
  // REQUIRES: store opened for writing; store and pool outlive this.
  // cancel, if set, is polled between batches (see CheckCancel).
  // pacer, if set, paces the reads; drop_cache drops what was read from the
  // page cache behind the reader (posix_fadvise DONTNEED).
  FileScanner(Store* store, ThreadPool* pool, const std::atomic<bool>* cancel = nullptr,
              RatePacer* pacer = nullptr, bool drop_cache = false)
      : store_(store), pool_(pool), cancel_(cancel), pacer_(pacer), drop_cache_(drop_cache) {}

  // Returns the file's content (list blob ids); adds to *stats. With a
  // base, reads only the blocks its change list touches.
  std::vector<Hash> Scan(ReadableFile* file, ScanStats* stats, const ScanBase* base = nullptr);

  // A small file's scan in steps that do not wait, so that the disk reads
  // the next files while this one is read, and the pool hashes and
  // compresses it while the walk goes on. ScanLater asks the kernel to read
  // the file (posix_fadvise WILLNEED) and returns at once; read(), called
  // later on the walking thread, reads it whole (what a read throws, it
  // throws) and hands it to the pool; finish, called after read() on the
  // thread that owns the store writes, waits for that work, puts the blobs
  // the store lacks, adds to *stats and returns the content, as Scan would.
  // Call the reads, and the finishes, in the order of the ScanLater calls,
  // so that files are read, and blobs go into the packs, in walk order.
  // The file is held until read() and its bytes (bytes) until finish.
  // REQUIRES: file->Size() <= kReadBatchBytes.
  struct Later {
    uint64_t bytes = 0;
    std::function<void()> read;
    std::function<std::vector<Hash>(ScanStats* stats)> finish;
  };
  Later ScanLater(std::unique_ptr<ReadableFile> file);

 private:
  Store* store_;
  ThreadPool* pool_;
  const std::atomic<bool>* cancel_;
  // Reads go at a set rate: nothing is asked of the kernel ahead of them.
  // (A backup's pacer is always there: without a rate it only counts.)
  bool Paced() const { return pacer_ && pacer_->rate() != 0; }

  RatePacer* pacer_;
  bool drop_cache_;
};

// Throws Error(kOther, "interrupted") when *cancel is set.
void CheckCancel(const std::atomic<bool>* cancel);

bool IsAllZero(const char* p, size_t n);

// Whether the entry `name` at the top of a directory source (at path) is
// vmback's own and left out of the scan: its name starts with own_prefix
// (when not empty), the prefix of the snapshots vmback keeps inside a
// source. A left-out entry is named in the log.
bool LeaveOutOwnEntry(const std::string& own_prefix, const std::string& name, const std::string& path,
                      Logger* log);

}  // namespace vmback
