#include "run/backup.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>
#include <set>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <tuple>
#include <unordered_map>

#include "config/config.h"
#include "retention/policy.h"
#include "scan/exclude_filter.h"
#include "scan/file_scanner.h"
#include "scan/metadata.h"
#include "store/manifest.h"
#include "store/tree.h"
#include "util/progress.h"
#include "util/encoding.h"
#include "util/error.h"
#include "util/thread_pool.h"
#include "util/tunables.h"

namespace vmback {

namespace {

double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

struct InodeKey {
  dev_t dev;
  ino_t ino;
  bool operator<(const InodeKey& o) const { return dev != o.dev ? dev < o.dev : ino < o.ino; }
};

// Every field of Entry (store/tree.h) the same: two such entries encode
// alike. REQUIRES: a field added to Entry is added here too.
bool SameEntry(const Entry& a, const Entry& b) {
  auto fields = [](const Entry& e) {
    return std::tie(e.name, e.type, e.mode, e.uid, e.gid, e.mtime_ns, e.size, e.ctime_ns, e.ino, e.content, e.target,
                    e.rdev, e.xattrs, e.hardlink, e.subtree);
  };
  return fields(a) == fields(b);
}

bool SameEntries(const std::vector<Entry>& a, const std::vector<Entry>& b) {
  return std::equal(a.begin(), a.end(), b.begin(), b.end(), SameEntry);
}

// Walks one volume. The previous point's entry for the same volume, when
// there is one, lets unchanged files reuse their block lists unread.
class VolumeWalker {
 public:
  // excludes: what the walk leaves out (may be null: nothing).
  VolumeWalker(Store* store, ThreadPool* pool, const VolumeSpec& spec, const BackupOptions& opts,
               const VolumeExcludes* excludes, Logger* log, VolumeStats* stats)
      : store_(store),
        pacer_(opts.read_limit),
        scanner_(store, pool, opts.cancel, &pacer_, opts.drop_cache),
        filter_(store->env(), excludes, log),
        spec_(spec),
        opts_(opts),
        log_(log),
        stats_(stats) {}

  Entry WalkRoot(const Entry* prev) {
    Env* env = store_->env();
    const FileStatus st = env->Status(spec_.source);  // REQUIRES: resolved, not a symlink
    if (st.kind == FileKind::kMissing) ThrowIo("stat " + spec_.source, ENOENT);
    root_dev_ = st.dev;
    Entry root;
    if (st.kind == FileKind::kDir) {
      // The tree is walked through directory descriptors from here down.
      std::unique_ptr<ReadableDir> dir = env->OpenDirectory(spec_.source);
      root = ReadMetadata(dir.get(), "", st, nullptr);
      auto tree = std::make_shared<Hash>();
      WalkDir(dir.get(), "", prev && prev->type == EntryType::kDir ? prev : nullptr,
              [tree](const Hash& id) { *tree = id; });
      FinishPending();
      root.subtree = *tree;
      stats_->dirs++;
      return root;
    }
    root = ReadMetadata(env, spec_.source, st);
    root.name.clear();
    if (st.kind == FileKind::kFile || st.type == S_IFBLK) {
      // A block device is backed up as its content: a file entry.
      bool device = st.type == S_IFBLK;
      root.type = EntryType::kFile;
      root.rdev = 0;
      ScanFile(nullptr, spec_.source, "", st, device, prev, &root, Slot{});
    } else {
      throw Error(ErrorKind::kIo, spec_.source + ": not a directory, regular file or block device");
    }
    return root;
  }

  // Entries left out by the excludes (each counted once, not what is below).
  uint64_t excluded() const { return filter_.excluded(); }

 private:
  // Where a file's entry goes in its directory's list (it is pushed there
  // right after ScanFile), for a scan that finishes later.
  // A directory's entries as the walk makes them, on the heap: a scan
  // finishing later sets its entry's content here, even should the walk of
  // the directory end by an error first. left_out: indexes of entries whose
  // file could not be read after all (dropped before the tree is made).
  struct DirList {
    std::vector<Entry> entries;
    std::vector<size_t> left_out;
  };
  struct Slot {
    std::shared_ptr<DirList> dir;  // null: the scan finishes now
    size_t index = 0;
    bool first_link = false;  // the first name of a hard-linked inode: its content kept under rel
  };

