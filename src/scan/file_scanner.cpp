#include "scan/file_scanner.h"

#include <cstring>
#include <memory>
#include <deque>
#include <future>
#include <optional>

#include "scan/block_reader.h"
#include "store/put_thread.h"
#include "store/tree.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace {

struct Batch {
  uint64_t first_block = 0;
  size_t blocks = 0;
  std::vector<uint8_t> hole;  // per block: no data on disk, skip reading
  std::vector<std::optional<Hash>> reuse;  // per block: the base's id, not read
  // blocks * block_size bytes, not zero-filled: holes are never read or
  // looked at, so the buffer costs no memset.
  std::unique_ptr<char[]> data;
};

// A file of at least this many bytes puts its blobs from a thread of its own
// (store/put_thread.h), so that writing the pack overlaps reading and
// hashing; a smaller one puts them itself (a thread per small file of a
// directory would cost more than it saves).
constexpr uint64_t kPutThreadMinBytes = 4 * kReadBatchBytes;
// Stored bytes that may wait for that thread: a few batches' worth.
constexpr uint64_t kPutQueueBytes = 4 * kReadBatchBytes;
// How many batches ahead of the one it reads a full, unpaced read asks the
// kernel to read (BlockReader::Prefetch): the disk works while the batch is
// copied out and handed on, instead of waiting for the next read.
constexpr uint64_t kPrefetchBatches = 2;

struct BlockResult {
  Hash id;  // zero id for an all-zero block
  std::optional<EncodedBlob> blob;  // set when the store lacked it
  bool reused = false;               // the base's id, unread
};

// The pool's work on one batch: each block's id, and the encoded blob of
// each one the store lacks.
std::vector<BlockResult> HashAndEncode(const Batch& batch, uint64_t bs, uint64_t size, int level, Store* store) {
  std::vector<BlockResult> out(batch.blocks);
  for (size_t k = 0; k < batch.blocks; k++) {
    if (batch.reuse[k]) {
      out[k].id = *batch.reuse[k];
      out[k].reused = true;
      continue;
    }
    uint64_t off = (batch.first_block + k) * bs;
    size_t len = static_cast<size_t>(std::min(bs, size - off));
    const char* p = batch.data.get() + k * bs;
    if (batch.hole[k] || IsAllZero(p, len)) continue;  // zero id
    out[k].id = store->BlobId(p, len);
    if (!store->Has(out[k].id))
      out[k].blob = EncodeBlob(out[k].id, BlobType::kData, std::string_view(p, len), level, store->sealer());
  }
  return out;
}

}  // namespace

void CheckCancel(const std::atomic<bool>* cancel) {
  if (cancel && cancel->load()) throw Error(ErrorKind::kOther, "interrupted by a signal; nothing committed");
}

bool IsAllZero(const char* p, size_t n) {
  static const char kZeros[4096] = {};
  while (n >= sizeof kZeros) {
    if (std::memcmp(p, kZeros, sizeof kZeros) != 0) return false;
    p += sizeof kZeros;
    n -= sizeof kZeros;
  }
  return std::memcmp(p, kZeros, n) == 0;
}

bool LeaveOutOwnEntry(const std::string& own_prefix, const std::string& name, const std::string& path,
                      Logger* log) {
  if (own_prefix.empty() || name.rfind(own_prefix, 0) != 0) return false;
  if (log)
    log->Info(path + ": left out, not backed up (its name starts with " + own_prefix +
              ", as the snapshots vmback keeps inside a source)");
  return true;
}

namespace {

// The parent's block ids, one list blob at a time (read when first asked:
// the scan goes forward, so each list is read once).
class BaseIds {
 public:
  BaseIds(Store* store, const ScanBase* base, uint64_t nblocks) : store_(store), base_(base), nblocks_(nblocks) {}
  bool active() const { return base_ != nullptr; }
  // The id list blob j of the parent, if it is there: all of list j unchanged.
  const Hash* WholeList(size_t j) const {
    if (!base_ || j >= base_->content->size() || !store_->Has((*base_->content)[j])) return nullptr;
    return &(*base_->content)[j];
  }
  // The ids of list j, or null when they cannot be trusted.
  const std::vector<Hash>* List(size_t j) {
    if (!base_) return nullptr;
    if (loaded_ != j) {
      loaded_ = j;
      ids_.clear();
      if (j < base_->content->size()) {
        try {
          ids_ = DecodeIdList(store_->Get((*base_->content)[j], BlobType::kList), "block list");
        } catch (const Error& e) {
          if (e.kind() == ErrorKind::kCrash) throw;
          ids_.clear();
        }
      }
    }
    const uint64_t want = std::min<uint64_t>(kIdsPerList, nblocks_ - j * kIdsPerList);
    return ids_.size() == want ? &ids_ : nullptr;
  }
  bool Changed(uint64_t off, uint64_t len) const { return Touches(*base_->changed, off, len); }

