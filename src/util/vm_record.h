// What a point records of each VM whose disks it holds, so that a VM can be
// brought back whole (`restore --vm`, `ls --vms`): its libvirt domain XML
// and, for each disk, where the point holds it. Written by `vmback run`
// into a store's manifest ("vms") or an in-place point's description; read
// back as hostile input and checked here, where it is decoded.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace vmback {

struct VmDisk {
  std::string target;  // the disk's target in the guest, "vda": [a-z0-9_], 1 to 32 bytes
  std::string source;  // its path on the host at backup time (informational)
  // What the point holds for it: "raw" (a block device, or a disk read
  // through libvirt: the bytes the guest saw) or the image file's format
  // from the domain XML ("qcow2"); "" when not known.
  std::string format;
  std::string volume;  // the volume holding it; "" when none of the point's volumes does
  // Its path inside the volume, components joined with '/'; "" when the
  // volume is the disk itself (a block device or one image file).
  std::string path;
  bool located = false;  // volume and path say where it is (else it is not in the point)
};

struct VmRecord {
  std::string name;        // the libvirt domain's name
  std::string domain_xml;  // its persistent definition (no secrets), at most kMaxVmXmlBytes
  std::vector<VmDisk> disks;  // every disk of the domain, in its XML's order
};

inline constexpr size_t kMaxVmXmlBytes = 1 << 20;
inline constexpr size_t kMaxVmRecords = 4096;
inline constexpr size_t kMaxVmDisks = 256;

// A domain name vmback takes from a point or a command line: 1 to 200
// bytes of UTF-8 without control characters or '/'.
bool IsValidVmName(const std::string& name);

nlohmann::json VmRecordsToJson(const std::vector<VmRecord>& vms);
// Checks every field: the bounds above, names, targets, a path of plain
// components below its volume, a volume that is one of `volumes` (the
// point's). Throws Error(kCorrupt) naming `where` and what is wrong.
std::vector<VmRecord> VmRecordsFromJson(const nlohmann::json& j, const std::vector<std::string>& volumes,
                                        const std::string& where);

// The record of VM name in vms; Error(kNotFound) naming it, the point and
// the VMs it holds, when there is none.
const VmRecord& FindVmRecord(const std::vector<VmRecord>& vms, const std::string& name, const std::string& point);

}  // namespace vmback
