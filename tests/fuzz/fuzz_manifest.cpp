// Fuzzes the manifest decoder: how the store reads a point (Store::
// ReadManifest: checksum line, JSON, version, volumes; docs/FORMAT.md,
// "Manifests"), what its readers take from it (time_ns, time, each volume's
// root entry through EntryFromJson) and the tree blobs those roots lead to
// (DecodeTree). Input: the bytes of points/<name>.json.
//
// Each input is read twice: as it is, and as the JSON line of a manifest
// with a right checksum line appended, so that the fuzzer reaches the JSON.
// The store is a real one in a temp directory, made once per process.

#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "store/store.h"
#include "store/tree.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

constexpr char kPoint[] = "2026-11-26T180102Z";

// An empty store opened for reading, removed when the process exits.
class Fixture {
 public:
  Fixture() : log_(LogLevel::kError, /*to_stderr=*/false) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern = std::string(tmp && *tmp ? tmp : "/tmp") + "/vmback-fuzz-manifest.XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) Fail("mkdtemp " + pattern);
    root_ = pattern;
    Env* env = Env::Default();
    Store::Init(env, root_ + "/store", kDefaultBlockSize);
    store_ = Store::Open(env, root_ + "/store", LockMode::kShared, &log_);
    manifest_path_ = store_->ManifestPath(kPoint);
  }
  ~Fixture() {
    store_.reset();
    std::error_code ec;
    std::filesystem::remove_all(root_, ec);
  }

  // Puts data in place as the point's manifest and reads it back.
  nlohmann::json Read(std::string_view data) {
    // A new file each time: ext4 flushes a file truncated over its data
    // (auto_da_alloc), which would make each run take milliseconds.
    ::unlink(manifest_path_.c_str());
    {
      std::ofstream out(manifest_path_, std::ios::binary | std::ios::trunc);
      out.write(data.data(), static_cast<std::streamsize>(data.size()));
      if (!out) Fail("cannot write " + manifest_path_);
    }
    return store_->ReadManifest(kPoint);
  }

 private:
  Logger log_;
  std::string root_;
  std::unique_ptr<Store> store_;
  std::string manifest_path_;
};

bool SameEntry(const Entry& a, const Entry& b) {
  return a.name == b.name && a.type == b.type && a.mode == b.mode && a.uid == b.uid && a.gid == b.gid &&
         a.mtime_ns == b.mtime_ns && a.size == b.size && a.content == b.content && a.target == b.target &&
         a.rdev == b.rdev && a.xattrs == b.xattrs && a.hardlink == b.hardlink && a.subtree == b.subtree;
}

bool IsInteger(const nlohmann::json& j) { return j.is_number_integer(); }

// An accepted entry is well-typed in its JSON, and writing it back out (to
// JSON and to text) reads back as the same entry.
void CheckEntry(const nlohmann::json& j, const Entry& e) {
  Check(e.name.find('/') == std::string::npos && e.name != "." && e.name != "..", "entry name is one component");
  Check(e.mode <= 07777, "mode holds permission bits only");
  for (const char* key : {"mode", "uid", "gid", "mtime_ns"}) Check(IsInteger(j.at(key)), "entry integers are integers");
  switch (e.type) {
    case EntryType::kFile:
      Check(IsInteger(j.at("size")), "file size is an integer");
      Check(j.at("content").is_array(), "file content is an array of ids");
      break;
    case EntryType::kCharDevice:
    case EntryType::kBlockDevice:
      Check(IsInteger(j.at("rdev")), "rdev is an integer");
      break;
    default:
      break;
  }
  if (j.contains("xattrs")) Check(j["xattrs"].is_array(), "xattrs is an array of pairs");

  nlohmann::json again = EntryToJson(e);
  Entry e2, e3;
  if (!Accepts(ErrorKind::kCorrupt, [&] { e2 = EntryFromJson(again, "re-encoded entry"); }))
    Fail("EntryFromJson refuses what EntryToJson wrote");
  Check(SameEntry(e, e2), "entry survives EntryToJson/EntryFromJson");
  if (!Accepts(ErrorKind::kCorrupt,
               [&] { e3 = EntryFromJson(nlohmann::json::parse(again.dump()), "re-parsed entry"); }))
    Fail("EntryFromJson refuses the text EntryToJson wrote");
  Check(SameEntry(e, e3), "entry survives a trip through JSON text");
}

