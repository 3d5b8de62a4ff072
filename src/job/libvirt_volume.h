// snapshot = "libvirt": a volume holding the disks of running VMs (qcow2
// files on any file system) is read consistently without a storage
// snapshot. In the freeze window, once each VM is quiet, vmback begins a
// libvirt pull-mode backup of the VM's disks on such volumes (making the
// checkpoint vmback-<run id> with it); the VM runs on at once, and the disks
// are read over NBD as they were at that instant (DiskExportEnv), the rest
// of the volume from its files. With the checkpoint of the VM's last point,
// the backup is incremental and only the extents QEMU's dirty bitmap marks
// are read (a change list for the store and the in-place targets).
//
// The chain is trusted only with evidence, recorded in
// STATE_DIR/checkpoint-VM.json after each commit (checkpoint, point, the
// disks with their sources): the checkpoint still there in libvirt, every
// disk qcow2 with the same source as recorded, the recorded point the
// volume's parent. Anything else, or libvirt refusing the incremental
// backup, is a full read of the disk that says why.
//
// Each backup job is journaled ("backup-job", "backup-ended") before it
// begins: a run killed while it runs leaves a journal from which the next
// run ends the job and removes its socket directory (journal.h).
#pragma once

#include <atomic>
#include <functional>
#include <chrono>
#include <map>
#include <optional>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "config/config.h"
#include "destination/backup_types.h"
#include "hypervisor/hypervisor.h"
#include "os/env.h"
#include "source/disk_exports.h"
#include "util/log.h"

namespace vmback {

// Whether volume v is read from libvirt pull-mode backups.
bool ReadsFromLibvirt(const VolumeConfig& v);

// The directory of a backup job's NBD socket and scratch files: one that
// MakeNbdSocketDir makes in [run] nbd_dir ("nbd-<hex>"). Checked before a
// journal's directory is removed.
bool IsNbdSocketDir(const std::string& nbd_dir, const std::string& dir);

class LibvirtBackups {
 public:
  // record journals a record (may be empty: no journal). exports is the Env
  // the volumes are read through.
  LibvirtBackups(const Config& config, Env* env, Hypervisor* hv, DiskExportEnv* exports,
                 std::function<void(const nlohmann::json&)> record, Logger* log);
  // Ends every job still running (never throws; failures are logged).
  ~LibvirtBackups();
  LibvirtBackups(const LibvirtBackups&) = delete;
  LibvirtBackups& operator=(const LibvirtBackups&) = delete;

  // In the freeze window, for volume v (ReadsFromLibvirt): begins the
  // backup of every running VM in domains with a disk on it (all its disks
  // on libvirt volumes), unless an earlier volume began it. Throws Error
  // naming the VM when libvirt cannot begin it or a disk cannot be read.
  // Each begin is bounded by [run] call_timeout and by deadline (the end of
  // max_freeze, while VMs are quiet; none when not given).
  void Begin(const VolumeConfig& v, const std::vector<DomainInfo>& domains, const std::string& run_id,
             std::optional<std::chrono::steady_clock::time_point> deadline = std::nullopt);
  // What Begin would do for volume v, one line per VM (for vmback plan):
  // its disks, and incremental from which checkpoint or full and why.
  // Asks libvirt only for the checkpoints.
  std::vector<std::string> Preview(const VolumeConfig& v, const std::vector<DomainInfo>& domains);
  // Sets spec's change list functions: each exported disk's dirty extents
  // when its backup is incremental, else a full read that says why.
  void Describe(const VolumeConfig& v, VolumeSpec* spec);
  // Volume v has been read: ends the backups that no unread volume needs.
  // Throws when a job cannot be ended (the journal keeps it).
  void Done(const VolumeConfig& v);
  // Ends every job still running; throws the first failure.
  void EndAll();
  // After point was committed: records each VM's new checkpoint as the base
  // of its next run and deletes vmback's older checkpoints of it. Failures
  // are warnings (the next run reads in full, or deletes them then).
  void Commit(const std::string& point);
  // Whether a job is still running (for the journal's clean-up).
  bool Running() const;
  // One line per VM backed up this way: how, and why a full read.
  std::vector<std::string> Summary() const;

 private:
  struct ExportedDisk {
    DomainDisk disk;
    std::string path;  // where the volume's reader finds it
    std::shared_ptr<NbdDisk> nbd;
  };
  struct Job {
    std::string vm;
    std::string dir;         // the socket directory
    std::string incremental; // the checkpoint it builds on, "" for a full one
    std::string since;       // the point that checkpoint belongs to
    std::string why_full;    // why not incremental
    std::string checkpoint;  // made with it, "" when none can be (a raw disk)
    std::vector<ExportedDisk> disks;
    std::set<std::string> volumes;  // volumes still to read that need it
    bool running = false;
  };

  // d's disks on libvirt volumes, and those volumes into *volumes.
  std::vector<ExportedDisk> DisksOf(const DomainInfo& d, std::set<std::string>* volumes) const;
  void Start(Job* job, const DomainInfo& d, const std::string& run_id,
             std::optional<std::chrono::steady_clock::time_point> deadline);
  void End(Job* job);
  // The incremental base of vm's disks, or "" with *why set.
  std::string ChainOf(const DomainInfo& d, const std::vector<ExportedDisk>& disks, std::string* since,
                      std::string* why);
  std::string StatePath(const std::string& vm) const;

  const Config& config_;
  Env* env_;
  Hypervisor* hv_;
  DiskExportEnv* exports_;
  std::function<void(const nlohmann::json&)> record_;
  Logger* log_;
  std::map<std::string, Job> jobs_;  // by VM
};

}  // namespace vmback
