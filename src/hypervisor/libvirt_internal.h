// Inside the libvirt hypervisor (libvirt.cpp, libvirt_backup.cpp): handles
// that free themselves, and the words of its messages.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <memory>
#include <string>
#include <vector>

#include "hypervisor/hypervisor.h"
#include "util/log.h"

namespace vmback {
namespace libvirt_internal {

inline std::string Quote(const std::string& name) { return "VM '" + name + "'"; }

inline std::string LastError() {
  const char* m = virGetLastErrorMessage();
  return m != nullptr ? m : "unknown libvirt error";
}

struct DomainFree {
  void operator()(virDomainPtr d) const {
    if (d != nullptr) virDomainFree(d);
  }
};
using DomainHandle = std::unique_ptr<virDomain, DomainFree>;

struct CheckpointFree {
  void operator()(virDomainCheckpointPtr c) const {
    if (c != nullptr) virDomainCheckpointFree(c);
  }
};
using CheckpointHandle = std::unique_ptr<virDomainCheckpoint, CheckpointFree>;

// The pull-mode backup calls, on the domain dom of VM vm. Errors name the VM.
void BeginPullBackup(virDomainPtr dom, const std::string& vm, const PullBackupSpec& spec, Logger* log);
void EndPullBackup(virDomainPtr dom, const std::string& vm);
std::vector<std::string> ListCheckpoints(virDomainPtr dom, const std::string& vm);
// REQUIRES: IsVmbackCheckpoint(name). A missing one: Error(kNotFound).
void DeleteVmbackCheckpoint(virDomainPtr dom, const std::string& vm, const std::string& name);

}  // namespace libvirt_internal
}  // namespace vmback
