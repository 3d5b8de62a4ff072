// The built-in store's PointReader (destination/point_reader.h), for
// `vmback mount`: a point's trees looked up as `vmback ls` does
// (run/browse.h), its files read at any offset through Store::Get, block by
// block, each block re-hashed against its id by the store.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "destination/point_reader.h"
#include "store/store.h"
#include "util/log.h"

namespace vmback {

// A reader over point (a name, or "latest": the newest point) of store,
// which must outlive it and its files. Decoded trees, decoded block lists
// and decompressed blocks are kept in one LRU cache of at most cache_bytes
// (0: nothing is kept), shared by the reader and every file it opened.
// Throws kNotFound for an unknown point, kCorrupt for a damaged manifest.
// Stat("") (the point itself) is a directory, mode 0755, owned by 0:0, of
// the point's time.
//
// Reads (ReadAt): each block touched is read once per call, from the cache
// or by one Store::Get; a block that no copy gives back whole throws
// Error(kCorrupt; kIo when every copy failed to read it) "<VOLUME/path> in
// point <point>: bytes A..B cannot be read (why)" for that block's bytes
// (for a block list that cannot be read, the bytes of all its blocks), and
// logs the same message as a warning (once per range). Other blocks stay
// readable.
//
// Everything read from the store is hostile: a file whose block lists do
// not cover exactly its size is refused by Open (kCorrupt, naming it); a
// block list with the wrong number of ids, or a block of the wrong length,
// is damage to the bytes it covers, as above.
std::unique_ptr<PointReader> OpenStorePointReader(Store* store, const std::string& point, uint64_t cache_bytes,
                                                  Logger* log);

// What a store reader's cache holds and what it read, for tests and
// diagnostics.
struct StoreReaderStats {
  uint64_t cache_limit = 0;        // cache_bytes as given
  uint64_t cached_bytes = 0;       // charged to the cache now
  uint64_t peak_cached_bytes = 0;  // the most ever charged at once
  uint64_t cached_items = 0;
  uint64_t block_gets = 0;  // Store::Get calls for data blocks
  uint64_t list_gets = 0;   // ... for block lists
  uint64_t tree_gets = 0;   // ... for trees
  uint64_t cache_hits = 0;
};

// The stats of a reader OpenStorePointReader returned; Error(kOther) for
// any other PointReader.
StoreReaderStats StoreReaderStatsOf(const PointReader& reader);

}  // namespace vmback
