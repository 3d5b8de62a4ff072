#include "mount/instant_restore.h"

#include <exception>
#include <thread>

#include "os/fuse_serve.h"
#include "os/group.h"
#include "os/subprocess.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr char kInstantPrefix[] = "vmback-instant-";
constexpr char kMountDir[] = "mnt";
constexpr char kRecord[] = "instant.json";
constexpr auto kQemuImgTimeout = std::chrono::minutes(2);
constexpr auto kUmountTimeout = std::chrono::seconds(30);
constexpr int kUmountTries = 10;  // a second apart: QEMU lets go of a backing file a moment after a pivot

// One disk of the VM: what the overlay is made on, and where it goes.
struct InstantDisk {
  std::string target;
  std::string in_point;        // VOLUME or VOLUME/path
  std::string backing_format;  // "raw" or "qcow2"
  std::string overlay;         // BASE/NAME-TARGET.qcow2
  std::string copy;            // MIGRATE_TO/NAME-TARGET.img; "" without migrate_to
};

void RunChecked(Env* env, const std::vector<std::string>& argv, std::chrono::seconds timeout,
                const std::string& what) {
  RunLimits limits;
  limits.deadline = std::chrono::steady_clock::now() + timeout;
  const RunResult r = env->RunLimited(argv, limits);
  if (r.exit_code != 0) throw Error(ErrorKind::kOther, what + ": " + DescribeFailure(argv, r));
}

// umount dir, again while it is busy; true when it is not mounted (any more).
bool Unmount(Env* env, const std::string& dir, Logger* log) {
  std::string last;
  for (int i = 0; i < kUmountTries; i++) {
    RunLimits limits;
    limits.deadline = std::chrono::steady_clock::now() + kUmountTimeout;
    const RunResult r = env->RunLimited({"umount", dir}, limits);
    if (r.exit_code == 0 || r.err.find("not mounted") != std::string::npos) return true;
    last = DescribeFailure({"umount", dir}, r);
    SleepFor(std::chrono::seconds(1));
  }
  log->Error("cannot unmount " + dir + ": " + last);
  return false;
}

bool DomainExists(Hypervisor* hv, const std::string& name) {
  try {
    hv->Domain(name);
    return true;
  } catch (const Error& e) {
    if (e.kind() != ErrorKind::kNotFound) throw;
    return false;
  }
}

void CheckName(const std::string& name) {
  if (!IsValidVmName(name) || name == "." || name == "..")
    ThrowConfig("'" + EscapeForTerminal(name) + "' cannot name a domain and its work directory");
}

}  // namespace

std::string InstantDirOf(const std::string& dir, const std::string& name) {
  return JoinPath(dir, kInstantPrefix + name);
}

