// Quiescing VMs through the libvirt C API: the guest agent's fsfreeze, or
// Alt+SysRq+S (emergency sync) then suspend, or suspend alone. Whatever was
// done is undone by the guard that Quiesce returns, on every path.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "util/log.h"

namespace vmback {

enum class QuiesceMethod { kAuto, kAgent, kSysrq, kSuspend, kNone };

// "auto", "agent", "sysrq", "suspend", "none"; throws Error(kConfig) otherwise.
QuiesceMethod ParseQuiesceMethod(const std::string& text);
const char* QuiesceMethodName(QuiesceMethod m);

// A VM held quiet. Destruction undoes what Quiesce did (thaw the guest file
// systems, or resume the VM) and never throws; failures are logged. Release()
// does the same now and reports failure by throwing.
class QuiescedVm {
 public:
  virtual ~QuiescedVm() = default;
  virtual void Release() = 0;
  // What was actually done: kAgent, kSysrq, kSuspend or kNone (auto resolves).
  virtual QuiesceMethod method() const = 0;
  virtual const std::string& name() const = 0;
};

struct DomainInfo {
  std::string name;
  bool running = false;        // running or paused (it has a live QEMU)
  bool paused = false;
  std::vector<std::string> disk_sources;  // file or block device paths of its disks
                                          // (cdrom media left out)
};

class Hypervisor {
 public:
  virtual ~Hypervisor() = default;
  // Throws Error(kNotFound) naming the domain if libvirt does not know it.
  virtual DomainInfo Domain(const std::string& name) = 0;
  virtual std::vector<DomainInfo> Domains() = 0;
  // Quiets a running VM. Each libvirt call is bounded by timeout (zero or
  // less: no limit). A VM that is not running, or that is already paused, is
  // left alone (method kNone). Throws Error naming the VM if it cannot be
  // quiesced as asked (then nothing is left frozen).
  virtual std::unique_ptr<QuiescedVm> Quiesce(const std::string& name, QuiesceMethod method,
                                              std::chrono::milliseconds timeout) = 0;
  // Undoes a quiesce that a crashed run left behind (from the journal): thaw
  // and resume as needed. Never throws for a VM that is already running.
  virtual void Recover(const std::string& name, QuiesceMethod method) = 0;
};

// Connects to uri (e.g. "qemu:///system", or "test:///path/domains.xml" in
// tests). Throws Error naming the uri and libvirt's message.
std::unique_ptr<Hypervisor> ConnectLibvirt(const std::string& uri, Logger* log);

// The file= or dev= source of each /domain/devices/disk in a libvirt domain
// XML (cdroms and disks without a local source left out), in document order.
// The XML is read as libvirt writes it: UTF-8, at most 10 MiB, no DOCTYPE (so
// no entity is declared, let alone expanded or fetched). Throws Error naming
// vm_name (when given) if the XML is not like that or is not well-formed.
std::vector<std::string> DiskSourcesFromDomainXml(const std::string& xml,
                                                  const std::string& vm_name = "");

// Testing only: makes every later libvirt call named call ("fsfreeze",
// "fsthaw", "send-key", "suspend", "resume") sleep for delay before it starts,
// as a hung hypervisor would. A zero delay removes it.
void SetLibvirtCallDelayForTesting(const std::string& call, std::chrono::milliseconds delay);

}  // namespace vmback
