#include "inplace/mirror_scan.h"

#include <algorithm>

#include "destination/point_diff.h"
#include "inplace/blockmap.h"
#include "util/sha256.h"

namespace vmback {
namespace inplace_internal {

namespace {

// ZFS's control directory at a dataset's root: never looked into.
constexpr const char* kZfsDir = ".zfs";

}  // namespace

const MirrorScan::Seen* MirrorScan::Dir::Find(const std::string& name) const {
  auto at = std::lower_bound(seen.begin(), seen.end(), name,
                             [](const Seen& s, const std::string& n) { return s.name < n; });
  return at != seen.end() && at->name == name ? &*at : nullptr;
}

MirrorScan::MirrorScan(Env* env, const std::string& root, const std::string& map_dir, dev_t dev, WantMap want_map)
    : env_(env), map_dir_(map_dir), want_map_(std::move(want_map)), thread_([this, root, dev] { Walk(root, dev); }) {}

MirrorScan::~MirrorScan() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

std::unique_ptr<MirrorScan::Dir> MirrorScan::Take(const std::string& rel) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    while (!found_.empty() && PathOrderLess(found_.front()->rel, rel)) {
      found_entries_ -= found_.front()->seen.size();
      found_.pop_front();
      cv_.notify_all();
    }
    if (!found_.empty()) {
      if (found_.front()->rel != rel) return nullptr;  // the scan is past rel: the mirror had none
      std::unique_ptr<Dir> d = std::move(found_.front());
      found_.pop_front();
      found_entries_ -= d->seen.size();
      cv_.notify_all();
      return d;
    }
    if (done_) return nullptr;
    // Waiting costs the walk nothing it would not spend itself: the scan
    // is doing the lstats the walk would otherwise make.
    cv_.wait(l);
  }
}

bool MirrorScan::Publish(std::unique_ptr<Dir> d) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return stop_ || found_.empty() || found_entries_ + d->seen.size() <= kAheadEntries; });
  if (stop_) return false;
  found_entries_ += d->seen.size();
  found_.push_back(std::move(d));
  l.unlock();
  cv_.notify_all();
  return true;
}

void MirrorScan::Walk(const std::string& root, dev_t dev) {
  try {
    auto dir = env_->OpenDirectory(root);
    WalkDir(dir.get(), "", dev);
  } catch (const std::exception&) {
  }
  {
    std::lock_guard<std::mutex> l(mu_);
    done_ = true;
  }
  cv_.notify_all();
}

void MirrorScan::WalkDir(ReadableDir* dir, const std::string& rel, dev_t dev) {
  std::vector<std::string> names = dir->List();
  std::sort(names.begin(), names.end());
  auto found = std::make_unique<Dir>();
  found->rel = rel;
  found->seen.reserve(names.size());
  std::vector<std::string> subdirs;
  for (auto& name : names) {
    if (rel.empty() && (name == kBlockmapDir || name == kZfsDir)) continue;
    Seen s;
    s.st = dir->Status(name);
    if (s.st.kind == FileKind::kMissing) continue;
    if (s.st.kind == FileKind::kDir && s.st.dev == dev) subdirs.push_back(name);
    if (s.st.kind == FileKind::kFile) {
      const std::string child_rel = rel.empty() ? name : rel + "/" + name;
      if (want_map_(child_rel, s.st)) LookAtMap(child_rel, &s);
    }
    s.name = std::move(name);
    found->seen.push_back(std::move(s));
  }
  if (!Publish(std::move(found))) return;
  for (const auto& name : subdirs) {
    try {
      WalkDir(dir->OpenDir(name).get(), rel.empty() ? name : rel + "/" + name, dev);
    } catch (const std::exception&) {
    }
    std::lock_guard<std::mutex> l(mu_);
    if (stop_) return;
  }
}

void MirrorScan::LookAtMap(const std::string& rel, Seen* s) {
  const Hash h = Sha256(rel);
  const uint8_t sub = h.bytes[0];
  std::string name = h.Hex();
  if (!map_subdir_tried_[sub]) {
    map_subdir_tried_[sub] = true;
    try {
      map_subdirs_[sub] = env_->OpenDirectory(JoinPath(map_dir_, name.substr(0, 2)));
    } catch (const std::exception&) {
    }
  }
  if (!map_subdirs_[sub]) return;
  name += ".map";
  try {
    s->map_st = map_subdirs_[sub]->Status(name);
  } catch (const std::exception&) {
    return;
  }
  s->map_hash = h;
  s->map_looked = true;
  maps_looked_++;
}

}  // namespace inplace_internal
}  // namespace vmback