void InstantRestore(const DestinationOpener& open, Hypervisor* hv, Env* env, const InstantRestoreRequest& request,
                    Logger* log) {
  std::string point;
  std::vector<VmRecord> vms = open()->PointVms(request.point, &point);
  const VmRecord& vm = FindVmRecord(vms, request.vm, point);
  const std::string name = request.new_name.empty() ? vm.name : request.new_name;
  CheckName(name);
  const std::string what = "instant restore of VM " + EscapeForTerminal(vm.name) + " from point " + point;
  if (DomainExists(hv, name))
    ThrowConfig("a domain named " + EscapeForTerminal(name) + " exists already; it is never redefined: give --name NEW");
  if (env->Status(request.dir).kind != FileKind::kDir)
    ThrowConfig("--dir " + request.dir + " is not a directory (a symlink is not followed)");
  const std::string base = InstantDirOf(request.dir, name);
  if (env->Status(base).kind != FileKind::kMissing)
    ThrowConfig(base + " exists: an instant restore named " + EscapeForTerminal(name) +
                " runs or was not cleaned up ('vmback instant-restore --cleanup " + EscapeForTerminal(name) + "')");
  if (!request.migrate_to.empty() && env->Status(request.migrate_to).kind != FileKind::kDir)
    ThrowConfig("--migrate-to " + request.migrate_to + " is not a directory (a symlink is not followed)");
  const std::string mnt = JoinPath(base, kMountDir);
  std::vector<InstantDisk> disks;
  std::vector<RestoredDisk> overlays;
  PointFsOptions options;
  for (const auto& d : vm.disks) {
    if (!d.located)
      ThrowConfig(what + ": disk " + d.target + " (" + EscapeForTerminal(d.source) +
                  ") is not in the point, so the VM cannot run from it");
    InstantDisk disk;
    disk.target = d.target;
    disk.in_point = d.path.empty() ? d.volume : d.volume + "/" + d.path;
    disk.backing_format = d.format == "qcow2" ? "qcow2" : "raw";
    disk.overlay = JoinPath(base, name + "-" + d.target + ".qcow2");
    if (!request.migrate_to.empty()) {
      disk.copy = JoinPath(CanonicalPath(request.migrate_to),
                           name + "-" + d.target + (request.migrate_format == "qcow2" ? ".qcow2" : ".img"));
      if (env->Status(disk.copy).kind != FileKind::kMissing) ThrowConfig(disk.copy + " exists; not overwritten");
    }
    options.only.push_back(disk.in_point);
    overlays.push_back({d.target, disk.overlay, "qcow2"});
    disks.push_back(std::move(disk));
  }
  // Checked (and so the record's XML) before anything is made.
  const std::string xml = RewriteDomainXml(vm.domain_xml, overlays, request.new_name, what);

  options.point = point;
  options.cache_bytes = request.cache_bytes;
  if (auto ids = UserIds(request.qemu_user)) {
    options.owner = std::make_pair(static_cast<uint32_t>(ids->first), static_cast<uint32_t>(ids->second));
  } else {
    log->Info("no user " + request.qemu_user + ": the images are shown with the owners and modes recorded");
  }
  PointFs fs(open, options, log);  // a point that cannot be read fails before anything is made
  env->MakeNewDir(base);

  bool started = false, migrated = false, defined = false;
  std::exception_ptr failure, serve_failure;
  std::atomic<bool> stop{false};
  std::thread worker;
  auto work = [&] {
    for (const auto& d : disks)
      RunChecked(env,
                 {"qemu-img", "create", "-q", "-f", "qcow2", "-b", JoinPath(mnt, d.in_point), "-F", d.backing_format,
                  d.overlay},
                 kQemuImgTimeout, what + ": the overlay of disk " + d.target);
    hv->DefineDomain(xml);
    defined = true;
    hv->StartDomain(name);
    started = true;
    log->Info("VM " + EscapeForTerminal(name) + " runs from point " + point + " (its writes go to the overlays in " +
              base + ")");
    if (request.migrate_to.empty()) return;
    for (const auto& d : disks) {
      log->Info("copying disk " + d.target + " of " + EscapeForTerminal(name) + " to " + d.copy + " while it runs");
      hv->CopyDiskAndPivot(name, d.target, d.copy, request.migrate_format, &stop, nullptr);
      log->Info("VM " + EscapeForTerminal(name) + " runs on " + d.copy + " for disk " + d.target);
    }
    migrated = true;
  };
  FuseStopper stopper;
  try {
    env->SetMode(base, 0711);  // QEMU enters it, and lists nothing
    env->MakeNewDir(JoinPath(base, kMountDir));
    WriteFileAtomic(env, JoinPath(base, kRecord),
                    nlohmann::json{{"name", name}, {"vm", vm.name}, {"point", point}}.dump() + "\n");
    ServeFuse(mnt, {"vmback-instant", true, 1, &stopper}, &fs, [&] {
      log->Info("serving the images of point " + point + " to VM " + EscapeForTerminal(name) + " at " + mnt);
      worker = std::thread([&] {
        try {
          work();
          if (migrated) {  // the copies hold everything: the point is not read any more
            Unmount(env, mnt, log);
            stopper.Stop();
          }
        } catch (...) {
          failure = std::current_exception();
          Unmount(env, mnt, log);
          stopper.Stop();
        }
      });
    });
  } catch (...) {
    // Never served (the mount failed): nothing uses the work directory.
    if (!worker.joinable()) {
      env->RemoveTree(base);
      throw;
    }
    serve_failure = std::current_exception();  // served, then the FUSE loop failed: as below
  }
  stop = true;
  if (worker.joinable()) worker.join();
  if (!failure) failure = serve_failure;
  if (migrated) {
    env->RemoveTree(base);
    log->Info("VM " + EscapeForTerminal(name) + " migrated to its own disks; the mount and the overlays are gone");
    return;
  }
  if (failure && !started) {
    // Nothing runs on the overlays: undo it all.
    if (defined) {
      try {
        hv->RemoveDomain(name);
      } catch (const std::exception& e) {
        log->Error("cannot undefine " + EscapeForTerminal(name) + ": " + e.what());
      }
    }
    env->RemoveTree(base);
    std::rethrow_exception(failure);
  }
  const std::string left = "VM " + EscapeForTerminal(name) + " still runs on the overlays in " + base +
                           ", which need the mount that is now gone: 'vmback instant-restore --cleanup " +
                           EscapeForTerminal(name) + "' forces it off and removes them";
  if (failure) {
    log->Error(left);
    std::rethrow_exception(failure);
  }
  if (started && DomainExists(hv, name) && hv->Domain(name).running) log->Warn(left);
}

void CleanupInstantRestore(Hypervisor* hv, Env* env, const std::string& dir, const std::string& name, Logger* log) {
  CheckName(name);
  const std::string base = InstantDirOf(dir, name);
  const FileStatus st = env->Status(base);
  if (st.kind == FileKind::kMissing) ThrowNotFound("no instant restore named " + EscapeForTerminal(name) + " in " + dir);
  if (st.kind != FileKind::kDir || st.uid != env->UserId())
    ThrowConfig(base + " is not a directory of ours (a symlink is not followed); left alone");
  if (DomainExists(hv, name)) {
    bool on_overlays = false;
    for (const auto& source : hv->Domain(name).disk_sources)
      on_overlays = on_overlays || source.rfind(base + "/", 0) == 0;
    if (on_overlays) {
      hv->RemoveDomain(name);
      log->Info("VM " + EscapeForTerminal(name) + " forced off and undefined");
    } else {
      log->Info("VM " + EscapeForTerminal(name) + " runs on its own disks (migrated): left as it is");
    }
  }
  const std::string mnt = JoinPath(base, kMountDir);
  bool mounted = true;  // a mount whose server died cannot even be looked at
  try {
    mounted = env->Status(mnt).kind != FileKind::kMissing;
  } catch (const Error&) {
  }
  if (mounted && !Unmount(env, mnt, log))
    throw Error(ErrorKind::kOther, "cannot unmount " + mnt + "; nothing removed");
  env->RemoveTree(base);
  log->Info("removed " + base);
}

}  // namespace vmback