 private:
  Store* store_;
  const ScanBase* base_;
  const uint64_t nblocks_;
  size_t loaded_ = SIZE_MAX;
  std::vector<Hash> ids_;
};

}  // namespace

std::vector<Hash> FileScanner::Scan(ReadableFile* file, ScanStats* stats, const ScanBase* base) {
  const uint64_t bs = store_->block_size();
  const uint64_t size = file->Size();
  const uint64_t nblocks = (size + bs - 1) / bs;
  const size_t per_batch = std::max<size_t>(1, kReadBatchBytes / bs);
  const size_t max_in_flight = pool_->size() * 2 + 1;
  const int level = store_->zstd_level();
  Store* store = store_;

  std::vector<Hash> content;  // list blob ids
  std::vector<Hash> list;     // block ids of the list being filled
  std::deque<std::future<std::vector<BlockResult>>> in_flight;
  BlockReader reader(file, bs, size, {.pacer = pacer_, .drop_cache = drop_cache_});
  BaseIds base_ids(store_, base, nblocks);
  auto bytes_of = [&](uint64_t first, uint64_t count) { return std::min(count * bs, size - first * bs); };

  // Every blob goes through put(), in order: to the thread, or to the store.
  std::optional<PutThread> put_thread;
  if (size >= kPutThreadMinBytes) put_thread.emplace(store, kPutQueueBytes);
  auto put = [&](EncodedBlob blob) {
    if (put_thread) {
      put_thread->Put(std::move(blob));
    } else if (store->Put(blob) && blob.type == BlobType::kData) {
      stats->new_blocks++;
    }
  };
  auto put_list = [&] {
    std::string raw = EncodeIdList(list);
    Hash id = store->BlobId(raw);
    if (!store->Has(id)) put(EncodeBlob(id, BlobType::kList, raw, level, store->sealer()));
    content.push_back(id);
    list.clear();
  };

  // Not for a read that a base leaves gaps in (it would fetch what the base
  // reuses) nor a paced one (it would read ahead of the pace).
  const bool prefetch = !base_ids.active() && !Paced();
  uint64_t prefetched = 0;  // blocks [0, prefetched) asked for

  auto drain_one = [&] {
    std::vector<BlockResult> results = in_flight.front().get();
    in_flight.pop_front();
    for (auto& r : results) {
      stats->blocks++;
      if (r.id.IsZero() && !r.reused) stats->zero_blocks++;
      if (r.reused) stats->blocks_reused++;
      if (r.blob) put(std::move(*r.blob));
      list.push_back(r.id);
      if (list.size() == kIdsPerList) put_list();
    }
  };

  try {
    for (uint64_t b = 0; b < nblocks;) {
      CheckCancel(cancel_);
      const size_t j = b / kIdsPerList;
      const uint64_t list_end = std::min<uint64_t>(nblocks, (j + 1) * kIdsPerList);
      if (base_ids.active() && b == j * kIdsPerList && !base_ids.Changed(b * bs, bytes_of(b, list_end - b))) {
        if (const Hash* whole = base_ids.WholeList(j)) {
          while (!in_flight.empty()) drain_one();  // the lists before it are complete
          content.push_back(*whole);
          stats->blocks += list_end - b;
          stats->blocks_reused += list_end - b;
          b = list_end;
          continue;
        }
      }
      auto batch = std::make_shared<Batch>();
      batch->first_block = b;
      batch->blocks = static_cast<size_t>(std::min<uint64_t>(per_batch, list_end - b));
      batch->data.reset(new char[batch->blocks * bs]);
      batch->hole.assign(batch->blocks, 0);
      batch->reuse.assign(batch->blocks, std::nullopt);
      if (const std::vector<Hash>* ids = base_ids.List(j))
        for (size_t k = 0; k < batch->blocks; k++)
          if (!base_ids.Changed((b + k) * bs, bytes_of(b + k, 1))) batch->reuse[k] = (*ids)[b + k - j * kIdsPerList];
      if (prefetch) {
        const uint64_t from = std::max<uint64_t>(prefetched, b + batch->blocks);
        const uint64_t to = std::min<uint64_t>(nblocks, b + batch->blocks + kPrefetchBatches * per_batch);
        if (to > from) reader.Prefetch(from, static_cast<size_t>(to - from));
        prefetched = std::max(prefetched, to);
      }
      // Read each run of blocks not reused.
      std::vector<uint8_t> hole;
      for (size_t k = 0; k < batch->blocks;) {
        if (batch->reuse[k]) {
          k++;
          continue;
        }
        size_t n = 1;
        while (k + n < batch->blocks && !batch->reuse[k + n]) n++;
        stats->bytes_read += reader.Read(b + k, n, batch->data.get() + k * bs, &hole, /*zero_fill=*/false);
        std::copy(hole.begin(), hole.begin() + n, batch->hole.begin() + k);
        k += n;
      }
      in_flight.push_back(pool_->Submit([batch, bs, size, level, store] { return HashAndEncode(*batch, bs, size, level, store); }));
      b += batch->blocks;
      while (in_flight.size() >= max_in_flight) drain_one();
    }
    while (!in_flight.empty()) drain_one();
    if (!list.empty()) put_list();
  } catch (...) {
    // A source that fails halfway is left out, but what was read of it
    // before is put, as without the thread: whole blocks the next backup
    // may find. A store error thrown here ends the backup instead. An
    // interrupt drops what waits (~PutThread).
    if (put_thread && !(cancel_ && cancel_->load())) put_thread->Finish();
    throw;
  }
  if (put_thread) {
    put_thread->Finish();
    stats->new_blocks += put_thread->written(BlobType::kData);
  }
  return content;
}

