#include "mount/point_fs.h"

#include <errno.h>
#include <unistd.h>

#include <algorithm>

#include "util/error.h"

namespace vmback {

// A point open for reading, with the destination it came from: a file
// keeps both alive after the point leaves the list of open points.
struct PointFs::OpenPoint {
  std::string name;
  std::shared_ptr<Destination> dest;
  std::unique_ptr<PointReader> reader;
};

struct PointFs::OpenFile {
  std::shared_ptr<OpenPoint> point;
  std::string path;  // in the point, for messages
  std::unique_ptr<ReadableFile> file;
  uint64_t size = 0;
};

PointFs::PointFs(DestinationOpener open, PointFsOptions options, Logger* log)
    : open_(std::move(open)), options_(std::move(options)), log_(log) {
  if (options_.max_open_points == 0) options_.max_open_points = 1;
  RefreshPoints();
  if (!options_.point.empty()) {
    // The point must be there now: resolve "latest" once, and fail before
    // anything is mounted when it is not.
    auto opened = Reader(options_.point);
    single_ = opened->name;
  }
}

PointFs::~PointFs() = default;

void PointFs::RefreshPoints() {
  const Clock::TimePoint now = options_.clock->Now();
  if (listed_ && now - opened_at_ < options_.rescan) return;
  dest_ = open_();  // new points, and their blocks in the index it loads
  opened_at_ = now;
  std::vector<std::string> names = dest_->PointNames();
  if (listed_ && names == names_) return;
  listed_ = true;
  PointList list = dest_->ListPoints();
  names_.clear();
  times_.clear();
  for (const auto& p : list.points) {
    names_.push_back(p.name);
    if (p.time_ns > 0) times_[p.name] = p.time_ns;
  }
}

bool PointFs::KnownPoint(const std::string& name) {
  if (std::find(names_.begin(), names_.end(), name) != names_.end()) return true;
  RefreshPoints();
  return std::find(names_.begin(), names_.end(), name) != names_.end();
}

std::shared_ptr<PointFs::OpenPoint> PointFs::Reader(const std::string& point) {
  for (auto it = open_points_.begin(); it != open_points_.end(); ++it) {
    if ((*it)->name != point) continue;
    auto found = *it;
    open_points_.erase(it);
    open_points_.push_front(found);
    return found;
  }
  auto opened = std::make_shared<OpenPoint>();
  opened->dest = dest_;
  opened->reader = dest_->OpenPointReader(point, options_.cache_bytes / options_.max_open_points, log_);
  opened->name = opened->reader->name();
  open_points_.push_front(opened);
  while (open_points_.size() > options_.max_open_points) open_points_.pop_back();
  return opened;
}

bool PointFs::Split(const std::string& path, std::string* point, std::string* in_point) const {
  std::string rest = path;
  while (!rest.empty() && rest.front() == '/') rest.erase(0, 1);
  if (!single_.empty()) {
    *point = single_;
    *in_point = rest;
    return true;
  }
  if (rest.empty()) return false;
  const auto slash = rest.find('/');
  *point = rest.substr(0, slash);
  *in_point = slash == std::string::npos ? "" : rest.substr(slash + 1);
  return true;
}

bool PointFs::Hidden(const std::string& in_point) const {
  if (options_.only.empty() || single_.empty() || in_point.empty()) return false;
  for (const auto& p : options_.only)
    if (p == in_point || (p.size() > in_point.size() && p.compare(0, in_point.size(), in_point) == 0 &&
                          p[in_point.size()] == '/'))
      return false;
  return true;
}

FuseAttr PointFs::Shown(const PointEntry& e) const {
  FuseAttr a;
  a.type = e.type;
  a.mode = e.mode;
  a.uid = e.uid;
  a.gid = e.gid;
  a.size = e.type == "symlink" ? e.target.size() : e.size;
  a.mtime_ns = e.mtime_ns;
  if (options_.owner) {
    a.uid = options_.owner->first;
    a.gid = options_.owner->second;
    a.mode = e.type == "dir" ? 0500 : e.type == "symlink" ? 0777 : 0400;
  }
  return a;
}

FuseAttr PointFs::PointDir(const std::string& point) const {
  FuseAttr a;
  a.type = "dir";
  a.mode = 0555;
  auto t = times_.find(point);
  if (t != times_.end()) a.mtime_ns = t->second;
  if (options_.owner) {
    a.uid = options_.owner->first;
    a.gid = options_.owner->second;
    a.mode = 0500;
  }
  return a;
}

int PointFs::Failed(const std::string& what, const std::exception& e, bool read) {
  const auto* error = dynamic_cast<const Error*>(&e);
  if (error != nullptr && error->kind() == ErrorKind::kNotFound) return -ENOENT;
  // A damaged block a read met was logged by the reader, naming the file
  // and its bytes, once.
  if (!read || error == nullptr || error->kind() != ErrorKind::kCorrupt) log_->Error(what + ": " + e.what());
  if (error != nullptr && error->kind() == ErrorKind::kConfig) return -EINVAL;
  return -EIO;
}

int PointFs::GetAttr(const std::string& path, FuseAttr* out) {
  std::string point, in_point;
  try {
    if (!Split(path, &point, &in_point)) {
      *out = PointDir("");
      return 0;
    }
    if (point == "latest" && single_.empty()) {
      RefreshPoints();
      if (names_.empty()) return -ENOENT;
      if (!in_point.empty()) return -ENOTDIR;  // the kernel follows the link itself
      out->type = "symlink";
      out->mode = 0777;
      out->size = names_.back().size();
      return 0;
    }
    if (!KnownPoint(point) || Hidden(in_point)) return -ENOENT;
    if (in_point.empty()) {
      *out = PointDir(point);
      return 0;
    }
    *out = Shown(Reader(point)->reader->Stat(in_point));
    return 0;
  } catch (const std::exception& e) {
    return Failed(path, e);
  }
}

int PointFs::ReadDir(const std::string& path, std::vector<std::pair<std::string, FuseAttr>>* out) {
  std::string point, in_point;
  try {
    if (!Split(path, &point, &in_point)) {
      RefreshPoints();
      for (const auto& name : names_) out->emplace_back(name, PointDir(name));
      if (!names_.empty()) {
        FuseAttr link;
        link.type = "symlink";
        link.mode = 0777;
        link.size = names_.back().size();
        out->emplace_back("latest", link);
      }
      return 0;
    }
    if (point == "latest" && single_.empty()) return -ENOTDIR;
    if (!KnownPoint(point) || Hidden(in_point)) return -ENOENT;
    for (const auto& e : Reader(point)->reader->List(in_point)) {
      if (Hidden(e.path)) continue;
      const auto slash = e.path.rfind('/');
      out->emplace_back(slash == std::string::npos ? e.path : e.path.substr(slash + 1), Shown(e));
    }
    return 0;
  } catch (const std::exception& e) {
    const auto* error = dynamic_cast<const Error*>(&e);
    if (error != nullptr && error->kind() == ErrorKind::kConfig) return -ENOTDIR;
    return Failed(path, e);
  }
}

int PointFs::ReadLink(const std::string& path, std::string* target) {
  std::string point, in_point;
  try {
    if (!Split(path, &point, &in_point)) return -EINVAL;
    if (point == "latest" && single_.empty() && in_point.empty()) {
      RefreshPoints();
      if (names_.empty()) return -ENOENT;
      *target = names_.back();
      return 0;
    }
    if (!KnownPoint(point) || in_point.empty() || Hidden(in_point)) return -EINVAL;
    PointEntry e = Reader(point)->reader->Stat(in_point);
    if (e.type != "symlink") return -EINVAL;
    *target = e.target;
    return 0;
  } catch (const std::exception& e) {
    return Failed(path, e);
  }
}

int PointFs::Open(const std::string& path, uint64_t* handle, bool* direct) {
  std::string point, in_point;
  try {
    if (!Split(path, &point, &in_point) || in_point.empty()) return -EISDIR;
    if (!KnownPoint(point) || Hidden(in_point)) return -ENOENT;
    auto f = std::make_unique<OpenFile>();
    f->point = Reader(point);
    f->path = f->point->name + "/" + in_point;
    f->file = f->point->reader->Open(in_point);
    f->size = f->file->Size();
    *direct = f->size >= kDirectFrom;
    *handle = next_handle_++;
    files_[*handle] = std::move(f);
    return 0;
  } catch (const std::exception& e) {
    return Failed(path, e);
  }
}

int64_t PointFs::Read(uint64_t handle, uint64_t offset, char* buf, size_t n) {
  auto it = files_.find(handle);
  if (it == files_.end()) return -EBADF;
  OpenFile& f = *it->second;
  if (offset >= f.size) return 0;
  n = static_cast<size_t>(std::min<uint64_t>(n, f.size - offset));
  try {
    return static_cast<int64_t>(f.file->ReadAt(offset, buf, n));
  } catch (const std::exception& e) {
    return Failed(f.path, e, true);
  }
}

int64_t PointFs::Seek(uint64_t handle, uint64_t offset, int whence) {
  auto it = files_.find(handle);
  if (it == files_.end()) return -EBADF;
  OpenFile& f = *it->second;
  if (whence != SEEK_DATA && whence != SEEK_HOLE) return -EINVAL;
  if (offset >= f.size) return -ENXIO;
  try {
    const uint64_t to = whence == SEEK_DATA ? f.file->NextData(offset) : f.file->NextHole(offset);
    if (whence == SEEK_DATA && to >= f.size) return -ENXIO;
    return static_cast<int64_t>(std::min(to, f.size));
  } catch (const std::exception& e) {
    return Failed(f.path, e);
  }
}

void PointFs::Release(uint64_t handle) { files_.erase(handle); }

}  // namespace vmback
