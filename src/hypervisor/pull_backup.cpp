// Pull-mode backups: the XML libvirt takes for a backup and its checkpoint,
// checkpoint names, the directory of the NBD socket, and what a hypervisor
// without backups says.
#include <string>
#include <vector>

#include "hypervisor/hypervisor.h"
#include "os/env.h"
#include "os/group.h"
#include "util/error.h"

namespace vmback {

namespace {

[[noreturn]] void NotSupported(const std::string& vm, const std::string& what) {
  throw Error(ErrorKind::kOther, "VM '" + vm + "': " + what + " is not supported by this hypervisor");
}

std::string Attr(const std::string& name, const std::string& value, const std::string& what) {
  return " " + name + "='" + XmlEscape(value, what) + "'";
}

// <disk name='vdb' backup='no'/> (or checkpoint='no') for each skipped disk.
std::string SkippedDisks(const PullBackupSpec& spec, const std::string& attr) {
  std::string xml;
  for (const std::string& target : spec.skip) {
    xml += "    <disk" + Attr("name", target, "a disk target") + " " + attr + "='no'/>\n";
  }
  return xml;
}

void CheckTarget(const BackupDisk& disk) {
  if (disk.target.empty()) ThrowConfig("a disk to back up has no target name");
}

// The <disks> element around lines, none when there are none (libvirt's
// schema refuses an empty one).
std::string Disks(const std::string& lines) {
  return lines.empty() ? "" : "  <disks>\n" + lines + "  </disks>\n";
}

}  // namespace

std::string CheckpointName(const std::string& point) { return kCheckpointPrefix + point; }

bool IsVmbackCheckpoint(const std::string& name) {
  const std::string prefix = kCheckpointPrefix;
  return name.size() > prefix.size() && name.compare(0, prefix.size(), prefix) == 0;
}

std::string XmlEscape(const std::string& text, const std::string& what) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '\'': out += "&apos;"; break;
      case '"': out += "&quot;"; break;
      default:
        if ((static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n' && c != '\r') ||
            c == 0x7f) {
          ThrowConfig(what + " has a control character, which XML cannot hold: " + text);
        }
        out += c;
    }
  }
  return out;
}

std::string PullBackupXml(const PullBackupSpec& spec) {
  std::string xml = "<domainbackup mode='pull'>\n";
  if (!spec.incremental.empty()) {
    xml += "  <incremental>" + XmlEscape(spec.incremental, "the checkpoint name") +
           "</incremental>\n";
  }
  xml += "  <server transport='unix'" + Attr("socket", spec.socket, "the NBD socket path") + "/>\n";
  std::string disks;
  for (const BackupDisk& disk : spec.disks) {
    CheckTarget(disk);
    disks += "    <disk" + Attr("name", disk.target, "a disk target") + " backup='yes' type='file'>\n";
    disks += "      <scratch" + Attr("file", disk.scratch, "a scratch file path") + "/>\n";
    disks += "    </disk>\n";
  }
  return xml + Disks(disks + SkippedDisks(spec, "backup")) + "</domainbackup>\n";
}

std::string CheckpointXml(const PullBackupSpec& spec) {
  std::string xml = "<domaincheckpoint>\n";
  xml += "  <name>" + XmlEscape(spec.checkpoint, "the checkpoint name") + "</name>\n";
  std::string disks;
  for (const BackupDisk& disk : spec.disks) {
    CheckTarget(disk);
    disks += "    <disk" + Attr("name", disk.target, "a disk target") + " checkpoint='bitmap'/>\n";
  }
  return xml + Disks(disks + SkippedDisks(spec, "checkpoint")) + "</domaincheckpoint>\n";
}

std::string MakeNbdSocketDir(const std::string& parent, const std::string& qemu_group) {
  std::optional<gid_t> gid = GroupId(qemu_group);
  if (!gid) ThrowNotFound("no group " + qemu_group + " for the NBD socket directory (is libvirt installed?)");
  Env* env = Env::Default();
  const std::string dir = JoinPath(parent, "nbd-" + RandomHex(6));
  env->MakeNewDir(dir);  // 0700 until its group is set
  try {
    if (env->SetOwner(dir, static_cast<uid_t>(-1), *gid)) env->SetMode(dir, 01730);
  } catch (...) {
    env->RemoveDir(dir);
    throw;
  }
  return dir;
}

void Hypervisor::BeginBackup(const std::string& vm, const PullBackupSpec&) {
  NotSupported(vm, "a pull-mode backup");
}

void Hypervisor::EndBackup(const std::string& vm) { NotSupported(vm, "a pull-mode backup"); }

std::vector<std::string> Hypervisor::Checkpoints(const std::string& vm) {
  NotSupported(vm, "listing checkpoints");
}

void Hypervisor::DeleteCheckpoint(const std::string& vm, const std::string&) {
  NotSupported(vm, "deleting a checkpoint");
}

}  // namespace vmback

namespace vmback {

std::string Hypervisor::DefineDomain(const std::string&) {
  throw Error(ErrorKind::kOther, "this hypervisor connection cannot define domains");
}

void Hypervisor::StartDomain(const std::string& vm) { NotSupported(vm, "starting a domain"); }

void Hypervisor::RemoveDomain(const std::string& vm) { NotSupported(vm, "removing a domain"); }

void Hypervisor::CopyDiskAndPivot(const std::string& vm, const std::string&, const std::string&, const std::string&,
                                  const std::atomic<bool>*, const std::function<void(uint64_t, uint64_t)>&) {
  NotSupported(vm, "copying a disk while it runs");
}

}  // namespace vmback