  // The file e at path (the child e->name of dir; no dir: the source root
  // itself, opened by its path). A small file read in full is hashed and
  // compressed while the walk goes on, its content set in slot when it
  // finishes (FinishPending); any other is scanned here.
  void ScanFile(ReadableDir* dir, const std::string& path, const std::string& rel, const FileStatus& st,
                bool device, const Entry* prev, Entry* e, const Slot& slot) {
    stats_->files++;
    if (!device && !opts_.full_read && prev && Unchanged(*prev, *e) && !RefersToDamage(*prev)) {
      e->content = prev->content;
      stats_->files_reused++;
      stats_->bytes += e->size;
      if (slot.first_link) link_content_[rel] = e->content;
      return;
    }
    auto file = dir ? dir->OpenRead(e->name) : store_->env()->OpenRead(path);
    e->size = file->Size();
    stats_->bytes += e->size;
    ScanStats s;
    ChangeSet changes = ChangesOf(rel, path, prev, *e);
    if (changes.HasList()) {
      const std::vector<ByteRange> changed = NormalizeRanges(std::move(changes.changed), e->size);
      const ScanBase base{&prev->content, &changed};
      e->content = scanner_.Scan(file.get(), &s, &base);
      stats_->files_by_change_list++;
      stats_->change_method = ChangeMethodName(changes.method);
    } else {
      if (!changes.why.empty() && stats_->change_why.empty())
        stats_->change_why = (rel.empty() ? spec_.source : rel) + ": " + changes.why;
      if (slot.dir && !device && e->size <= kReadBatchBytes) {
        FileScanner::Later later = scanner_.ScanLater(std::move(file));
        auto failed = std::make_shared<bool>(false);
        Pending p;
        p.bytes = later.bytes;
        p.read = [this, read = std::move(later.read), slot, failed] {
          try {
            read();
          } catch (const Error& err) {
            // As WalkDir's loop does with an entry it cannot read.
            if (store_->broken() || err.kind() == ErrorKind::kCrash || (opts_.cancel && opts_.cancel->load())) throw;
            stats_->errors++;
            log_->Error(std::string(err.what()) + " (left out of this point)");
            slot.dir->left_out.push_back(slot.index);
            *failed = true;
          }
        };
        p.finish = [this, finish = std::move(later.finish), slot, rel, name = e->name, failed] {
          if (*failed) return;
          ScanStats ls;
          std::vector<Hash> content = finish(&ls);
          AddScanStats(ls);
          if (slot.first_link) link_content_[rel] = content;
          // Its entry was pushed unless an error left it out after all.
          std::vector<Entry>& es = slot.dir->entries;
          if (slot.index < es.size() && es[slot.index].name == name) es[slot.index].content = std::move(content);
        };
        Defer(std::move(p));
        return;
      }
      e->content = scanner_.Scan(file.get(), &s);
    }
    AddScanStats(s);
    if (slot.first_link) link_content_[rel] = e->content;
  }

  void AddScanStats(const ScanStats& s) {
    stats_->bytes_read += s.bytes_read;
    stats_->blocks += s.blocks;
    stats_->new_blocks += s.new_blocks;
    stats_->zero_blocks += s.zero_blocks;
  }

  // Small files scanned but not finished (ScanLater), and the trees of the
  // directories walked (made once their files are done), oldest first: the
  // newest kReadAhead of them asked of the disk but not read yet (so that
  // it reads several at once), the older ones read and with the pool or
  // done; at most kMaxPendingFiles in all and about kMaxPendingBytes of
  // their bytes, so that memory and open files stay bounded.
  static constexpr size_t kReadAhead = 32;
  static constexpr size_t kMaxPendingFiles = 96;
  static constexpr uint64_t kMaxPendingBytes = 8 * kReadBatchBytes;
  struct Pending {
    uint64_t bytes = 0;
    std::function<void()> read;  // null once run; does nothing for a tree
    std::function<void()> finish;
  };

