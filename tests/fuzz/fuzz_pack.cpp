// Fuzzes the pack reader (store/pack.h): ReadPackEntries (footer and entry
// table), ScanPackBlobs (the walk over blob headers used when the table is
// damaged), DecodePackEntry and DecodeBlob. Input: the bytes of a pack file.
//
// Each input is read twice: as it is, and with the table checksum in the
// footer recomputed, so that the fuzzer gets past the SHA-256 to the checks
// behind it (a damaged pack with a right checksum is what a buggy writer or
// a bit flip before hashing would leave).

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_util.h"
#include "store/pack.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

constexpr uint32_t kMaxDecodedBlob = 1u << 20;  // keeps runs fast; the limits themselves are MaxRawLen

bool ValidKinds(const PackEntry& e) {
  return static_cast<uint8_t>(e.type) <= 2 && static_cast<uint8_t>(e.comp) <= 1;
}

// Decodes the blob of e if it is small; an accepted blob is exactly raw_len
// bytes whose SHA-256 is its id.
void CheckBlob(std::string_view pack, const PackEntry& e) {
  if (e.raw_len > kMaxDecodedBlob || e.offset > pack.size() || e.stored_len > pack.size() - e.offset) return;
  std::string_view stored = pack.substr(e.offset, e.stored_len);
  std::string raw;
  if (Accepts(ErrorKind::kCorrupt, [&] { raw = DecodeBlob(e, stored, "fuzz.pack"); })) {
    Check(raw.size() == e.raw_len, "decoded blob has raw_len bytes");
    Check(Sha256(raw) == e.id, "decoded blob hashes to its id");
  }
}

void CheckTable(std::string_view pack) {
  MemFile file("fuzz.pack", pack);
  std::vector<PackEntry> entries;
  if (!Accepts(ErrorKind::kCorrupt, [&] { entries = ReadPackEntries(&file); })) return;
  // Accepted: the file has the documented shape, and the table re-encodes to
  // the very bytes it was read from.
  Check(pack.size() >= kPackHeaderSize + kPackFooterSize, "pack is long enough for header and footer");
  Check(std::memcmp(pack.data(), kPackMagic, 8) == 0, "pack magic");
  Check(GetU32(pack.data() + 8) == kPackVersion, "pack version");
  const char* footer = pack.data() + pack.size() - kPackFooterSize;
  Check(std::memcmp(footer + 44, kPackEndMagic, 8) == 0, "pack end magic");
  Check(GetU32(footer) == entries.size(), "footer count is the number of entries");
  const uint64_t table_offset = GetU64(footer + 36);
  Check(table_offset >= kPackHeaderSize && table_offset <= pack.size() - kPackFooterSize,
        "table lies between header and footer");
  Check(pack.size() - kPackFooterSize - table_offset == entries.size() * kPackEntrySize,
        "table fills the space up to the footer");
  std::string table;
  for (const auto& e : entries) {
    Check(ValidKinds(e), "entry has a known type and compression");
    Check(e.offset >= kPackHeaderSize + kBlobHeaderSize, "entry starts after a blob header");
    Check(e.offset <= table_offset && e.stored_len <= table_offset - e.offset, "entry ends before the table");
    Check(BlobLengthsValid(e), "entry lengths within the format's maxima");
    EncodePackEntry(&table, e);
  }
  Check(pack.substr(table_offset, table.size()) == table, "table re-encodes to its bytes");
  Hash sum;
  std::memcpy(sum.bytes.data(), footer + 4, 32);
  Check(Sha256(table) == sum, "table checksum");
  for (const auto& e : entries) CheckBlob(pack, e);
}

