// The numbers that size vmback's work, defined once: block sizes and their
// limits, compression, read batches. Those that are part of a file format
// (docs/FORMAT.md) are marked so; changing one of them changes the format.
#pragma once

#include <cstddef>
#include <cstdint>

namespace vmback {

// Block sizes (powers of two). The store's is fixed at `store init` and
// recorded in its config.json and each manifest (format); an in-place
// target's follows its file system's record size unless configured.
inline constexpr uint32_t kDefaultStoreBlockSize = 64 * 1024;     // a guest's 4 KiB writes stay cheap
inline constexpr uint32_t kDefaultInplaceBlockSize = 128 * 1024;  // ZFS's default recordsize
inline constexpr uint32_t kMinStoreBlockSize = 4096;              // format
inline constexpr uint32_t kMinInplaceBlockSize = 512;
inline constexpr uint32_t kMaxBlockSize = 16u << 20;              // format: the largest data blob

// A power of two from `min` to kMaxBlockSize.
constexpr bool IsValidBlockSize(uint64_t size, uint32_t min) {
  return size >= min && size <= kMaxBlockSize && (size & (size - 1)) == 0;
}

// zstd level of new stores (recorded in config.json; a store opened without
// one uses this).
inline constexpr int kDefaultZstdLevel = 3;

// Source bytes read (and hashed on the thread pool) per batch.
inline constexpr uint64_t kReadBatchBytes = 4u << 20;
// Bytes moved per read when a whole file is copied (packs between copies).
inline constexpr size_t kCopyBufferBytes = 4u << 20;
// A pack is finished when it reaches about this size.
inline constexpr uint64_t kPackTargetBytes = 32u << 20;

}  // namespace vmback
