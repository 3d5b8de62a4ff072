// A point's manifest (points/<name>.json, docs/FORMAT.md "Manifests"): what
// a backup committed, as a typed value, and the one place that turns it into
// bytes and back. A manifest is read from disks others handled: DecodeManifest
// checks every field it returns (bounded, validated names and tags, a
// known version), so its readers need no checks of their own.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "store/store.h"
#include "store/tree.h"
#include "util/vm_record.h"

namespace vmback {

// One volume of a point.
struct ManifestVolume {
  std::string name;    // one safe path component (IsSafeName), unique in the point
  std::string source;  // the path it was read from, as given; "" when not recorded
  Entry root;          // the volume's entry, with an empty name
};

struct Manifest {
  int version = kStoreFormatVersion;  // 1 to kStoreFormatVersion
  PointName name;
  std::string time;         // UTC, "2026-11-26T18:01:02Z"; "" when not recorded
  int64_t time_ns = 0;      // ns since the epoch; 0 when not recorded
  std::string host;         // "" when not recorded
  uint32_t block_size = 0;  // a valid store block size; 0 when not recorded
  std::vector<ManifestVolume> volumes;
  std::set<std::string> tags;  // each IsValidTag
  // The backup's statistics as recorded (informational; their fields
  // differ between versions of vmback): a JSON object.
  nlohmann::json stats = nlohmann::json::object();
  // The VMs whose disks the point holds ("vms", written by `vmback run`
  // since format 1 without a version change: older readers ignore it).
  std::vector<VmRecord> vms;

  // The volume named `name`, or nullptr.
  const ManifestVolume* FindVolume(std::string_view name) const;
  // Whether the backup read every file (stats "full_read": true).
  bool full_read() const;
};

// The manifest as JSON (keys sorted; "name" and "block_size" when recorded,
// "tags" and "vms" when there are some); to_json lets a nlohmann::json be made from it.
nlohmann::json ManifestToJson(const Manifest& m);
inline void to_json(nlohmann::json& j, const Manifest& m) { j = ManifestToJson(m); }
// The whole file: the JSON line, a newline, "sha256:<hex of the line>" and a
// newline.
// With a sealer (an encrypted store) the file is sealed whole (SealFile)
// under ManifestAd of its point name.
std::string EncodeManifest(const Manifest& m, const Sealer* sealer = nullptr);
std::string ManifestAd(std::string_view point);
// The file framing around any JSON line (for EncodeManifest, and for tests
// that forge manifests).
std::string SealManifest(std::string_view json_line);
// Checks the checksum line and every field; unknown keys are ignored.
// Throws kCorrupt naming `path` and what is wrong.
// With a sealer the file at `path` (points/NAME.json) must open under
// ManifestAd(NAME): a manifest moved to another name does not.
Manifest DecodeManifest(std::string_view data, const std::string& path, const Sealer* sealer = nullptr);

}  // namespace vmback
