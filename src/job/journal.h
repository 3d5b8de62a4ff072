// The crash journal of `vmback run`: one JSON object a line, fsynced at each
// step, recording every VM quiesced, snapshot taken and mount made, and
// their undoing. A run that finds a journal left by a crashed run first
// resumes those VMs (only the ones vmback quiesced), unmounts and drops what
// is still there, and says so.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "config/config.h"
#include "hypervisor/hypervisor.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

class Journal {
 public:
  // Creates path (must not exist) with a "start" record.
  Journal(Env* env, std::string path, const std::string& run_id);
  Journal(const Journal&) = delete;
  Journal& operator=(const Journal&) = delete;
  // Appends one record and makes it durable before returning.
  void Record(const nlohmann::json& record);
  // Everything was undone: the journal goes.
  void Close();
  const std::string& path() const { return path_; }

 private:
  Env* env_;
  std::string path_;
  std::unique_ptr<WritableFile> file_;
};

// What a crashed run left behind, from its journal.
struct Leftovers {
  std::string run_id;  // from the "start" record
  std::vector<std::pair<std::string, std::string>> vms;  // name, quiesce method
  std::vector<std::string> mounts;
  std::vector<std::string> snapshots;  // Snapshot::JournalRecord() texts
  // libvirt pull-mode backups begun and not ended: VM, socket directory.
  std::vector<std::pair<std::string, std::string>> backup_jobs;
  bool empty() const { return vms.empty() && mounts.empty() && snapshots.empty() && backup_jobs.empty(); }
};

// Reads a journal; a torn last line (a crash mid-write) is ignored.
Leftovers ReadJournal(Env* env, const std::string& path);

// Undoes what a crashed run left: VMs first (resumed/thawed), then libvirt
// backup jobs (ended, their socket directories removed), then mounts, then
// snapshots; removes the journal when all went. Returns what it did, one
// line each, for the log. Throws (keeping the journal) if something stays.
// The journal is not trusted: only records vmback could have written are
// acted on (mount points <dir of path>/mnt-*; socket directories
// nbd_dir/nbd-HEX ([run] nbd_dir); snapshots as
// CheckLeftoverRecord accepts for the journal's run id); any other is
// refused, named in the Error, and nothing is run on it.
std::vector<std::string> RecoverFromJournal(Env* env, const std::string& path, Hypervisor* hv,
                                            Logger* log, const std::string& nbd_dir = RunConfig().nbd_dir);

}  // namespace vmback
