#include "scan/file_scanner.h"

#include <cstring>
#include <memory>
#include <deque>
#include <future>
#include <optional>

#include "scan/block_reader.h"
#include "store/tree.h"
#include "util/error.h"
#include "util/tunables.h"

namespace vmback {

namespace {


struct Batch {
  uint64_t first_block = 0;
  size_t blocks = 0;
  std::vector<uint8_t> hole;  // per block: no data on disk, skip reading
  // blocks * block_size bytes, not zero-filled: holes are never read or
  // looked at, so the buffer costs no memset.
  std::unique_ptr<char[]> data;
};

struct BlockResult {
  Hash id;  // zero id for an all-zero block
  std::optional<EncodedBlob> blob;  // set when the store lacked it
};

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

std::vector<Hash> FileScanner::Scan(ReadableFile* file, ScanStats* stats) {
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

  auto drain_one = [&] {
    std::vector<BlockResult> results = in_flight.front().get();
    in_flight.pop_front();
    for (auto& r : results) {
      stats->blocks++;
      if (r.id.IsZero()) stats->zero_blocks++;
      if (r.blob && store->Put(*r.blob)) stats->new_blocks++;
      list.push_back(r.id);
      if (list.size() == kIdsPerList) {
        content.push_back(store->PutRaw(BlobType::kList, EncodeIdList(list)));
        list.clear();
      }
    }
  };

  for (uint64_t b = 0; b < nblocks; b += per_batch) {
    CheckCancel(cancel_);
    auto batch = std::make_shared<Batch>();
    batch->first_block = b;
    batch->blocks = static_cast<size_t>(std::min<uint64_t>(per_batch, nblocks - b));
    batch->data.reset(new char[batch->blocks * bs]);
    stats->bytes_read += reader.Read(b, batch->blocks, batch->data.get(), &batch->hole, /*zero_fill=*/false);
    in_flight.push_back(pool_->Submit([batch, bs, size, level, store] {
      std::vector<BlockResult> out(batch->blocks);
      for (size_t k = 0; k < batch->blocks; k++) {
        uint64_t off = (batch->first_block + k) * bs;
        size_t len = static_cast<size_t>(std::min(bs, size - off));
        const char* p = batch->data.get() + k * bs;
        if (batch->hole[k] || IsAllZero(p, len)) continue;  // zero id
        out[k].id = Sha256(p, len);
        if (!store->Has(out[k].id))
          out[k].blob = EncodeBlob(out[k].id, BlobType::kData, std::string_view(p, len), level);
      }
      return out;
    }));
    while (in_flight.size() >= max_in_flight) drain_one();
  }
  while (!in_flight.empty()) drain_one();
  if (!list.empty()) content.push_back(store->PutRaw(BlobType::kList, EncodeIdList(list)));
  return content;
}

}  // namespace vmback