  void Defer(Pending p) {
    pending_bytes_ += p.bytes;
    pending_.push_back(std::move(p));
    unread_++;
    while (unread_ > kReadAhead) ReadOne();
    while (pending_.size() > kMaxPendingFiles || pending_bytes_ > kMaxPendingBytes) FinishOne();
  }
  // Reads the oldest pending file not read yet.
  void ReadOne() {
    Pending& p = pending_[pending_.size() - unread_];
    unread_--;
    std::function<void()> read = std::move(p.read);
    p.read = nullptr;
    read();
  }
  void FinishOne() {
    if (unread_ == pending_.size()) ReadOne();
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    pending_bytes_ -= p.bytes;
    p.finish();
  }
  // Finishes every pending scan and tree, in order: their blobs put, their
  // entries' content and subtree set. At the end of the walk, and before a
  // hard link's content is looked up.
  void FinishPending() {
    while (!pending_.empty()) FinishOne();
  }

  // What may have changed in the file since its parent version (spec_.changes),
  // when there is one to build on: same size, no hard link, no damage.
  ChangeSet ChangesOf(const std::string& rel, const std::string& path, const Entry* prev, const Entry& cur) {
    ChangeSet none;
    if (!spec_.changes) return none;
    if (opts_.full_read) {
      none.why = "a full read (--full-read, or full_read_every)";
    } else if (!prev || prev->type != EntryType::kFile || !prev->hardlink.empty()) {
      none.why = "no version in the parent point";
    } else if (prev->size != cur.size) {
      none.why = "its size changed";
    } else if (RefersToDamage(*prev)) {
      none.why = "its parent version refers to damaged blocks";
    } else {
      return spec_.changes(rel, path);
    }
    return none;
  }

  // The quick check: a file whose size, mtime, ctime and inode number all
  // match the parent's entry is taken as unchanged. mtime can be set back
  // (touch -d, tar -x, rsync -t); ctime cannot, and a file replaced by
  // another (rename over it) has another inode. An entry without ctime and
  // inode (older points) is never unchanged; a source whose inodes are made
  // afresh each run (reflink copies) compares size and mtime only.
  bool Unchanged(const Entry& prev, const Entry& cur) const {
    if (prev.type != EntryType::kFile || !prev.hardlink.empty() || prev.size != cur.size ||
        prev.mtime_ns != cur.mtime_ns)
      return false;
    if (spec_.change_check == ChangeCheck::kSizeMtime) return true;
    return prev.ino != 0 && prev.ino == cur.ino && prev.ctime_ns == cur.ctime_ns;
  }

  // After verify found damage, an unchanged file whose blocks include a
  // damaged one is read again, so that the new point is whole.
  bool RefersToDamage(const Entry& prev) {
    if (!store_->HasDamaged()) return false;
    if (store_->AnyDamaged(prev.content)) return true;
    try {
      for (const auto& list : prev.content)
        if (store_->AnyDamaged(DecodeIdList(store_->Get(list, BlobType::kList), "block list")))
          return true;
    } catch (const Error& err) {
      if (err.kind() == ErrorKind::kCrash) throw;
      return true;
    }
    return false;
  }