FileScanner::Later FileScanner::ScanLater(std::unique_ptr<ReadableFile> file) {
  const uint64_t bs = store_->block_size();
  const uint64_t size = file->Size();
  if (size > kReadBatchBytes) throw Error(ErrorKind::kOther, "internal: ScanLater of " + file->path());
  const int level = store_->zstd_level();
  if (size > 0 && !Paced()) file->WillNeed(0, size);  // not ahead of a pace
  struct State {
    std::unique_ptr<ReadableFile> file;
    uint64_t bytes_read = 0;
    std::future<std::vector<BlockResult>> result;
  };
  auto state = std::make_shared<State>();
  state->file = std::move(file);
  Later later;
  later.bytes = size;
  later.read = [this, state, bs, size, level] {
    ReadableFile* f = state->file.get();
    auto batch = std::make_shared<Batch>();
    batch->blocks = static_cast<size_t>((size + bs - 1) / bs);
    batch->data.reset(new char[batch->blocks * bs]);
    batch->hole.assign(batch->blocks, 0);
    batch->reuse.assign(batch->blocks, std::nullopt);
    if (batch->blocks > 0) {
      // (A file of one block is read at once, without seeks or read-ahead
      // advice: BlockReader's DataMap.)
      BlockReader reader(f, bs, size, {.pacer = pacer_, .drop_cache = drop_cache_});
      state->bytes_read = reader.Read(0, batch->blocks, batch->data.get(), &batch->hole, /*zero_fill=*/false);
    }
    state->file.reset();  // closed: what is left is the pool's
    Store* store = store_;
    state->result =
        pool_->Submit([batch, bs, size, level, store] { return HashAndEncode(*batch, bs, size, level, store); });
  };
  later.finish = [state, level, store = store_](ScanStats* stats) {
    std::vector<BlockResult> results = state->result.get();
    stats->bytes_read += state->bytes_read;
    std::vector<Hash> list;
    list.reserve(results.size());
    for (auto& r : results) {
      stats->blocks++;
      if (r.id.IsZero()) stats->zero_blocks++;
      if (r.blob && store->Put(*r.blob)) stats->new_blocks++;
      list.push_back(r.id);
    }
    std::vector<Hash> content;
    if (list.empty()) return content;  // an empty file has no list
    std::string raw = EncodeIdList(list);
    Hash id = store->BlobId(raw);
    if (!store->Has(id)) store->Put(EncodeBlob(id, BlobType::kList, raw, level, store->sealer()));
    content.push_back(id);
    return content;
  };
  return later;
}

}  // namespace vmback
