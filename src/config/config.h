// The TOML configuration: which sources to back up, into which target.
//
//   [target]
//   type = "store"            # the built-in store; or "zfs", "btrfs", "dir"
//   path = "/mnt/backup/vmback"
//   # type = "zfs": dataset = "usbpool/vmback" instead of path; points are
//   # snapshots DATASET@<snapshot_prefix><UTC time> (prefix default "vmback-")
//   # type = "btrfs": path = a subvolume; points are read-only snapshots beside it
//   # type = "dir": path = a plain directory; the mirror alone, no history
//   # block_size = "128K"     # in-place targets: default the record size
//
//   mirrors = ["/mnt/usb2/vmback"]   # further copies, each on its own disk
//   lock_wait = 600           # seconds to wait for another run's lock
//
//   [retention]               # what prune keeps (the newest point of each period)
//   keep_last = 3
//   keep_within = "2d"
//   hourly = 24
//   daily = 7
//   weekly = 4
//   monthly = 12
//   yearly = 3
//
//   [run]
//   read_limit = "50M"        # MiB/s for reading sources (default: no limit)
//   full_read_every = "30d"   # read every file when the last full read is older
//
//   [store]                   # the built-in store's housekeeping
//   keep_bad = "30d"          # prune removes damaged copies set aside (*.bad-*)
//                             # longer ago than this
//
//   [report]
//   dir = "/var/lib/vmback/reports"   # a JSON report per run
//   keep = 30
//   metrics_file = "/var/lib/prometheus/node-exporter/vmback.prom"
//
//   [[volume]]
//   name = "images"           # unique; names the volume inside each point
//   source = "/var/lib/libvirt/images"   # a directory, image file or block device
//   one_file_system = true    # trees: do not cross mount points (rsync -x)
//   snapshot = "lvm"          # lvm | btrfs | reflink | none; unset: read live
//                             # (a warning when a running VM has a disk on it);
//                             # "none" written: read live by choice, no warning
//   track_changes = true      # reflink, btrfs: keep the snapshot as the next
//                             # run's base; read only the extents changed since
//   vms = "auto"              # the default: the VMs libvirt knows with a disk
//                             # on the volume; or names from [[vm]]; [] = none
//   exclude = ["/var/cache/*", "*.tmp"]   # gitignore-style (util/exclude.h)
//   exclude_caches = true     # leave out directories with a CACHEDIR.TAG
//
//   [[vm]]                    # each must belong to a volume (named in its vms,
//   name = "web"              # or found by "auto"): else a config error at run
//   quiesce = "auto"
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hypervisor/hypervisor.h"
#include "retention/policy.h"
#include "source/snapshot.h"

