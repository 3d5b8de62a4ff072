// The in-place sink's copy of one file's content (inplace.h): the source is
// read by a BlockReader (scan/block_reader.h, shared with the store's
// scanner) in large batches of its data regions only (SEEK_DATA/SEEK_HOLE),
// each batch hashed on a thread pool, at most a few batches in flight (so
// memory is flat in the file size); a block is written only when it differs
// from what the target holds (its map's entry, or its data when the map
// cannot be trusted), an all-zero block is punched as a hole, and the map's
// entries are written alongside. With a change list (FileCopy::changed)
// only the blocks it touches are read; the others keep their entries.
// Internal to src/inplace: the sink (inplace.cpp) decides what to compare
// with, opens the files and commits the map once the file is durable.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "inplace/blockmap.h"
#include "inplace/inplace.h"
#include "os/env.h"
#include "util/change_set.h"
#include "util/error.h"
#include "util/log.h"
#include "util/rate_pacer.h"
#include "util/thread_pool.h"

namespace vmback {

// An error reading the source: the entry is left out, the sync goes on.
class SourceError : public Error {
 public:
  using Error::Error;
};

// Runs f, turning its errors (but a crash) into SourceErrors.
template <typename F>
auto FromSource(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const SourceError&) {
    throw;
  } catch (const Error& err) {
    if (err.kind() == ErrorKind::kCrash) throw;
    throw SourceError(err.kind(), err.what());
  }
}

// What a file's new content is compared with, to find the blocks to write.
enum class CopyBasis {
  kFresh,    // nothing: a new target file, a hole until written
  kMap,      // the entries of the target file's map, which can be trusted
  kCompare,  // the target file's data (its map is missing or cannot be trusted)
};

// One file's copy. The pointers are borrowed for the length of Copy.
struct FileCopy {
  CopyBasis basis = CopyBasis::kFresh;
  ReadableFile* in = nullptr;       // the source, readahead off
  uint64_t size = 0;                // the source's size: the target file's new size
  uint64_t old_size = 0;            // the target file's size now (0 when new)
  ReadableFile* target = nullptr;   // kCompare: the target file's data
  ReadableFile* old_map = nullptr;  // kMap: the map, sound (CheckBlockmap) ...
  const Blockmap* old = nullptr;    // ... and its header
  const std::string* map_path = nullptr;
  WritableFile* out = nullptr;      // the target file, open for writing
  const std::string* dst = nullptr; // its path
  BlockmapWriter* map = nullptr;    // the new map, being written
  // kMap with the old size, a change list (normalized, util/change_set.h):
  // only the blocks its ranges touch are read and compared; the others,
  // and their entries, are kept unread. Null: every block is read.
  const std::vector<ByteRange>* changed = nullptr;
};

// Copies the content of files, one after the other, with one thread pool,
// rate pacer and set of buffers for the whole sync. Not thread-safe.
class BlockCopier {
 public:
  BlockCopier(uint32_t block_size, const InplaceOptions& opts, InplaceStats* stats, Logger* log);

  // Brings c.out to the content of c.in: sets the size (a shrink before the
  // blocks are written, a grow after them, leaving a hole), writes the
  // blocks that differ from the basis, punches all-zero ones (or writes
  // zeros where the file system cannot), invalidates the map before the
  // first change, writes the map entries that differ and feeds every entry
  // to its trailer. Does not fsync. Returns whether any map entry was
  // written. Source read errors throw SourceError; target errors, Error.
  bool Copy(const FileCopy& c);

 private:
  class Run;  // one Copy

  std::unique_ptr<char[]> TakeBuffer(size_t size);
  void GiveBuffer(std::unique_ptr<char[]> b);
  // An all-zero block: a hole where the file system can punch one, else zeros.
  void Punch(WritableFile* out, uint64_t off, size_t len);

  const uint64_t bs_;
  const InplaceOptions& opts_;
  InplaceStats* stats_;
  Logger* log_;
  RatePacer pacer_;
  ThreadPool pool_;
  bool punch_supported_ = true;
  std::string zeros_;
  std::vector<std::unique_ptr<char[]>> free_buffers_;
  size_t buffer_size_ = 0;
};

}  // namespace vmback
