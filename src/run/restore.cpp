#include "run/restore.h"

#include "run/browse.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <filesystem>
#include <future>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include "destination/dump.h"
#include "os/dir.h"
#include "run/backup.h"
#include "scan/metadata.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/aligned_buffer.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/progress.h"
#include "util/thread_pool.h"

namespace vmback {

namespace {

constexpr size_t kBlocksPerFetch = 64;
constexpr uint64_t kBytesPerFetch = 4u << 20;
constexpr size_t kMaxDamageLines = 1000;

// Where an entry goes: a name in an open directory, and that name's path
// relative to the restore's root directory (for hard links).
struct Place {
  const Dir* dir;
  std::string name;
  std::string rel;  // "" when the entry is the root directory itself
};

// What the content writer does with a range of a file that no copy gives
// back (a damaged or missing block or block list).
enum class OnDamage {
  kLeaveZero,  // restore: left zero, listed in RestoreStats::damage; it goes on
  kStop,       // dump: Error naming the file and the byte range
};

// When the content of a file written is made durable.
enum class FileSync {
  kNow,       // fsync before the file is renamed over its name (or Close)
  kDeferred,  // left to the one syncfs of the destination at the end (SyncDestination)
};

class Restorer {
 public:
  Restorer(Store* store, const RestoreOptions& options, const Dir* root, Logger* log, RestoreStats* stats,
           OnDamage on_damage = OnDamage::kLeaveZero)
      : store_(store), options_(options), on_damage_(on_damage), root_(root), log_(log), stats_(stats), pool_(0) {
    policy_.owner = options.owner;
    policy_.privileges = options.privileges;
  }

  // Restores e as place.name in place.dir, replacing what is there (never
  // writing through it). vrel: the entry's path within its volume.
  void RestoreEntry(const Entry& e, const Place& place, const std::string& vrel) {
    const Dir& parent = *place.dir;
    struct stat st;
    bool exists = parent.Stat(place.name, &st);
    bool replaces_file = false;
    if (exists && !(e.type == EntryType::kDir && S_ISDIR(st.st_mode))) {
      if (options_.overwrite == Overwrite::kRefuse)
        throw Error(ErrorKind::kConfig, parent.ChildPath(place.name) + " exists; restore refuses to overwrite it without --force");
      // A file over a file: the new one is renamed over it when complete.
      replaces_file = e.type == EntryType::kFile && S_ISREG(st.st_mode) && e.hardlink.empty();
      if (!replaces_file) parent.Remove(place.name);  // no symlink followed, no mount point crossed
      exists = false;
    }
    switch (e.type) {
      case EntryType::kDir: {
        Dir d = exists ? parent.OpenDir(place.name) : parent.MakeDir(place.name);
        RestoreChildren(e, d, place.rel, vrel);
        ApplyOnFd(d.fd(), d.path(), e);
        return;
      }
      case EntryType::kFile: {
        auto it = e.hardlink.empty() ? restored_.end() : restored_.find(e.hardlink);
        if (it != restored_.end()) {
          const std::string& first = it->second;
          Dir from = root_->OpenBeneath(DirName(first) == "." ? "" : DirName(first));
          parent.Link(from, BaseName(first), place.name);
          stats_->files++;
          return;  // metadata is the inode's, set already
        }
        {
          // Under a temporary name until complete: an error or a signal
          // leaves no partial file under the name (the temporary goes).
          // A new name is made durable with the whole tree, by the one
          // syncfs at the end (SyncDestination): a crash before it leaves
          // an unfinished restore, as it would anyway. A file renamed over
          // an existing one is fsynced first, so that a crash never leaves
          // an empty or partial file where the old one was.
          PendingFile out(parent, place.name);
          WriteContent(e, out.file(), false, out.path(), replaces_file ? FileSync::kNow : FileSync::kDeferred);
          ApplyOnFd(out.file()->fd(), out.path(), e);
          out.Commit();
        }
        stats_->files++;
        restored_[vrel] = place.rel;
        // Later names of the same inode link here even when its first name
        // lies outside what is being restored.
        if (!e.hardlink.empty()) restored_.emplace(e.hardlink, place.rel);
        return;
      }
      case EntryType::kSymlink:
        parent.Symlink(place.name, e.target);
        stats_->other++;
        ApplyByName(parent, place.name, S_IFLNK, e);
        return;
      case EntryType::kCharDevice:
      case EntryType::kBlockDevice:
      case EntryType::kFifo:
      case EntryType::kSocket: {
        if (!options_.special) {
          if (stats_->skipped++ == 0)
            log_->Info("leaving out device nodes, fifos and sockets (--no-special), first " +
                       parent.ChildPath(place.name));
          return;
        }
        mode_t type = e.type == EntryType::kCharDevice    ? S_IFCHR
                      : e.type == EntryType::kBlockDevice ? S_IFBLK
                      : e.type == EntryType::kFifo        ? S_IFIFO
                                                          : S_IFSOCK;
        parent.MakeNode(place.name, type, static_cast<dev_t>(e.rdev));
        stats_->other++;
        ApplyByName(parent, place.name, type, e);
        return;
      }
    }
  }

