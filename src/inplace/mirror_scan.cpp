#include "inplace/mirror_scan.h"

#include <algorithm>

#include "destination/point_diff.h"
#include "inplace/blockmap.h"
#include "util/sha256.h"

namespace vmback {
namespace inplace_internal {

const MirrorScan::Seen* MirrorScan::Dir::Find(const std::string& name) const {
  auto at = std::lower_bound(seen.begin(), seen.end(), name,
                             [](const Seen& s, const std::string& n) { return s.name < n; });
  return at != seen.end() && at->name == name ? &*at : nullptr;
}

MirrorScan::MirrorScan(Env* env, const std::string& root, const std::string& map_dir, dev_t dev, WantMap want_map)
    : env_(env), map_dir_(map_dir), want_map_(std::move(want_map)) {
  try {
    walker_ = std::thread([this, root, dev] { Walk(root, dev); });
    mapper_ = std::thread([this] { LookAtMaps(); });
  } catch (...) {
    Stop();
    throw;
  }
}

MirrorScan::~MirrorScan() { Stop(); }

void MirrorScan::Stop() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (walker_.joinable()) walker_.join();
  if (mapper_.joinable()) mapper_.join();
}

std::unique_ptr<MirrorScan::Dir> MirrorScan::PopFront(Queue* q) {
  std::unique_ptr<Dir> d = std::move(q->dirs.front());
  q->dirs.pop_front();
  q->entries -= d->seen.size();
  cv_.notify_all();
  return d;
}

bool MirrorScan::Push(Queue* q, std::unique_ptr<Dir> d) {
  std::unique_lock<std::mutex> l(mu_);
  cv_.wait(l, [&] { return stop_ || q->dirs.empty() || q->entries + d->seen.size() <= kAheadEntries; });
  if (stop_) return false;
  q->entries += d->seen.size();
  q->dirs.push_back(std::move(d));
  l.unlock();
  cv_.notify_all();
  return true;
}

void MirrorScan::Close(Queue* q) {
  {
    std::lock_guard<std::mutex> l(mu_);
    q->closed = true;
  }
  cv_.notify_all();
}

std::unique_ptr<MirrorScan::Dir> MirrorScan::Take(const std::string& rel) {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    while (!found_.dirs.empty() && PathOrderLess(found_.dirs.front()->rel, rel)) PopFront(&found_);
    if (!found_.dirs.empty()) {
      if (found_.dirs.front()->rel != rel) return nullptr;  // the scan is past rel: the mirror had none
      return PopFront(&found_);
    }
    if (found_.closed) return nullptr;
    // The scan is doing the lstats the walk would otherwise make (but for
    // a directory the mirror lacks: then it waits for the next one found).
    cv_.wait(l);
  }
}

void MirrorScan::Walk(const std::string& root, dev_t dev) {
  try {
    auto dir = env_->OpenDirectory(root);
    WalkDir(dir.get(), "", dev);
  } catch (const std::exception&) {
  }
  Close(&listed_);
}

void MirrorScan::WalkDir(ReadableDir* dir, const std::string& rel, dev_t dev) {
  std::vector<std::string> names = dir->List();
  std::sort(names.begin(), names.end());
  auto found = std::make_unique<Dir>();
  found->rel = rel;
  found->seen.reserve(names.size());
  std::vector<std::string> subdirs;
  for (auto& name : names) {
    if (stop_) return;
    if (rel.empty() && (name == kBlockmapDir || name == kZfsDir)) continue;
    Seen s;
    s.st = dir->Status(name);
    if (s.st.kind == FileKind::kMissing) continue;
    if (s.st.kind == FileKind::kDir && s.st.dev == dev) subdirs.push_back(name);
    s.name = std::move(name);
    found->seen.push_back(std::move(s));
  }
  if (!Push(&listed_, std::move(found))) return;
  for (const auto& name : subdirs) {
    try {
      WalkDir(dir->OpenDir(name).get(), rel.empty() ? name : rel + "/" + name, dev);
    } catch (const std::exception&) {
    }
    if (stop_) return;
  }
}

void MirrorScan::LookAtMaps() {
  try {
    LookAtMapsOf();
  } catch (const std::exception&) {
    // (Out of memory, say.) What is not handed over, the walk looks at itself.
  }
  Close(&found_);
}

void MirrorScan::LookAtMapsOf() {
  for (;;) {
    std::unique_ptr<Dir> d;
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !listed_.dirs.empty() || listed_.closed; });
      if (stop_) return;
      if (listed_.dirs.empty()) break;
      d = PopFront(&listed_);
    }
    for (Seen& s : d->seen) {
      if (stop_) return;
      if (s.st.kind != FileKind::kFile) continue;
      const std::string rel = d->rel.empty() ? s.name : d->rel + "/" + s.name;
      s.indexed = want_map_(rel, s.st);
      if (s.indexed) LookAtMap(rel, &s);
    }
    if (!Push(&found_, std::move(d))) return;
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
