#include "helpers/test_util.h"

#include "os/subprocess.h"
#include "store/pack.h"
#include "store/store.h"
#include "util/error.h"
#include "util/sha256.h"

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <thread>
#include <vector>

namespace vmback::test {

bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

std::string RepoRoot() {
  std::string f = __FILE__;  // <root>/tests/helpers/test_util.cpp
  for (int i = 0; i < 3; i++) f = DirName(f);
  return f;
}

RunResult Exec(const std::vector<std::string>& argv) {
  try {
    return RunSubprocess(argv);
  } catch (const Error& e) {
    RunResult r;
    r.exit_code = 127;
    r.err = e.what();
    return r;
  }
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/vmback-test-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

// Opens path and hands fn its bytes in chunks of at most max_chunk (fewer
// for a smaller file: the buffer is sized from fstat).
void ReadChunks(const std::string& path, size_t max_chunk, const std::function<void(const char*, size_t)>& fn) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  struct stat st;
  if (fd < 0 || ::fstat(fd, &st) != 0) {
    if (fd >= 0) ::close(fd);
    throw std::runtime_error("cannot read " + path);
  }
  std::vector<char> buf(static_cast<size_t>(std::clamp<off_t>(st.st_size + 1, 1, static_cast<off_t>(max_chunk))));
  for (;;) {
    const ssize_t n = ::read(fd, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      if (n < 0) throw std::runtime_error("read " + path + ": " + std::strerror(errno));
      return;
    }
    fn(buf.data(), static_cast<size_t>(n));
  }
}

// Into a string reserved once from the file's size, read in chunks of
// 1 MiB (a stringstream grew by doubling and copied it all once more at
// the end: under TSan, reading a 32 MiB test image that way took most of a
// 25 s test).
std::string ReadFile(const std::string& path) {
  std::string data;
  struct stat st;
  if (::stat(path.c_str(), &st) == 0 && st.st_size > 0) data.reserve(static_cast<size_t>(st.st_size));
  ReadChunks(path, 1 << 20, [&](const char* p, size_t n) { data.append(p, n); });
  return data;
}

std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    for (size_t k = 0; k < 8 && i + k < n; k++) s[i + k] = static_cast<char>(v >> (8 * k));
  }
  return s;
}

ErrorKind ErrorKindOf(const std::function<void()>& fn, std::string* message) {
  try {
    fn();
  } catch (const Error& e) {
    if (message) *message = e.what();
    return e.kind();
  }
  ADD_FAILURE() << "no vmback::Error thrown";
  return ErrorKind::kOther;
}

// --- For the backup/restore/verify tests ----------------------------------

namespace {

std::string HexOf(const std::string& s) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::string DescribeXattrs(const std::string& path) {
  ssize_t n = ::llistxattr(path.c_str(), nullptr, 0);
  if (n <= 0) return "";
  std::string names(static_cast<size_t>(n), '\0');
  n = ::llistxattr(path.c_str(), names.data(), names.size());
  if (n < 0) throw std::runtime_error("llistxattr " + path + ": " + std::strerror(errno));
  names.resize(static_cast<size_t>(n));
  std::vector<std::string> out;
  for (size_t pos = 0; pos < names.size();) {
    std::string name = names.c_str() + pos;
    pos += name.size() + 1;
    if (name.empty()) continue;
    ssize_t len = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    if (len < 0) throw std::runtime_error("lgetxattr " + path + ": " + std::strerror(errno));
    std::string value(static_cast<size_t>(len), '\0');
    len = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (len < 0) throw std::runtime_error("lgetxattr " + path + ": " + std::strerror(errno));
    value.resize(static_cast<size_t>(len));
    out.push_back(name + "=" + HexOf(value));
  }
  std::sort(out.begin(), out.end());
  std::string s;
  for (const auto& x : out) s += (s.empty() ? "" : ",") + x;
  return " xattrs=[" + s + "]";
}

// Streamed, a MiB at a time: the test images are sparse and large.
Hash FileSha256(const std::string& path) {
  Sha256Stream h;
  ReadChunks(path, 1 << 20, [&](const char* p, size_t n) { h.Update(p, n); });
  return h.Finish();
}

struct Describer {
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::string out;

