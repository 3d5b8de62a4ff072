// Fuzzes the blockmap reader (inplace/blockmap.h): ReadBlockmap, which checks
// magic, version, state, block size, length and trailer of an in-place
// target's map (docs/FORMAT.md, "In-place targets: blockmaps"). Input: the
// bytes of a .map file.
//
// Each input is read twice: as it is, and with the trailer recomputed from
// its own entries, header and path, so that the fuzzer gets past the
// SHA-256 and accepted maps are checked too.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "inplace/blockmap.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

constexpr size_t kHeaderSize = 64;
constexpr char kMapPath[] = "/maproot/.vmback-blockmaps/00/fuzz.map";

// The map as the format says it must be written, from what was read.
std::string Encode(const Blockmap& m) {
  std::string s("VMBKMAP\n", 8);
  PutU32(&s, 1);  // version
  PutU32(&s, 1);  // state: complete
  PutU32(&s, m.block_size);
  PutU32(&s, static_cast<uint32_t>(m.path.size()));
  PutU64(&s, m.file_size);
  PutU64(&s, static_cast<uint64_t>(m.source_mtime_ns));
  PutU64(&s, m.target_ino);
  PutU64(&s, static_cast<uint64_t>(m.target_mtime_ns));
  PutU64(&s, static_cast<uint64_t>(m.target_ctime_ns));
  std::string header = s;
  s += m.path;
  std::string entries;
  for (const auto& b : m.blocks) entries.append(reinterpret_cast<const char*>(b.bytes.data()), 32);
  s += entries;
  Hash trailer = Sha256(entries + header + m.path);
  s.append(reinterpret_cast<const char*>(trailer.bytes.data()), 32);
  return s;
}

void CheckMap(std::string_view data) {
  OneFileEnv env(kMapPath, data);
  Blockmap m;
  if (!Accepts(ErrorKind::kCorrupt, [&] { m = ReadBlockmap(&env, kMapPath); })) return;
  Check(m.block_size != 0 && (m.block_size & (m.block_size - 1)) == 0, "block size is a power of two");
  const uint64_t n = m.file_size / m.block_size + (m.file_size % m.block_size != 0);
  Check(m.blocks.size() == n, "one entry per block of the file");
  Check(Encode(m) == data, "map re-encodes to its bytes");
}

// Recomputes the trailer when the length fits the header's path length.
bool FixTrailer(std::string* map) {
  if (map->size() < kHeaderSize + 32) return false;
  const uint64_t path_len = GetU32(map->data() + 20);
  if (path_len > map->size() - kHeaderSize - 32) return false;
  const uint64_t entries_len = map->size() - kHeaderSize - path_len - 32;
  std::string_view all(*map);
  std::string hashed(all.substr(kHeaderSize + path_len, entries_len));
  hashed += all.substr(0, kHeaderSize);
  hashed += all.substr(kHeaderSize, path_len);
  Hash trailer = Sha256(hashed);
  char* at = map->data() + map->size() - 32;
  if (std::memcmp(at, trailer.bytes.data(), 32) == 0) return false;
  std::memcpy(at, trailer.bytes.data(), 32);
  return true;
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmback::fuzz;
  std::string map(reinterpret_cast<const char*>(data), size);
  CheckMap(map);
  if (FixTrailer(&map)) CheckMap(map);
  return 0;
}
