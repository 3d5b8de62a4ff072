// Fuzzes the readers of an encrypted store's sealed formats (issue 18,
// docs/FORMAT.md "Encrypted stores") under one fixed master key: a sealed
// object and a sealed file opened (Sealer::Open, OpenFile); a sealed index
// file, manifest and pack (DecodeIndexFile, DecodeManifest, ReadPackEntries,
// ScanPackBlobs with the sealer); and the key formats (WrappedKeyFromJson,
// ParseKeyFile, ParsePaperKey). A fuzzer cannot forge a tag, so each input
// is also sealed as the plain bytes of an index file and a manifest, to reach
// the decoders behind the seal.
#include <cstdint>
#include <string>
#include <string_view>

#include "crypto/key_wrap.h"
#include "fuzz_util.h"
#include "store/index.h"
#include "store/manifest.h"
#include "store/pack.h"

namespace vmback::fuzz {
namespace {

const Sealer& FixedSealer() {
  static const Sealer* s = [] {
    SecretKey k;
    for (size_t i = 0; i < k.bytes.size(); i++) k.bytes[i] = static_cast<uint8_t>(i * 7 + 1);
    return new Sealer(k);
  }();
  return *s;
}

void CheckAll(std::string_view input) {
  const Sealer& sealer = FixedSealer();
  std::string out;
  if (sealer.Open(input, "ad", &out)) Fail("a forged sealed object opened");
  Accepts(ErrorKind::kCorrupt, [&] { OpenFile(sealer, input, kIndexAd, "fuzz.idx"); });
  Accepts(ErrorKind::kCorrupt, [&] { DecodeIndexFile(input, "fuzz.idx", &sealer); });
  Accepts(ErrorKind::kCorrupt, [&] { DecodeManifest(input, "points/2026-12-05T000000Z.json", &sealer); });
  MemFile pack("fuzz.pack", input);
  Accepts(ErrorKind::kCorrupt, [&] { ReadPackEntries(&pack, &sealer); });
  for (const PackEntry& e : ScanPackBlobs(&pack, &sealer))
    Check(BlobLengthsValid(e, &sealer), "a scanned entry has valid sealed lengths");
  // Behind the seal: the input as the plain bytes of a sealed index file and manifest.
  Accepts(ErrorKind::kCorrupt, [&] { DecodeIndexFile(SealFile(sealer, input, kIndexAd), "fuzz.idx", &sealer); });
  Accepts(ErrorKind::kCorrupt, [&] {
    DecodeManifest(SealFile(sealer, input, ManifestAd("2026-12-05T000000Z")), "points/2026-12-05T000000Z.json",
                   &sealer);
  });
  // Key formats.
  Accepts(ErrorKind::kConfig, [&] { ParseKeyFile(input, "fuzz.key"); });
  std::string store_id;
  Accepts(ErrorKind::kConfig, [&] { ParsePaperKey(input, &store_id); });
  nlohmann::json j = nlohmann::json::parse(input, nullptr, false);
  if (!j.is_discarded()) Accepts(ErrorKind::kCorrupt, [&] { WrappedKeyFromJson(j, "fuzz.json"); });
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  vmback::fuzz::CheckAll(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