  void Walk(const std::string& path, const std::string& rel, bool describe_self) {
    struct stat st;
    if (::lstat(path.c_str(), &st) != 0)
      throw std::runtime_error("lstat " + path + ": " + std::strerror(errno));
    if (describe_self) Describe(path, rel, st);
    if (!S_ISDIR(st.st_mode)) return;
    DIR* d = ::opendir(path.c_str());
    if (!d) throw std::runtime_error("opendir " + path + ": " + std::strerror(errno));
    std::vector<std::string> names;
    while (struct dirent* e = ::readdir(d)) {
      std::string n = e->d_name;
      if (n != "." && n != "..") names.push_back(n);
    }
    ::closedir(d);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) Walk(path + "/" + n, rel == "." ? n : rel + "/" + n, true);
  }

  void Describe(const std::string& path, const std::string& rel, const struct stat& st) {
    char buf[128];
    std::string line = rel;  // raw bytes of the name
    const char* type = S_ISREG(st.st_mode)    ? "file"
                       : S_ISDIR(st.st_mode)  ? "dir"
                       : S_ISLNK(st.st_mode)  ? "symlink"
                       : S_ISCHR(st.st_mode)  ? "chardev"
                       : S_ISBLK(st.st_mode)  ? "blockdev"
                       : S_ISFIFO(st.st_mode) ? "fifo"
                       : S_ISSOCK(st.st_mode) ? "socket"
                                              : "unknown";
    std::snprintf(buf, sizeof buf, " %s mode=%04o uid=%u gid=%u mtime=%lld.%09ld", type,
                  static_cast<unsigned>(st.st_mode & 07777), static_cast<unsigned>(st.st_uid),
                  static_cast<unsigned>(st.st_gid), static_cast<long long>(st.st_mtim.tv_sec),
                  static_cast<long>(st.st_mtim.tv_nsec));
    line += buf;
    if (S_ISREG(st.st_mode)) {
      auto key = std::make_pair(st.st_dev, st.st_ino);
      auto it = first_name.find(key);
      if (st.st_nlink > 1 && it != first_name.end()) {
        line += " link=" + it->second;
      } else {
        if (st.st_nlink > 1) first_name[key] = rel;
        line += " size=" + std::to_string(st.st_size) + " sha256=" + FileSha256(path).Hex();
      }
      line += " nlink=" + std::to_string(st.st_nlink);
    } else if (S_ISLNK(st.st_mode)) {
      std::string target(4096, '\0');
      ssize_t n = ::readlink(path.c_str(), target.data(), target.size());
      if (n < 0) throw std::runtime_error("readlink " + path + ": " + std::strerror(errno));
      target.resize(static_cast<size_t>(n));
      line += " target=" + target;
    } else if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) {
      line += " rdev=" + std::to_string(major(st.st_rdev)) + ":" + std::to_string(minor(st.st_rdev));
    }
    line += DescribeXattrs(path);
    out += line + "\n";
  }
};

}  // namespace

std::string DescribeTree(const std::string& path, bool with_root) {
  Describer d;
  d.Walk(path, ".", with_root);
  return d.out;
}

void SetMtimeNs(const std::string& path, int64_t sec, long nsec) {
  struct timespec ts[2];
  ts[0].tv_sec = static_cast<time_t>(sec);
  ts[0].tv_nsec = nsec;
  ts[1] = ts[0];
  if (::utimensat(AT_FDCWD, path.c_str(), ts, AT_SYMLINK_NOFOLLOW) != 0)
    throw std::runtime_error("utimensat " + path + ": " + std::strerror(errno));
}

