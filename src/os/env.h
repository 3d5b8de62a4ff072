// The one seam between vmback and the operating system, after leveldb's Env:
// files, directories and their fsync, renames, locks, subprocesses and the
// clock. PosixEnv is the real thing; FaultEnv (fault_env.h) wraps it to
// inject EIO, ENOSPC, short writes and "crash after the Nth write" in tests.
//
// Every method throws vmback::Error naming the path on failure. No method
// ever reports a failure as an empty result (a listing that failed is not an
// empty directory).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace vmback {

class ReadableFile {
 public:
  virtual ~ReadableFile() = default;
  // Reads up to n bytes at offset, looping over short reads; fewer than n
  // only at end of file.
  virtual size_t ReadAt(uint64_t offset, void* buf, size_t n) = 0;
  // Size in bytes (also for block devices).
  virtual uint64_t Size() = 0;
  // SEEK_DATA / SEEK_HOLE: the next data (hole) offset at or after offset,
  // Size() when there is none. Where unsupported, data is everywhere.
  virtual uint64_t NextData(uint64_t offset) = 0;
  virtual uint64_t NextHole(uint64_t offset) = 0;
  // Tells the kernel the range will not be read again (page cache).
  virtual void DropCache(uint64_t offset, uint64_t len) = 0;
  // For a caller that issues its own large reads of data regions only: no
  // kernel read-ahead, which in a sparse file would drag in (and zero-fill)
  // the holes around the data.
  virtual void DisableReadahead() {}
  virtual const std::string& path() const = 0;
};

class WritableFile {
 public:
  virtual ~WritableFile() = default;
  virtual void Append(const void* data, size_t n) = 0;
  virtual void WriteAt(uint64_t offset, const void* data, size_t n) = 0;
  virtual void Truncate(uint64_t size) = 0;
  virtual void Sync() = 0;
  // Closes and reports a failed close (it can carry a delayed write error).
  virtual void Close() = 0;
  virtual const std::string& path() const = 0;
};

// Held for as long as the object lives; released by the kernel if the process
// dies, so a lock is never left stale.
class FileLock {
 public:
  virtual ~FileLock() = default;
};

enum class CreateMode { kExclusive, kTruncate, kExisting };
enum class LockMode { kShared, kExclusive };

struct RunResult {
  int exit_code = -1;  // -1 when killed by a signal
  int signal = 0;
  std::string out;
  std::string err;
};

class Env {
 public:
  virtual ~Env() = default;

  virtual std::unique_ptr<ReadableFile> OpenRead(const std::string& path) = 0;
  // kExisting opens a file or block device for writing without truncating.
  virtual std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode,
                                                  mode_t perm = 0644) = 0;
  virtual void Rename(const std::string& from, const std::string& to) = 0;
  virtual void Remove(const std::string& path) = 0;
  // Creates the directory; succeeds if it exists already.
  virtual void MakeDir(const std::string& path) = 0;
  virtual void SyncDir(const std::string& path) = 0;
  virtual bool Exists(const std::string& path) = 0;
  virtual std::vector<std::string> ListDir(const std::string& path) = 0;
  // Non-blocking: throws ErrorKind::kLocked when held elsewhere, naming the
  // holder. An exclusive holder's pid is kept in the lock file while held.
  virtual std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) = 0;
  // Locks taken whose previous holder died holding them (the kernel freed
  // them): one line each, for the log. Clears the list.
  virtual std::vector<std::string> TakeStaleLockReports() { return {}; }
  // Runs argv (no shell), stdin from /dev/null, in its own process group.
  virtual RunResult Run(const std::vector<std::string>& argv) = 0;
  virtual int64_t NowNanos() = 0;  // wall clock, ns since the epoch

  // The process-wide POSIX implementation.
  static Env* Default();
};

// Helpers built on any Env.
std::string ReadFileToString(Env* env, const std::string& path);
// Crash-safe replace: write to path.tmp-<pid>, fsync, rename, fsync the dir.
void WriteFileAtomic(Env* env, const std::string& path, const std::string& data);
std::string DirName(const std::string& path);
std::string BaseName(const std::string& path);
std::string JoinPath(const std::string& a, const std::string& b);
// syncfs(2) on the file system holding path: every write on it made durable.
void SyncFileSystem(const std::string& path);
// realpath(3), or the path as given when it cannot be resolved.
std::string CanonicalPath(const std::string& path);

}  // namespace vmback
