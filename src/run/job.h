// `vmback run`: the whole job. In order: take the run lock, recover from a
// crashed earlier run, check the plan, quiesce every VM, snapshot every
// volume, resume every VM (the freeze window), then per volume [fsck, mount
// read-only] read it into the store [umount] and drop its snapshot at once,
// commit the point, prune, report. Every VM is resumed and every snapshot
// and mount removed on every path, also on a failure or a signal; a crash is
// cleaned up by the next run from the journal.
#pragma once

#include <atomic>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "hypervisor/hypervisor.h"
#include "os/env.h"
#include "run/backup.h"
#include "util/log.h"

namespace vmback {

struct VmReport {
  std::string name;
  std::string method;      // what was done: agent, sysrq, suspend, none
  double freeze_seconds = 0;  // from its quiesce to its release
};

struct JobReport {
  std::string point;
  std::vector<VmReport> vms;
  double freeze_window_seconds = 0;  // first quiesce to last release
  BackupResult backup;
  std::vector<std::string> pruned;
  std::vector<std::string> recovered;  // what a crashed run had left
  std::vector<std::string> warnings;
};

// Test seam: called with a step name before each step ("quiesce:VM",
// "snapshot:VOLUME", "release", "mount:VOLUME", "sync:VOLUME", "drop:VOLUME",
// "commit", "prune"); a test throws from it to inject a failure there.
using StepHook = std::function<void(const std::string& step)>;

struct JobOptions {
  const std::atomic<bool>* cancel = nullptr;
  StepHook hook;
  std::string run_id;  // default: from the clock
};

// REQUIRES: config validated (LoadConfig). hv may be null only when no VM is
// configured.
JobReport RunJob(const Config& config, Env* env, Hypervisor* hv, const JobOptions& options,
                 Logger* log);

// `vmback run --recover-only` (vmback.service runs it as ExecStopPost=, so
// that a run killed without clean-up, by SIGKILL or a stop timeout, leaves no
// VM frozen): what RunJob does first, alone. Under the run lock, undoes what
// the journal in state_dir records (RecoverFromJournal); returns what it did,
// nothing when there is no journal. connect is called only when the journal
// names a VM to resume.
std::vector<std::string> RecoverJob(const Config& config, Env* env,
                                    const std::function<Hypervisor*()>& connect, Logger* log);

// What RunJob would do, every external command with its arguments; checks
// the plan (VMs known, sources present, store usable) and changes nothing.
std::string PlanJob(const Config& config, Env* env, Hypervisor* hv, Logger* log);

nlohmann::json JobReportToJson(const JobReport& r);

}  // namespace vmback