void CheckManifest(Fixture* fx, std::string_view data) {
  nlohmann::json m;
  if (!Accepts(ErrorKind::kCorrupt, [&] { m = fx->Read(data); })) return;

  // The checksum line is right.
  size_t pos = data.rfind("\nsha256:");
  Check(pos != std::string_view::npos, "manifest has a checksum line");
  std::string_view sum = data.substr(pos + 8);
  while (!sum.empty() && sum.back() == '\n') sum.remove_suffix(1);
  Check(Sha256(data.substr(0, pos)).Hex() == sum, "checksum line matches the JSON");

  // What ReadManifest promises its readers.
  Check(m.is_object(), "manifest is an object");
  const auto& version = m.at("version");
  Check(IsInteger(version) && version.get<int64_t>() >= 1 && version.get<int64_t>() <= kStoreFormatVersion,
        "version is a known format version");
  Check(m.at("volumes").is_array(), "volumes is an array");
  for (const auto& v : m.at("volumes"))
    Check(v.is_object() && v.at("name").is_string() && v.at("root").is_object(),
          "each volume has a name and a root");

  if (m.contains("time_ns"))
    Check(IsInteger(m["time_ns"]) && !(m["time_ns"].is_number_unsigned() &&
                                       m["time_ns"].get<uint64_t>() > uint64_t{INT64_MAX}),
          "time_ns is a 64-bit integer");
  if (m.contains("time")) Check(m["time"].is_string(), "time is a string");

  // What they then take from it (prune, list, restore, verify, gc): nothing
  // but vmback::Error may come out.
  Accepts(ErrorKind::kCorrupt, [&] {
    (void)m.value("time_ns", int64_t{0});
    (void)m.value("time", std::string());
  });
  for (const auto& v : m.at("volumes")) {
    (void)v.at("name").get<std::string>();
    Entry e;
    if (Accepts(ErrorKind::kCorrupt, [&] { e = EntryFromJson(v.at("root"), "manifest root"); }))
      CheckEntry(v.at("root"), e);
  }
}

// The input as a tree blob.
void CheckTree(std::string_view data) {
  std::vector<Entry> entries;
  if (!Accepts(ErrorKind::kCorrupt, [&] { entries = DecodeTree(data, "fuzz tree"); })) return;
  nlohmann::json j = nlohmann::json::parse(data);
  const auto& list = j.at("entries");
  Check(list.size() == entries.size(), "one entry per element");
  for (size_t i = 0; i < entries.size(); i++) {
    Check(!entries[i].name.empty(), "tree entries have names");
    Check(i == 0 || entries[i - 1].name < entries[i].name, "tree entries are sorted and unique");
    CheckEntry(list[i], entries[i]);
  }
  std::vector<Entry> again;
  if (!Accepts(ErrorKind::kCorrupt, [&] { again = DecodeTree(EncodeTree(entries), "re-encoded tree"); }))
    Fail("DecodeTree refuses what EncodeTree wrote");
  Check(again.size() == entries.size(), "tree survives EncodeTree/DecodeTree");
  for (size_t i = 0; i < entries.size(); i++) Check(SameEntry(entries[i], again[i]), "tree entry survives");
}

}  // namespace
}  // namespace vmback::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace vmback::fuzz;
  static Fixture fixture;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckManifest(&fixture, input);
  std::string sealed(input);
  sealed += "\nsha256:" + vmback::Sha256(input).Hex() + "\n";
  CheckManifest(&fixture, sealed);
  CheckTree(input);
  return 0;
}
