#include "inplace/block_copy.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <future>

#include "scan/block_reader.h"
#include "scan/file_scanner.h"
#include "util/tunables.h"

namespace vmback {

namespace {

constexpr size_t kMaxBatchesInFlight = 8;       // memory: at most 8 batches (16 in compare mode)

struct Batch {
  uint64_t first = 0;
  size_t count = 0;
  bool keep = false;               // blocks no change list touches: not read, entries kept
  std::unique_ptr<char[]> data;    // source blocks
  std::vector<uint8_t> hole;
  std::unique_ptr<char[]> target;  // compare mode: the target's blocks, holes zeroed
  std::vector<uint8_t> target_hole;
  // Filled by the worker:
  std::vector<Hash> ids;           // zero id for an all-zero block
  std::vector<uint8_t> equal;      // compare mode: the target holds this block already
};

void HashBatch(Batch* b, uint64_t bs, uint64_t size, bool compare) {
  b->ids.assign(b->count, Hash{});
  if (compare) b->equal.assign(b->count, 0);
  for (size_t k = 0; k < b->count; k++) {
    uint64_t off = (b->first + k) * bs;
    size_t len = static_cast<size_t>(std::min(bs, size - off));
    const char* p = b->data.get() + k * bs;
    bool zero = b->hole[k] || IsAllZero(p, len);
    if (!zero) b->ids[k] = Sha256(p, len);
    if (compare) {
      const char* t = b->target.get() + k * bs;
      b->equal[k] = zero ? (b->target_hole[k] || IsAllZero(t, len)) : std::memcmp(p, t, len) == 0;
    }
  }
}

}  // namespace

// One file's copy: batches are read here, hashed on the pool, and finished
// (blocks and map entries written) in order as they come back.
class BlockCopier::Run {
 public:
  Run(BlockCopier* k, const FileCopy& c)
      : k_(*k),
        c_(c),
        bs_(k->bs_),
        n_(BlockCount(c.size, bs_)),
        old_n_(c.basis == CopyBasis::kMap ? BlockCount(c.old->file_size, bs_) : 0),
        per_batch_(static_cast<size_t>(std::max<uint64_t>(1, kReadBatchBytes / bs_))),
        src_(c.in, bs_, c.size, {.pacer = &k->pacer_, .drop_cache = k->opts_.drop_cache}) {
    if (c.target) dst_ = std::make_unique<BlockReader>(c.target, bs_, c.size, BlockReader::Options{});
  }

  bool Go() {
    if (c_.old_size > c_.size) {  // shrink first: frees space before anything is written
      c_.map->Invalidate();
      c_.out->Truncate(c_.size);
    }
    const size_t max_in_flight = std::min(k_.pool_.size() * 2 + 1, kMaxBatchesInFlight);
    ForEachRun([&](uint64_t b, size_t count, bool read) {
      CheckCancel(k_.opts_.cancel);
      if (read) {
        ReadAndSubmit(b, count);
      } else {
        Keep(b, count);
      }
      while (in_flight_.size() >= max_in_flight) DrainOne();
    });
    while (!in_flight_.empty()) DrainOne();
    if (c_.old_size < c_.size) {  // grow (or a new file): what was not written is a hole
      c_.map->Invalidate();
      c_.out->Truncate(c_.size);
    }
    return entries_changed_;
  }

 private:
  // Calls f(first, count, read) for the batches of the file in order, at
  // most per_batch_ blocks each: all of them read, or with a change list
  // (c_.changed) the blocks its ranges touch read and the others not.
  template <typename F>
  void ForEachRun(F&& f) {
    if (!c_.changed) {
      Split(0, n_, true, f);
      return;
    }
    uint64_t b = 0;  // blocks before b are handed out
    for (const ByteRange& r : *c_.changed) {
      const uint64_t end = std::min(n_, (r.offset + r.length + bs_ - 1) / bs_);
      if (end <= b) continue;  // within a block the previous range touched
      const uint64_t first = std::max(b, r.offset / bs_);
      Split(b, first, false, f);
      Split(first, end, true, f);
      b = end;
    }
    Split(b, n_, false, f);
  }

