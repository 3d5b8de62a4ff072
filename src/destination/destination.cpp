#include "destination/destination.h"

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

void CheckTags(const Destination& d, const std::vector<std::string>& tags) {
  if (!tags.empty() && !d.TakesTags())
    ThrowConfig("--tag: an in-place target's points are file system snapshots and carry no tags; "
                "tags are for a store (--store or [target] type = \"store\")");
}

void CheckRestoreCancel(const std::atomic<bool>* cancel, const std::string& dest) {
  if (cancel != nullptr && cancel->load())
    throw Error(ErrorKind::kOther, "restore interrupted by a signal (writing " + dest + ")");
}

void ThrowNoSuchVolume(const std::string& point, const std::string& volume, const std::vector<std::string>& volumes) {
  std::string names;
  for (const auto& v : volumes) names += (names.empty() ? "" : ", ") + EscapeForTerminal(v);
  ThrowNotFound("point " + point + " has no volume '" + EscapeForTerminal(volume) + "' (its volumes: " +
                (names.empty() ? "none" : names) + ")");
}

std::string PointPath(std::string path) {
  while (!path.empty() && path.front() == '/') path.erase(0, 1);
  return path;
}

void ThrowNotOneImage(const std::string& path, const std::string& point, const std::string& what) {
  const std::string how = ": name one image (VOLUME/path/to/disk.img), or restore with --format raw";
  if (path.empty()) ThrowConfig("--format qcow2 converts one image file, not the whole point " + point + how);
  ThrowConfig("--format qcow2 converts one image file, and '" + path + "' in point " + point + " is " + what + how);
}

}  // namespace vmback
