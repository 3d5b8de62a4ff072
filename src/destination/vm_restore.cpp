#include "destination/vm_restore.h"

#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

void AddStats(RestoreStats* sum, RestoreStats s) {
  sum->files += s.files;
  sum->dirs += s.dirs;
  sum->other += s.other;
  sum->bytes += s.bytes;
  sum->warnings += s.warnings;
  sum->skipped += s.skipped;
  sum->damaged += s.damaged;
  for (auto& d : s.damage)
    if (sum->damage.size() < 1000) sum->damage.push_back(std::move(d));
}

// The directory the disks go to, made private (with its missing parents)
// when new; a symlink or anything but a directory is refused. Returns its
// resolved path, as the domain's disks will name it.
std::string PrepareDir(Env* env, const std::string& dir) {
  const FileStatus st = env->Status(dir);
  if (st.kind == FileKind::kMissing) {
    const std::string parent = DirName(dir);
    if (parent != dir && env->Status(parent).kind == FileKind::kMissing) PrepareDir(env, parent);
    env->MakeNewDir(dir);
  } else if (st.kind != FileKind::kDir) {
    ThrowConfig("--to " + dir + " is not a directory (a symlink is not followed): give a directory for the disks");
  }
  return CanonicalPath(dir);
}

}  // namespace

std::string VmDiskFileName(const std::string& vm, const std::string& target, const std::string& format) {
  return vm + "-" + target + (format == "qcow2" ? ".qcow2" : ".img");
}

VmRestoreResult RestoreVm(Destination* dest, Env* env, Hypervisor* hv, const VmRestoreRequest& request,
                          Logger* log) {
  VmRestoreResult result;
  const std::vector<VmRecord> vms = dest->PointVms(request.point, &result.point);
  const VmRecord& vm = FindVmRecord(vms, request.vm, result.point);
  const std::string what = "VM " + EscapeForTerminal(vm.name) + " in point " + result.point;
  if (!IsValidVmName(vm.name) || vm.name == "." || vm.name == "..")
    ThrowConfig(what + ": its name cannot name a file");
  for (const auto& d : vm.disks) {
    if (d.located) continue;
    const std::string line = d.target + ": " + EscapeForTerminal(d.source);
    if (request.define)
      ThrowConfig(what + ": disk " + line +
                  " is not in the point (it lies on no volume backed up), so the VM cannot be defined on "
                  "restored disks; nothing restored. Restore without --define, and define it by hand");
    result.left_out.push_back(line);
  }
  std::string name;
  if (request.define) {
    if (hv == nullptr) ThrowConfig("--define needs a libvirt connection");
    name = request.new_name.empty() ? vm.name : request.new_name;
    if (!IsValidVmName(name)) ThrowConfig("--name '" + EscapeForTerminal(name) + "' is not a domain name");
    bool exists = true;
    try {
      hv->Domain(name);
    } catch (const Error& e) {
      if (e.kind() != ErrorKind::kNotFound) throw;
      exists = false;
    }
    if (exists)
      ThrowConfig("a domain named " + EscapeForTerminal(name) +
                  " exists already; it is never redefined: give --name NEW to define the restored VM beside it");
  }
  // The disks' files; the XML rewritten for them (and so checked, with
  // the names they will have) before anything is written.
  auto plan = [&](const std::string& dir) {
    result.disks.clear();
    for (const auto& d : vm.disks) {
      if (!d.located) continue;
      const bool convert = request.format == ImageFormat::kQcow2 && d.format != "qcow2";
      const std::string format = convert || d.format == "qcow2" ? "qcow2" : "raw";
      result.disks.push_back({d.target, JoinPath(dir, VmDiskFileName(vm.name, d.target, format)), format});
    }
    return request.define ? RewriteDomainXml(vm.domain_xml, result.disks, request.new_name, what) : "";
  };
  plan("/restore");
  const std::string xml = plan(PrepareDir(env, request.to_dir));
  for (size_t i = 0, k = 0; i < vm.disks.size(); i++) {
    const VmDisk& d = vm.disks[i];
    if (!d.located) continue;
    const RestoredDisk& r = result.disks[k++];
    const std::string path = d.path.empty() ? d.volume : d.volume + "/" + d.path;
    RestoreOptions options = request.options;
    options.one_file = true;
    const ImageFormat format =
        r.format == "qcow2" && d.format != "qcow2" ? ImageFormat::kQcow2 : ImageFormat::kRaw;
    log->Info("restoring disk " + d.target + " of " + what + " (" + EscapeForTerminal(path) + ") to " +
              EscapeForTerminal(r.path));
    AddStats(&result.stats,
             RestoreInFormat(dest, env, format, result.point, path, r.path, options, request.cancel, log));
  }
  for (const auto& line : result.left_out)
    log->Warn(what + ": disk " + line + " is not in the point (on no volume backed up); not restored");
  if (request.define) result.defined = hv->DefineDomain(xml);
  return result;
}

}  // namespace vmback