  // The children of directory entry e into the open directory d (whose
  // path relative to the root is drel).
  void RestoreChildren(const Entry& e, const Dir& d, const std::string& drel, const std::string& vrel) {
    Fetched tree = Fetch(e.subtree, BlobType::kTree, d.path());
    if (!tree.error.empty()) {
      std::lock_guard<std::mutex> l(damage_mu_);
      stats_->damaged++;
      if (stats_->damage.size() < kMaxDamageLines)
        stats_->damage.push_back(d.path() + ": the directory's entries are lost (" + tree.error + ")");
      stats_->dirs++;
      return;
    }
    std::unordered_set<std::string> names;
    for (const auto& child : DecodeTree(tree.data, "tree of " + d.path())) {
      RestoreEntry(child, Place{&d, child.name, drel.empty() ? child.name : drel + "/" + child.name},
                   vrel.empty() ? child.name : vrel + "/" + child.name);
      names.insert(child.name);
    }
    if (options_.overwrite == Overwrite::kDelete) RemoveOthers(d, names);
    stats_->dirs++;
  }

  // An image written in place onto a block device (which keeps its own
  // owner and mode).
  void RestoreToDevice(const Entry& e, const std::string& device) {
    UniqueFd fd = OpenBlockDeviceExclusive(device);
    FdWritableFile out_file(device, std::move(fd));
    WritableFile* out = &out_file;
    auto probe = store_->env()->OpenRead(device);
    if (probe->Size() < e.size)
      throw Error(ErrorKind::kIo, device + ": device is smaller (" + std::to_string(probe->Size()) +
                                      " bytes) than the image (" + std::to_string(e.size) + ")");
    WriteContent(e, out, true, device, FileSync::kNow);
    out->Close();
    stats_->files++;
  }

  // The content of file entry e (called name in messages) written to out,
  // holes and zero blocks left unwritten (out's Truncate sets the size).
  void WriteFile(const Entry& e, WritableFile* out, const std::string& name) {
    WriteContent(e, out, false, name, FileSync::kNow);
  }

  // --delete: the entries of d not in keep are removed, each as itself
  // (Dir::Remove: no symlink followed; a mount point below refused).
  void RemoveOthers(const Dir& d, const std::unordered_set<std::string>& keep) {
    for (const auto& name : d.List())
      if (!keep.count(name)) stats_->removed += d.Remove(name);
  }

  void ApplyOnFd(int fd, const std::string& what, const Entry& e) {
    Warn(Dir::SetMetadataFd(fd, what, ToMetadata(e), policy_));
  }

 private:
  static Metadata ToMetadata(const Entry& e) {
    Metadata m;
    m.mode = e.mode;
    m.uid = e.uid;
    m.gid = e.gid;
    m.mtime_ns = e.mtime_ns;
    m.xattrs = e.xattrs;
    return m;
  }

  void ApplyByName(const Dir& d, const std::string& name, mode_t type, const Entry& e) {
    Warn(d.SetMetadata(name, type, ToMetadata(e), policy_));
  }

  void Warn(const std::vector<std::string>& warnings) {
    for (const auto& w : warnings) {
      stats_->warnings++;
      if (stats_->warnings <= 20) log_->Warn(w);
    }
  }

  // A blob the store lacks is damage to this point, not a wrong argument.
  std::string GetBlob(const Hash& id, BlobType type, const std::string& dest) {
    try {
      return store_->Get(id, type);
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kNotFound) ThrowCorrupt("cannot restore " + dest + ": " + err.what());
      throw;
    }
  }

