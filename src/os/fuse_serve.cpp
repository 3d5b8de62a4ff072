// libfuse3's high-level API, single-threaded: each operation calls the
// FuseHandler given to ServeFuse, caught so no exception unwinds into C.
#define FUSE_USE_VERSION 35
#include "os/fuse_serve.h"

#include <errno.h>
#include <fuse.h>
#include <fuse_lowlevel.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

#include "util/error.h"

namespace vmback {

namespace {

FuseHandler* Handler() { return static_cast<FuseHandler*>(fuse_get_context()->private_data); }

template <typename F>
auto Guarded(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (...) {
    return -EIO;
  }
}

mode_t TypeBits(const std::string& type) {
  if (type == "dir") return S_IFDIR;
  if (type == "symlink") return S_IFLNK;
  if (type == "chardev") return S_IFCHR;
  if (type == "blockdev") return S_IFBLK;
  if (type == "fifo") return S_IFIFO;
  if (type == "socket") return S_IFSOCK;
  return S_IFREG;
}

void ToStat(const FuseAttr& a, struct stat* st) {
  std::memset(st, 0, sizeof(*st));
  st->st_mode = TypeBits(a.type) | (a.mode & 07777);
  st->st_nlink = a.type == "dir" ? 2 : 1;
  st->st_uid = a.uid;
  st->st_gid = a.gid;
  st->st_size = static_cast<off_t>(a.size);
  st->st_blksize = 64 * 1024;
  st->st_blocks = static_cast<blkcnt_t>((a.size + 511) / 512);
  st->st_mtim.tv_sec = a.mtime_ns / 1000000000;
  st->st_mtim.tv_nsec = a.mtime_ns % 1000000000;
  if (st->st_mtim.tv_nsec < 0) {
    st->st_mtim.tv_sec -= 1;
    st->st_mtim.tv_nsec += 1000000000;
  }
  st->st_atim = st->st_mtim;
  st->st_ctim = st->st_mtim;
}

void* Init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
  auto* context = fuse_get_context();
  cfg->use_ino = 0;
  cfg->kernel_cache = 1;   // points never change: keep pages between opens
  cfg->negative_timeout = 0;  // a point committed while mounted appears at once
  conn->want |= FUSE_CAP_ASYNC_READ;
  return context->private_data;
}

int GetAttr(const char* path, struct stat* st, struct fuse_file_info*) {
  return Guarded([&] {
    FuseAttr a;
    int rc = Handler()->GetAttr(path, &a);
    if (rc == 0) ToStat(a, st);
    return rc;
  });
}

int ReadLink(const char* path, char* buf, size_t size) {
  return Guarded([&] {
    std::string target;
    int rc = Handler()->ReadLink(path, &target);
    if (rc != 0) return rc;
    if (size == 0) return -EINVAL;
    const size_t n = std::min(target.size(), size - 1);
    std::memcpy(buf, target.data(), n);
    buf[n] = '\0';
    return 0;
  });
}

int ReadDir(const char* path, void* buf, fuse_fill_dir_t fill, off_t, struct fuse_file_info*,
            enum fuse_readdir_flags) {
  return Guarded([&] {
    std::vector<std::pair<std::string, FuseAttr>> entries;
    int rc = Handler()->ReadDir(path, &entries);
    if (rc != 0) return rc;
    fill(buf, ".", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    fill(buf, "..", nullptr, 0, static_cast<fuse_fill_dir_flags>(0));
    for (const auto& [name, attr] : entries) {
      struct stat st;
      ToStat(attr, &st);
      if (fill(buf, name.c_str(), &st, 0, static_cast<fuse_fill_dir_flags>(0)) != 0) break;
    }
    return 0;
  });
}

int Open(const char* path, struct fuse_file_info* fi) {
  if ((fi->flags & O_ACCMODE) != O_RDONLY) return -EROFS;
  return Guarded([&] {
    uint64_t handle = 0;
    bool direct = false;
    int rc = Handler()->Open(path, &handle, &direct);
    if (rc != 0) return rc;
    fi->fh = handle;
    fi->keep_cache = 1;
    fi->direct_io = direct ? 1 : 0;
    return 0;
  });
}

int Read(const char*, char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
  if (offset < 0) return -EINVAL;
  return Guarded([&]() -> int {
    return static_cast<int>(Handler()->Read(fi->fh, static_cast<uint64_t>(offset), buf, size));
  });
}

off_t Lseek(const char*, off_t off, int whence, struct fuse_file_info* fi) {
  if (off < 0) return -ENXIO;
  return Guarded([&]() -> off_t {
    return static_cast<off_t>(Handler()->Seek(fi->fh, static_cast<uint64_t>(off), whence));
  });
}

int Release(const char*, struct fuse_file_info* fi) {
  return Guarded([&] {
    Handler()->Release(fi->fh);
    return 0;
  });
}

int StatFs(const char*, struct statvfs* st) {
  std::memset(st, 0, sizeof(*st));
  st->f_bsize = 64 * 1024;
  st->f_frsize = 64 * 1024;
  st->f_namemax = 255;
  st->f_flag = ST_RDONLY;
  return 0;
}

// Frees the arguments however ServeFuse leaves.
struct Args {
  struct fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  ~Args() { fuse_opt_free_args(&args); }
};

}  // namespace

void FuseStopper::Stop() {
  std::lock_guard<std::mutex> l(mu_);
  stopped_ = true;
  if (session_ == nullptr) return;
  fuse_session_exit(static_cast<struct fuse_session*>(session_));
  // The loop waits in read(2) on /dev/fuse: libfuse's SIGHUP handler (no
  // SA_RESTART) interrupts it, and the loop sees it should end. (The kernel
  // sends no more requests once the mount is gone from this namespace, but
  // QEMU's private mount namespace, libvirt's, may hold it on.)
  pthread_kill(thread_, SIGHUP);
}

void ServeFuse(const std::string& dir, const FuseServeOptions& options, FuseHandler* handler,
               const std::function<void()>& ready) {
  struct fuse_operations ops;
  std::memset(&ops, 0, sizeof(ops));
  ops.init = Init;
  ops.getattr = GetAttr;
  ops.readlink = ReadLink;
  ops.readdir = ReadDir;
  ops.open = Open;
  ops.read = Read;
  ops.lseek = Lseek;
  ops.release = Release;
  ops.statfs = StatFs;

  // fsname is ours to check: libfuse splits options at commas.
  for (char c : options.fsname)
    if (c == ',' || c == '\\' || c == '\n') throw Error(ErrorKind::kConfig, "fuse: bad fsname " + options.fsname);
  std::string opts = "ro,nosuid,nodev,default_permissions,fsname=" + options.fsname + ",subtype=vmback";
  if (options.allow_other) opts += ",allow_other";
  char timeout[64];
  std::snprintf(timeout, sizeof(timeout), ",entry_timeout=%g,attr_timeout=%g", options.timeout_seconds,
                options.timeout_seconds);
  opts += timeout;
  Args a;
  for (const char* arg : {"vmback", "-o", opts.c_str()})
    if (fuse_opt_add_arg(&a.args, arg) != 0) throw Error(ErrorKind::kIo, "fuse: out of memory");

  struct fuse* fuse = fuse_new(&a.args, &ops, sizeof(ops), handler);
  if (fuse == nullptr) throw Error(ErrorKind::kIo, "fuse: cannot start a session for " + dir);
  struct fuse_session* session = fuse_get_session(fuse);
  if (fuse_mount(fuse, dir.c_str()) != 0) {
    fuse_destroy(fuse);
    throw Error(ErrorKind::kIo, "cannot mount a FUSE file system on " + dir +
                                    " (is /dev/fuse there, and is the fuse module loaded?)");
  }
  if (fuse_set_signal_handlers(session) != 0) {
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    throw Error(ErrorKind::kIo, "fuse: cannot set signal handlers");
  }
  try {
    ready();
  } catch (...) {
    fuse_remove_signal_handlers(session);
    fuse_unmount(fuse);
    fuse_destroy(fuse);
    throw;
  }
  int rc = 0;
  bool serve = true;
  if (options.stopper != nullptr) {
    std::lock_guard<std::mutex> l(options.stopper->mu_);
    serve = !options.stopper->stopped_;
    options.stopper->session_ = session;
    options.stopper->thread_ = pthread_self();
  }
  if (serve) rc = fuse_loop(fuse);
  if (options.stopper != nullptr) {
    std::lock_guard<std::mutex> l(options.stopper->mu_);
    options.stopper->session_ = nullptr;
  }
  fuse_remove_signal_handlers(session);
  fuse_unmount(fuse);
  fuse_destroy(fuse);
  if (rc < 0) ThrowIo("serving the FUSE mount on " + dir, -rc);
}

}  // namespace vmback
