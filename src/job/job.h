// `vmback run`: the whole job. In order: take the run lock, recover from a
// crashed earlier run, check the plan, quiesce every VM, snapshot every
// volume, resume every VM (the freeze window), then per volume [fsck, mount
// read-only] read it into the store [umount] and drop its snapshot at once,
// commit the point, prune, report. Every VM is resumed and every snapshot
// and mount removed on every path, also on a failure or a signal; a crash is
// cleaned up by the next run from the journal.
//
// `vmback backup -c` is the same job without the VMs and the prune: the
// volumes are read from the snapshots and mounts the config asks for, so
// that a volume holds the same kind of data whichever command wrote it.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "hypervisor/hypervisor.h"
#include "job/problems.h"
#include "os/env.h"
#include "destination/backup_types.h"
#include "inplace/zfs_replicate.h"
#include "util/log.h"

namespace vmback {

struct VmReport {
  std::string name;
  std::string method;      // what was done: agent, sysrq, suspend, none
  double freeze_seconds = 0;  // from its quiesce to its release
};

// How a volume was read, and for which VMs it was quiesced.
struct SourceReport {
  std::string volume;
  std::string snapshot;          // lvm, btrfs, reflink or none
  bool read_live = false;        // no snapshot: read while in use
  bool by_choice = false;        // 'snapshot' written in the config ("none": a live read is meant)
  std::vector<std::string> vms;  // the running VMs quiesced for it
};

struct JobReport {
  std::string point;
  std::vector<VmReport> vms;
  double freeze_window_seconds = 0;  // first quiesce to last release
  std::vector<SourceReport> sources;  // one per volume, in config order
  BackupResult backup;  // an in-place target's sink figures in backup.inplace
  std::vector<ReplicaReport> replicas;  // [[replicate]], after the commit
  std::vector<std::string> pruned;
  std::vector<std::string> recovered;  // what a crashed run had left
  std::vector<std::string> warnings;
};

// Test seam: called with a step name before each step ("quiesce:VM",
// "snapshot:VOLUME", "release", "mount:VOLUME", "sync:VOLUME", "drop:VOLUME",
// "commit", "replicate", "prune"); a test throws from it to inject a failure there.
using StepHook = std::function<void(const std::string& step)>;

enum class JobKind {
  kRun,     // vmback run: quiesce the VMs around the snapshots; prune after the commit
  // vmback backup -c: VMs left alone and libvirt not asked (a snapshot is
  // crash-consistent); no prune. The state dir, run lock and journal are
  // used only when a volume takes a snapshot (nothing else is to undo).
  kBackup,
};

struct JobOptions {
  JobKind kind = JobKind::kRun;
  const std::atomic<bool>* cancel = nullptr;
  StepHook hook;
  std::string run_id;  // default: from the clock
  // Called, when hv is null, only if the journal of a crashed run names VMs
  // to resume (kBackup: libvirt is asked nothing otherwise).
  std::function<Hypervisor*()> connect;
  // backup's flags: read every file; hashing threads (0: one per core);
  // bytes/s read from the sources (0: [run] read_limit).
  bool full_read = false;
  unsigned threads = 0;
  uint64_t read_limit = 0;
  std::vector<std::string> tags;  // backup --tag: the point's tags (a store; kConfig for an in-place target)
  // backup --exclude, --exclude-file: patterns (checked) left out of every
  // volume, after each volume's own (ExcludesOfConfig, job/excludes.h).
  std::vector<std::string> exclude;
  // kRun into a store: seconds the prune after the backup waits for readers
  // (list, restore, verify) to leave; then it is skipped with a warning.
  double prune_lock_wait = 60;
};

// REQUIRES: config validated (LoadConfig). hv may be null for kBackup, or
// when the config names no VM (ConnectForJob gave none).
// Throws Error(kConfig) naming a [[vm]] that belongs to no volume (no
// volume lists it, and "auto" finds none of its disks on one): it would
// never be quiesced.
JobReport RunJob(const Config& config, Env* env, Hypervisor* hv, const JobOptions& options,
                 Logger* log);

// The libvirt connection run and plan use, from connect (called at most
// once). Required when the config names VMs ([[vm]] tables, a volume's
// written vms): a failure throws. Wanted when a volume leaves vms unset (its
// default "auto" asks libvirt which VMs have disks on it): a failure is a
// warning naming those volumes, and null is returned (no VM quiesced).
// Also tried when a volume is read live by default (snapshot not written),
// to warn if VMs run on it; a failure then is only a notice.
std::unique_ptr<Hypervisor> ConnectForJob(const Config& config,
                                          const std::function<std::unique_ptr<Hypervisor>()>& connect,
                                          Logger* log);

// `vmback run --recover-only` (vmback.service runs it as ExecStopPost=, so
// that a run killed without clean-up, by SIGKILL or a stop timeout, leaves no
// VM frozen): what RunJob does first, alone. Under the run lock, undoes what
// the journal in state_dir records (RecoverFromJournal); returns what it did,
// nothing when there is no journal. connect is called only when the journal
// names a VM to resume.
std::vector<std::string> RecoverJob(const Config& config, Env* env,
                                    const std::function<Hypervisor*()>& connect, Logger* log);

// What RunJob would do, every external command with its arguments, and
// every problem found on the way (CheckPlan's, the destination's, each
// snapshot's and mount's, the report and metrics paths): the steps are
// described as far as they can be whatever is wrong. Changes nothing.
struct PlanResult {
  std::string text;
  std::vector<Problem> problems;
};
PlanResult PlanJob(const Config& config, Env* env, Hypervisor* hv, Logger* log);

nlohmann::json JobReportToJson(const JobReport& r);
// [{"volume", "snapshot", "read_live", "by_choice", "vms"}], as in the report.
nlohmann::json SourcesToJson(const std::vector<SourceReport>& sources);

}  // namespace vmback