  // Hands the id of the directory's tree blob to set_tree once the scans
  // of its files (and of the directories below) have finished: the tree is
  // made as a pending step of its own, after theirs, so that the pool goes
  // on hashing while the walk reads the next directory's files (waiting
  // for them all at the end of each directory left both idle in turns). A
  // directory whose entries all equal those of its parent version (prev)
  // gets prev's tree blob, neither encoded nor hashed again: that blob
  // decodes to these entries. Every child is looked up relative to dir (its
  // descriptor), never by its full path, and a child directory is entered
  // through OpenDir: a directory swapped for a symlink during the walk is
  // refused, not followed.
  void WalkDir(ReadableDir* dir, const std::string& rel, const Entry* prev,
               std::function<void(const Hash&)> set_tree) {
    const std::string& path = dir->path();
    std::vector<Entry> before;  // sorted by name, unique (DecodeTree checks)
    bool have_before = false;
    if (prev && !prev->subtree.IsZero()) {
      try {
        before = DecodeTree(store_->Get(prev->subtree, BlobType::kTree), "tree of " + path);
        have_before = true;
      } catch (const Error& err) {
        if (err.kind() != ErrorKind::kCorrupt && err.kind() != ErrorKind::kNotFound &&
            err.kind() != ErrorKind::kIo)
          throw;
        // Without the previous listing every file below is simply read again.
        log_->Warn(std::string(err.what()) + "; reading " + path + " in full");
      }
    }
    std::vector<std::string> names = dir->List();
    std::sort(names.begin(), names.end());
    const bool cache_dir = filter_.IsCacheDir(path, rel);
    auto list = std::make_shared<DirList>();  // see Slot
    std::vector<Entry>* entries = &list->entries;
    entries->reserve(names.size());
    for (const auto& name : names) {
      CheckCancel(opts_.cancel);
      std::string child = dir->ChildPath(name);
      if (rel.empty() && LeaveOutOwnEntry(spec_.own_prefix, name, child, log_)) continue;
      std::string child_rel = rel.empty() ? name : rel + "/" + name;
      auto it = std::lower_bound(before.begin(), before.end(), name,
                                 [](const Entry& e, const std::string& n) { return e.name < n; });
      const Entry* old = it != before.end() && it->name == name ? &*it : nullptr;
      try {
        const FileStatus st = dir->Status(name);
        if (st.kind == FileKind::kMissing) {
          log_->Info(child + " vanished during the backup");
          continue;
        }
        if (filter_.LeaveOut(child, child_rel, st.kind == FileKind::kDir, cache_dir)) continue;
        // A full read reads the xattrs again too.
        Entry e = ReadMetadata(dir, name, st, opts_.full_read ? nullptr : old);
        e.name = name;
        if (e.type == EntryType::kDir) {
          stats_->dirs++;
          if (spec_.one_file_system && st.dev != root_dev_) {
            e.subtree = EmptyTree();  // a mount point: kept, not entered
          } else {
            std::unique_ptr<ReadableDir> sub = dir->OpenDir(name);
            // Its entry is pushed at this index right after.
            WalkDir(sub.get(), child_rel, old && old->type == EntryType::kDir ? old : nullptr,
                    [list, index = entries->size(), name](const Hash& id) {
                      std::vector<Entry>& es = list->entries;
                      if (index < es.size() && es[index].name == name) es[index].subtree = id;
                    });
          }
        } else if (e.type == EntryType::kFile) {
          if (st.nlink > 1) {
            auto [link, first] = links_.emplace(InodeKey{st.dev, st.ino}, child_rel);
            if (!first) {
              // A later name of an inode already seen: link to the first one.
              e.hardlink = link->second;
              FinishPending();  // the first name's content, if it is pending
              e.content = link_content_[link->second];
              stats_->files++;
              entries->push_back(std::move(e));
              continue;
            }
          }
          ScanFile(dir, child, child_rel, st, false, old, &e, Slot{list, entries->size(), st.nlink > 1});
        } else {
          stats_->other++;
        }
        entries->push_back(std::move(e));
      } catch (const Error& err) {
        // A failed store write ends the backup, and so does a signal
        // (the read it stopped is no unreadable entry: nothing is
        // committed); a source entry that cannot be read is only left out.
        if (store_->broken() || err.kind() == ErrorKind::kCrash || (opts_.cancel && opts_.cancel->load())) throw;
        stats_->errors++;
        log_->Error(std::string(err.what()) + " (left out of this point)");
      }
    }
    Pending p;
    p.read = [] {};
    p.finish = [this, list, before = std::make_shared<std::vector<Entry>>(std::move(before)), have_before,
                prev_tree = have_before ? prev->subtree : Hash{}, set_tree = std::move(set_tree)] {
      std::vector<Entry>* entries = &list->entries;
      if (!list->left_out.empty()) {
        std::sort(list->left_out.begin(), list->left_out.end());
        for (size_t k = list->left_out.size(); k-- > 0;) entries->erase(entries->begin() + list->left_out[k]);
        list->left_out.clear();
      }
      // Has: the blob is not marked damaged (then it is written afresh).
      if (have_before && SameEntries(*entries, *before) && store_->Has(prev_tree))
        set_tree(prev_tree);
      else
        set_tree(store_->PutRaw(BlobType::kTree, EncodeTree(*entries)));
    };
    Defer(std::move(p));
  }

  Hash EmptyTree() { return store_->PutRaw(BlobType::kTree, EncodeTree({})); }

