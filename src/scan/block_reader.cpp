#include "scan/block_reader.h"

#include <algorithm>
#include <cstring>

namespace vmback {

bool DataMap::HasData(uint64_t off, uint64_t len) {
  if (off >= f_->Size()) return false;
  if (one_block_) return true;
  if (off >= data_ && off < hole_) return true;
  if (off >= asked_ && off < data_) return data_ < off + len;
  asked_ = off;
  data_ = f_->NextData(off);
  hole_ = data_ < f_->Size() ? f_->NextHole(data_) : data_;
  return data_ < off + len;
}

BlockReader::BlockReader(ReadableFile* f, uint64_t block_size, uint64_t size, Options options)
    : f_(f), bs_(block_size), size_(size), options_(options), map_(f, block_size), ahead_(f, block_size) {
  if (f_->Size() > bs_) f_->DisableReadahead();
}

uint64_t BlockReader::Read(uint64_t first, size_t count, char* buf, std::vector<uint8_t>* hole,
                           bool zero_fill) {
  uint64_t read = 0;
  hole->assign(count, 0);
  size_t i = 0;
  while (i < count) {
    const uint64_t off = (first + i) * bs_;
    if (!map_.HasData(off, std::min(bs_, size_ - off))) {
      (*hole)[i] = 1;
      if (zero_fill) std::memset(buf + i * bs_, 0, std::min(bs_, size_ - off));
      i++;
      continue;
    }
    size_t j = i + 1;
    while (j < count) {
      const uint64_t o = (first + j) * bs_;
      if (!map_.HasData(o, std::min(bs_, size_ - o))) break;
      j++;
    }
    const uint64_t len = std::min<uint64_t>((j - i) * bs_, size_ - off);
    if (options_.pacer) options_.pacer->Take(len);
    const size_t got = f_->ReadAt(off, buf + i * bs_, len);
    if (options_.drop_cache) f_->DropCache(off, len);
    if (got < len) std::memset(buf + i * bs_ + got, 0, len - got);
    read += got;
    i = j;
  }
  return read;
}

void BlockReader::Prefetch(uint64_t first, size_t count) {
  const uint64_t end = std::min(size_, (first + count) * bs_);
  uint64_t run = 0, run_end = 0;  // the data run being gathered
  for (uint64_t off = first * bs_; off < end; off += bs_) {
    const uint64_t len = std::min(bs_, size_ - off);
    if (!ahead_.HasData(off, len)) continue;
    if (off != run_end) {
      if (run_end > run) f_->WillNeed(run, run_end - run);
      run = off;
    }
    run_end = off + len;
  }
  if (run_end > run) f_->WillNeed(run, run_end - run);
}

}  // namespace vmback
