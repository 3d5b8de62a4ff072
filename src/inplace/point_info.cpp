#include "inplace/point_info.h"

#include <set>

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

bool IsReservedName(const std::string& name) {
  return name.rfind(".vmback-", 0) == 0 || name == ".zfs" || name == "lost+found";
}

PointInfoFile ReadPointInfo(Env* env, const std::string& root) {
  std::string path = JoinPath(root, kPointInfo);
  try {
    return {path, nlohmann::json::parse(ReadFileToString(env, path))};
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(path + ": " + e.what());
  }
}

std::vector<std::string> VolumeNames(const PointInfoFile& info) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  try {
    const auto& vols = info.json.at("volumes");
    if (!vols.is_array()) ThrowCorrupt(info.path + ": \"volumes\" is not a list");
    for (const auto& v : vols) {
      std::string name = v.at("name").get<std::string>();
      if (!IsValidVolumeName(name) || IsReservedName(name))
        ThrowCorrupt(info.path + ": volume name '" + EscapeForTerminal(name) +
                     "' is not a plain name (damaged or forged); nothing restored from it");
      if (!seen.insert(name).second) ThrowCorrupt(info.path + ": volume name '" + EscapeForTerminal(name) + "' is given twice");
      out.push_back(std::move(name));
    }
  } catch (const nlohmann::json::exception& e) {
    ThrowCorrupt(info.path + ": " + e.what());
  }
  return out;
}

void CheckInsidePath(Env* env, const std::string& base, const std::string& rel, const std::string& what) {
  std::string at = base;
  size_t start = 0;
  while (start <= rel.size()) {
    size_t slash = rel.find('/', start);
    std::string part = rel.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (part.empty() || part == "." || part == ".." || part.find('\0') != std::string::npos)
      ThrowConfig(what + " '" + EscapeForTerminal(rel) + "' leaves its volume");
    at = JoinPath(at, part);
    if (slash == std::string::npos) break;
    if (env->Status(at).kind == FileKind::kSymlink)
      ThrowConfig(at + " is a symlink in the point; restore the directory that holds it");
    start = slash + 1;
  }
}

}  // namespace vmback
