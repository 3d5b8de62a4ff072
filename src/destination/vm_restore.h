// `vmback restore --vm NAME`: every disk of one VM as a point holds it,
// restored into one directory, and (--define) the VM defined on them from
// the domain XML the point recorded, its disk paths rewritten.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "destination/destination.h"
#include "destination/image_format.h"
#include "hypervisor/hypervisor.h"

namespace vmback {

struct VmRestoreRequest {
  std::string point;  // a name, or "latest"
  std::string vm;
  std::string to_dir;  // made (0700) when it does not exist; must be a directory
  // kQcow2: raw disks converted (RestoreInFormat); disks the point holds as
  // qcow2 files stay as they are.
  ImageFormat format = ImageFormat::kRaw;
  bool define = false;
  std::string new_name;  // with define: the domain's name ("": the VM's own)
  RestoreOptions options;
  const std::atomic<bool>* cancel = nullptr;
};

struct VmRestoreResult {
  std::string point;                  // resolved
  std::vector<RestoredDisk> disks;    // restored, in the domain's order
  std::vector<std::string> left_out;  // disks the point does not hold (target: source)
  std::string defined;                // the domain defined; "" without define
  RestoreStats stats;                 // all disks together
};

// The file a disk of vm is restored to in to_dir: "VM-TARGET.img" (raw)
// or "VM-TARGET.qcow2".
std::string VmDiskFileName(const std::string& vm, const std::string& target, const std::string& format);

// Restores the disks of request.vm from request.point (PointVms). A disk
// the point does not hold is left out with a warning, or with define
// refused before anything is written (the domain would use the original).
// With define, a domain of the name to define that exists already is
// refused first (Error(kConfig) naming it; give new_name); hv must not be
// null then. Throws as Destination::Restore does, Error(kNotFound) when the
// point holds no such VM, Error(kConfig) when a destination file exists
// and options.overwrite does not allow it.
VmRestoreResult RestoreVm(Destination* dest, Env* env, Hypervisor* hv, const VmRestoreRequest& request,
                          Logger* log);

}  // namespace vmback
