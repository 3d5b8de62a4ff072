// Source snapshots: a consistent, frozen view of a volume taken while its VMs
// are quiet, read at leisure after they run again, and always dropped.
#pragma once

#include <memory>
#include <string>

#include "os/env.h"
#include "util/log.h"

namespace vmback {

// kLibvirt: no storage snapshot; the job reads each running VM's disks on
// the volume from a libvirt pull-mode backup (job/libvirt_volume.h), and the
// rest of the source where it is.
enum class SnapshotKind { kNone, kLvm, kBtrfs, kReflink, kLibvirt };

// "none", "lvm", "btrfs", "reflink", "libvirt"; throws Error(kConfig) otherwise.
SnapshotKind ParseSnapshotKind(const std::string& text);
const char* SnapshotKindName(SnapshotKind k);

struct SnapshotSpec {
  std::string volume;       // volume name (names the snapshot)
  std::string source;       // lvm: the LV device path (/dev/VG/LV); btrfs: a subvolume;
                            // reflink: an image file or a directory of image files
  SnapshotKind kind = SnapshotKind::kNone;
  std::string size = "10G"; // lvm: -L SIZE for the copy-on-write area
  std::string run_id;       // unique per run: snapshot names carry it
};

// A snapshot that exists. Destruction drops it (never throws; failures are
// logged with the command and its stderr). Drop() does it now and throws.
class Snapshot {
 public:
  virtual ~Snapshot() = default;
  // Where to read the frozen data: a device, a file, or a directory.
  virtual const std::string& path() const = 0;
  // A short description for the journal, enough for DropLeftover.
  virtual std::string JournalRecord() const = 0;
  virtual void Drop() = 0;
  // The snapshot outlives this object (kept as the next run's base): the
  // destructor and Drop() leave it. DropLeftoverSnapshot removes it later.
  virtual void Keep() = 0;
};

// Every btrfs and reflink snapshot is named with this prefix, and a
// directory source keeps its snapshot at its own top (below). Entries at the
// top of a directory source whose names start with it are vmback's own: a
// reflink copy leaves them out, and so does `vmback run` when it reads the
// volume (VolumeSpec::own_prefix). Checked before anything named in a
// journal is removed.
inline constexpr const char kSnapshotPrefix[] = ".vmback-";

// Where TakeSnapshot(spec) puts the snapshot: always in the source's own
// file system, so that a source that is a mount point of its own (an LV or
// a subvolume mounted on /var/lib/libvirt/images) works:
//   lvm:     <dir of SOURCE>/vmback-<volume>-<run_id> (the LV's device)
//   btrfs:   SOURCE/.vmback-<volume>-<run_id> (a subvolume inside the source
//            subvolume; btrfs leaves it out of the snapshot itself, and a
//            later snapshot of the source shows it as an empty directory)
//   reflink: SOURCE/.vmback-<volume>-<run_id> for a directory;
//            <dir of SOURCE>/.vmback-<volume>-<run_id>/ for an image file
//   none, libvirt: SOURCE
// A reflink source that cannot be stat'ed is taken as a file.
std::string SnapshotPath(const SnapshotSpec& spec);

// Takes the snapshot at SnapshotPath(spec). Commands run through
// env->RunLimited (argv, no shell, "--" before the paths):
//   lvm:     lvm lvcreate -s -n vmback-<volume>-<run_id> -L SIZE -- SOURCE, then
//            lvm lvremove -f -- /dev/VG/<name> (retried while "in use")
//   btrfs:   btrfs subvolume snapshot -r -- SOURCE SOURCE/.vmback-<volume>-<run_id>,
//            then btrfs subvolume delete --
//   reflink: the snapshot directory is made 0700 (never through a symlink:
//            one in its place is refused) and must be on the file system of
//            SOURCE; FICLONERANGE of the file (or each regular file of the
//            directory, but the top-level entries named kSnapshotPrefix*),
//            range by range, into it; then removed
//   none:    the source itself, read live (the caller says whether that is
//            meant: see RunJob)
// limits bound the taking (the freeze window): the snapshot command is killed
// at the deadline or on cancel, and a reflink copy stops between ranges.
// Dropping is not bound by them (it is the clean-up), only by the default
// command deadline.
// Throws Error naming the volume and the failing command with its stderr.
std::unique_ptr<Snapshot> TakeSnapshot(Env* env, const SnapshotSpec& spec, Logger* log,
                                       const RunLimits& limits = {});

// Why the snapshot of spec cannot be taken, as far as can be told without
// taking it or writing anything, each with what to do: the programs it runs
// are not installed, or (reflink) the source's file system is of a kind that
// never clones (ext4, tmpfs, vfat, ...). Empty when nothing is known to be
// wrong; the snapshot itself can still fail.
std::vector<std::string> SnapshotProblems(Env* env, const SnapshotSpec& spec);

// The JournalRecord() that TakeSnapshot(spec) gives its snapshot, known
// before the snapshot is taken: a caller journals it first, so that a crash
// while the snapshot is being made (lvcreate goes on after vmback dies)
// leaves it recorded for the next run to drop. Does not check the spec.
std::string PlannedJournalRecord(const SnapshotSpec& spec);

// A journal is read as hostile: throws Error(kCorrupt) naming the record
// unless it is one that TakeSnapshot of run run_id could have written (a
// plain absolute source; the target vmback-<volume>-<run_id> beside the
// source for lvm; .vmback-<volume>-<run_id> inside the source or beside it
// for btrfs and reflink: beside is where a file's reflink copy goes, and
// where earlier versions of vmback put every snapshot, so that a journal
// they left is still recovered).
void CheckLeftoverRecord(const std::string& journal_record, const std::string& run_id);

// Drops a snapshot recorded in the journal of the crashed run run_id
// (JournalRecord()), after CheckLeftoverRecord. Missing snapshots are fine.
// Throws when the record is refused, or when it exists and cannot go.
void DropLeftoverSnapshot(Env* env, const std::string& journal_record, const std::string& run_id,
                          Logger* log);

// lvremove is retried while LVM says the snapshot is "in use" (udev, a
// lingering reader): up to 5 more times, the n-th retry after n times this
// pause (default 200 ms). Tests make it small.
void SetLvremoveBackoffMs(int ms);

}  // namespace vmback
