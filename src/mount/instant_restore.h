// `vmback instant-restore`: a VM booted straight from a point. Its disk
// images are served read-only from the point (a FUSE mount of that point
// showing QEMU those images alone), each under a qcow2 overlay that takes
// the guest's writes; the VM is defined on the overlays and started at
// once, and (migrate_to) its disks are then copied to plain images while
// it runs and the VM pivoted onto them, after which the mount goes.
#pragma once

#include <cstdint>
#include <string>

#include "hypervisor/hypervisor.h"
#include "mount/point_fs.h"
#include "os/env.h"
#include "util/log.h"

namespace vmback {

struct InstantRestoreRequest {
  std::string point = "latest";
  std::string vm;        // as the point records it ('vmback ls POINT --vms')
  std::string new_name;  // the domain to define; "": the VM's own name
  // Where its work directory is made, DIR/vmback-instant-NAME (root's,
  // 0711: QEMU must reach the overlays and the mount inside it).
  std::string dir = "/var/lib/libvirt/images";
  std::string migrate_to;               // "": the VM stays on the overlays until cleanup
  std::string migrate_format = "raw";   // of the images in migrate_to: "raw" or "qcow2"
  std::string qemu_user = "libvirt-qemu";  // shown as the owner of the served images
  uint64_t cache_bytes = 128ull << 20;
};

// DIR/vmback-instant-NAME.
std::string InstantDirOf(const std::string& dir, const std::string& name);

// Serves the VM's images from the point (opened through open) in the
// foreground while the VM starts and runs. Without migrate_to it serves
// until SIGINT, SIGTERM or SIGHUP, or until `CleanupInstantRestore`
// unmounts it; with migrate_to, until every disk has been copied and the
// VM pivoted onto the copies (MIGRATE_TO/NAME-TARGET.img, or .qcow2), and
// then it removes its work directory. Refused before anything is made: a
// point without this VM, a disk of it the point does not hold, a domain
// of the name that exists, a work directory that exists (a restore of that
// name is running or was not cleaned up). When a step fails, what was made
// is undone (the domain forced off and undefined) and Error names the step.
void InstantRestore(const DestinationOpener& open, Hypervisor* hv, Env* env, const InstantRestoreRequest& request,
                    Logger* log);

// Undoes an instant restore named name in dir: the domain forced off and
// undefined when it still runs on the overlays (a VM migrated to its own
// disks is left alone), the mount unmounted (its server ends), the overlays
// and the work directory removed. Error naming what could not be undone.
void CleanupInstantRestore(Hypervisor* hv, Env* env, const std::string& dir, const std::string& name, Logger* log);

}  // namespace vmback
