#include "run/restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <filesystem>
#include <future>
#include <unordered_map>

#include "scan/metadata.h"
#include "store/tree.h"
#include "util/error.h"
#include "util/thread_pool.h"

namespace vmback {

namespace {

constexpr size_t kBlocksPerFetch = 64;

bool IsBlockDevice(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISBLK(st.st_mode);
}

class Restorer {
 public:
  Restorer(Store* store, Overwrite overwrite, Logger* log, RestoreStats* stats)
      : store_(store), overwrite_(overwrite), log_(log), stats_(stats), pool_(0) {}

  // rel: the entry's path within its volume (for hard links). top: dest is
  // what the user named; only there is a block device written in place, and
  // a symlink to one followed (/dev/VG/LV is a symlink).
  void RestoreEntry(const Entry& e, const std::string& dest, const std::string& rel, bool top) {
    struct stat st;
    bool exists = ::lstat(dest.c_str(), &st) == 0;
    std::string device;  // the block device to write in place, resolved
    if (top && e.type == EntryType::kFile && IsBlockDevice(dest)) {
      char* real = ::realpath(dest.c_str(), nullptr);
      if (!real) ThrowIo("resolve " + dest, errno);
      device = real;
      ::free(real);
    }
    if (exists && device.empty() && !(e.type == EntryType::kDir && S_ISDIR(st.st_mode))) {
      // Never write through what is there: replace it.
      if (S_ISDIR(st.st_mode)) {
        if (top) throw Error(ErrorKind::kConfig, dest + " is a directory; give the new file's path");
        std::error_code ec;
        std::filesystem::remove_all(dest, ec);
        if (ec) ThrowIo("replace " + dest, ec.value());
      } else if (::unlink(dest.c_str()) != 0) {
        ThrowIo("replace " + dest, errno);
      }
    }
    switch (e.type) {
      case EntryType::kDir: {
        if (!(exists && S_ISDIR(st.st_mode)) && ::mkdir(dest.c_str(), 0700) != 0)
          ThrowIo("mkdir " + dest, errno);
        for (const auto& child : DecodeTree(GetBlob(e.subtree, BlobType::kTree, dest), "tree of " + dest))
          RestoreEntry(child, JoinPath(dest, child.name), rel.empty() ? child.name : rel + "/" + child.name,
                       false);
        stats_->dirs++;
        break;
      }
      case EntryType::kFile: {
        auto it = e.hardlink.empty() ? restored_.end() : restored_.find(e.hardlink);
        if (it != restored_.end() && device.empty()) {
          if (::link(it->second.c_str(), dest.c_str()) != 0) ThrowIo("link " + dest, errno);
          stats_->files++;
          return;  // metadata is the inode's, set already
        }
        try {
          WriteContent(e, device.empty() ? dest : device, !device.empty());
        } catch (...) {
          if (device.empty()) ::unlink(dest.c_str());  // no partial file left behind
          throw;
        }
        stats_->files++;
        if (!device.empty()) return;  // a device node keeps its own owner and mode
        restored_[rel] = dest;
        // Later names of the same inode link here even when its first name
        // lies outside what is being restored.
        if (!e.hardlink.empty()) restored_.emplace(e.hardlink, dest);
        break;
      }
      case EntryType::kSymlink:
        if (::symlink(e.target.c_str(), dest.c_str()) != 0) ThrowIo("symlink " + dest, errno);
        stats_->other++;
        break;
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
      case EntryType::kFifo:
      case EntryType::kSocket: {
        mode_t type = e.type == EntryType::kCharDevice    ? S_IFCHR
                      : e.type == EntryType::kBlockDevice ? S_IFBLK
                      : e.type == EntryType::kFifo        ? S_IFIFO
                                                          : S_IFSOCK;
        if (::mknod(dest.c_str(), type | 0600, static_cast<dev_t>(e.rdev)) != 0)
          ThrowIo("mknod " + dest, errno);
        stats_->other++;
        break;
      }
    }
    ApplyMetadata(e, dest);
  }

 private:
  // A blob the store lacks is damage to this point, not a wrong argument.
  std::string GetBlob(const Hash& id, BlobType type, const std::string& dest) {
    try {
      return store_->Get(id, type);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot restore " + dest + ": " + err.what());
      throw;
    }
  }

