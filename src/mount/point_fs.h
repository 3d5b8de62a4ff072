// `vmback mount`: the points of a destination as a read-only file system.
// The top holds one directory per point and `latest`, a symbolic link to the
// newest (or, for one point, that point's volumes); below a point, its
// volumes with their trees as a restore would write them, and images as
// plain files read at any offset, each block checked before it is given out.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "destination/destination.h"
#include "os/fuse_serve.h"
#include "util/clock.h"
#include "util/log.h"

namespace vmback {

struct PointFsOptions {
  // "": every point at the top, and `latest`. A name (or "latest",
  // resolved when the mount starts): that point's volumes at the top.
  std::string point;
  // Blocks kept in memory, in all (split between the open points).
  uint64_t cache_bytes = 128ull << 20;
  // Points kept open at once (an in-place ZFS point is a clone while open).
  size_t max_open_points = 4;
  // Shown as the owner of everything, files read-only to that owner (0400,
  // directories 0500): a mount made for one user (QEMU's, for an instant
  // restore) instead of the modes and owners recorded.
  std::optional<std::pair<uint32_t, uint32_t>> owner;
  // With point: when not empty, only these paths in it ("VOLUME/dir/file")
  // and the directories that lead to them are shown; everything else is
  // not there (ENOENT). An instant restore shows QEMU its VM's images alone.
  std::vector<std::string> only;
  // How often, at most, the destination is opened again to look for new
  // points (when the top is listed, `latest` read or an unknown name asked).
  std::chrono::milliseconds rescan = std::chrono::seconds(2);
  Clock* clock = Clock::Steady();
};

// Opens the destination again (its shared read lock, its current index):
// how points committed while mounted become readable.
using DestinationOpener = std::function<std::unique_ptr<Destination>()>;

// Not thread-safe: FUSE calls it from one thread (ServeFuse).
class PointFs : public FuseHandler {
 public:
  // Opens the destination once at once, so a bad config or a missing
  // point fails before anything is mounted (Error as OpenDestination and
  // OpenPointReader throw).
  PointFs(DestinationOpener open, PointFsOptions options, Logger* log);
  ~PointFs() override;

  int GetAttr(const std::string& path, FuseAttr* out) override;
  int ReadDir(const std::string& path, std::vector<std::pair<std::string, FuseAttr>>* out) override;
  int ReadLink(const std::string& path, std::string* target) override;
  // Files of kDirectFrom bytes and more (images) are read past the kernel's
  // page cache: measured here (bench/mount_bench.sh), a 4 GiB image read
  // through the page cache slowed as the cache filled, to 0.37 GB/s, and
  // read directly at 1 GB/s. Smaller files keep the page cache (and mmap).
  static constexpr uint64_t kDirectFrom = 64ull << 20;
  int Open(const std::string& path, uint64_t* handle, bool* direct) override;
  int64_t Read(uint64_t handle, uint64_t offset, char* buf, size_t n) override;
  int64_t Seek(uint64_t handle, uint64_t offset, int whence) override;
  void Release(uint64_t handle) override;

  // The point served at the top with PointFsOptions::point ("latest"
  // resolved); "" when every point is.
  const std::string& single_point() const { return single_; }

 private:
  struct OpenPoint;
  struct OpenFile;

  // path split into a point and a path in it ("VOLUME/dir"; "" the point
  // itself). False for the top of an every-point mount (point empty).
  bool Split(const std::string& path, std::string* point, std::string* in_point) const;
  // The points now: the destination opened again (a store's reader sees
  // the points committed when it was opened), at most every options.rescan.
  void RefreshPoints();
  bool KnownPoint(const std::string& name);
  std::shared_ptr<OpenPoint> Reader(const std::string& point);
  FuseAttr Shown(const PointEntry& e) const;
  FuseAttr PointDir(const std::string& point) const;
  // -errno for e, logged (but a damaged block met by a read: the reader
  // logs those).
  int Failed(const std::string& what, const std::exception& e, bool read = false);

  DestinationOpener open_;
  PointFsOptions options_;
  Logger* log_;
  std::string single_;
  // options_.only: whether in_point (a path in the single point) is left out.
  bool Hidden(const std::string& in_point) const;
  std::shared_ptr<Destination> dest_;
  bool listed_ = false;
  Clock::TimePoint opened_at_{};
  std::vector<std::string> names_;             // oldest first
  std::map<std::string, int64_t> times_;       // point -> time (ns), when known
  std::list<std::shared_ptr<OpenPoint>> open_points_;  // most recently used first
  std::map<uint64_t, std::unique_ptr<OpenFile>> files_;
  uint64_t next_handle_ = 1;
};

}  // namespace vmback
