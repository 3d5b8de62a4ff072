// Quiescing VMs through the libvirt C API: the guest agent's fsfreeze, or
// Alt+SysRq+S (emergency sync) then suspend, or suspend alone. Whatever was
// done is undone by the guard that Quiesce returns, on every path.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
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

// ------------------------------------------------------------ pull-mode backups
//
// A libvirt pull-mode backup: libvirt exports each chosen disk of a running
// VM over NBD on a unix socket (export name: the disk's target, "vda"), as it
// was when the backup began, while the guest runs on; writes the guest makes
// meanwhile first copy the old blocks into the disk's scratch file. With
// `incremental`, each export also carries the meta context
// "qemu:dirty-bitmap:backup-<disk>": what changed since that checkpoint.
// With `checkpoint`, libvirt makes that checkpoint (a persistent dirty bitmap
// per disk) at the same instant, for the next incremental one.

// The checkpoints vmback makes are named "vmback-<point>"; it deletes only
// those (older ones it owns) and never touches any other.
inline constexpr char kCheckpointPrefix[] = "vmback-";
std::string CheckpointName(const std::string& point);  // "vmback-" + point
bool IsVmbackCheckpoint(const std::string& name);

struct BackupDisk {
  std::string target;   // the disk's target in the domain, "vda"
  std::string scratch;  // a file libvirt creates for it (in a directory the
                        // QEMU user can enter: MakeNbdSocketDir)
};

struct PullBackupSpec {
  std::string socket;             // the NBD server's unix socket
  std::vector<BackupDisk> disks;  // exported
  std::vector<std::string> skip;  // disk targets left out (backup='no', checkpoint='no')
  std::string incremental;        // the checkpoint it builds on; "": a full backup
  std::string checkpoint;         // the checkpoint to make with it; "": none
  // > 0: BeginBackup gives up after this long (less than its own 60 s),
  // as the guest is quiet meanwhile; a late begin is undone.
  std::chrono::milliseconds timeout{0};
};

// <domainbackup mode='pull'> for spec, every value escaped. Throws
// Error(kConfig) naming the value when one cannot be written in XML (a
// control character) or a disk has no target.
std::string PullBackupXml(const PullBackupSpec& spec);
// <domaincheckpoint> named spec.checkpoint with a bitmap on each of
// spec.disks (and checkpoint='no' on spec.skip). Throws like PullBackupXml.
std::string CheckpointXml(const PullBackupSpec& spec);
// &, <, >, ' and " as entities; other control characters than tab, newline
// and carriage return throw Error(kConfig) naming what (XML 1.0 has none).
std::string XmlEscape(const std::string& text, const std::string& what);

// The group QEMU runs as under libvirt's system daemon on Debian.
inline constexpr char kQemuGroup[] = "libvirt-qemu";
// Makes a new private directory under parent for one backup's NBD socket and
// scratch files, and returns its path. QEMU (group qemu_group) must bind the
// socket there and open the scratch files: the directory is root-owned, mode
// 01730 group qemu_group: the group may enter it and create entries (bind
// needs write and search permission) but not list it, nor remove or rename
// what it did not create (sticky); others have no access. When not root
// (no chown), it stays 0700: only a QEMU running as this user can use it.
// Throws Error naming the directory or the group (when it does not exist).
// REQUIRES: parent exists and the QEMU user can search it (x).
std::string MakeNbdSocketDir(const std::string& parent, const std::string& qemu_group = kQemuGroup);

// One disk of a domain, as its XML says: where it is, its target in the guest
// ("vda": the export name of a pull-mode backup) and its format (the
// driver's type: "qcow2", "raw"; "" when not written).
struct DomainDisk {
  std::string source;
  std::string target;
  std::string format;
};

struct DomainInfo {
  std::string name;
  bool running = false;        // running or paused (it has a live QEMU)
  bool paused = false;
  std::vector<std::string> disk_sources;  // file or block device paths of its disks
                                          // (cdrom media left out)
  std::vector<DomainDisk> disks;          // the same disks, with target and format
  // Its persistent definition (virDomainGetXMLDesc with
  // VIR_DOMAIN_XML_INACTIVE, no secrets): what a point records of it.
  std::string config_xml;
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

