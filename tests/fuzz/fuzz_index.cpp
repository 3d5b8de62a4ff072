// Fuzzes the index reader (store/index.h): DecodeIndexFile, and loading what
// it accepts into a BlobIndex. Input: the bytes of an index file.
//
// Each input is read twice: as it is, and with its trailing SHA-256 made
// right, so that the fuzzer reaches the parsing behind the checksum.

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "store/index.h"

namespace vmback::fuzz {
namespace {

void CheckIndex(std::string_view data) {
  IndexFile f;
  if (!Accepts(ErrorKind::kCorrupt, [&] { f = DecodeIndexFile(data, "fuzz.idx"); })) return;
  // Accepted: every entry is one a pack table could hold, and the file is
  // exactly the encoding of what was decoded (no slack, no trailing bytes).
  for (const auto& [pack, entries] : f.packs)
    for (const auto& e : entries) {
      Check(static_cast<uint8_t>(e.type) <= 2 && static_cast<uint8_t>(e.comp) <= 1,
            "entry has a known type and compression");
      Check(e.offset >= kPackHeaderSize + kBlobHeaderSize, "entry starts after a pack and blob header");
      Check(e.stored_len <= UINT64_MAX - e.offset, "entry end does not overflow");
      Check(BlobLengthsValid(e), "entry lengths within the format's maxima");
    }
  Check(EncodeIndexFile(f) == data, "index re-encodes to its bytes");

  // What the store does with it: every id is found at a location it was given.
  BlobIndex index;
  for (const auto& [pack, entries] : f.packs) index.AddEntries(index.AddPack(pack), entries);
  for (const auto& [pack, entries] : f.packs)
    for (const auto& e : entries) {
      const BlobLocation* loc = index.Find(e.id);
      Check(loc != nullptr, "every decoded id is in the index");
      Check(loc->pack < index.packs().size(), "location names a known pack");
    }
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmback::fuzz;
  std::string index(reinterpret_cast<const char*>(data), size);
  CheckIndex(index);
  if (index.size() >= 16 + 32) {
    vmback::Hash sum = vmback::Sha256(std::string_view(index).substr(0, index.size() - 32));
    if (std::memcmp(index.data() + index.size() - 32, sum.bytes.data(), 32) != 0) {
      std::memcpy(index.data() + index.size() - 32, sum.bytes.data(), 32);
      CheckIndex(index);
    }
  }
  return 0;
}
