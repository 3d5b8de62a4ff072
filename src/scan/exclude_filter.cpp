#include "scan/exclude_filter.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "scan/file_scanner.h"
#include "util/error.h"

namespace vmback {

const char* ExcludeReasonName(ExcludeReason r) {
  switch (r) {
    case ExcludeReason::kPattern: return "pattern";
    case ExcludeReason::kCacheDir: return "CACHEDIR.TAG";
    case ExcludeReason::kOwn: return "own";
  }
  return "?";
}

bool OwnPath::Matches(const std::string& entry_rel) const {
  if (!name_prefix) return entry_rel == rel;
  return entry_rel.size() > rel.size() && entry_rel.compare(0, rel.size(), rel) == 0 &&
         entry_rel.find('/', rel.size()) == std::string::npos;
}

bool HasCacheDirTag(Env* env, const std::string& dir) {
  const std::string tag = JoinPath(dir, kCacheDirTag);
  const size_t n = std::strlen(kCacheDirSignature);
  try {
    if (env->Status(tag).kind != FileKind::kFile) return false;
    auto f = env->OpenRead(tag);  // never through a symlink
    if (f->Size() < n) return false;
    char buf[64];
    if (f->ReadAt(0, buf, n) != n) return false;
    return std::memcmp(buf, kCacheDirSignature, n) == 0;
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCrash) throw;
    return false;
  }
}

bool ExcludeFilter::IsCacheDir(const std::string& path, const std::string& rel) {
  if (ex_ == nullptr || !ex_->exclude_caches || !HasCacheDirTag(env_, path)) return false;
  if (log_) log_->Info(path + ": a cache directory (" + kCacheDirTag + "): its entries are left out, the tag kept");
  return true;
}

void ExcludeFilter::Note(const std::string& rel, ExcludeReason reason, const std::string& detail) {
  excluded_++;
  if (record_ && record_->size() < record_max_) record_->push_back({rel, reason, detail});
}

bool ExcludeFilter::LeaveOut(const std::string& path, const std::string& rel, bool is_dir, bool in_cache_dir) {
  if (ex_ == nullptr) return false;
  for (const auto& own : ex_->own) {
    if (own.Matches(rel)) {
      if (log_) log_->Info(path + ": left out, not backed up: it is " + own.what);
      Note(rel, ExcludeReason::kOwn, own.what);
      return true;
    }
  }
  if (const ExcludePattern* p = ex_->patterns.Match(rel, is_dir)) {
    if (log_) log_->Debug(path + ": left out (exclude pattern \"" + p->text() + "\")");
    Note(rel, ExcludeReason::kPattern, p->text());
    return true;
  }
  if (in_cache_dir && BaseName(rel) != kCacheDirTag) {
    const size_t slash = rel.rfind('/');
    Note(rel, ExcludeReason::kCacheDir, slash == std::string::npos ? "" : rel.substr(0, slash));
    return true;
  }
  return false;
}

namespace {

class Previewer {
 public:
  Previewer(Env* env, const VolumeExcludes* ex, bool one_fs, const std::atomic<bool>* cancel, Logger* log,
            VolumePreview* out)
      : env_(env), filter_(env, ex, log), one_fs_(one_fs), cancel_(cancel), log_(log), out_(out) {
    filter_.RecordInto(&out->listed, kMaxPreviewListed);
  }

  void Walk(const std::string& source) {
    const FileStatus st = ExistingStatus(env_, source, "stat " + source);
    if (st.kind == FileKind::kDir) {
      root_dev_ = st.dev;
      out_->dirs++;
      WalkDir(source, "");
    } else if (st.kind == FileKind::kFile || st.type == S_IFBLK) {
      out_->files++;
      out_->bytes += st.type == S_IFBLK ? SizeOrZero(source) : st.size;
    } else {
      throw Error(ErrorKind::kIo, source + ": not a directory, regular file or block device");
    }
    out_->excluded = filter_.excluded();
  }

 private:
  // Runs look; an entry that cannot be looked at is counted and logged, as
  // a backup would (false).
  template <typename F>
  bool Looked(F&& look) {
    try {
      look();
      return true;
    } catch (const Error& e) {
      if (e.kind() == ErrorKind::kCrash) throw;
      out_->errors++;
      log_->Error(e.what());
      return false;
    }
  }

  void WalkDir(const std::string& path, const std::string& rel) {
    std::vector<std::string> names;
    if (!Looked([&] { names = env_->ListDir(path); })) return;
    std::sort(names.begin(), names.end());
    const bool cache = filter_.IsCacheDir(path, rel);
    for (const auto& name : names) {
      CheckCancel(cancel_);
      const std::string child = JoinPath(path, name);
      const std::string child_rel = rel.empty() ? name : rel + "/" + name;
      FileStatus st;
      if (!Looked([&] { st = env_->Status(child); })) continue;
      if (st.kind == FileKind::kMissing) continue;
      if (filter_.LeaveOut(child, child_rel, st.kind == FileKind::kDir, cache)) continue;
      if (st.kind == FileKind::kDir) {
        out_->dirs++;
        if (!(one_fs_ && st.dev != root_dev_)) WalkDir(child, child_rel);
      } else if (st.kind == FileKind::kFile) {
        out_->files++;
        out_->bytes += st.size;
      } else {
        out_->other++;
      }
    }
  }

  Env* env_;
  ExcludeFilter filter_;
  const bool one_fs_;
  const std::atomic<bool>* cancel_;
  Logger* log_;
  VolumePreview* out_;
  dev_t root_dev_ = 0;
};

}  // namespace

VolumePreview PreviewVolume(Env* env, const std::string& name, const std::string& source, bool one_file_system,
                            const VolumeExcludes* excludes, const std::atomic<bool>* cancel, Logger* log) {
  VolumePreview out;
  out.name = name;
  out.source = source;
  Previewer(env, excludes, one_file_system, cancel, log, &out).Walk(source);
  return out;
}

std::vector<std::string> ReadExcludeFile(Env* env, const std::string& path) {
  const std::string what = "exclude file " + path;
  const FileStatus st = env->Status(path);  // lstat: a symlink is seen as one
  if (st.kind == FileKind::kMissing) ThrowConfig(what + ": " + std::strerror(ENOENT));
  if (st.kind == FileKind::kSymlink)
    ThrowConfig(what + ": is a symbolic link; an exclude file is read only as a regular file (give its target)");
  if (st.kind != FileKind::kFile) ThrowConfig(what + ": not a regular file");
  if (st.size > kMaxExcludeFileBytes)
    ThrowConfig(what + ": " + std::to_string(st.size) + " bytes, more than the " +
                std::to_string(kMaxExcludeFileBytes) + " an exclude file may have");
  std::string text;
  try {
    text = ReadFileToString(env, path, kMaxExcludeFileBytes);  // O_NOFOLLOW, bounded again
  } catch (const Error& e) {
    if (e.kind() == ErrorKind::kCrash) throw;
    ThrowConfig(std::string(e.what()) + " (" + what + ")");
  }
  return ParseExcludeFile(text, path);
}

std::vector<std::string> DescribeExcludes(const VolumeExcludes& excludes) {
  std::vector<std::string> lines;
  for (const auto& p : excludes.patterns.patterns()) lines.push_back("pattern " + p.text());
  if (excludes.exclude_caches)
    lines.push_back(std::string("caches: the entries of directories with a ") + kCacheDirTag + " (the tag kept)");
  for (const auto& own : excludes.own)
    lines.push_back("own: " + own.rel + (own.name_prefix ? "*" : "") + " (" + own.what + ")");
  return lines;
}

}  // namespace vmback