namespace vmback {

// What a file-system volume's snapshot is read as: mounted and copied as a
// tree, or its bytes as an image.
enum class VolumeMode { kFilesystem, kBlock };
const char* VolumeModeName(VolumeMode m);

// The kind of [target]: the built-in store, or an in-place target.
enum class TargetType { kStore, kZfs, kBtrfs, kDir };
const char* TargetTypeName(TargetType t);

struct VolumeConfig {
  std::string name;
  std::string source;
  bool one_file_system = true;
  SnapshotKind snapshot = SnapshotKind::kNone;  // vmback run, backup -c
  // 'snapshot' was written in the file: "none" then is a choice (read live,
  // said in plan and report); unset, it is the default, and a running VM
  // with a disk on the volume makes it a warning.
  bool snapshot_given = false;
  std::string snapshot_size = "10G";
  // snapshot = "reflink" or "btrfs": keep each run's snapshot as the base of
  // the next one, whose change list then comes from the extents the two no
  // longer share (read only what changed). Costs the space of a day's change.
  bool track_changes = false;
  VolumeMode mode = VolumeMode::kFilesystem;
  std::vector<std::string> vms;     // VMs to quiesce before the snapshot (when !vms_auto)
  // The VMs libvirt knows with a disk on this volume, the running ones
  // quiesced: vms = "auto", and the default when 'vms' is not written.
  bool vms_auto = true;
  bool vms_given = false;           // 'vms' was written in the file (vms = [] means none)
  // Entries left out of the volume's trees (util/exclude.h), each pattern
  // checked here; and whether directories tagged with a CACHEDIR.TAG are.
  std::vector<std::string> exclude;
  bool exclude_caches = false;
  int line = 0;  // where it was declared, for error messages
};

struct VmConfig {
  std::string name;
  QuiesceMethod quiesce = QuiesceMethod::kAuto;
  int line = 0;
};

struct RunConfig {
  std::string state_dir = "/var/lib/vmback";  // the crash journal lives here
  // snapshot = "libvirt": where each backup job's NBD socket directory is
  // made. QEMU (user libvirt-qemu) must be able to enter it, so it is not
  // the state dir (0700): made 0711, root's; each job's directory in it is
  // 01730 root:libvirt-qemu (MakeNbdSocketDir).
  std::string nbd_dir = "/run/vmback";
  int max_freeze_seconds = 30;   // abort the snapshot step and thaw beyond this
  int call_timeout_seconds = 10; // each libvirt call
  uint64_t read_limit = 0;       // bytes/s for reading the sources; 0 = no limit
  // A backup reads every file (as --full-read) when no point this recent
  // was a full read: what the metadata check cannot see. 0 = never.
  int64_t full_read_every_ns = 0;
};

// What a run leaves behind for monitoring ([report]).
struct ReportConfig {
  std::string dir;           // a JSON report per run (vmback-<UTC>-<kind>.json); "" = none
  int keep = 30;             // newest reports kept in dir
  std::string metrics_file;  // Prometheus textfile (node_exporter); "" = none
};

// [store]: the built-in store's housekeeping.
struct StoreConfig {
  // Damaged copies heal set aside (*.bad-<ns>) are removed by prune once
  // older than this.
  int64_t keep_bad_ns = 30LL * 24 * 3600 * 1000000000;
};

struct TargetConfig {
  TargetType type = TargetType::kStore;
  std::string path;                  // store, btrfs (a subvolume), dir
  std::string dataset;               // zfs: "pool/name", mounted
  std::string snapshot_prefix = "vmback-";  // zfs, btrfs: names of the points
  uint32_t block_size = 0;           // zfs, btrfs, dir: 0 = the file system's record size
  std::vector<std::string> mirrors;  // further copies of the store
  int lock_wait_seconds = 0;
  // store: the store must be encrypted (a plain store there is refused, so
  // that a swapped disk cannot take the backups in the clear), and the key
  // file that opens it (a path; never a passphrase: see store/keys.h).
  bool encrypt = false;
  std::string key_file;
};

// [[replicate]] (a zfs target only): after each point, vmback's snapshots
// of the target's dataset are sent to another dataset, on another pool of
// this host or over ssh, as `zfs send -I BASE POINT | zfs recv`:
//
//   [[replicate]]
//   dataset = "offsite/vmback"   # receives DATASET@<prefix><UTC time>
//   host = "backup@site"         # optional: over ssh (BatchMode); else here
//   [replicate.retention]        # what the receiver keeps (default: [retention];
//   daily = 30                   # an empty table: every point, nothing destroyed)
struct ReplicaConfig {
  std::string dataset;
  std::string host;               // "" = this host
  RetentionPolicy retention;      // [replicate.retention]
  bool retention_given = false;   // else the target's [retention] applies
  int line = 0;                   // where it was declared
  // "offsite/vmback" or "backup@site:offsite/vmback", for messages.
  std::string where() const { return host.empty() ? dataset : host + ":" + dataset; }
};

// [s3]: how to reach the buckets that hold copies of the store
// ([target] mirrors = ["s3://BUCKET/PREFIX"]). The keys are never here:
// they come from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or the AWS
// credentials file (its profile named here).
//
//   [s3]
//   endpoint = "https://s3.example.net"   # else AWS_ENDPOINT_URL
//   addressing = "path"                   # or "virtual" (BUCKET.host)
//   profile = "backup"                    # of ~/.aws/credentials
//   upload_limit = "20M"                  # bytes per second, all uploads
struct S3TableConfig {
  bool given = false;
  int line = 0;
  std::string endpoint;
  std::string addressing;
  std::string profile;
  uint64_t upload_limit = 0;
};

struct Config {
  std::string file;  // the file it was read from
  TargetConfig target;
  std::vector<VolumeConfig> volumes;
  RetentionPolicy retention;  // empty: prune refuses to guess
  std::string libvirt_uri = "qemu:///system";
  RunConfig run;
  ReportConfig report;
  StoreConfig store;
  std::vector<VmConfig> vms;
  std::vector<ReplicaConfig> replicas;  // [[replicate]]
  S3TableConfig s3;
};

// Throws Error(kConfig) with "FILE:LINE: message" for malformed TOML, unknown
// keys or tables, wrong value types, missing or duplicate names. Relative
// paths are taken relative to the config file's directory.
Config LoadConfig(const std::string& path);
Config ParseConfig(std::string_view text, const std::string& file_name);

// A volume name must be usable as one path component: non-empty, no '/',
// not "." or "..", no control characters, valid UTF-8.
bool IsValidVolumeName(std::string_view name);

// A ZFS dataset name that is safe on a command line and in an ssh command:
// components of letters, digits and _ - : . separated by single '/', none
// empty, the first not starting with '-', at most 255 bytes, no '@'.
bool IsPlainZfsDatasetName(std::string_view name);
// An ssh destination "host" or "user@host": letters, digits and . _ - @,
// not starting with '-', at most 255 bytes.
bool IsPlainSshHost(std::string_view host);

}  // namespace vmback
