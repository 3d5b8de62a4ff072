// Reading a file block by block as both readers of whole files do (the
// store's scanner, scan/file_scanner.h, and the in-place sink,
// inplace/block_copy.h): each run of data blocks with one large read, holes
// found with SEEK_DATA/SEEK_HOLE and never read, the reads paced (--read-
// limit) and dropped from the page cache behind the reader when asked.
#pragma once

#include <cstdint>
#include <vector>

#include "os/env.h"
#include "util/rate_pacer.h"

namespace vmback {

// Where the data regions of a file are, asking the file system lazily:
// one SEEK_DATA and one SEEK_HOLE per data run, not per block of a hole.
// Past the file's end there is no data (a target shorter than the source).
// A file of one block at most is taken as all data, unasked: its one read
// costs less than the two seeks (in a tree of small files, two system calls
// a file), and a hole in it reads as zeros.
class DataMap {
 public:
  DataMap(ReadableFile* f, uint64_t block_size) : f_(f), one_block_(f->Size() <= block_size) {}
  // Whether [off, off+len) holds any data.
  bool HasData(uint64_t off, uint64_t len);

 private:
  ReadableFile* f_;
  const bool one_block_;
  // Known: [asked_, data_) is a hole, [data_, hole_) is data.
  uint64_t asked_ = 0, data_ = 0, hole_ = 0;
};

class BlockReader {
 public:
  struct Options {
    RatePacer* pacer = nullptr;  // paces the bytes read; not owned
    bool drop_cache = false;     // drop what was read from the page cache
  };
  // Reads f as content `size` bytes long in blocks of block_size. f, and
  // the pacer, are borrowed for the reader's life. Turns the kernel's
  // read-ahead off (the reads are large and skip the holes), unless f is
  // one block at most (read at once: nothing to read ahead).
  BlockReader(ReadableFile* f, uint64_t block_size, uint64_t size, Options options);

  // Reads `count` blocks from block `first` into buf (count * block_size
  // bytes); hole[k] is set for a block with no data, which is left unset,
  // or zeroed when zero_fill. Bytes past the end of the file (it is
  // shorter, or shrank meanwhile) read as zeros. Returns the bytes read.
  uint64_t Read(uint64_t first, size_t count, char* buf, std::vector<uint8_t>* hole, bool zero_fill);

  // Asks the kernel to start reading the data of `count` blocks from block
  // `first` in the background (ReadableFile::WillNeed), holes left out, so
  // that a later Read of them finds them in the page cache: the disk reads
  // ahead while the caller works. REQUIRES: first at or after the end of the
  // previous Prefetch (its own cursor goes forward only).
  void Prefetch(uint64_t first, size_t count);

 private:
  ReadableFile* f_;
  const uint64_t bs_, size_;
  const Options options_;
  DataMap map_;
  DataMap ahead_;  // Prefetch's, apart from Read's: each goes forward
};

}  // namespace vmback