  template <typename F>
  void Split(uint64_t from, uint64_t to, bool read, F& f) {
    for (uint64_t b = from; b < to; b += per_batch_)
      f(b, static_cast<size_t>(std::min<uint64_t>(per_batch_, to - b)), read);
  }

  // Blocks the change list does not touch: in the queue (so the map's
  // trailer gets their entries in order), but not read.
  void Keep(uint64_t b, size_t count) {
    auto batch = std::make_shared<Batch>();
    batch->first = b;
    batch->count = count;
    batch->keep = true;
    in_flight_.emplace_back(batch, std::future<void>());  // nothing to wait for
  }

  // Reads the batch of count blocks from b (and, comparing, the target's)
  // and hands it to the pool.
  void ReadAndSubmit(uint64_t b, size_t count) {
    const uint64_t bs = bs_, size = c_.size;
    const bool compare = c_.basis == CopyBasis::kCompare;
    auto batch = std::make_shared<Batch>();
    batch->first = b;
    batch->count = count;
    batch->data = k_.TakeBuffer(per_batch_ * bs);
    k_.stats_->bytes_read += FromSource([&] {
      return src_.Read(b, batch->count, batch->data.get(), &batch->hole, /*zero_fill=*/false);
    });
    if (compare) {
      batch->target = k_.TakeBuffer(per_batch_ * bs);
      k_.stats_->target_bytes_read +=
          dst_->Read(b, batch->count, batch->target.get(), &batch->target_hole, /*zero_fill=*/true);
    }
    if (n_ <= per_batch_) {
      // The whole file is this one batch: nothing to overlap its hashing
      // with, and a hand-off to the pool and back costs two thread wake-ups
      // per file (most of a small file's time in a tree of them). No
      // future either: a promise's set_value costs a futex call.
      HashBatch(batch.get(), bs, size, compare);
      in_flight_.emplace_back(batch, std::future<void>());
      return;
    }
    // The task owns the batch too: if the caller throws, a running task
    // still has its buffers.
    in_flight_.emplace_back(batch, k_.pool_.Submit([batch, bs, size, compare] {
      HashBatch(batch.get(), bs, size, compare);
    }));
  }

  // Waits for the oldest batch and writes what it changed.
  void DrainOne() {
    auto [batch, done] = std::move(in_flight_.front());
    in_flight_.pop_front();
    if (done.valid()) done.get();  // invalid: done here already
    // The task is done with the buffers (get() orders it); they go back
    // to the free list when this batch is finished with.
    struct Recycle {
      BlockCopier* k;
      Batch* b;
      ~Recycle() {
        k->GiveBuffer(std::move(b->data));
        if (b->target) k->GiveBuffer(std::move(b->target));
      }
    } recycle{&k_, batch.get()};
    old_entries_.clear();
    if (batch->keep) {  // kMap, same size: the old entries stand
      ReadBlockmapEntries(c_.old_map, *c_.map_path, *c_.old, batch->first, batch->count, &old_entries_);
      c_.map->AddToTrailer(old_entries_.data(), batch->count);
      k_.stats_->blocks += batch->count;
      return;
    }
    if (c_.basis == CopyBasis::kMap && batch->first < old_n_) {
      size_t m = static_cast<size_t>(std::min<uint64_t>(batch->count, old_n_ - batch->first));
      ReadBlockmapEntries(c_.old_map, *c_.map_path, *c_.old, batch->first, m, &old_entries_);
    }
    new_entries_.assign(reinterpret_cast<const char*>(batch->ids.data()), batch->count * kBlockmapEntrySize);
    WriteBlocks(*batch);
    WriteMapEntries(*batch);
  }

  // Whether the target holds block k of the batch already.
  bool Same(const Batch& b, size_t k) const {
    const uint64_t i = b.first + k;
    const Hash& id = b.ids[k];
    switch (c_.basis) {
      case CopyBasis::kFresh:
        return id.IsZero();  // a new file is a hole until written
      case CopyBasis::kCompare:
        return b.equal[k];
      case CopyBasis::kMap:
        if (i < old_n_)
          return std::memcmp(old_entries_.data() + k * kBlockmapEntrySize, id.bytes.data(), kBlockmapEntrySize) == 0;
        return id.IsZero();  // past the old end: a hole once the size is set
    }
    return false;
  }