  // dest: the file written, for messages.
  void WriteContent(const Entry& e, WritableFile* out, bool device, const std::string& dest, FileSync sync) {
    const uint64_t bs = store_->block_size();
    const uint64_t nblocks = (e.size + bs - 1) / bs;
    // Blocks fetched together: kBlocksPerFetch, fewer of a large block size
    // (a batch is at most kBytesPerFetch in memory).
    const size_t per_batch = static_cast<size_t>(std::clamp<uint64_t>(kBytesPerFetch / bs, 1, kBlocksPerFetch));
    // A file of several batches is written past the page cache where the
    // file system can (nothing copied into the cache, nothing left for the
    // final fsync to write); a small one through it, so that a tree of small
    // files is made durable by one syncfs.
    if (nblocks > per_batch) out->EnableDirectWrites();
    uint64_t block = 0;
    std::deque<std::future<Batch>> in_flight;
    // Buffers of batches written, for the next ones: a fresh one would be
    // paged in (and zeroed by the kernel) again for every batch.
    std::vector<AlignedBuffer> spare;
    auto drain_one = [&] {
      Batch b = in_flight.front().get();
      in_flight.pop_front();
      const uint64_t base = b.first * bs;
      size_t run = SIZE_MAX;  // the first block of the run of blocks to write
      auto write_run = [&](size_t end) {
        if (run == SIZE_MAX) return;
        const uint64_t off = base + run * bs;
        out->WriteAt(off, b.data.data() + run * bs, std::min(base + end * bs, e.size) - off);
        run = SIZE_MAX;
      };
      for (size_t k = 0; k < b.ids.size(); k++) {
        const uint64_t off = base + k * bs;
        const uint64_t len = std::min(bs, e.size - off);
        Progress::Get().AddRead(len);
        bool zero = b.ids[k].IsZero();
        if (!b.lost[k].error.empty()) {
          write_run(k);  // the blocks before it are written first (a dump stops here)
          Damage(dest, off, len, b.lost[k].error, b.lost[k].kind);
          zero = true;  // what cannot be read is left zero, never wrong bytes
        }
        if (zero) {
          if (!device) {
            write_run(k);  // a hole
            continue;
          }
          std::memset(b.data.data() + k * bs, 0, len);
        } else {
          stats_->bytes += len;
        }
        if (run == SIZE_MAX) run = k;
      }
      write_run(b.ids.size());
      spare.push_back(std::move(b.data));
    };

    std::vector<Hash> batch;
    // On a worker: the blocks of ids, from block first on, each checked
    // against its id (Store::Get) and copied to its place in buf (of
    // per_batch blocks) for the batch.
    auto fetch_batch = [this, dest, bs, size = e.size](uint64_t first, const std::vector<Hash>& ids,
                                                       AlignedBuffer buf) {
      Batch b;
      b.first = first;
      b.ids = ids;
      b.lost.resize(ids.size());
      b.data = std::move(buf);
      for (size_t k = 0; k < ids.size(); k++) {
        if (ids[k].IsZero()) continue;
        Fetched f = Fetch(ids[k], BlobType::kData, dest);
        const uint64_t len = std::min(bs, size - (first + k) * bs);
        if (f.error.empty() && f.data.size() != len) f.error = "block " + ids[k].Hex() + " has the wrong length";
        if (f.error.empty()) std::memcpy(b.data.data() + k * bs, f.data.data(), len);
        else b.lost[k] = std::move(f);
      }
      return b;
    };
    auto submit = [&] {
      if (batch.empty()) return;
      uint64_t first = block - batch.size();
      AlignedBuffer buf;
      if (spare.empty()) {
        buf = AlignedBuffer(std::min<uint64_t>(per_batch, nblocks) * bs);
      } else {
        buf = std::move(spare.back());
        spare.pop_back();
      }
      if (nblocks <= per_batch) {
        // The file's only batch: nothing to overlap it with, so it is
        // fetched here, without a hand-over to the pool and back (most of
        // the time per file in a tree of small files, after the fsync).
        std::promise<Batch> done;
        done.set_value(fetch_batch(first, batch, std::move(buf)));
        in_flight.push_back(done.get_future());
      } else {
        in_flight.push_back(pool_.Submit([fetch_batch, first, ids = batch, buf = std::move(buf)]() mutable {
          return fetch_batch(first, ids, std::move(buf));
        }));
      }
      batch.clear();
      while (in_flight.size() > pool_.size() * 2) drain_one();
      CheckRestoreCancel(options_.cancel, dest);
    };
    for (const auto& list_id : e.content) {
      CheckRestoreCancel(options_.cancel, dest);  // one list: kIdsPerList blocks
      Fetched list = Fetch(list_id, BlobType::kList, dest);
      std::vector<Hash> ids;
      if (list.error.empty()) {
        ids = DecodeIdList(list.data, "block list of " + dest);
      } else {
        // A lost list: its blocks are unknown. Lists hold kIdsPerList ids
        // each but the last, so its range is known.
        uint64_t n = std::min<uint64_t>(kIdsPerList, nblocks > block ? nblocks - block : 0);
        if (n)
          Damage(dest, block * bs, std::min(e.size, (block + n) * bs) - block * bs, "block list: " + list.error,
                 list.kind);
        ids.assign(n, Hash{});
      }
      for (const auto& id : ids) {
        if (block >= nblocks) ThrowCorrupt("block list of " + dest + " is longer than the file");
        batch.push_back(id);
        block++;
        if (batch.size() == per_batch) submit();
      }
    }
    submit();
    while (!in_flight.empty()) drain_one();
    if (block != nblocks) ThrowCorrupt("block list of " + dest + " is shorter than the file");
    if (!device) out->Truncate(e.size);
    if (sync == FileSync::kNow) out->Sync();
  }

