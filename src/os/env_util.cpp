// The helpers of os/env.h over paths and whole files: reading and writing a
// file whole (atomically), temporary names, sizes, canonical paths, and what
// file system a path is on.
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <linux/fs.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <thread>
#include <cstring>
#include <filesystem>

#include "os/dir.h"
#include "os/env.h"
#include "os/group.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

void WritableFile::NoMetadata() const {
  throw Error(ErrorKind::kOther, "internal: no metadata through the descriptor of " + path());
}

namespace {

// The file open, its size checked against the cap before anything is
// allocated for it.
std::unique_ptr<ReadableFile> OpenCapped(Env* env, const std::string& path, uint64_t max_size) {
  auto f = env->OpenRead(path);
  if (f->Size() > max_size)
    ThrowCorrupt(path + ": " + std::to_string(f->Size()) + " bytes, more than the " +
                 std::to_string(max_size) + " such a file may have; refused");
  return f;
}

}  // namespace

std::string ReadFileToString(Env* env, const std::string& path, uint64_t max_size) {
  auto f = OpenCapped(env, path, max_size);
  std::string data(f->Size(), '\0');
  size_t n = f->ReadAt(0, data.data(), data.size());
  data.resize(n);
  return data;
}

LargeMemory ReadFileToMemory(Env* env, const std::string& path, uint64_t max_size) {
  auto f = OpenCapped(env, path, max_size);
  LargeMemory data(f->Size(), "reading a file whole");
  data.Shrink(f->ReadAt(0, data.data(), data.size()));
  return data;
}

std::optional<gid_t> GroupId(const std::string& name) {
  struct group gr;
  struct group* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getgrnam_r(name.c_str(), &gr, buf.data(), buf.size(), &found);
  if (rc != 0) ThrowIo("look up the group " + name, rc);
  if (found == nullptr) return std::nullopt;
  return found->gr_gid;
}

std::optional<std::pair<uid_t, gid_t>> UserIds(const std::string& name) {
  struct passwd pw;
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  int rc = ::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found);
  if (rc != 0) ThrowIo("look up the user " + name, rc);
  if (found == nullptr) return std::nullopt;
  return std::make_pair(found->pw_uid, found->pw_gid);
}

std::string EnvironmentValue(const std::string& name) {
  const char* v = std::getenv(name.c_str());
  return v == nullptr ? "" : v;
}

void SleepFor(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  if (::getentropy(raw.data(), raw.size()) != 0) ThrowIo("getentropy", errno);
  return HexEncode(raw);
}

std::string TempPathFor(const std::string& path) { return path + ".tmp-" + RandomHex(6); }

std::string MakeTempDir(const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string templ = JoinPath(tmp && *tmp ? tmp : "/tmp", prefix + "XXXXXX");
  std::vector<char> buf(templ.begin(), templ.end());
  buf.push_back('\0');
  if (::mkdtemp(buf.data()) == nullptr) ThrowIo("mkdtemp " + templ, errno);
  return buf.data();
}

uint64_t SizeOrZero(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return 0;
  if (S_ISREG(st.st_mode)) return static_cast<uint64_t>(st.st_size);
  if (!S_ISBLK(st.st_mode)) return 0;
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  uint64_t size = 0;
  if (fd.get() < 0 || ::ioctl(fd.get(), BLKGETSIZE64, &size) != 0) return 0;
  return size;
}

void WriteFileAtomic(Env* env, const std::string& path, const std::string& data, mode_t perm) {
  std::string tmp;
  std::unique_ptr<WritableFile> f;
  // A name another process took (or planted) is skipped, never opened.
  for (int attempt = 0; !f; attempt++) {
    tmp = TempPathFor(path);
    try {
      f = env->OpenWrite(tmp, CreateMode::kExclusive, perm);
    } catch (const Error&) {
      if (attempt >= 3 || !env->Exists(tmp)) throw;
    }
  }
  try {
    f->Append(data.data(), data.size());
    // The umask may have taken bits the caller wants (a metrics file that
    // node_exporter, another user, must read).
    if ((perm & 077) != 0) env->SetMode(tmp, perm);
    f->Sync();
    f->Close();
    env->Rename(tmp, path);
  } catch (...) {
    f.reset();
    try {
      if (env->Exists(tmp)) env->Remove(tmp);
    } catch (const Error&) {
      // Best effort: the error that matters is the one being rethrown.
    }
    throw;
  }
  env->SyncDir(DirName(path));
}

