#include "store/manifest.h"

#include <algorithm>

#include "util/encoding.h"
#include "util/error.h"
#include "util/sha256.h"
#include "util/tunables.h"

namespace vmback {

namespace {

// JSON integers only: get<>() of a fraction or of a huge number is a cast
// that wraps or is undefined.
bool IsInt64(const nlohmann::json& j) {
  return j.is_number_integer() && !(j.is_number_unsigned() && j.get<uint64_t>() > uint64_t{INT64_MAX});
}

[[noreturn]] void Bad(const std::string& path, const std::string& what) {
  ThrowCorrupt(path + ": manifest " + what);
}

int DecodeVersion(const nlohmann::json& m, const std::string& path) {
  auto it = m.find("version");
  if (it == m.end() || !IsInt64(*it) || it->get<int64_t>() < 1) Bad(path, "has a bad version");
  if (it->get<int64_t>() > kStoreFormatVersion) Bad(path, "version is newer than this vmback supports");
  return static_cast<int>(it->get<int64_t>());
}

std::vector<ManifestVolume> DecodeVolumes(const nlohmann::json& m, const std::string& path) {
  auto vols = m.find("volumes");
  if (vols == m.end() || !vols->is_array()) Bad(path, "has no volume list");
  std::vector<ManifestVolume> out;
  std::set<std::string> names;
  for (const auto& v : *vols) {
    if (!v.is_object() || !v.contains("name") || !v.at("name").is_string() || !v.contains("root") ||
        !v.at("root").is_object())
      Bad(path, "has a malformed volume");
    ManifestVolume vol;
    vol.name = v.at("name").get<std::string>();
    // Restore joins a volume's name to its destination: one safe path
    // component, and unique within the point.
    if (!IsSafeName(vol.name) || !names.insert(vol.name).second)
      Bad(path, "has an invalid or repeated volume name '" + EscapeForTerminal(vol.name) + "'");
    vol.source = GetBytesField(v, "source", path + ": volume '" + vol.name + "'");
    vol.root = EntryFromJson(v.at("root"), path + ": volume '" + vol.name + "'");
    if (!vol.root.name.empty()) Bad(path, "has a named root in volume '" + vol.name + "'");
    out.push_back(std::move(vol));
  }
  return out;
}

Manifest DecodeFields(const nlohmann::json& m, const std::string& path) {
  if (!m.is_object()) Bad(path, "is not a JSON object");
  Manifest out;
  out.version = DecodeVersion(m, path);
  if (auto it = m.find("name"); it != m.end()) {
    if (!it->is_string()) Bad(path, "has a bad name");
    out.name = PointName::Parse(it->get<std::string>(), path);
  }
  if (auto it = m.find("time"); it != m.end()) {
    if (!it->is_string()) Bad(path, "has a bad time");
    out.time = it->get<std::string>();
  }
  if (auto it = m.find("time_ns"); it != m.end()) {
    if (!IsInt64(*it)) Bad(path, "has a bad time_ns");
    out.time_ns = it->get<int64_t>();
  }
  if (auto it = m.find("host"); it != m.end()) {
    if (!it->is_string()) Bad(path, "has a bad host");
    out.host = it->get<std::string>();
  }
  if (auto it = m.find("block_size"); it != m.end()) {
    if (!it->is_number_unsigned() || !IsValidBlockSize(it->get<uint64_t>(), kMinStoreBlockSize))
      Bad(path, "has a bad block_size");
    out.block_size = it->get<uint32_t>();
  }
  if (auto it = m.find("tags"); it != m.end()) {
    if (!it->is_array()) Bad(path, "has a bad tag list");
    for (const auto& t : *it) {
      if (!t.is_string() || !IsValidTag(t.get_ref<const std::string&>())) Bad(path, "has an invalid tag");
      out.tags.insert(t.get<std::string>());
    }
  }
  if (auto it = m.find("stats"); it != m.end()) {
    if (!it->is_object()) Bad(path, "has bad stats");
    out.stats = *it;
  }
  out.volumes = DecodeVolumes(m, path);
  if (auto it = m.find("vms"); it != m.end()) {
    std::vector<std::string> names;
    for (const auto& v : out.volumes) names.push_back(v.name);
    out.vms = VmRecordsFromJson(*it, names, path);
  }
  return out;
}

}  // namespace

const ManifestVolume* Manifest::FindVolume(std::string_view name) const {
  for (const auto& v : volumes)
    if (v.name == name) return &v;
  return nullptr;
}

bool Manifest::full_read() const {
  auto it = stats.find("full_read");
  return it != stats.end() && it->is_boolean() && it->get<bool>();
}

nlohmann::json ManifestToJson(const Manifest& m) {
  // nlohmann::json keeps keys sorted: the bytes vmback has always written.
  nlohmann::json vols = nlohmann::json::array();
  for (const auto& v : m.volumes) {
    nlohmann::json vol = {{"name", v.name}, {"root", EntryToJson(v.root)}};
    PutBytesField(&vol, "source", v.source);
    vols.push_back(std::move(vol));
  }
  nlohmann::json j = {
      {"version", m.version}, {"time", m.time},   {"time_ns", m.time_ns}, {"host", m.host},
      {"volumes", vols},      {"stats", m.stats},
  };
  if (!m.name.empty()) j["name"] = m.name.str();
  if (m.block_size != 0) j["block_size"] = m.block_size;
  if (!m.tags.empty()) j["tags"] = m.tags;
  if (!m.vms.empty()) j["vms"] = VmRecordsToJson(m.vms);
  return j;
}

std::string SealManifest(std::string_view json_line) {
  return std::string(json_line) + "\nsha256:" + Sha256(json_line).Hex() + "\n";
}

std::string ManifestAd(std::string_view point) {
  std::string ad = "vmback manifest v1";
  ad.push_back('\0');
  ad.append(point);
  return ad;
}

namespace {
// NAME of .../points/NAME.json.
std::string_view PointOfPath(std::string_view path) {
  auto slash = path.rfind('/');
  std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
  if (base.size() > 5 && base.substr(base.size() - 5) == ".json") base.remove_suffix(5);
  return base;
}
}  // namespace

std::string EncodeManifest(const Manifest& m, const Sealer* sealer) {
  std::string plain = SealManifest(ManifestToJson(m).dump());
  return sealer ? SealFile(*sealer, plain, ManifestAd(m.name.str())) : plain;
}

Manifest DecodeManifest(std::string_view data, const std::string& path, const Sealer* sealer) {
  std::string opened;
  if (sealer) {
    opened = OpenFile(*sealer, data, ManifestAd(PointOfPath(path)), path);
    data = opened;
  }
  auto pos = data.rfind("\nsha256:");
  if (pos == std::string_view::npos) Bad(path, "truncated (no checksum line)");
  std::string_view body = data.substr(0, pos);
  std::string_view sum = data.substr(pos + 8);
  while (!sum.empty() && sum.back() == '\n') sum.remove_suffix(1);
  if (Sha256(body).Hex() != sum) Bad(path, "checksum mismatch");
  try {
    return DecodeFields(nlohmann::json::parse(body), path);
  } catch (const nlohmann::json::exception& e) {
    Bad(path, std::string("is not valid (") + e.what() + ")");
  }
}

}  // namespace vmback