void CheckScan(std::string_view pack) {
  MemFile file("fuzz.pack", pack);
  std::vector<PackEntry> entries;
  // The walk never fails on a readable file: it stops at the first bad header.
  if (!Accepts(ErrorKind::kCorrupt, [&] { entries = ScanPackBlobs(&file); }))
    Fail("ScanPackBlobs threw on a readable file");
  uint64_t pos = kPackHeaderSize;
  for (const auto& e : entries) {
    Check(e.offset == pos + kBlobHeaderSize, "scanned blobs are contiguous");
    Check(ValidKinds(e), "scanned blob has a known type and compression");
    Check(e.offset <= pack.size() && e.stored_len <= pack.size() - e.offset, "scanned blob lies inside the file");
    Check(BlobLengthsValid(e), "scanned blob lengths within the format's maxima");
    const char* h = pack.data() + pos;
    Check(h[2] == 0 && h[3] == 0, "scanned blob header padding is zero");
    Check(static_cast<uint8_t>(h[0]) == static_cast<uint8_t>(e.type) &&
              static_cast<uint8_t>(h[1]) == static_cast<uint8_t>(e.comp) && GetU32(h + 4) == e.stored_len &&
              GetU32(h + 8) == e.raw_len && std::memcmp(h + 12, e.id.bytes.data(), 32) == 0,
          "scanned blob is what its header says");
    pos = e.offset + e.stored_len;
    CheckBlob(pack, e);
  }
}

// One table entry on its own: decoding never reads past its 52 bytes, and a
// well-formed entry (known kinds, zero padding) re-encodes to itself.
void CheckEntry(std::string_view bytes) {
  if (bytes.size() < kPackEntrySize) return;
  std::string copy(bytes.substr(0, kPackEntrySize));  // exactly 52 bytes: ASan sees any overread
  PackEntry e = DecodePackEntry(copy.data());
  if (!ValidKinds(e) || copy[34] != 0 || copy[35] != 0) return;
  std::string again;
  EncodePackEntry(&again, e);
  Check(again == copy, "a well-formed entry re-encodes to itself");
  // The entry as an index would give it, read against the input as its pack:
  // accepted only within the format's maxima and the pack's bounds.
  if (e.raw_len > kMaxDecodedBlob) return;
  MemFile file("fuzz.pack", bytes);
  std::string raw;
  if (Accepts(ErrorKind::kCorrupt, [&] { raw = ReadBlob(&file, e); })) {
    Check(BlobLengthsValid(e), "a blob read has lengths within the format's maxima");
    // Within the file, after the pack header; not short of the footer (a
    // pack cut after its blobs has none, and ScanPackBlobs reads into it).
    Check(e.offset >= kPackHeaderSize + kBlobHeaderSize && e.offset <= bytes.size() &&
              e.stored_len <= bytes.size() - e.offset,
          "a blob read lies after the pack header and inside the file");
    Check(raw.size() == e.raw_len && Sha256(raw) == e.id, "a blob read is raw_len bytes hashing to its id");
  }
}

// Recomputes the footer's table checksum when the footer's count and offset
// frame a table inside the file. Returns false when there is none to fix.
bool FixTableChecksum(std::string* pack) {
  if (pack->size() < kPackHeaderSize + kPackFooterSize) return false;
  char* footer = pack->data() + pack->size() - kPackFooterSize;
  const uint64_t count = GetU32(footer);
  const uint64_t table_offset = GetU64(footer + 36);
  const uint64_t end = pack->size() - kPackFooterSize;
  if (table_offset > end || (end - table_offset) != count * kPackEntrySize) return false;
  Hash sum = Sha256(std::string_view(*pack).substr(table_offset, end - table_offset));
  if (std::memcmp(footer + 4, sum.bytes.data(), 32) == 0) return false;
  std::memcpy(footer + 4, sum.bytes.data(), 32);
  return true;
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmback::fuzz;
  std::string pack(reinterpret_cast<const char*>(data), size);
  CheckTable(pack);
  CheckScan(pack);
  CheckEntry(pack);
  if (FixTableChecksum(&pack)) CheckTable(pack);
  return 0;
}