  // Pull-mode backups (see PullBackupSpec). Each throws Error naming the VM
  // (and the checkpoint) with libvirt's message; a hypervisor without them
  // throws Error(kOther) saying so.
  //
  // Starts the backup job of the running VM (virDomainBackupBegin), making
  // spec.checkpoint with it when given. The exports stay until EndBackup.
  virtual void BeginBackup(const std::string& vm, const PullBackupSpec& spec);
  // Ends the VM's backup job (virDomainAbortJob): the exports go, and the
  // scratch files may be removed. A VM that runs no job, or another kind of
  // job (a migration), is left alone: Error(kNotFound) saying so.
  virtual void EndBackup(const std::string& vm);
  // The names of the VM's checkpoints (virDomainListAllCheckpoints), sorted;
  // all of them, vmback's and others'.
  virtual std::vector<std::string> Checkpoints(const std::string& vm);
  // Deletes one of vmback's checkpoints (virDomainCheckpointDelete) and its
  // bitmaps. A name that is not IsVmbackCheckpoint is refused (Error(kOther))
  // without asking libvirt; one that is not there is Error(kNotFound).
  virtual void DeleteCheckpoint(const std::string& vm, const std::string& name);

  // Defines a domain from xml (virDomainDefineXML), without starting it,
  // and returns its name. A domain of that name that exists already is
  // refused (Error(kConfig) naming it), never redefined. A hypervisor
  // that cannot define throws Error(kOther) saying so.
  virtual std::string DefineDomain(const std::string& xml);
  // Starts the defined, shut off domain vm (virDomainCreate).
  virtual void StartDomain(const std::string& vm);
  // Forces vm off when it runs (virDomainDestroy) and undefines it (its
  // checkpoint metadata too). Error(kNotFound) when there is no such domain.
  virtual void RemoveDomain(const std::string& vm);
  // Copies disk target ("vda") of the running vm, its whole chain, into a
  // new image file dest of format ("raw", "qcow2") while the guest runs
  // (virDomainBlockCopy, a transient job), and once the copy has caught up
  // pivots the domain onto it (libvirt updates its persistent definition
  // too). progress(done, total) is called about once a second. When cancel
  // is set, the copy is aborted (the domain stays on its disk) and
  // Error(kOther) says so. Throws Error naming the VM and the disk.
  virtual void CopyDiskAndPivot(const std::string& vm, const std::string& target, const std::string& dest,
                                const std::string& format, const std::atomic<bool>* cancel,
                                const std::function<void(uint64_t, uint64_t)>& progress);
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
// The same disks with their targets and formats. A target or format that is
// not a short name of [a-z0-9_] (at most 32 bytes) is left "" (it is never
// used to name an export or a bitmap then).
std::vector<DomainDisk> DisksFromDomainXml(const std::string& xml, const std::string& vm_name = "");

// The <name> of a domain XML (read as DisksFromDomainXml reads it); Error
// naming what when there is none or it is not IsValidVmName.
std::string DomainNameOf(const std::string& xml, const std::string& what);

// A disk of a domain to restore, as RewriteDomainXml sets it.
struct RestoredDisk {
  std::string target;  // "vda"
  std::string path;    // the restored image file
  std::string format;  // its format, "raw" or "qcow2"
};
// xml (a domain XML, read as DisksFromDomainXml reads it) with each disk
// whose target is in disks made a plain file of that format at that path
// (its backing chain dropped: the restored image stands alone). With
// new_name, the domain is renamed, and its UUID, MAC addresses and UEFI
// variable store left for libvirt to make anew, so that it can be defined
// beside the original. A disk with a source that is not in disks (nor a
// cdrom) is Error(kConfig) naming it: the domain would use the original.
// So is an element that reaches into the host (anything in libvirt's qemu
// namespace, <hostdev>, <filesystem>, <script>): the XML comes from a
// backup, which others may have handled. what begins error messages.
std::string RewriteDomainXml(const std::string& xml, const std::vector<RestoredDisk>& disks,
                             const std::string& new_name, const std::string& what);

// Testing only: makes every later libvirt call named call ("fsfreeze",
// "fsthaw", "send-key", "suspend", "resume") sleep for delay before it starts,
// as a hung hypervisor would. A zero delay removes it.
void SetLibvirtCallDelayForTesting(const std::string& call, std::chrono::milliseconds delay);

}  // namespace vmback