  void WriteContent(const Entry& e, const std::string& dest, bool device) {
    const uint64_t bs = store_->block_size();
    auto out = store_->env()->OpenWrite(dest, device ? CreateMode::kExisting : CreateMode::kExclusive, 0600);
    if (device) {
      auto probe = store_->env()->OpenRead(dest);
      if (probe->Size() < e.size)
        throw Error(ErrorKind::kIo, dest + ": device is smaller (" + std::to_string(probe->Size()) +
                                        " bytes) than the image (" + std::to_string(e.size) + ")");
    }
    const uint64_t nblocks = (e.size + bs - 1) / bs;
    uint64_t block = 0;
    std::string zeros;
    std::deque<std::future<std::vector<std::string>>> in_flight;
    std::deque<std::pair<uint64_t, std::vector<Hash>>> pending_ids;
    auto drain_one = [&] {
      std::vector<std::string> data = in_flight.front().get();
      auto [first, ids] = std::move(pending_ids.front());
      in_flight.pop_front();
      pending_ids.pop_front();
      for (size_t k = 0; k < ids.size(); k++) {
        uint64_t off = (first + k) * bs;
        uint64_t len = std::min(bs, e.size - off);
        if (ids[k].IsZero()) {
          if (device) {
            zeros.resize(len, '\0');
            out->WriteAt(off, zeros.data(), len);
          }
          continue;
        }
        if (data[k].size() != len)
          ThrowCorrupt("block " + ids[k].Hex() + " of " + dest + " has the wrong length");
        out->WriteAt(off, data[k].data(), len);
        stats_->bytes += len;
      }
    };

    std::vector<Hash> batch;
    auto submit = [&] {
      if (batch.empty()) return;
      uint64_t first = block - batch.size();
      pending_ids.emplace_back(first, batch);
      in_flight.push_back(pool_.Submit([this, dest, ids = batch] {
        std::vector<std::string> data(ids.size());
        for (size_t k = 0; k < ids.size(); k++)
          if (!ids[k].IsZero()) data[k] = GetBlob(ids[k], BlobType::kData, dest);
        return data;
      }));
      batch.clear();
      while (in_flight.size() > pool_.size() * 2) drain_one();
    };
    for (const auto& list_id : e.content) {
      for (const auto& id : DecodeIdList(GetBlob(list_id, BlobType::kList, dest), "block list of " + dest)) {
        if (block >= nblocks) ThrowCorrupt("block list of " + dest + " is longer than the file");
        batch.push_back(id);
        block++;
        if (batch.size() == kBlocksPerFetch) submit();
      }
    }
    submit();
    while (!in_flight.empty()) drain_one();
    if (block != nblocks) ThrowCorrupt("block list of " + dest + " is shorter than the file");
    if (!device) out->Truncate(e.size);
    out->Sync();
    out->Close();
  }

  void ApplyMetadata(const Entry& e, const std::string& dest) {
    if (::lchown(dest.c_str(), e.uid, e.gid) != 0) Warn("chown " + dest, errno);
    if (e.type != EntryType::kSymlink && ::chmod(dest.c_str(), e.mode) != 0) Warn("chmod " + dest, errno);
    for (const auto& [name, value] : e.xattrs) {
      if (::lsetxattr(dest.c_str(), name.c_str(), value.data(), value.size(), 0) != 0)
        Warn("set xattr " + name + " on " + dest, errno);
    }
    if (!SetMtimeNs(dest, e.mtime_ns)) Warn("set mtime of " + dest, errno);
  }

  void Warn(const std::string& what, int err) {
    stats_->warnings++;
    if (stats_->warnings <= 20) log_->Warn(what + ": " + std::strerror(err));
  }

  Store* store_;
  Overwrite overwrite_;
  Logger* log_;
  RestoreStats* stats_;
  ThreadPool pool_;
  std::unordered_map<std::string, std::string> restored_;
};

}  // namespace

std::string ResolvePoint(Store* store, const std::string& point) {
  if (point == "latest") {
    auto points = store->ListPoints();
    if (points.empty()) ThrowNotFound("store " + store->dir() + " has no points yet");
    return points.back();
  }
  store->ReadManifest(point);  // throws kNotFound naming the point
  return point;
}

RestoreStats Restore(Store* store, const std::string& point_arg, const std::string& path,
                     const std::string& dest, Overwrite overwrite, Logger* log) {
  std::string point = ResolvePoint(store, point_arg);
  nlohmann::json m = store->ReadManifest(point);
  std::string where = store->ManifestPath(point);
  RestoreStats stats;

  bool dest_exists = store->env()->Exists(dest);
  if (dest_exists && overwrite == Overwrite::kRefuse) {
    throw Error(ErrorKind::kConfig, dest + " exists; restore refuses to overwrite it without --force");
  }

  if (path.empty()) {
    // The whole point: one entry per volume inside dest.
    if (!dest_exists && ::mkdir(dest.c_str(), 0755) != 0) ThrowIo("mkdir " + dest, errno);
    Restorer r(store, overwrite, log, &stats);
    for (const auto& v : m.at("volumes")) {
      Entry root = EntryFromJson(v.at("root"), where);
      std::string name = v.at("name").get<std::string>();
      r.RestoreEntry(root, JoinPath(dest, name), "", false);
    }
    return stats;
  }

  // Find VOLUME[/sub/path].
  std::string volume = path.substr(0, path.find('/'));
  std::string rest = path.size() > volume.size() ? path.substr(volume.size() + 1) : "";
  const nlohmann::json* vol = nullptr;
  for (const auto& v : m.at("volumes"))
    if (v.at("name").get<std::string>() == volume) vol = &v;
  if (!vol) ThrowNotFound("point " + point + " has no volume '" + volume + "'");
  Entry e = EntryFromJson(vol->at("root"), where);
  std::string rel;
  size_t pos = 0;
  while (pos < rest.size()) {
    size_t slash = rest.find('/', pos);
    std::string comp = rest.substr(pos, slash == std::string::npos ? std::string::npos : slash - pos);
    pos = slash == std::string::npos ? rest.size() : slash + 1;
    if (comp.empty()) continue;
    if (e.type != EntryType::kDir) ThrowNotFound(path + " not found in point " + point);
    bool found = false;
    std::string tree;
    try {
      tree = store->Get(e.subtree, BlobType::kTree);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot look up " + path + ": " + err.what());
      throw;
    }
    for (auto& child : DecodeTree(tree, "tree in " + point)) {
      if (child.name == comp) {
        e = std::move(child);
        found = true;
        break;
      }
    }
    if (!found) ThrowNotFound(path + " not found in point " + point);
    rel = rel.empty() ? comp : rel + "/" + comp;
  }
  if (dest_exists && e.type == EntryType::kDir) {
    struct stat st;
    if (::stat(dest.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      throw Error(ErrorKind::kConfig, dest + " exists and is not a directory");
  }
  Restorer r(store, overwrite, log, &stats);
  r.RestoreEntry(e, dest, rel, true);
  return stats;
}

}  // namespace vmback