  Store* store_;
  RatePacer pacer_;
  FileScanner scanner_;
  ExcludeFilter filter_;
  const VolumeSpec& spec_;
  const BackupOptions& opts_;
  Logger* log_;
  VolumeStats* stats_;
  dev_t root_dev_ = 0;
  std::deque<Pending> pending_;
  size_t unread_ = 0;  // the newest pending files not read yet
  uint64_t pending_bytes_ = 0;
  std::map<InodeKey, std::string> links_;
  std::unordered_map<std::string, std::vector<Hash>> link_content_;
};


// Reads manifests from the newest point back until every volume in want
// has its parent; a volume whose parent was recorded from another source
// keeps looking for one from the same source, and falls back to the newest
// of its name. A damaged manifest is skipped with a warning.
// Each volume's parent: its root entry, and the point it is in.
using Parents = std::map<std::string, std::pair<Entry, std::string>>;

Parents ParentEntries(Store* store, const std::vector<VolumeSpec>& resolved, const std::vector<VolumeSpec>& given,
                      Logger* log) {
  Parents same_source, same_name;
  std::map<std::string, std::string> source_of;  // volume name -> source as given
  for (size_t i = 0; i < resolved.size(); i++) source_of[resolved[i].name] = given[i].source;
  std::vector<std::string> points = store->ListPoints();
  for (auto it = points.rbegin(); it != points.rend() && same_source.size() < source_of.size(); ++it) {
    try {
      Manifest m = store->ReadPoint(*it);
      Parents found_same, found_name;
      for (auto& v : m.volumes) {
        auto want = source_of.find(v.name);
        if (want == source_of.end() || same_source.count(want->first)) continue;
        if (v.source.empty() || v.source == want->second) found_same.emplace(want->first, std::pair(v.root, *it));
        if (!same_name.count(want->first)) found_name.emplace(want->first, std::pair(std::move(v.root), *it));
      }
      // Only a manifest read whole counts.
      same_source.merge(found_same);
      same_name.merge(found_name);
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::kCorrupt) throw;
      log->Warn(std::string(err.what()) + "; comparing with an older point");
    }
  }
  same_source.merge(same_name);  // keeps same_source's entry where both have one
  return same_source;
}

// v, with its change list kept only when it is relative to the parent point
// the backup builds on (VolumeSpec::changes_since); otherwise each file is
// read in full, and the report says why.
VolumeSpec TrustedChanges(VolumeSpec v, const std::string& parent_point) {
  if (!v.changes || v.changes_since.empty() || v.changes_since == parent_point) return v;
  const std::string why = "the change list is relative to point " + v.changes_since + ", but the parent point is " +
                          (parent_point.empty() ? std::string("none") : parent_point);
  v.changes = [why](const std::string&, const std::string&) { return ChangeSet{ChangeMethod::kFullRead, why, {}}; };
  return v;
}

// True when no point newer than `every` before now records a full read.
// A point that cannot be read counts as no full read.
bool FullReadDue(Store* store, int64_t every_ns, int64_t now_ns) {
  std::vector<std::string> points = store->ListPoints();
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    try {
      Manifest m = store->ReadPoint(*it);
      if (now_ns - m.time_ns >= every_ns) return true;  // older points are older still
      if (m.full_read()) return false;
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::kCorrupt) throw;
    }
  }
  return true;
}

}  // namespace

std::string NewestPointWithVolume(Store* store, const std::string& volume) {
  std::vector<std::string> points = store->ListPoints();
  std::set<std::string> held;  // for the message
  for (auto it = points.rbegin(); it != points.rend(); ++it) {
    try {
      const Manifest m = store->ReadPoint(*it);
      if (m.FindVolume(volume)) return *it;
      for (const auto& v : m.volumes) held.insert(EscapeForTerminal(v.name));
    } catch (const Error& err) {
      if (err.kind() != ErrorKind::kCorrupt) throw;
      // a damaged point is named by verify, not chosen here
    }
  }
  std::string names;
  for (const auto& n : held) names += (names.empty() ? "" : ", ") + n;
  ThrowNotFound("store " + store->dir() + " has no point holding volume '" + EscapeForTerminal(volume) +
                "' (its points' volumes: " + (names.empty() ? "none" : names) + ")");
}