std::string DirName(const std::string& path) {
  auto pos = path.find_last_of('/');
  if (pos == std::string::npos) return ".";
  if (pos == 0) return "/";
  return path.substr(0, pos);
}

std::string BaseName(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  auto pos = p.find_last_of('/');
  return pos == std::string::npos ? p : p.substr(pos + 1);
}

std::string JoinPath(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return a.back() == '/' ? a + b : a + "/" + b;
}

void SyncFileSystem(const std::string& path) { Env::Default()->SyncFileSystem(path); }

bool IsReadOnlyFileSystem(const std::string& path) {
  struct statvfs st;
  return ::statvfs(path.c_str(), &st) == 0 && (st.f_flag & ST_RDONLY) != 0;
}

FileStatus ExistingStatus(Env* env, const std::string& path, const std::string& context) {
  FileStatus st = env->Status(path);
  if (st.kind == FileKind::kMissing) ThrowIo(context.empty() ? "stat " + path : context, ENOENT);
  return st;
}

int ThisProcessId() { return static_cast<int>(::getpid()); }

bool ProcessExists(int pid) { return pid > 0 && !(::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH); }

bool IsBucketUrl(std::string_view path) { return path.substr(0, 5) == "s3://"; }

std::string CanonicalPath(const std::string& path) {
  if (path.empty()) return path;
  if (IsBucketUrl(path)) {
    std::string url = path;
    while (url.size() > 5 && url.back() == '/') url.pop_back();
    return url;
  }
  char* real = ::realpath(path.c_str(), nullptr);
  if (real) {
    std::string out = real;
    ::free(real);
    return out;
  }
  // Not there (an unplugged disk, a new copy): still absolute, so that what
  // is recorded or compared does not depend on where the process runs, and
  // with the directory above resolved when that is there.
  std::error_code ec;
  std::filesystem::path abs = std::filesystem::absolute(path, ec);
  if (ec) return path;
  std::string normal = abs.lexically_normal().string();
  while (normal.size() > 1 && normal.back() == '/') normal.pop_back();
  abs = normal;
  if (abs.has_filename() && abs.has_parent_path() && abs.parent_path() != abs) {
    if (char* parent = ::realpath(abs.parent_path().c_str(), nullptr)) {
      std::string out = JoinPath(parent, abs.filename().string());
      ::free(parent);
      return out;
    }
  }
  return abs.string();
}

std::string ReadUserFile(const std::string& path, const std::string& context) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) ThrowIo(context, errno);
  std::string text;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof(buf));
    if (n < 0) {
      if (errno == EINTR) continue;
      ThrowIo(context, errno);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  return text;
}

std::string RealPath(const std::string& path, const std::string& context) {
  char* real = ::realpath(path.c_str(), nullptr);
  if (!real) ThrowIo(context, errno);
  std::string out = real;
  ::free(real);
  return out;
}

void CheckReadable(const std::string& path, const std::string& context) {
  if (::access(path.c_str(), R_OK) != 0) ThrowIo(context, errno);
}

bool OnRootFileSystem(const std::string& path) {
  if (IsBucketUrl(path)) return false;
  struct stat root;
  if (::stat("/", &root) != 0) return false;
  std::string p = path;
  for (;;) {
    struct stat st;
    if (::stat(p.c_str(), &st) == 0) return st.st_dev == root.st_dev;
    if (errno != ENOENT && errno != ENOTDIR) return false;  // unknown: say nothing
    std::string parent = DirName(p);
    if (parent == p || parent.empty()) return false;
    p = parent;
  }
}

}  // namespace vmback
