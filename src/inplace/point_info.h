// The description of a point of an in-place target (MIRROR/.vmback-point.json,
// target.h): read back, and the names in it checked where they are decoded.
// Internal to src/inplace: shared by backup, list, restore and verify
// (target_ops.cpp, target_restore.cpp).
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "inplace/target.h"
#include "os/env.h"

namespace vmback {

// Names vmback keeps for itself in a mirror (.vmback-*), and those of the
// file systems (.zfs, lost+found): never a volume.
bool IsReservedName(const std::string& name);

// The description of a point, written into the mirror before the point is taken.
struct PointInfoFile {
  std::string path;
  nlohmann::json json;
};
// Reads ROOT/.vmback-point.json. Throws kCorrupt when it is not JSON.
PointInfoFile ReadPointInfo(Env* env, const std::string& root);

// The volume names of a point, validated here, where they are decoded: each
// one is joined to a destination (--to, the mirror), so a name that is not
// one plain, non-reserved path component ("../x", "a/b", "..", "", NUL) is
// damage or forgery, never used (kCorrupt).
std::vector<std::string> VolumeNames(const PointInfoFile& info);

// A path inside a volume (from the command line or a blockmap of a point):
// components that stay below the volume, no symlink among its directories.
// Throws kConfig naming `what` otherwise.
void CheckInsidePath(Env* env, const std::string& base, const std::string& rel, const std::string& what);

}  // namespace vmback
