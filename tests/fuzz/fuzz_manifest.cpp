// Fuzzes the manifest decoder (DecodeManifest, store/manifest.h: checksum
// line, JSON, version, name, tags, volumes and their root entries;
// docs/FORMAT.md, "Manifests"), which is how the store reads a point, and
// the tree blobs the roots lead to (DecodeTree). Input: the bytes of
// points/<name>.json.
//
// Each input is read twice: as it is, and as the JSON line of a manifest
// with a right checksum line appended, so that the fuzzer reaches the JSON.

#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/encoding.h"

namespace vmback::fuzz {
namespace {

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

void CheckManifest(std::string_view data) {
  Manifest m;
  if (!Accepts(ErrorKind::kCorrupt, [&] { m = DecodeManifest(data, "fuzz manifest"); })) return;

  // The checksum line is right.
  size_t pos = data.rfind("\nsha256:");
  Check(pos != std::string_view::npos, "manifest has a checksum line");
  std::string_view sum = data.substr(pos + 8);
  while (!sum.empty() && sum.back() == '\n') sum.remove_suffix(1);
  Check(Sha256(data.substr(0, pos)).Hex() == sum, "checksum line matches the JSON");

  // What DecodeManifest promises its readers.
  Check(m.version >= 1 && m.version <= kStoreFormatVersion, "version is a known format version");
  Check(m.name.empty() || PointName::IsValid(m.name.str()), "the point name is valid");
  for (const auto& t : m.tags) Check(IsValidTag(t), "tags are valid");
  Check(m.stats.is_object(), "stats is an object");
  const nlohmann::json j = nlohmann::json::parse(data.substr(0, pos));
  Check(j.at("volumes").size() == m.volumes.size(), "one volume per element");
  std::set<std::string> names;
  for (size_t i = 0; i < m.volumes.size(); i++) {
    const ManifestVolume& v = m.volumes[i];
    Check(IsSafeName(v.name) && names.insert(v.name).second, "volume names are safe and unique");
    Check(v.root.name.empty(), "a volume root has no name");
    CheckEntry(j["volumes"][i]["root"], v.root);
  }

  // Writing it back out reads back as the same manifest.
  const std::string again = EncodeManifest(m);
  Manifest m2;
  if (!Accepts(ErrorKind::kCorrupt, [&] { m2 = DecodeManifest(again, "re-encoded manifest"); }))
    Fail("DecodeManifest refuses what EncodeManifest wrote");
  Check(EncodeManifest(m2) == again, "manifest survives EncodeManifest/DecodeManifest");
}

// DecodeTree's fast reader (DecodeTreeFast) against the JSON parser: a tree
// it takes, the parser takes as the same entries.
void CheckFastTree(std::string_view data) {
  std::vector<Entry> fast;
  if (!DecodeTreeFast(data, &fast)) {
    Check(fast.empty(), "a tree left to the parser leaves no entries");
    return;
  }
  std::vector<Entry> parsed;
  try {
    const nlohmann::json j = nlohmann::json::parse(data);
    for (const auto& e : j.at("entries")) parsed.push_back(EntryFromJson(e, "fuzz tree"));
  } catch (const std::exception& e) {
    Fail(std::string("the fast tree reader took what the parser refuses: ") + e.what());
  }
  Check(parsed.size() == fast.size(), "the fast tree reader reads every entry");
  for (size_t i = 0; i < fast.size(); i++)
    Check(SameEntry(fast[i], parsed[i]) && fast[i].ctime_ns == parsed[i].ctime_ns && fast[i].ino == parsed[i].ino,
          "the fast tree reader reads entries as the parser does");
}

// The input as a tree blob.
void CheckTree(std::string_view data) {
  CheckFastTree(data);
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
  std::string_view input(reinterpret_cast<const char*>(data), size);
  CheckManifest(input);
  CheckManifest(vmback::SealManifest(input));
  CheckTree(input);
  return 0;
}
