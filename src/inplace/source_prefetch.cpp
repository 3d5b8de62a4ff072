#include "inplace/source_prefetch.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <vector>

#include "destination/point_diff.h"
#include "inplace/blockmap.h"
#include "scan/file_scanner.h"

namespace vmback {
namespace inplace_internal {

SourcePrefetch::SourcePrefetch(Env* env, const std::string& root, dev_t dev, const InplaceOptions& opts,
                               WillRead will_read)
    : env_(env),
      dev_(dev),
      one_file_system_(opts.one_file_system),
      own_prefix_(opts.own_prefix),
      will_read_(std::move(will_read)),
      filter_(env, opts.excludes, nullptr),
      thread_([this, root] { Walk(root); }) {}

SourcePrefetch::~SourcePrefetch() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  listed_cv_.notify_all();
  thread_.join();
}

std::shared_ptr<const SourcePrefetch::Listing> SourcePrefetch::PopListing() {
  std::shared_ptr<const Listing> l = std::move(listed_.front());
  listed_.pop_front();
  listed_entries_ -= l->names.size();
  listed_cv_.notify_all();  // room for the thread
  return l;
}

std::shared_ptr<const SourcePrefetch::Listing> SourcePrefetch::Take(const std::string& rel) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    while (!listed_.empty() && PathOrderLess(listed_.front()->rel, rel)) PopListing();
    if (!listed_.empty()) return listed_.front()->rel == rel ? PopListing() : nullptr;
    // Past rel without listing it (left out, or it could not be listed).
    if (listed_closed_ || (started_ && PathOrderLess(rel, pos_))) return nullptr;
    taking_ = true;
    listed_cv_.wait(l);
    taking_ = false;
  }
}

bool SourcePrefetch::Push(std::shared_ptr<const Listing> listing) {
  std::unique_lock<std::mutex> l(mu_);
  listed_cv_.wait(l, [&] {
    return stop_ || listed_.empty() || listed_entries_ + listing->names.size() <= kAheadEntries;
  });
  if (stop_) return false;
  listed_entries_ += listing->names.size();
  listed_.push_back(std::move(listing));
  l.unlock();
  listed_cv_.notify_all();
  return true;
}

void SourcePrefetch::At(const std::string& rel) {
  std::unique_lock<std::mutex> l(mu_);
  pos_ = rel;
  started_ = true;
  const bool wake = taking_;
  l.unlock();
  if (wake) listed_cv_.notify_all();
}

void SourcePrefetch::Passed(const std::string& rel) {
  std::unique_lock<std::mutex> l(mu_);
  at_ = rel;
  DropPassed();
  // Woken only once half the way ahead is free again: one wake-up per
  // many files, not two thread switches for each.
  const bool wake = waiting_ && ahead_.size() <= kAheadFiles / 2 && ahead_bytes_ <= kAheadBytes / 2;
  l.unlock();
  if (wake) cv_.notify_one();
}

void SourcePrefetch::DropPassed() {
  while (!ahead_.empty() && PathOrderLess(ahead_.front().rel, at_)) {
    ahead_bytes_ -= ahead_.front().bytes;
    ahead_.pop_front();
  }
}

bool SourcePrefetch::Behind(const std::string& rel) {
  std::lock_guard<std::mutex> l(mu_);
  return PathOrderLess(rel, at_);
}

bool SourcePrefetch::WaitForRoom(uint64_t bytes) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    DropPassed();
    if (stop_) return false;
    if (ahead_.empty() || (ahead_.size() < kAheadFiles && ahead_bytes_ + bytes <= kAheadBytes)) return true;
    waiting_ = true;
    // Woken by Passed; the timeout only bounds a wake-up missed.
    cv_.wait_for(l, std::chrono::milliseconds(50));
    waiting_ = false;
  }
}

void SourcePrefetch::Walk(const std::string& root) {
  try {
    auto dir = env_->OpenDirectory(root);
    WalkDir(dir.get(), "");
  } catch (const std::exception&) {
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    listed_closed_ = true;
  }
  listed_cv_.notify_all();
  done_ = true;
}

std::shared_ptr<const SourcePrefetch::Listing> SourcePrefetch::List(ReadableDir* dir, const std::string& rel) {
  auto l = std::make_shared<Listing>();
  l->rel = rel;
  l->self = dir->Self();
  l->names = dir->List();
  std::sort(l->names.begin(), l->names.end());
  l->st.resize(l->names.size());
  l->known.assign(l->names.size(), 0);
  for (size_t i = 0; i < l->names.size() && !stop_; i++) {
    try {
      l->st[i] = dir->Status(l->names[i]);
      l->known[i] = 1;
    } catch (const std::exception&) {
      // The walk looks at it itself, and says what is wrong.
    }
  }
  return l;
}

void SourcePrefetch::WalkDir(ReadableDir* dir, const std::string& rel) {
  // Handed over before any file of it is asked for: the walk never waits
  // on a directory for the thread to find room for file data ahead.
  std::shared_ptr<const Listing> listing = List(dir, rel);
  if (!Push(listing)) return;
  const std::string path = dir->path();
  const bool cache_dir = filter_.active() && filter_.IsCacheDir(path, rel);
  for (size_t i = 0; i < listing->names.size(); i++) {
    const std::string& name = listing->names[i];
    if (stop_) return;
    const std::string child_rel = rel.empty() ? name : rel + "/" + name;
    At(child_rel);
    if (!listing->known[i]) continue;
    if (rel.empty() && (name == kBlockmapDir || name == kZfsDir || LeaveOutOwnEntry(own_prefix_, name, "", nullptr)))
      continue;
    try {
      const FileStatus& st = listing->st[i];
      if (filter_.active() && filter_.LeaveOut(dir->ChildPath(name), child_rel, st.kind == FileKind::kDir, cache_dir))
        continue;
      if (st.kind == FileKind::kDir) {
        if (one_file_system_ && st.dev != dev_) continue;  // the sync keeps a mount point empty
        WalkDir(dir->OpenDir(name).get(), child_rel);
        continue;
      }
      if (st.kind != FileKind::kFile || st.size == 0 || Behind(child_rel) || !will_read_(child_rel, st)) continue;
      const uint64_t bytes = std::min<uint64_t>(st.size, kMaxPerFile);
      if (!WaitForRoom(bytes)) return;
      if (Behind(child_rel)) continue;  // passed while this waited
      dir->WillNeed(name, bytes);
      asked_++;
      std::lock_guard<std::mutex> l(mu_);
      ahead_.push_back(Asked{child_rel, bytes});
      ahead_bytes_ += bytes;
    } catch (const std::exception&) {
      // Only a hint: the sync meets whatever this was and says so.
    }
  }
}

}  // namespace inplace_internal
}  // namespace vmback
