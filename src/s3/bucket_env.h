// A store copy in a bucket: an Env in which the paths "s3://BUCKET/KEY" are
// objects of an S3-compatible bucket (S3Client), and every other path goes
// to the Env it wraps. The store keeps a copy in a bucket as it keeps one on
// a disk, through the same calls, and every command that takes a copy's
// path takes a bucket URL (docs/FORMAT.md, "A copy in a bucket"):
//
//   - A directory is a key prefix. MakeDir writes an empty marker object
//     "KEY/" so that an empty directory exists (the layout of a new copy,
//     the empty copy `store sync --mirror` fills); RemoveDir deletes it.
//   - A file written (OpenWrite) is held in memory: one under a temporary
//     name (".tmp-" in its name, as WriteFileAtomic and the pack writer
//     make them) until it is renamed, any other until it is closed; then it
//     is sent in one PUT with its Content-MD5, so that the gateway refuses
//     damaged bytes and an object is there whole or not at all. Nothing is
//     written in place; a rename onto a name replaces that object, as
//     rename(2) replaces a file.
//   - Rename of an object already in the bucket (a damaged file set aside)
//     is a GET, a PUT and a DELETE.
//   - Reads are ranged GETs, a window at a time (1 to 8 MiB, grown while the
//     reads are sequential), each checked for length.
//   - SyncDir and SetMode do nothing: a PUT is durable when it returns, and
//     every object is sent with the private ACL.
//   - ListDir lists everything below the directory, every page to the end
//     (a failed or truncated listing is an error, never an empty one), and
//     keeps it: later questions about names below it are answered from it,
//     amended by this process's own writes and deletes. Writers hold the
//     bucket's lock object, so no one else changes what a writer listed.
//   - Lock(kShared) takes nothing: a bucket has no shared lock, so a reader
//     of the bucket alone does not hold off a writer on another host. The
//     store's readers' lock, "lock", is nothing in either mode: its writers
//     all take "write.lock" exclusive first. Lock(kExclusive) writes a lock object (JSON: host, pid, a random
//     token, when it expires) and reads it back: the gateways this was
//     tested on (Ceph RGW 16) and libs3 2.0 have no conditional PUT, so
//     the read-back after a pause (kLockSettle) is what tells two takers
//     apart; two processes that both find no lock and write within that
//     pause of each other can both go on (README: one writer per store).
//     The lease is renewed by a thread while held and the object deleted
//     when released; a holder that died leaves it until the lease ends,
//     unless it was on this host and its pid is gone (taken over, said in
//     TakeStaleLockReports).
//   - Symlinks, device nodes, hard links, owners, times and extended
//     attributes do not exist in a bucket: asked to make one, kConfig.
//
// Names: a key is checked where it is made (CheckS3Key) and every key a
// listing returns too; sizes from the gateway bound every read. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>

#include "os/env.h"
#include "s3/s3_client.h"

namespace vmback {

struct BucketSettings {
  S3Config s3;                    // endpoint, scheme, addressing, credentials
  uint64_t upload_limit = 0;      // bytes per second over all uploads; 0: none
  std::chrono::seconds lease{1800};  // of a lock object; renewed at a quarter
  S3Retry retry;
};

// How long Lock(kExclusive) waits between writing the lock object and
// reading it back.
inline constexpr std::chrono::milliseconds kLockSettle{1000};

// The bucket and the key (prefix) of a bucket URL "s3://BUCKET/KEY"; KEY
// may be empty (the bucket's root). Throws kConfig naming the URL when it
// is not one, or its key is not a valid key.
struct BucketUrl {
  std::string bucket;
  std::string key;
};
BucketUrl ParseBucketUrl(const std::string& url);

// Settings from the environment, as the AWS tools take them:
// AWS_ENDPOINT_URL ("http://host:port" or "https://host"), AWS_ACCESS_KEY_ID
// and AWS_SECRET_ACCESS_KEY or the credentials file, AWS_DEFAULT_REGION;
// path-style addressing. endpoint_url given overrides AWS_ENDPOINT_URL.
// Throws kConfig when no endpoint is given at all (libs3 2.0 signs with
// AWS signature version 2, which AWS's own endpoints no longer take for new
// buckets: the endpoint is always named).
BucketSettings BucketSettingsFrom(Env* env, const std::string& endpoint_url, const std::string& profile,
                                  const std::string& addressing);

class BucketEnv : public EnvWrapper {
 public:
  // settings is called once, at the first bucket URL (a command has read its
  // config by then); its errors reach the caller of that first call.
  BucketEnv(Env* target, std::function<BucketSettings()> settings);
  ~BucketEnv() override;