void XorFileByte(const std::string& path, uint64_t offset, uint8_t mask) {
  int fd = ::open(path.c_str(), O_RDWR);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  unsigned char c = 0;
  if (::pread(fd, &c, 1, static_cast<off_t>(offset)) != 1) {
    ::close(fd);
    throw std::runtime_error("pread " + path);
  }
  c ^= mask;
  if (::pwrite(fd, &c, 1, static_cast<off_t>(offset)) != 1) {
    ::close(fd);
    throw std::runtime_error("pwrite " + path);
  }
  ::close(fd);
}

void WriteFileAt(const std::string& path, uint64_t offset, const std::string& data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT, 0644);
  if (fd < 0) throw std::runtime_error("open " + path + ": " + std::strerror(errno));
  ssize_t n = ::pwrite(fd, data.data(), data.size(), static_cast<off_t>(offset));
  ::close(fd);
  if (n != static_cast<ssize_t>(data.size())) throw std::runtime_error("pwrite " + path);
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0)
    throw std::runtime_error("stat " + path + ": " + std::strerror(errno));
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

bool FindBlobInStore(const Store& store, const Hash& id, std::string* pack_path, PackEntry* entry) {
  for (const auto& pack : store.ListPackFiles()) {
    auto f = Env::Default()->OpenRead(store.PackPath(pack));
    for (const auto& e : ReadPackEntries(f.get())) {
      if (e.id == id) {
        *pack_path = store.PackPath(pack);
        *entry = e;
        return true;
      }
    }
  }
  return false;
}

std::vector<Hash> PacksHolding(const Store& store, const std::vector<Hash>& packs, BlobType type) {
  std::vector<Hash> holding;
  for (const auto& pack : packs) {
    auto f = Env::Default()->OpenRead(store.PackPath(pack));
    for (const auto& e : ReadPackEntries(f.get())) {
      if (e.type == type) {
        holding.push_back(pack);
        break;
      }
    }
  }
  return holding;
}

std::string ExpectError(ErrorKind kind, const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), kind) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "expected an Error";
  return "";
}

void MakeDir(const std::string& path, mode_t mode) {
  std::error_code ec;
  if (!std::filesystem::create_directory(path, ec))
    throw std::runtime_error("mkdir " + path + ": " + (ec ? ec.message() : std::strerror(EEXIST)));
  std::filesystem::permissions(path, static_cast<std::filesystem::perms>(mode), ec);
  if (ec) throw std::runtime_error("chmod " + path + ": " + ec.message());
}

void Chown(const std::string& path, uid_t uid, gid_t gid) {
  if (::chown(path.c_str(), uid, gid) != 0)
    throw std::runtime_error("chown " + path + ": " + std::strerror(errno));
}

void MakeFifo(const std::string& path, mode_t mode) {
  if (::mkfifo(path.c_str(), mode) != 0) throw std::runtime_error("mkfifo " + path + ": " + std::strerror(errno));
}

ScopedEnv::ScopedEnv(const std::string& name, const std::string& value) : name_(name) {
  if (const char* old = ::getenv(name.c_str())) old_ = old;
  if (::setenv(name.c_str(), value.c_str(), 1) != 0)
    throw std::runtime_error("setenv " + name + ": " + std::strerror(errno));
}

ScopedEnv::~ScopedEnv() {
  if (old_)
    ::setenv(name_.c_str(), old_->c_str(), 1);
  else
    ::unsetenv(name_.c_str());
}

std::vector<int> LiveProcessesInGroup(int pgid) {
  std::vector<int> out;
  for (const auto& e : std::filesystem::directory_iterator("/proc")) {
    std::string name = e.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(e.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    size_t paren = stat.rfind(')');  // the command may hold spaces and ')'
    if (paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(paren + 1));
    std::string state;
    int ppid = 0, group = 0;
    fields >> state >> ppid >> group;
    if (group == pgid && state != "Z" && state != "X") out.push_back(std::stoi(name));
  }
  return out;
}

}  // namespace vmback::test