  struct Fetched {
    std::string data;
    std::string error;  // why the blob could not be read; "" when it was
    ErrorKind kind = ErrorKind::kCorrupt;  // the error's
  };

  // One fetch batch of a file: the blocks [first, first + ids.size()),
  // each at its place in data (bs bytes apart), so that a run of them is
  // written at once.
  struct Batch {
    uint64_t first = 0;
    std::vector<Hash> ids;
    AlignedBuffer data;          // a zero or lost block's bytes are left unset
    std::vector<Fetched> lost;   // per block: error set when it could not be read (data unused)
  };

  // A blob, or why it is lost (damage to this point: restore goes on and
  // reports it), unless fail_fast. Stopping on damage, an I/O error on
  // every copy is told with its range too.
  Fetched Fetch(const Hash& id, BlobType type, const std::string& dest) {
    Fetched f;
    try {
      f.data = GetBlob(id, type, dest);
    } catch (const Error& err) {
      const bool lost = err.kind() == ErrorKind::kCorrupt ||
                        (on_damage_ == OnDamage::kStop && err.kind() == ErrorKind::kIo);
      if (!lost || options_.fail_fast) throw;
      f.error = err.what();
      f.kind = err.kind();
    }
    return f;
  }

  void Damage(const std::string& path, uint64_t offset, uint64_t len, const std::string& why,
              ErrorKind kind = ErrorKind::kCorrupt) {
    if (on_damage_ == OnDamage::kStop)
      throw Error(kind, path + ": bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) +
                            " cannot be read (" + why + ")");
    std::lock_guard<std::mutex> l(damage_mu_);
    stats_->damaged++;
    if (stats_->damage.size() < kMaxDamageLines)
      stats_->damage.push_back(path + ": bytes " + std::to_string(offset) + ".." + std::to_string(offset + len) +
                               " lost, left zero (" + why + ")");
  }

  Store* store_;
  std::mutex damage_mu_;
  RestoreOptions options_;
  const OnDamage on_damage_;
  MetadataPolicy policy_;
  const Dir* root_;
  Logger* log_;
  RestoreStats* stats_;
  ThreadPool pool_;
  // Path within the volume -> path relative to root_ of the restored file.
  std::unordered_map<std::string, std::string> restored_;
};

}  // namespace

std::string ResolvePoint(Store* store, const std::string& point) {
  if (point == "latest") {
    auto points = store->ListPoints();
    if (points.empty()) ThrowNotFound("store " + store->dir() + " has no points yet");
    return points.back();
  }
  store->ReadPoint(point);  // throws kNotFound naming the point
  return point;
}

namespace {

// lstat of path; kMissing also when it cannot be told (as lstat failing).
FileStatus StatusOrMissing(Env* env, const std::string& path) {
  try {
    return env->Status(path);
  } catch (const Error&) {
    return {};
  }
}

bool IsBlockDevice(Env* env, const std::string& path) {
  try {
    return env->StatusFollowingLinks(path).type == S_IFBLK;
  } catch (const Error&) {
    return false;
  }
}

// The directory that holds dest, as the user named it (symlinks in it are
// the user's), and dest's last component in it.
std::pair<Dir, std::string> OpenParent(const std::string& dest) {
  std::string name = BaseName(dest);
  if (!IsSafeName(name))
    throw Error(ErrorKind::kConfig, "--to " + dest + ": give the path of the new file or directory");
  return {Dir::Open(CanonicalPath(DirName(dest))), name};
}

// Makes everything the restore wrote into dir durable before Restore
// returns, so that a restore that says it is done is on disk: the content of
// the files left to it (FileSync::kDeferred), every new name, directory and
// metadata change. One syncfs(2) of dir's file system instead of an fsync per
// file (each one a journal commit: 1-2 ms a file, most of the time of a tree
// of small files). The restore never crosses a mount point below dir, so
// that one file system holds all it wrote.
void SyncDestination(Env* env, const Dir& dir) { env->SyncFileSystem(dir.path()); }

}  // namespace