  // Replaces the settings (before any bucket URL is used).
  void Configure(std::function<BucketSettings()> settings);

  std::unique_ptr<ReadableFile> OpenRead(const std::string& path) override;
  std::unique_ptr<WritableFile> OpenWrite(const std::string& path, CreateMode mode, mode_t perm = 0600) override;
  void Rename(const std::string& from, const std::string& to) override;
  void Remove(const std::string& path) override;
  void MakeDir(const std::string& path) override;
  void MakeNewDir(const std::string& path) override;
  void RemoveDir(const std::string& path) override;
  void SyncDir(const std::string& path) override;
  bool Exists(const std::string& path) override;
  std::vector<std::string> ListDir(const std::string& path) override;
  FileStatus Status(const std::string& path) override;
  FileStatus StatusFollowingLinks(const std::string& path) override;
  void SetMode(const std::string& path, mode_t mode) override;
  void SetModeNoFollow(const std::string& path, mode_t mode) override;
  void SyncFileSystem(const std::string& path) override;
  uint64_t RemoveTree(const std::string& path) override;
  std::unique_ptr<FileLock> Lock(const std::string& path, LockMode mode) override;
  std::vector<std::string> TakeStaleLockReports() override;
  std::unique_ptr<ReadableDir> OpenDirectory(const std::string& path) override;
  std::string ReadLink(const std::string& path) override;
  void Symlink(const std::string& target, const std::string& path) override;
  void Link(const std::string& existing, const std::string& path) override;
  void MakeNode(const std::string& path, mode_t type, dev_t rdev) override;
  int CloneFile(const std::string& from, const std::string& to,
                const std::function<void()>& between_ranges) override;
  std::vector<FileExtent> Extents(const std::string& path, size_t max_extents) override;
  bool SetOwner(const std::string& path, uid_t uid, gid_t gid) override;
  void SetTimes(const std::string& path, std::optional<int64_t> atime_ns, int64_t mtime_ns) override;
  Xattrs ReadXattrs(const std::string& path) override;
  void SetXattr(const std::string& path, const std::string& name, const std::string& value) override;
  void RemoveXattr(const std::string& path, const std::string& name) override;
  uint64_t FileSystemType(const std::string& path) override;

  // What went through the buckets so far (for reports and tests).
  struct Stats {
    uint64_t puts = 0, put_bytes = 0, gets = 0, get_bytes = 0, heads = 0, lists = 0, deletes = 0;
  };
  Stats stats() const;

  // For the bucket's files (bucket_env.cpp).
  class Bucket;
  Bucket* BucketOf(const std::string& name);

 private:
  struct Located {
    Bucket* bucket;
    std::string key;
  };
  Located Locate(const std::string& path);
  [[noreturn]] void Unsupported(const std::string& what, const std::string& path) const;

  mutable std::mutex mu_;
  std::function<BucketSettings()> settings_fn_;
  std::unique_ptr<BucketSettings> settings_;
  std::unique_ptr<S3RateLimit> upload_limit_;
  std::map<std::string, std::unique_ptr<Bucket>> buckets_;
  std::vector<std::string> stale_reports_;
  friend class BucketLock;
};

}  // namespace vmback