BackupResult RunBackup(Store* store, const std::vector<VolumeSpec>& volumes,
                       const BackupOptions& options, Logger* log, const BackupExcludes& excludes) {
  auto start = std::chrono::steady_clock::now();
  if (volumes.empty()) ThrowConfig("nothing to back up: no volumes given");
  for (const auto& t : options.tags)
    if (!IsValidTag(t))
      ThrowConfig("bad tag '" + EscapeForTerminal(t) +
                  "': use 1 to 64 letters, digits or . _ + : @ = - (not starting with -)");
  for (const auto& v : volumes)
    if (!IsValidVolumeName(v.name))
      ThrowConfig("invalid volume name '" + v.name + "' for " + v.source +
                  ": it must be one path component of valid UTF-8");
  for (size_t i = 0; i < volumes.size(); i++)
    for (size_t k = 0; k < i; k++)
      if (volumes[i].name == volumes[k].name)
        ThrowConfig("two volumes are named '" + volumes[i].name + "' (" + volumes[k].source +
                    " and " + volumes[i].source + ")");
  // Every source root must be readable before anything is written. A source
  // may be a symlink (to an image file or a /dev/VG/LV device): resolve it.
  std::vector<VolumeSpec> resolved = volumes;
  for (auto& v : resolved) {
    v.source = RealPath(v.source, "source " + v.source);
    CheckReadable(v.source, "source " + v.source);
  }

  // Each volume is compared with the newest point that holds it, so that a
  // one-off backup of another path in between costs nothing.
  Parents previous = ParentEntries(store, resolved, volumes, log);

  BackupResult result;
  BackupOptions opts = options;
  if (!opts.full_read && opts.full_read_every_ns > 0 &&
      FullReadDue(store, opts.full_read_every_ns, store->env()->NowNanos())) {
    log->Info("no full read within the last " + FormatDuration(opts.full_read_every_ns) +
              ": reading every file");
    opts.full_read = true;
  }
  result.full_read = opts.full_read;
  const StoreWriteStats before = store->write_stats();
  Manifest manifest;
  {
    ThreadPool pool(options.threads);  // destroyed (joined) before the store is used again
    for (size_t i = 0; i < resolved.size(); i++) {
      auto it = previous.find(resolved[i].name);
      const VolumeSpec v = TrustedChanges(resolved[i], it == previous.end() ? "" : it->second.second);
      Progress::Get().StartVolume(v.name, SizeOrZero(v.source));
      auto vstart = std::chrono::steady_clock::now();
      VolumeStats stats;
      stats.name = v.name;
      auto ex = excludes.find(v.name);
      VolumeWalker walker(store, &pool, v, opts, ex == excludes.end() ? nullptr : &ex->second, log, &stats);
      Entry root = walker.WalkRoot(it == previous.end() ? nullptr : &it->second.first);
      if (walker.excluded() > 0)
        log->Info("volume " + v.name + ": " + Counted(walker.excluded(), "entry", "entries") + " excluded");
      if (options.on_volume_done) options.on_volume_done(i);
      stats.seconds = SecondsSince(vstart);
      result.errors += stats.errors;
      result.volumes.push_back(stats);
      manifest.volumes.push_back({v.name, volumes[i].source, std::move(root)});
    }
  }
  // Packs and index durable first; only then the manifest that names them.
  store->Flush();
  const StoreWriteStats& after = store->write_stats();
  result.blocks_written = after.blobs_written - before.blobs_written;
  result.data_bytes_written = after.raw_bytes_written - before.raw_bytes_written;
  result.bytes_written = after.stored_bytes_written - before.stored_bytes_written;
  result.packs_written = after.packs_written - before.packs_written;
  if (result.volumes.size() == 1) result.volumes[0].bytes_written = result.bytes_written;
  result.point = store->NewPointName();
  result.seconds = SecondsSince(start);
  manifest.name = PointName::Parse(result.point, "new point");
  manifest.time_ns = store->env()->NowNanos();
  manifest.time = FormatTimeUtc(manifest.time_ns);
  manifest.host = store->env()->HostName();
  manifest.block_size = store->block_size();
  manifest.tags.insert(options.tags.begin(), options.tags.end());
  manifest.vms = options.vms;
  manifest.stats = BackupResultToJson(result);
  manifest.stats.erase("point");
  store->WriteManifest(manifest);
  return result;
}

}  // namespace vmback
