// Shared test helpers: a private temp directory per test, file makers.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <vector>

#include "os/env.h"
#include "util/error.h"

namespace vmback::test {

// Waits (polling every 10 ms) up to timeout for pred to hold; returns
// whether it did.
bool Eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = std::chrono::seconds(5));

// The repository's root directory (from this helper's own source path).
std::string RepoRoot();
// Runs argv; a program that cannot be started gives exit code 127 and the
// reason in err, instead of throwing.
RunResult Exec(const std::vector<std::string>& argv);

// A fresh directory under $TMPDIR, removed (recursively) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

void WriteFile(const std::string& path, const std::string& data);
std::string ReadFile(const std::string& path);
// Deterministic pseudo-random bytes (seeded; same seed, same bytes).
std::string RandomBytes(size_t n, uint64_t seed);

// The kind of the vmback::Error fn throws (its message into *message);
// kOther, and a test failure, when it throws none.
ErrorKind ErrorKindOf(const std::function<void()>& fn, std::string* message = nullptr);

}  // namespace vmback::test

// --- Added for the backup/restore/verify tests ---------------------------

namespace vmback {
class Store;
struct PackEntry;
struct Hash;
enum class BlobType : uint8_t;
}  // namespace vmback

namespace vmback::test {

// A canonical, line-per-entry description of the tree at path (or of a single
// entry): relative path, type, mode, uid, gid, mtime (ns), size and SHA-256
// of file content, symlink target, rdev, xattrs (sorted, hex values), and the
// hard link structure (each later name of an inode names its first one in
// walk order, bytewise-sorted). Two trees are equal for rsync -axH purposes
// exactly when their descriptions are equal. Atime/ctime are left out.
// with_root: whether the root's own metadata is part of it.
std::string DescribeTree(const std::string& path, bool with_root = true);

// utimensat(AT_SYMLINK_NOFOLLOW): sets mtime (and atime) to sec.nsec.
void SetMtimeNs(const std::string& path, int64_t sec, long nsec);

// XORs the byte at offset in the file with mask (in place).
void XorFileByte(const std::string& path, uint64_t offset, uint8_t mask);

// pwrite()s data at offset without truncating the file.
void WriteFileAt(const std::string& path, uint64_t offset, const std::string& data);

// st_blocks * 512 of path (allocated bytes).
uint64_t AllocatedBytes(const std::string& path);

// The pack file (its path in the primary copy) of store that holds blob
// id, and the blob's entry in it; false when no pack of the primary does.
bool FindBlobInStore(const Store& store, const Hash& id, std::string* pack_path, PackEntry* entry);

// Those of packs (ids of the primary's packs) whose table lists a blob of
// type: a backup writes data blobs into packs of their own, trees and block
// lists into others.
std::vector<Hash> PacksHolding(const Store& store, const std::vector<Hash>& packs, BlobType type);

// Runs fn, which must throw an Error of kind (a test failure when it
// throws another kind or nothing); returns the Error's message.
std::string ExpectError(ErrorKind kind, const std::function<void()>& fn);

// The file system fixtures std::filesystem cannot make (or not in one
// step). Each throws std::runtime_error naming the path and the errno when
// the call fails, so a setup that does not happen fails the test.
//
// A new directory path with exactly mode (umask aside): create_directory,
// then permissions. Throws when path exists already, as mkdir(2) does.
void MakeDir(const std::string& path, mode_t mode);
// chown(2) of path (following a symlink there); needs root for another uid.
void Chown(const std::string& path, uid_t uid, gid_t gid);
// mkfifo(3): a new FIFO at path with mode (umask applies).
void MakeFifo(const std::string& path, mode_t mode);

// Sets the environment variable name to value for the life of the object;
// the destructor restores what was there before (unset when nothing was).
// Not thread-safe: the environment is the process's.
class ScopedEnv {
 public:
  ScopedEnv(const std::string& name, const std::string& value);
  ~ScopedEnv();
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

// The processes of process group pgid that have not exited (zombies waiting
// for a slow init to reap them do not count), from /proc.
std::vector<int> LiveProcessesInGroup(int pgid);

}  // namespace vmback::test
