// What `vmback run` (and `backup -c`) does with each volume and VM, decided
// once, for the run and for its plan alike: which VMs are quiesced for
// which volume and how, the checks made before any VM is touched, and each
// volume's snapshot, mount and read.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "config/config.h"
#include "destination/backup_types.h"
#include "hypervisor/hypervisor.h"
#include "job/job.h"
#include "job/problems.h"
#include "os/env.h"
#include "source/snapshot.h"
#include "util/log.h"

namespace vmback {

bool Lists(const std::vector<std::string>& names, const std::string& name);

// Whether a disk of a domain (a path from its XML) is read with volume v:
// the source itself; a file under a directory source (on the source's file
// system, when one_file_system); or a file on the file system of a block
// device source (an LV holding image files, mounted elsewhere: the file's
// st_dev is the device).
bool DiskOnVolume(const std::string& disk, const VolumeConfig& v);
// "a, b, c", each escaped for a terminal.
std::string JoinNames(const std::vector<std::string>& names);

// Every VM to quiesce, once, in the order the volumes name them: a volume's
// vms, or (vms = "auto", the default) the running domains with a disk on it
// (the source itself, a file under a directory source, or a file on the file
// system of a block device source).
std::vector<std::string> QuiesceOrder(const Config& config, const std::vector<DomainInfo>& domains);

// How each volume is read and for which VMs. A volume read live by default
// (snapshot not set) while running VMs have disks on it (or are listed in
// its vms) is a warning: their disks are copied while they write.
std::vector<SourceReport> DescribeSources(const Config& config, const std::vector<DomainInfo>& domains,
                                          Logger* log);

// What the point records of each domain with a disk in one of volumes (the
// names of the volumes backed up): its definition, and where the point
// holds each of its disks (VmRecord). A domain vmback cannot record (its
// name or XML out of bounds) is a warning naming it.
std::vector<VmRecord> VmRecordsOf(const Config& config, const std::vector<DomainInfo>& domains,
                                  const std::vector<std::string>& volumes, Logger* log);

// The quiesce method of vm: its [[vm]] table's, else auto.
QuiesceMethod MethodFor(const Config& c, const std::string& vm);

// Checks made before any VM is touched, so that the run does not fail with
// the VMs quiet, each problem added to *problems (all of them, not the
// first): every source there; the programs each snapshot needs installed
// (lvm, btrfs; blkid, fsck, mount for a file-system volume on LVM); a
// reflink source on a file system that can clone; an LVM snapshot fits in
// its volume group's free space (lvm vgs); a file-system volume on LVM holds
// a file system this host mounts (blkid); for kRun, every VM named is known
// to libvirt (then *domains lists them all) and every [[vm]] belongs to a
// volume (naming it and its config line).
void CheckPlan(const Config& config, JobKind kind, Env* env, Hypervisor* hv, std::vector<DomainInfo>* domains,
               const std::atomic<bool>* cancel, Problems* problems);

// The hypervisor to resume the VMs a crashed run's journal names with: hv,
// else one from connect, asked only when the journal names a VM.
Hypervisor* HypervisorToRecover(Env* env, const std::string& journal_path, Hypervisor* hv,
                                const std::function<Hypervisor*()>& connect);

// state_dir holds the run lock, the journal and the mount points of guest
// file systems: a directory of ours, 0700, whoever made it. One that is
// wider (made by hand, or by an older vmback) is tightened, with a notice;
// one owned by another user is refused.
void MakeStateDir(Env* env, const std::string& dir, Logger* log);

// The snapshot volume v takes in run run_id.
SnapshotSpec SnapshotSpecOf(const VolumeConfig& v, const std::string& run_id);
// Where a file-system volume's snapshot is mounted: STATE_DIR/mnt-VOLUME.
std::string MountDirOf(const Config& config, const VolumeConfig& v);
// Whether the snapshot at path (a device or an image file) of volume v is
// checked and mounted to be read as a tree: mode = "filesystem" on LVM.
bool MountsSnapshot(Env* env, const VolumeConfig& v, const std::string& path);
// How volume v is read from path (its snapshot, or its mount).
VolumeSpec ReadSpecOf(const VolumeConfig& v, const std::string& path);

}  // namespace vmback