RestoreStats Restore(Store* store, const std::string& point_arg, const std::string& path,
                     const std::string& dest, const RestoreOptions& options, Logger* log) {
  // `latest` with a volume named: the newest point holding that volume.
  std::string point = point_arg == "latest" && !path.empty()
                          ? NewestPointWithVolume(store, path.substr(0, path.find('/')))
                          : ResolvePoint(store, point_arg);
  const Manifest m = store->ReadPoint(point);
  RestoreStats stats;
  if (options.one_file && path.empty()) ThrowNotOneImage("", point, "");
  const std::string label = "restore of " + point + (path.empty() ? "" : ":" + path);
  Progress::Get().Start(label, 0, "restored");

  const FileStatus dst = StatusOrMissing(store->env(), dest);
  const bool dest_exists = dst.kind != FileKind::kMissing;
  if (dest_exists && options.overwrite == Overwrite::kRefuse) {
    throw Error(ErrorKind::kConfig, dest + " exists; restore refuses to overwrite it without --force");
  }

  if (path.empty()) {
    // The whole point: one entry per volume inside dest.
    Dir root = dest_exists ? Dir::Open(dest) : Dir::OpenOrCreate(dest);
    std::unordered_set<std::string> names;
    for (const auto& v : m.volumes) {
      Restorer r(store, options, &root, log, &stats);  // hard links stay within a volume
      r.RestoreEntry(v.root, Place{&root, v.name, v.name}, "");
      names.insert(v.name);
    }
    if (options.overwrite == Overwrite::kDelete) Restorer(store, options, &root, log, &stats).RemoveOthers(root, names);
    SyncDestination(store->env(), root);
    return stats;
  }

  std::string rel;  // its path within its volume
  Entry e = FindInPoint(store, m, point, path, &rel);
  if (e.type == EntryType::kFile) Progress::Get().Start(label, e.size, "restored");

  if (options.one_file && e.type != EntryType::kFile)
    ThrowNotOneImage(path, point, e.type == EntryType::kDir ? "a directory" : "not a regular file");
  if (dest_exists && dst.kind == FileKind::kSymlink) {
    // Only the documented /dev/VG/LV link to a block device is followed, for
    // an image, with --force (checked above); never a link to a file.
    if (e.type != EntryType::kFile || !IsBlockDevice(store->env(), dest))
      throw Error(ErrorKind::kConfig, dest + " is a symlink; restore does not write through it (give the real path)");
  }
  if (e.type == EntryType::kFile && dest_exists && IsBlockDevice(store->env(), dest)) {
    Restorer r(store, options, nullptr, log, &stats);
    r.RestoreToDevice(e, CanonicalPath(dest));
    return stats;
  }
  if (dest_exists && dst.kind == FileKind::kDir) {
    if (e.type != EntryType::kDir)
      throw Error(ErrorKind::kConfig, dest + " is a directory; give the new file's path");
    // Into the directory the user named (it may be a mount point itself).
    Dir root = Dir::Open(dest);
    Restorer r(store, options, &root, log, &stats);
    r.RestoreChildren(e, root, "", rel);
    r.ApplyOnFd(root.fd(), root.path(), e);
    SyncDestination(store->env(), root);
    return stats;
  }
  if (dest_exists && e.type == EntryType::kDir)
    throw Error(ErrorKind::kConfig, dest + " exists and is not a directory");
  auto [parent, name] = OpenParent(dest);
  Restorer r(store, options, &parent, log, &stats);
  r.RestoreEntry(e, Place{&parent, name, name}, rel);
  SyncDestination(store->env(), parent);
  return stats;
}

uint64_t DumpFile(Store* store, const std::string& point_arg, const std::string& path_arg, WritableFile* out,
                  Logger* log) {
  const std::string path = DumpPath(path_arg);
  const std::string point = point_arg == "latest" ? NewestPointWithVolume(store, path.substr(0, path.find('/')))
                                                  : ResolvePoint(store, point_arg);
  const Manifest m = store->ReadPoint(point);
  const Entry e = FindInPoint(store, m, point, path);
  if (e.type != EntryType::kFile)
    ThrowNotDumpable(path, point, e.type == EntryType::kDir       ? "a directory"
                                  : e.type == EntryType::kSymlink ? "a symlink"
                                                                  : "a device node, fifo or socket");
  RestoreStats stats;
  Restorer r(store, RestoreOptions{}, nullptr, log, &stats, OnDamage::kStop);
  r.WriteFile(e, out, EscapeForTerminal(path) + " in point " + point);
  return e.size;
}

}  // namespace vmback
