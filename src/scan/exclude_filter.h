// What a backup leaves out of a volume's tree, and why: the volume's
// exclude patterns (util/exclude.h), the cache directories tagged with a
// CACHEDIR.TAG (exclude_caches), and what vmback itself keeps below the
// source (its store, the store's copies, an in-place target, its state
// directory), which is left out always. Both walkers apply it: the
// store's (run/backup.cpp) and the in-place sink's (inplace/inplace.cpp),
// and `backup --dry-run` previews it (PreviewVolume).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "os/env.h"
#include "util/exclude.h"
#include "util/log.h"

namespace vmback {

// The tag of a cache directory (https://bford.info/cachedir/): a regular
// file named CACHEDIR.TAG whose first bytes are kCacheDirSignature.
constexpr const char* kCacheDirTag = "CACHEDIR.TAG";
constexpr const char* kCacheDirSignature = "Signature: 8a477f597d28d172789f06886806bc55";

// Something of vmback's own below a volume's source.
struct OwnPath {
  std::string rel;   // below the volume's root ("srv/backup"), never empty
  std::string what;  // for messages: "the store /srv/backup", "the state directory /var/lib/vmback"
  // rel's last component is a name prefix: every entry of its directory
  // whose name starts with it is vmback's (a btrfs target's points,
  // "srv/vmback-" for srv/vmback-2026-...).
  bool name_prefix = false;

  bool Matches(const std::string& entry_rel) const;
};

// Everything left out of one volume.
struct VolumeExcludes {
  ExcludeRules patterns;
  // A directory holding a valid CACHEDIR.TAG keeps the tag and nothing
  // else (as restic's --exclude-caches and borg's --keep-exclude-tags).
  bool exclude_caches = false;
  std::vector<OwnPath> own;

  bool empty() const { return patterns.empty() && !exclude_caches && own.empty(); }
};

// Each volume's excludes, by volume name. A volume not in it has none.
using BackupExcludes = std::map<std::string, VolumeExcludes>;

// Why an entry is left out.
enum class ExcludeReason { kPattern, kCacheDir, kOwn };
const char* ExcludeReasonName(ExcludeReason r);  // "pattern", "CACHEDIR.TAG", "own"

struct ExcludedEntry {
  std::string rel;  // below the volume's root
  ExcludeReason reason;
  std::string detail;  // the pattern, the tagged directory, or what vmback keeps there
};

// True when dir holds a CACHEDIR.TAG that is a regular file (not a
// symlink) starting with kCacheDirSignature. Never throws for what it
// finds there: an unreadable tag is no tag.
bool HasCacheDirTag(Env* env, const std::string& dir);

// One walk's filter. Not thread-safe; excludes (may be null: nothing is
// left out) and log outlive it.
class ExcludeFilter {
 public:
  ExcludeFilter(Env* env, const VolumeExcludes* excludes, Logger* log) : env_(env), ex_(excludes), log_(log) {}

  bool active() const { return ex_ != nullptr && !ex_->empty(); }
  // Whether the patterns may need to know if an entry is a directory (a
  // walker then stats each entry before asking LeaveOut).
  bool NeedsKind() const { return ex_ != nullptr && !ex_->patterns.empty(); }

  // Called once for each directory walked (path, rel; "" for the root),
  // before its entries: whether it is a tagged cache directory (when
  // exclude_caches), whose entries but the tag are then left out.
  bool IsCacheDir(const std::string& path, const std::string& rel);

  // Whether the entry name of the directory at dir_rel (is_dir: whether it
  // is a directory; in_cache_dir: what IsCacheDir said of its directory) is
  // left out. vmback's own paths are named on stderr (Info), a tagged
  // directory too (once); a pattern's matches only with -v (Debug).
  bool LeaveOut(const std::string& path, const std::string& rel, bool is_dir, bool in_cache_dir);

  uint64_t excluded() const { return excluded_; }
  // Keep the entries left out (for a dry run), up to max of them.
  void RecordInto(std::vector<ExcludedEntry>* out, size_t max) {
    record_ = out;
    record_max_ = max;
  }

 private:
  void Note(const std::string& rel, ExcludeReason reason, const std::string& detail);

  Env* env_;
  const VolumeExcludes* ex_;
  Logger* log_;
  uint64_t excluded_ = 0;
  std::vector<ExcludedEntry>* record_ = nullptr;
  size_t record_max_ = 0;
};

// What `backup --dry-run` shows of a volume: what a backup would read (a
// walk of the source as it is now, nothing opened for reading), and what
// it would leave out and why.
struct VolumePreview {
  std::string name;
  std::string source;
  uint64_t files = 0;
  uint64_t dirs = 0;
  uint64_t other = 0;
  uint64_t bytes = 0;         // the files' sizes (a device: its size)
  uint64_t excluded = 0;      // entries left out (each counted once, not what is below)
  uint64_t errors = 0;        // entries that could not be looked at (logged)
  std::vector<ExcludedEntry> listed;  // the first kMaxPreviewListed of those left out
};
constexpr size_t kMaxPreviewListed = 1000;

// Walks source (a directory, regular file or block device; not followed
// when a symlink) as a backup would, with excludes (may be null) and
// one_file_system, and counts. Writes nothing; cancel is polled per entry.
// Throws Error when the source itself cannot be looked at.
VolumePreview PreviewVolume(Env* env, const std::string& name, const std::string& source, bool one_file_system,
                            const VolumeExcludes* excludes, const std::atomic<bool>* cancel, Logger* log);

// The patterns of the exclude file at path (`backup --exclude-file`; see
// ParseExcludeFile). The file is hostile input: it must be a regular file,
// never read through a symlink, of at most kMaxExcludeFileBytes, text
// without NUL bytes. Throws Error(kConfig) naming path (and the line).
std::vector<std::string> ReadExcludeFile(Env* env, const std::string& path);

// The excludes of a volume as lines for people ("pattern /var/cache/*",
// "caches: directories with a CACHEDIR.TAG", "own: srv/backup (the store
// /srv/backup)"): what `vmback plan` and `backup --dry-run` list.
std::vector<std::string> DescribeExcludes(const VolumeExcludes& excludes);

}  // namespace vmback
