// A read-only FUSE file system served in the foreground (libfuse3): the
// kernel's requests turned into calls on a FuseHandler, one at a time.
#pragma once

#include <cstdint>
#include <pthread.h>

#include <functional>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace vmback {

// What stat(2) shows of an entry.
struct FuseAttr {
  std::string type = "file";  // file, dir, symlink, chardev, blockdev, fifo, socket
  uint32_t mode = 0;          // permission bits with setuid/setgid/sticky
  uint32_t uid = 0;
  uint32_t gid = 0;
  uint64_t size = 0;
  int64_t mtime_ns = 0;
};

// The file system. Calls come one at a time, on the thread that called
// ServeFuse. Each returns 0 (or a count) on success and -errno on failure;
// an exception escaping a call is answered EIO.
class FuseHandler {
 public:
  virtual ~FuseHandler() = default;
  // path: "/" or "/a/b", as the kernel names it.
  virtual int GetAttr(const std::string& path, FuseAttr* out) = 0;
  virtual int ReadDir(const std::string& path, std::vector<std::pair<std::string, FuseAttr>>* out) = 0;
  virtual int ReadLink(const std::string& path, std::string* target) = 0;
  // *direct: reads of this file bypass the kernel's page cache (each read
  // comes here as asked, up to 1 MiB; no shared mmap of the file).
  virtual int Open(const std::string& path, uint64_t* handle, bool* direct) = 0;
  // Bytes read (fewer than n only at the end of the file), or -errno.
  virtual int64_t Read(uint64_t handle, uint64_t offset, char* buf, size_t n) = 0;
  // whence SEEK_DATA or SEEK_HOLE (others: -EINVAL): the offset, or -ENXIO
  // past the end of the file.
  virtual int64_t Seek(uint64_t handle, uint64_t offset, int whence) = 0;
  virtual void Release(uint64_t handle) = 0;
};

// Ends a ServeFuse from another thread, as SIGTERM would: it unmounts and
// returns. Stop before the serving began makes it return at once.
class FuseStopper {
 public:
  void Stop();

 private:
  friend void ServeFuse(const std::string&, const struct FuseServeOptions&, class FuseHandler*,
                        const std::function<void()>&);
  std::mutex mu_;
  bool stopped_ = false;
  void* session_ = nullptr;  // struct fuse_session* while serving
  pthread_t thread_{};
};

struct FuseServeOptions {
  std::string fsname = "vmback";  // what /proc/mounts shows as the source
  // Other users may enter the mount (the kernel still checks the modes
  // shown, default_permissions); without it only the mounting user can.
  bool allow_other = false;
  double timeout_seconds = 1;  // how long the kernel keeps names and attributes
  FuseStopper* stopper = nullptr;  // may be null
};

// Mounts handler read-only at dir (an existing directory), calls ready(),
// and serves until the mount is unmounted (umount DIR) or SIGINT, SIGTERM or
// SIGHUP arrives; then unmounts and returns. Throws Error(kIo) naming dir
// when it cannot mount.
void ServeFuse(const std::string& dir, const FuseServeOptions& options, FuseHandler* handler,
               const std::function<void()>& ready);

}  // namespace vmback
