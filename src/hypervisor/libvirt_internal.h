// Inside the libvirt hypervisor (libvirt.cpp, libvirt_backup.cpp): handles
// that free themselves, and the words of its messages.
#pragma once

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <chrono>
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

// The deadline of each pull-mode backup call below. They only start or stop
// a job in libvirt, but a hung libvirtd or QEMU monitor must not hang the
// run: a call that misses it is given up (Error naming the VM and the call)
// and left to finish on a thread of its own, which undoes a backup job begun
// late (the Hypervisor interface takes no timeout for them).
constexpr std::chrono::milliseconds kBackupCallTimeout{60000};

// Testing only: the deadline of the calls (zero: kBackupCallTimeout), and a
// delay before the call named ("backup-begin", "backup-end",
// "checkpoint-list", "checkpoint-delete") starts, as a hung libvirtd would
// (zero removes it).
void SetBackupCallTimeoutForTesting(std::chrono::milliseconds timeout);
void SetBackupCallDelayForTesting(const std::string& call, std::chrono::milliseconds delay);

// The pull-mode backup calls, on the domain dom of VM vm, each within the
// deadline above. Errors name the VM (and the libvirt call, when it timed out).
void BeginPullBackup(virDomainPtr dom, const std::string& vm, const PullBackupSpec& spec, Logger* log);
void EndPullBackup(virDomainPtr dom, const std::string& vm);
std::vector<std::string> ListCheckpoints(virDomainPtr dom, const std::string& vm);
// REQUIRES: IsVmbackCheckpoint(name). A missing one: Error(kNotFound).
void DeleteVmbackCheckpoint(virDomainPtr dom, const std::string& vm, const std::string& name);

}  // namespace libvirt_internal
}  // namespace vmback
