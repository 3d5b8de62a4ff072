// libvirt's pull-mode backups and checkpoints (virDomainBackupBegin and
// friends) for the libvirt hypervisor (libvirt.cpp).
#include <algorithm>
#include <cstdlib>

#include "hypervisor/libvirt_internal.h"
#include "util/error.h"

namespace vmback {
namespace libvirt_internal {

namespace {

// " (incremental from X, checkpoint Y)" for messages.
std::string BackupWords(const PullBackupSpec& spec) {
  std::string words;
  if (!spec.incremental.empty()) words += "incremental from '" + spec.incremental + "'";
  if (!spec.checkpoint.empty()) {
    words += (words.empty() ? "" : ", ") + std::string("checkpoint '") + spec.checkpoint + "'";
  }
  return words.empty() ? " (full)" : " (" + words + ")";
}

}  // namespace

void BeginPullBackup(virDomainPtr dom, const std::string& vm, const PullBackupSpec& spec, Logger* log) {
  const std::string backup = PullBackupXml(spec);
  const std::string checkpoint = spec.checkpoint.empty() ? "" : CheckpointXml(spec);
  if (virDomainBackupBegin(dom, backup.c_str(),
                           checkpoint.empty() ? nullptr : checkpoint.c_str(), 0) < 0) {
    throw Error(ErrorKind::kOther, Quote(vm) + ": cannot begin a pull-mode backup" +
                                       BackupWords(spec) + ": " + LastError());
  }
  log->Debug(Quote(vm) + ": pull-mode backup begun" + BackupWords(spec));
}

void EndPullBackup(virDomainPtr dom, const std::string& vm) {
  if (virDomainAbortJob(dom) < 0) {
    throw Error(ErrorKind::kOther, Quote(vm) + ": cannot end its backup job: " + LastError());
  }
}

std::vector<std::string> ListCheckpoints(virDomainPtr dom, const std::string& vm) {
  virDomainCheckpointPtr* list = nullptr;
  int n = virDomainListAllCheckpoints(dom, &list, 0);
  if (n < 0) {
    throw Error(ErrorKind::kOther, Quote(vm) + ": cannot list its checkpoints: " + LastError());
  }
  std::vector<CheckpointHandle> handles;
  for (int i = 0; i < n; i++) handles.emplace_back(list[i]);
  std::free(list);
  std::vector<std::string> names;
  for (const CheckpointHandle& c : handles) {
    const char* name = virDomainCheckpointGetName(c.get());
    if (name != nullptr) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

void DeleteVmbackCheckpoint(virDomainPtr dom, const std::string& vm, const std::string& name) {
  CheckpointHandle cp(virDomainCheckpointLookupByName(dom, name.c_str(), 0));
  if (cp == nullptr) {
    std::string what = Quote(vm) + ": checkpoint '" + name + "'";
    if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN_CHECKPOINT) ThrowNotFound(what + ": not there");
    throw Error(ErrorKind::kOther, what + ": cannot look it up: " + LastError());
  }
  if (virDomainCheckpointDelete(cp.get(), 0) < 0) {
    throw Error(ErrorKind::kOther,
                Quote(vm) + ": cannot delete checkpoint '" + name + "': " + LastError());
  }
}

}  // namespace libvirt_internal
}  // namespace vmback