  void WriteBlocks(const Batch& b) {
    for (size_t k = 0; k < b.count; k++) {
      const uint64_t off = (b.first + k) * bs_;
      const size_t len = static_cast<size_t>(std::min(bs_, c_.size - off));
      k_.stats_->blocks++;
      if (Same(b, k)) continue;
      c_.map->Invalidate();
      if (b.ids[k].IsZero()) {
        k_.Punch(c_.out, off, len);
      } else {
        c_.out->WriteAt(off, b.data.get() + k * bs_, len);
        k_.stats_->blocks_written++;
        k_.stats_->bytes_written += len;
      }
    }
  }

  // The map's entries for the batch: updating a map, only the runs that
  // differ from the old entries; else all of them.
  void WriteMapEntries(const Batch& b) {
    const size_t count = b.count;
    if (c_.basis == CopyBasis::kMap) {
      auto differs = [&](size_t x) {
        const size_t at = x * kBlockmapEntrySize;
        return b.first + x >= old_n_ ||
               std::memcmp(old_entries_.data() + at, new_entries_.data() + at, kBlockmapEntrySize) != 0;
      };
      size_t k = 0;
      while (k < count) {
        if (!differs(k)) {
          k++;
          continue;
        }
        size_t j = k + 1;
        while (j < count && differs(j)) j++;
        c_.map->WriteEntries(b.first + k, new_entries_.data() + k * kBlockmapEntrySize, j - k);
        entries_changed_ = true;
        k = j;
      }
    } else {
      c_.map->WriteEntries(b.first, new_entries_.data(), count);
    }
    c_.map->AddToTrailer(new_entries_.data(), count);
  }

  BlockCopier& k_;
  const FileCopy& c_;
  const uint64_t bs_;
  const uint64_t n_;      // blocks of the new content
  const uint64_t old_n_;  // entries of the old map (kMap)
  const size_t per_batch_;
  BlockReader src_;
  std::unique_ptr<BlockReader> dst_;  // kCompare: the target's data
  bool entries_changed_ = false;
  std::string old_entries_, new_entries_;
  std::deque<std::pair<std::shared_ptr<Batch>, std::future<void>>> in_flight_;
};

BlockCopier::BlockCopier(uint32_t block_size, const InplaceOptions& opts, InplaceStats* stats, Logger* log)
    : bs_(block_size), opts_(opts), stats_(stats), log_(log), pacer_(opts.read_limit), pool_(opts.threads) {}

bool BlockCopier::Copy(const FileCopy& c) { return Run(this, c).Go(); }

// Batch buffers are reused: a fresh 4 MiB allocation per batch costs an
// mmap, page faults and an munmap each time.
std::unique_ptr<char[]> BlockCopier::TakeBuffer(size_t size) {
  if (size != buffer_size_) {
    free_buffers_.clear();
    buffer_size_ = size;
  }
  if (free_buffers_.empty()) return std::unique_ptr<char[]>(new char[size]);
  auto b = std::move(free_buffers_.back());
  free_buffers_.pop_back();
  return b;
}

void BlockCopier::GiveBuffer(std::unique_ptr<char[]> b) {
  if (b && free_buffers_.size() < 2 * kMaxBatchesInFlight) free_buffers_.push_back(std::move(b));
}

void BlockCopier::Punch(WritableFile* out, uint64_t off, size_t len) {
  if (opts_.punch_holes && punch_supported_) {
    if (out->PunchHole(off, len)) {
      stats_->holes_punched++;
      return;
    }
    punch_supported_ = false;
    log_->Info("the target file system cannot punch holes; all-zero blocks are written as zeros");
  }
  if (zeros_.size() < len) zeros_.assign(len, '\0');
  out->WriteAt(off, zeros_.data(), len);
  stats_->blocks_written++;
  stats_->bytes_written += len;
}

}  // namespace vmback
