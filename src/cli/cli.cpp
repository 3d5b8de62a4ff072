#include "cli/cli.h"

#include <CLI/CLI.hpp>
#include <signal.h>
#include <unistd.h>

#include <cstdlib>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <sstream>

#include "config/config.h"
#include "hypervisor/hypervisor.h"
#include "run/backup.h"
#include "run/job.h"
#include "run/prune.h"
#include "run/restore.h"
#include "report/metrics.h"
#include "report/report.h"
#include "inplace/target_ops.h"
#include "run/verify.h"
#include "os/subprocess.h"
#include "source/snapshot.h"
#include "inplace/target.h"
#include "util/encoding.h"
#include "util/progress.h"
#include "util/error.h"

namespace vmback {

namespace {

constexpr char kExitCodesHelp[] = R"(Exit status:
  0  success
  5  success with warnings (e.g. a mirror copy absent, a damaged copy repaired,
     blocks recorded lost by 'vmback repair')
  1  the operation failed; nothing was committed
  2  bad command line or configuration
  3  damage found (verify), or a point was committed without some entries that could not be read
  4  the store is locked by another vmback process)";

struct TargetArgs {
  std::string config;
  std::string store;
  std::string zfs, btrfs, dir;
  std::vector<std::string> mirrors;
  double lock_wait = -1;  // -1: from the config, else 0
};

void AddTargetOptions(CLI::App* cmd, TargetArgs* t) {
  auto* c = cmd->add_option("-c,--config", t->config, "configuration file (TOML)");
  auto* s = cmd->add_option("--store", t->store, "store directory (instead of a configuration)");
  auto* z = cmd->add_option("--zfs", t->zfs, "a ZFS dataset as an in-place target (e.g. usbpool/vmback)");
  auto* b = cmd->add_option("--btrfs", t->btrfs, "a btrfs subvolume as an in-place target");
  auto* d = cmd->add_option("--dir", t->dir, "a plain directory as an in-place target (no history)");
  std::vector<CLI::Option*> all = {c, s, z, b, d};
  for (auto* x : all)
    for (auto* y : all)
      if (x != y) x->excludes(y);
  cmd->add_option("--mirror", t->mirrors,
                  "another copy of the store (repeat for more); default: the copies recorded at init.\n"
                  "When the store's own directory holds no store (its disk not mounted), the first\n"
                  "of these that does serves");
  cmd->add_option("--lock-wait", t->lock_wait,
                  "seconds to wait for another vmback process holding the store (default 0)");
}

// The configuration a command works on: the file given with -c, or one
// made from --store/--zfs/--btrfs/--dir.
Config ResolveConfig(const TargetArgs& t) {
  Config c;
  if (!t.config.empty()) {
    c = LoadConfig(t.config);
  } else if (!t.store.empty()) {
    c.target.path = t.store;
  } else if (!t.zfs.empty()) {
    c.target.type = "zfs";
    c.target.dataset = t.zfs;
  } else if (!t.btrfs.empty()) {
    c.target.type = "btrfs";
    c.target.path = t.btrfs;
  } else if (!t.dir.empty()) {
    c.target.type = "dir";
    c.target.path = t.dir;
  } else {
    ThrowConfig("say which target: -c CONFIG, --store DIR, --zfs DATASET, --btrfs PATH or --dir PATH");
  }
  if (!t.mirrors.empty()) {
    if (c.target.type != "store") ThrowConfig("--mirror is for the built-in store; a " + c.target.type +
                                              " target is mirrored by its file system");
    c.target.mirrors = t.mirrors;
  }
  if (t.lock_wait >= 0) c.target.lock_wait_seconds = static_cast<int>(t.lock_wait);
  return c;
}

bool IsInplace(const Config& c) { return c.target.type != "store"; }

// Opens the store a command works on, from --store or the config's [target].
StoreOptions StoreOptionsFor(const Config& c, const TargetArgs& t) {
  StoreOptions options;
  options.mirrors = c.target.mirrors;
  options.lock_wait_seconds = t.lock_wait >= 0 ? t.lock_wait : c.target.lock_wait_seconds;
  return options;
}

std::unique_ptr<Store> OpenStore(const Config& c, const TargetArgs& t, LockMode mode, Logger* log) {
  return Store::Open(Env::Default(), c.target.path, mode, log, StoreOptionsFor(c, t));
}

// SIGINT, SIGTERM and SIGHUP set a flag that the run polls, so that it stops
// at the next step and cleans up (VMs resumed, snapshots dropped) instead of
// dying with things left behind. Restored on destruction.
std::atomic<bool> g_cancel{false};

class SignalCancel {
 public:
  SignalCancel() {
    struct sigaction sa = {};
    sa.sa_handler = [](int) { g_cancel.store(true); };
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < 3; i++) sigaction(kSignals[i], &sa, &old_[i]);
  }
  ~SignalCancel() {
    for (int i = 0; i < 3; i++) sigaction(kSignals[i], &old_[i], nullptr);
  }
  const std::atomic<bool>* flag() const { return &g_cancel; }

 private:
  static constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};
  struct sigaction old_[3];
};

int ExitFor(const Error& e) {
  switch (e.kind()) {
    case ErrorKind::kConfig: return kExitUsage;
    case ErrorKind::kLocked: return kExitLocked;
    case ErrorKind::kCorrupt: return kExitDamaged;
    default: return kExitFailed;
  }
}

// What a command leaves for monitoring ([report]): filled by the commands
// that report (run, backup, verify, prune) as they go, written at the end
// whatever the exit status.
struct Outcome {
  std::string kind;        // "run", "backup", "verify", "prune"; empty: nothing to report
  Config config;
  int64_t started_ns = 0;
  nlohmann::json body = nlohmann::json::object();
  RunMetrics metrics;
};

// The points in the configured target now (for vmback_points); nothing when
// it cannot be read.
std::optional<uint64_t> CountPoints(const Config& c, Logger* log) {
  try {
    Logger quiet(LogLevel::kError, false);
    if (IsInplace(c)) return OpenInplaceTarget(Env::Default(), c.target, &quiet)->ListPoints().size();
    StoreOptions o;
    o.mirrors = c.target.mirrors;
    return Store::Open(Env::Default(), c.target.path, LockMode::kShared, &quiet, o)->ListPoints().size();
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

// A metrics file per command, so that run, backup and verify do not
// overwrite each other's samples: [report] metrics_file for run, and
// "<stem>-<kind>.prom" beside it for the others.
std::string MetricsFileFor(const std::string& configured, const std::string& kind) {
  if (kind == "run") return configured;
  std::string stem = EndsWith(configured, ".prom") ? configured.substr(0, configured.size() - 5) : configured;
  return stem + "-" + kind + ".prom";
}

// Writes the JSON report and the metrics; a failure here is a warning (it
// must not turn a good backup into a failed one).
void LeaveReport(Outcome* o, int rc, const std::string& error, Logger* log) {
  if (o->kind.empty()) return;
  const ReportConfig& rc_cfg = o->config.report;
  if (rc_cfg.dir.empty() && rc_cfg.metrics_file.empty()) return;
  Env* env = Env::Default();
  const int64_t now = env->NowNanos();
  o->body["command"] = o->kind;
  o->body["exit_code"] = rc;
  o->body["started"] = FormatTimeUtc(o->started_ns);
  o->body["finished"] = FormatTimeUtc(now);
  if (!error.empty()) o->body["error"] = error;
  o->body["problems"] = log->problems();
  if (!rc_cfg.dir.empty()) {
    try {
      std::string path = WriteReport(env, rc_cfg.dir, o->kind, now, o->body, static_cast<size_t>(rc_cfg.keep));
      log->Debug("report written to " + path);
    } catch (const std::exception& e) {
      log->Warn(std::string("cannot write the report: ") + e.what());
    }
  }
  if (!rc_cfg.metrics_file.empty()) {
    try {
      std::string path = MetricsFileFor(rc_cfg.metrics_file, o->kind);
      Labels common = {{"command", o->kind}};
      RunMetrics& m = o->metrics;
      m.started_ns = o->started_ns;
      m.finished_ns = now;
      m.exit_code = rc;
      try {
        m.previous_success_seconds = PreviousLastSuccess(env, path, common);
      } catch (const std::exception& e) {
        log->Warn(std::string(e.what()) + " (the previous metrics; starting afresh)");
      }
      std::string where = IsInplace(o->config)
                              ? o->config.target.type + ":" +
                                    (o->config.target.type == "zfs" ? o->config.target.dataset : o->config.target.path)
                              : o->config.target.path;
      if (auto n = CountPoints(o->config, log)) m.points = {{where, *n}};
      WriteTextfile(env, path, BuildRunMetrics(m, common));
    } catch (const std::exception& e) {
      log->Warn(std::string("cannot write the metrics file: ") + e.what());
    }
  }
}

// Test seam for the crash sweeps (run, backup -c): VMBACK_TEST_CRASH_AT=STEP
// dies by SIGKILL (no clean-up) at that step, as a power cut or an OOM kill
// would; the next run must clean up.
StepHook CrashHookForTesting() {
  const char* at = std::getenv("VMBACK_TEST_CRASH_AT");
  if (at == nullptr || *at == '\0') return {};
  std::string target = at;
  return [target](const std::string& step) {
    if (step == target) ::kill(::getpid(), SIGKILL);
  };
}

// One line per volume read live (no snapshot), saying whether it was chosen.
void PrintLiveReads(const std::vector<SourceReport>& sources, std::ostream& out) {
  for (const auto& s : sources)
    if (s.read_live)
      out << "volume " << s.volume << ": read live"
          << (s.by_choice ? " (snapshot = \"none\")" : " (no snapshot set)") << "\n";
}

std::vector<VolumeBytes> VolumeBytesOf(const BackupResult& r, const std::vector<InplaceStats>* inplace) {
  std::vector<VolumeBytes> out;
  for (size_t i = 0; i < r.volumes.size(); i++) {
    uint64_t written = inplace && i < inplace->size() ? (*inplace)[i].bytes_written : 0;
    out.push_back({r.volumes[i].name, r.volumes[i].bytes_read, written});
  }
  if (!inplace && out.size() == 1) out[0].written = r.store.stored_bytes_written;
  return out;
}

}  // namespace

int RunCli(int argc, char** argv, std::ostream& out, std::ostream& err) {
  CLI::App app{
      "vmback: consistent, incremental, verified backups of KVM/libvirt VMs and their host.\n"
      "Sources (directory trees, VM image files, block devices) are cut into blocks, hashed\n"
      "with SHA-256, compressed and deduplicated into a store; every backup is a point\n"
      "you can list, verify and restore.",
      "vmback"};
  app.footer(std::string("\nQuick start:\n"
                         "  vmback store init /mnt/usb/vmback\n"
                         "  vmback backup --store /mnt/usb/vmback /var/lib/libvirt/images /etc\n"
                         "  vmback list --store /mnt/usb/vmback\n"
                         "  vmback restore --store /mnt/usb/vmback latest etc --to /tmp/etc\n\n") +
             kExitCodesHelp);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("vmback ") + VMBACK_VERSION);
  bool verbose = false, quiet = false;
  app.add_flag("-v,--verbose", verbose, "more detail on stderr");
  app.add_flag("-q,--quiet", quiet, "only warnings and errors on stderr");

  // store init
  auto* store_cmd = app.add_subcommand("store", "manage a built-in store");
  store_cmd->require_subcommand(1);
  auto* init = store_cmd->add_subcommand("init", "create a new, empty store in DIR");
  std::string init_dir, block_size_text = "64K";
  init->add_option("DIR", init_dir, "directory for the store (new or empty)")->required();
  init->add_option("--block-size", block_size_text,
                   "block size, a power of two from 4K to 16M (default 64K): smaller finds\n"
                   "more unchanged data in VM images, larger keeps the index smaller");
  std::vector<std::string> init_mirrors;
  init->add_option("--mirror", init_mirrors,
                   "another copy of the store, on another disk (repeat for more); every\n"
                   "write goes to every copy and a bad copy is repaired from a good one");
  init->footer("\nThe copies are recorded in each one's config.json by absolute path (a relative\n"
               "DIR is read against the working directory, here), and each gets a vmback-copy\n"
               "marker first.\n\n"
               "Examples:\n  vmback store init /mnt/usb/vmback --block-size 64K\n"
               "  vmback store init /mnt/usb1/vmback --mirror /mnt/usb2/vmback");
  auto* sync = store_cmd->add_subcommand("sync", "bring every copy of a store up to date with the others");
  TargetArgs sync_target;
  AddTargetOptions(sync, &sync_target);
  bool sync_init = false;
  sync->add_flag("--init", sync_init,
                 "also make the named copies (the config's [target] path and mirrors, or --store)\n"
                 "new copies where they are empty directories (new disks)");
  sync->footer("\nA copy that was unplugged during backups gets the packs and points it\n"
               "missed; points pruned meanwhile are removed from it, not brought back.\n"
               "A directory named with --mirror in this command that is empty or not there\n"
               "(a new or replaced disk) becomes a full copy, and every copy's config.json\n"
               "records it; with -c CONFIG, --init does the same for the copies the config\n"
               "names. Nothing else makes a new copy (only a copy whose making was cut short,\n"
               "marked by its vmback-copy file, is finished): an empty directory is the\n"
               "mount point of a disk that is not mounted until the command says otherwise.\n"
               "--mirror names the copies to use instead of the recorded ones: to add a\n"
               "disk, name the present copies too.\n\n"
               "Examples:\n  vmback store sync --store /mnt/usb1/vmback\n"
               "  vmback store sync --store /mnt/usb1/vmback --mirror /mnt/usb2/vmback\n"
               "  vmback store sync -c /etc/vmback.toml --init");

  // target init zfs
  auto* target_cmd = app.add_subcommand("target", "set up an in-place target (ZFS)");
  target_cmd->require_subcommand(1);
  auto* tinit = target_cmd->add_subcommand("init", "create a target on new disks");
  tinit->require_subcommand(1);
  auto* tinit_zfs = tinit->add_subcommand("zfs", "create a ZFS pool mirrored over the devices, with a dataset POOL/vmback");
  std::string zfs_pool, zfs_mountpoint;
  std::vector<std::string> zfs_devices;
  bool zfs_dry_run = false;
  tinit_zfs->add_option("POOL", zfs_pool, "name of the new pool")->required();
  tinit_zfs->add_option("DEVICE", zfs_devices, "two (or more) disks or partitions, mirrored")->required();
  tinit_zfs->add_option("--mountpoint", zfs_mountpoint, "where the pool is mounted (default /POOL)");
  tinit_zfs->add_flag("--dry-run", zfs_dry_run, "print the exact commands and run nothing");
  tinit_zfs->footer(
      "\nRuns: zpool create POOL mirror DEV DEV; zfs set compression=on, checksum=sha256,\n"
      "atime=off; zfs create POOL/vmback. ALL DATA ON THE DEVICES IS LOST.\n\n"
      "Then point the config at it:\n  [target]\n  type = \"zfs\"\n  dataset = \"POOL/vmback\"\n\n"
      "Example:\n  vmback target init zfs usbpool /dev/disk/by-id/usb-A /dev/disk/by-id/usb-B --dry-run");

  // backup
  auto* backup = app.add_subcommand("backup", "back up sources into the target and commit a point (no VMs)");
  TargetArgs backup_target;
  AddTargetOptions(backup, &backup_target);
  std::vector<std::string> backup_paths;
  bool full_read = false, backup_json = false;
  unsigned threads = 0;
  backup->add_option("PATH", backup_paths,
                     "with --store: directories, image files or block devices to back up;\n"
                     "each becomes a volume named after its last path component");
  backup->add_flag("--full-read", full_read, "read every file, even those whose size and mtime are unchanged");
  backup->add_option("--threads", threads, "hashing/compression threads (default: one per core)");
  backup->add_flag("--json", backup_json, "print the run's statistics as JSON on stdout");
  std::vector<std::string> backup_tags;
  backup->add_option("--tag", backup_tags,
                     "label the point (repeatable; letters, digits, . _ + : @ = -): a tagged point is\n"
                     "its own retention group, so prune never counts it against the nightly points")
      ->allow_extra_args(false);  // one value per --tag: the paths follow
  std::string read_limit_text;
  backup->add_option("--read-limit", read_limit_text,
                     "read the sources at most this fast, per second (e.g. 50M), so the VMs keep\n"
                     "their disk bandwidth; default: [run] read_limit, else no limit");
  backup->footer(
      "\nExamples:\n"
      "  vmback backup --store /mnt/usb/vmback /var/lib/libvirt/images /etc\n"
      "  vmback backup -c /etc/vmback.toml --json\n"
      "  vmback backup --store /mnt/usb/vmback --tag before-upgrade /etc\n\n"
      "A file whose size, mtime, ctime and inode number match the previous point of\n"
      "its volume is not read again; otherwise it is read in full and only blocks\n"
      "the store does not have yet are written.\n\n"
      "Retention (prune) groups points by host, volume set and tags: a one-off\n"
      "backup of other paths, or a tagged one, never displaces a nightly point.\n\n"
      "With -c, each volume is read as 'vmback run' reads it: from the snapshot its\n"
      "'snapshot' asks for (lvm, btrfs, reflink), fsck'ed and mounted read-only for\n"
      "mode = \"filesystem\", the snapshots journaled in [run] state_dir so that a\n"
      "crashed backup is cleaned up by the next backup or run. The VMs are not\n"
      "quiesced (libvirt is not asked; a snapshot is then crash-consistent) and\n"
      "nothing is pruned: for both, use 'vmback run'.");

  // list
  auto* list = app.add_subcommand("list", "list the points in the target");
  TargetArgs list_target;
  AddTargetOptions(list, &list_target);
  bool list_json = false;
  list->add_flag("--json", list_json, "print the points as JSON");
  list->footer("\nOne line per point, oldest first: name, UTC time, volumes. On a zfs or btrfs\n"
               "target the points are vmback's snapshots; a dir target has one, \"current\".\n\n"
               "Examples:\n  vmback list --store /mnt/usb/vmback\n  vmback list --zfs usbpool/vmback --json\n"
               "  vmback list -c /etc/vmback/vmback.toml");

  // restore
  auto* restore = app.add_subcommand("restore", "restore a point, a volume, a file or a subtree");
  TargetArgs restore_target;
  AddTargetOptions(restore, &restore_target);
  std::string restore_point, restore_path, restore_to;
  bool force = false;
  restore->add_option("POINT", restore_point, "point name from 'vmback list', or 'latest'")->required();
  restore->add_option("PATH", restore_path, "VOLUME or VOLUME/path/inside (default: the whole point)");
  restore->add_option("--to", restore_to, "destination: a new directory or file, or a block device")->required();
  restore->add_flag("--force", force, "overwrite an existing destination (needed for a block device)");
  bool no_owner = false, no_special = false, no_privileges = false, fail_fast = false;
  restore->add_flag("--fail-fast", fail_fast,
                    "stop at the first block no copy can give back (by default it is left zero, listed, "
                    "and the restore goes on; exit status 3)");
  restore->add_flag("--no-owner", no_owner, "do not restore owners: files belong to the restoring user");
  restore->add_flag("--no-special", no_special, "leave out device nodes, fifos and sockets");
  restore->add_flag("--no-privileges", no_privileges,
                    "drop setuid/setgid bits and security.* xattrs (capabilities, SELinux labels)");
  restore->footer(
      "\nBy default a restore is faithful, for disaster recovery: owners, setuid\n"
      "bits, device nodes and every xattr come back as they were backed up. To\n"
      "get files of a guest or another user back as root, add\n"
      "--no-owner --no-special --no-privileges. Nothing outside --to is ever\n"
      "written or deleted: --to may not be a symlink (except a /dev/VG/LV link\n"
      "to a block device, with --force), and --force never deletes across a\n"
      "mount point.\n"
      "\nExamples:\n"
      "  vmback restore --store /mnt/usb/vmback latest --to /srv/restore\n"
      "  vmback restore --store /mnt/usb/vmback 2026-11-26T180102Z images/web.qcow2 --to /tmp/web.qcow2\n"
      "  vmback restore -c /etc/vmback.toml latest vm-disk --to /dev/vg0/web --force");

  // verify
  auto* verify = app.add_subcommand("verify", "re-read and re-hash everything in the target");
  TargetArgs verify_target;
  AddTargetOptions(verify, &verify_target);
  bool verify_json = false;
  verify->add_flag("--json", verify_json, "print the report as JSON");
  std::string verify_subset, verify_limit_text;
  verify->add_option("--read-data-subset", verify_subset,
                     "store: read only part N of M of the pack data (N/M), this week's part\n"
                     "(auto/M), or a random share (10%); the points' structure is always checked");
  verify->add_option("--read-limit", verify_limit_text,
                     "store: read each copy at most this fast, per second (e.g. 50M)");
  verify->footer("\nThe store: every pack is read in full and every block re-hashed; each damaged\n"
                 "or missing block is traced to the points and files it affects.\n"
                 "--read-data-subset auto/4 in a weekly timer reads each pack once a month\n"
                 "(packaging/vmback-verify.timer does so).\n"
                 "A zfs or btrfs target: the file system's scrub (what it repaired from the\n"
                 "other disk is a warning, exit 5), then every point's files re-hashed against\n"
                 "the blockmaps stored in that point. Exit status 3 when anything is wrong.\n"
                 "A pack damaged on every copy: verify says which bad blocks a newer copy\n"
                 "already heals and which are lost, and that 'vmback repair' rewrites it.\n"
                 "Blocks recorded lost by repair are a note per file (exit 5), not damage.\n\n"
                 "Examples:\n  vmback verify --store /mnt/usb/vmback\n"
                 "  vmback verify -c /etc/vmback/vmback.toml --json\n"
                 "  vmback verify -c /etc/vmback/vmback.toml --read-data-subset auto/4 --read-limit 40M");

  // repair
  auto* repair = app.add_subcommand("repair", "rewrite the store's packs damaged on every copy without their bad blocks");
  TargetArgs repair_target;
  AddTargetOptions(repair, &repair_target);
  bool repair_dry_run = false, repair_json = false;
  repair->add_flag("--dry-run", repair_dry_run, "check and show what would be rewritten and lost; change no pack");
  repair->add_flag("--json", repair_json, "print the report as JSON");
  repair->footer("\nFirst a full verify (which heals each copy it can from the others). Then each\n"
                 "pack damaged on every copy is rewritten without its bad blocks: its good\n"
                 "blocks move to a new pack; a bad block a later backup wrote afresh into\n"
                 "another pack is simply dropped (nothing lost); a block nothing can give back\n"
                 "is recorded as lost (the file 'lost' in the store) and the points and files\n"
                 "that lose it are listed, once. The old pack is deleted only after the new\n"
                 "pack and index are durable. Afterwards verify is clean; blocks recorded lost\n"
                 "are a note (exit 5), restore leaves them zero and names them (exit 3).\n"
                 "To get a block back rather than lose it, back up the same data again first.\n"
                 "Exit status 0 when nothing was lost, 5 when blocks were recorded lost.\n\n"
                 "Examples:\n  vmback repair --store /mnt/usb/vmback --dry-run\n"
                 "  vmback repair -c /etc/vmback/vmback.toml");

  // run, plan
  auto* run = app.add_subcommand("run", "the whole job: quiesce the VMs, snapshot, resume, back up, prune");
  std::string run_config;
  bool run_json = false;
  run->add_option("-c,--config", run_config, "configuration file (TOML)")->required();
  run->add_flag("--json", run_json, "print the run's report (with each VM's freeze window) as JSON");
  bool run_recover_only = false;
  run->add_flag("--recover-only", run_recover_only,
                "only clean up after a run that did not finish (its journal: resume VMs, unmount, drop "
                "snapshots), then stop (vmback.service: ExecStopPost=)");
  run->footer(
      "\nIn order: take the run lock; clean up after a crashed earlier run (from the\n"
      "journal in [run] state_dir); check the plan; quiesce every VM (guest-agent\n"
      "fsfreeze, or Alt+SysRq+S and suspend); snapshot every volume; resume every VM;\n"
      "then per volume [fsck, mount read-only] back it up and drop its snapshot at once;\n"
      "commit the point; prune by [retention]. VMs are resumed and snapshots dropped on\n"
      "every path, also on SIGINT/SIGTERM.\n\n"
      "btrfs and reflink snapshots are made in the source's own file system: inside a\n"
      "source directory as SOURCE/.vmback-VOLUME-RUNID (beside an image file), so a\n"
      "source that is a mount point works; top-level .vmback-* entries of a source\n"
      "are not backed up.\n"
      "A volume without 'vms' quiesces the running VMs with a disk on it (\"auto\");\n"
      "a [[vm]] on no volume is a configuration error (exit 2). A volume without\n"
      "'snapshot' is read live, a warning (exit 5) when a running VM has a disk on it;\n"
      "snapshot = \"none\" says a live read is meant (no warning; the report's\n"
      "\"sources\" say \"by_choice\").\n\nExample:\n  vmback run -c /etc/vmback.toml --json");
  auto* plan = app.add_subcommand("plan", "show what 'run' would do, every command, and stop");
  std::string plan_config;
  plan->add_option("-c,--config", plan_config, "configuration file (TOML)")->required();
  plan->footer("\nChecks what run checks (VMs known to libvirt, each [[vm]] on a volume,\n"
               "sources, free space in the volume group, the target) and prints every step\n"
               "and command in order: the VMs quiesced, the volumes read live and whether by\n"
               "choice; touches no VM and changes nothing.\n\nExample:\n"
               "  vmback plan -c /etc/vmback/vmback.toml");

  // prune
  auto* prune = app.add_subcommand("prune", "delete the points the retention policy does not keep");
  TargetArgs prune_target;
  AddTargetOptions(prune, &prune_target);
  RetentionPolicy flags_policy;
  std::string keep_within_text;
  bool prune_dry_run = false, prune_json = false;
  double repack_below = 0.5;
  prune->add_option("--keep-last", flags_policy.keep_last, "keep the N newest points");
  prune->add_option("--keep-within", keep_within_text,
                    "keep every point within DURATION of the newest one (e.g. 7d, 36h, 2w)");
  prune->add_option("--keep-hourly", flags_policy.hourly, "keep the newest point of each of the last N hours");
  prune->add_option("--keep-daily", flags_policy.daily, "... of each of the last N days");
  prune->add_option("--keep-weekly", flags_policy.weekly, "... of each of the last N ISO weeks");
  prune->add_option("--keep-monthly", flags_policy.monthly, "... of each of the last N months");
  prune->add_option("--keep-yearly", flags_policy.yearly, "... of each of the last N years");
  prune->add_flag("--dry-run", prune_dry_run, "show what would be kept and deleted, and why; change nothing");
  prune->add_option("--repack-below", repack_below,
                    "repack a pack whose live share is below this fraction (default 0.5)");
  prune->add_flag("--json", prune_json, "print the decisions and what was reclaimed as JSON");
  prune->footer(
      "\nRules from the flags replace the config's [retention] table. Periods are UTC\n"
      "calendar hours, days, ISO weeks, months and years; only periods that have points\n"
      "count. A point is kept if any rule keeps it; the newest point is always kept.\n"
      "Blocks no remaining point names are then reclaimed (garbage collection).\n\n"
      "Examples:\n"
      "  vmback prune --store /mnt/usb/vmback --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run\n"
      "  vmback prune -c /etc/vmback.toml");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e, out, err);
    return rc == 0 ? kExitOk : kExitUsage;
  }

  Logger log(quiet ? LogLevel::kWarning : verbose ? LogLevel::kDebug : LogLevel::kInfo);
  // Progress (bytes, rate, time left) on a terminal; plain log lines otherwise.
  ProgressDisplay progress(!quiet && ::isatty(2) && (backup->parsed() || run->parsed()));
  Env* env = Env::Default();
  Outcome outcome;
  outcome.started_ns = env->NowNanos();
  std::string failure;
  int rc = [&]() -> int {
  try {
    if (init->parsed()) {
      uint64_t bs;
      if (!ParseSize(block_size_text, &bs) || bs > UINT32_MAX)
        ThrowConfig("--block-size: cannot read '" + block_size_text + "' as a size");
      std::vector<std::string> copies = Store::Init(env, init_dir, static_cast<uint32_t>(bs), init_mirrors);
      out << "created store " << copies[0] << " (block size " << FormatBytes(bs) << ")";
      for (size_t i = 1; i < copies.size(); i++) out << ", mirrored on " << copies[i];
      out << "\n";
      return kExitOk;
    }
    if (tinit_zfs->parsed()) {
      if (zfs_devices.size() < 2)
        log.Warn("a pool on one device has no second copy to repair from; give two devices for a mirror");
      auto commands = ZfsInitCommands(zfs_pool, zfs_devices, zfs_mountpoint);
      for (const auto& argv : commands) {
        std::string line;
        for (const auto& a : argv) line += (line.empty() ? "" : " ") + a;
        out << (zfs_dry_run ? "would run: " : "running: ") << line << "\n";
        if (zfs_dry_run) continue;
        RunResult r = env->Run(argv);
        if (r.exit_code != 0) throw Error(ErrorKind::kOther, DescribeFailure(argv, r));
      }
      if (!zfs_dry_run)
        out << "created pool " << zfs_pool << " and dataset " << zfs_pool << "/vmback; in the config:\n"
            << "  [target]\n  type = \"zfs\"\n  dataset = \"" << zfs_pool << "/vmback\"\n";
      return kExitOk;
    }
    if (sync->parsed()) {
      Config config = ResolveConfig(sync_target);
      if (IsInplace(config)) ThrowConfig("store sync is for the built-in store; a " + config.target.type +
                                         " target keeps its copies in step itself");
      StoreOptions options = StoreOptionsFor(config, sync_target);
      options.new_copies = sync_target.mirrors;  // named in this command: may be made copies
      options.init_named = sync_init;
      auto store = Store::Open(env, config.target.path, LockMode::kExclusive, &log, options);
      std::vector<std::string> all = store->copies();
      all.insert(all.end(), store->absent_copies().begin(), store->absent_copies().end());
      WarnAboutCopiesOnRootFileSystem(all, &log);
      SyncStats st = store->Sync();
      out << "copies in step: " << store->copies().size() << " present";
      if (!store->absent_copies().empty()) out << ", " << store->absent_copies().size() << " absent";
      out << "; copied " << st.packs_copied << " pack(s) and " << st.files_copied << " file(s), removed "
          << st.points_removed << " pruned point(s)";
      if (st.copies_initialized) out << "; made " << st.copies_initialized << " new cop" << (st.copies_initialized == 1 ? "y" : "ies");
      out << "\n";
      if (st.copies_initialized && !sync_target.config.empty() && !sync_target.mirrors.empty())
        log.Info("runs with " + sync_target.config + " use the copies in its [target] path and mirrors: add a "
                 "new copy there so that they write to it");
      return store->absent_copies().empty() ? kExitOk : kExitWarnings;
    }
    if (run->parsed() || plan->parsed()) {
      Config config = LoadConfig(run->parsed() ? run_config : plan_config);
      if (run->parsed() && run_recover_only) {
        std::unique_ptr<Hypervisor> conn;
        auto connect = [&] { return (conn = ConnectLibvirt(config.libvirt_uri, &log)).get(); };
        RecoverJob(config, env, connect, &log);  // logs what it did
        return kExitOk;
      }
      std::unique_ptr<Hypervisor> hv =
          ConnectForJob(config, [&] { return ConnectLibvirt(config.libvirt_uri, &log); }, &log);
      if (plan->parsed()) {
        out << PlanJob(config, env, hv.get(), &log);
        return kExitOk;
      }
      outcome.kind = "run";
      outcome.config = config;
      SignalCancel signals;
      JobOptions jo;
      jo.cancel = signals.flag();
      jo.hook = CrashHookForTesting();
      JobReport r = RunJob(config, env, hv.get(), jo, &log);
      outcome.body = JobReportToJson(r);
      outcome.metrics.volumes = VolumeBytesOf(r.backup, nullptr);
      for (const auto& vm : r.vms) outcome.metrics.freeze_seconds.push_back({vm.name, vm.freeze_seconds});
      if (run_json) {
        out << JobReportToJson(r).dump(2) << "\n";
      } else {
        for (const auto& vm : r.vms)
          out << "VM " << vm.name << ": " << vm.method << ", quiet for " << vm.freeze_seconds << " s\n";
        PrintLiveReads(r.sources, out);
        out << "point " << r.point << " committed";
        if (!r.pruned.empty()) out << "; pruned " << r.pruned.size() << " point(s)";
        out << "\n";
      }
      if (r.backup.errors) return kExitDamaged;
      return r.warnings.empty() ? kExitOk : kExitWarnings;
    }
    if (prune->parsed()) {
      Config config = ResolveConfig(prune_target);
      outcome.kind = "prune";
      outcome.config = config;
      if (!keep_within_text.empty()) flags_policy.keep_within_ns = ParseDuration(keep_within_text);
      RetentionPolicy policy = flags_policy.empty() ? config.retention : flags_policy;
      std::vector<RetentionDecision> decisions;
      nlohmann::json extra;
      std::string reclaimed;
      std::unique_ptr<Store> store;
      if (IsInplace(config)) {
        auto target = OpenInplaceTarget(env, config.target, &log);
        TargetPruneResult r = PruneTarget(target.get(), policy, prune_dry_run, &log);
        decisions = r.decisions;
        extra = {{"deleted", r.deleted}};
      } else {
        // A dry run only reads: a shared lock, and no housekeeping of the index.
        store = OpenStore(config, prune_target, prune_dry_run ? LockMode::kShared : LockMode::kExclusive, &log);
        GcOptions gc;
        gc.dry_run = prune_dry_run;
        gc.repack_below = repack_below;
        PruneResult r = Prune(store.get(), policy, gc, &log);
        decisions = r.decisions;
        extra = {{"deleted", r.deleted},
                 {"packs_deleted", r.gc.packs_deleted},
                 {"packs_repacked", r.gc.packs_repacked},
                 {"bytes_freed", r.gc.bytes_freed}};
        reclaimed = std::string("; ") + (prune_dry_run ? "would reclaim " : "reclaimed ") +
                    FormatBytes(r.gc.bytes_freed) + " (" + std::to_string(r.gc.packs_deleted) +
                    " pack(s) deleted, " + std::to_string(r.gc.packs_repacked) + " repacked)";
      }
      if (prune_json) {
        nlohmann::json d = nlohmann::json::array();
        for (const auto& x : decisions)
          d.push_back({{"name", x.name},
                       {"keep", x.keep},
                       {"reasons", x.reasons},
                       {"group", x.group.empty() ? nlohmann::json() : nlohmann::json::parse(x.group)}});
        extra["dry_run"] = prune_dry_run;
        extra["decisions"] = d;
        out << extra.dump(2) << "\n";
        outcome.body = extra;
      } else {
        out << FormatDecisions(decisions);
        out << (prune_dry_run ? "would delete " : "deleted ")
            << std::count_if(decisions.begin(), decisions.end(), [](const auto& x) { return !x.keep; })
            << " point(s)" << reclaimed << "\n";
      }
      return store && !store->absent_copies().empty() ? kExitWarnings : kExitOk;
    }
    if (backup->parsed()) {
      Config config = ResolveConfig(backup_target);
      outcome.kind = "backup";
      outcome.config = config;
      const bool from_config = !backup_target.config.empty();
      std::vector<VolumeSpec> volumes;
      if (from_config) {
        if (!backup_paths.empty()) ThrowConfig("give sources either in the config or as PATHs, not both");
      } else {
        for (const auto& p : backup_paths) {
          std::string name = BaseName(p);
          if (name == "/" || name.empty()) name = "root";
          if (!IsValidVolumeName(name)) ThrowConfig("cannot name a volume after " + p);
          volumes.push_back({name, p, true});
        }
      }
      BackupOptions bopts;
      bopts.full_read = full_read;
      bopts.threads = threads;
      bopts.read_limit = config.run.read_limit;
      bopts.full_read_every_ns = config.run.full_read_every_ns;
      if (!read_limit_text.empty() && (!ParseSize(read_limit_text, &bopts.read_limit) || bopts.read_limit == 0))
        ThrowConfig("--read-limit: cannot read '" + read_limit_text + "' as a size per second, e.g. 50M");
      bopts.tags = backup_tags;
      SignalCancel signals;
      bopts.cancel = signals.flag();
      BackupResult r;
      std::unique_ptr<Store> store;
      if (IsInplace(config) && !backup_tags.empty())
        ThrowConfig("--tag: an in-place target's points are file system snapshots and carry no tags; "
                    "tags are for a store (--store or [target] type = \"store\")");
      std::vector<SourceReport> sources;
      if (from_config) {
        // The job without the VMs: the snapshots and mounts the config asks
        // for, under the run's journal.
        JobOptions jo;
        jo.kind = JobKind::kBackup;
        jo.cancel = bopts.cancel;
        jo.hook = CrashHookForTesting();
        jo.full_read = bopts.full_read;
        jo.threads = bopts.threads;
        jo.read_limit = bopts.read_limit;
        jo.tags = backup_tags;
        std::unique_ptr<Hypervisor> conn;
        jo.connect = [&] { return (conn = ConnectLibvirt(config.libvirt_uri, &log)).get(); };
        JobReport jr = RunJob(config, env, nullptr, jo, &log);
        r = jr.backup;
        if (IsInplace(config)) {
          outcome.body = TargetBackupToJson({jr.backup, jr.inplace});
          outcome.metrics.volumes = VolumeBytesOf(r, &jr.inplace);
        } else {
          outcome.body = BackupResultToJson(r);
          outcome.metrics.volumes = VolumeBytesOf(r, nullptr);
        }
        sources = jr.sources;
        outcome.body["sources"] = SourcesToJson(sources);
        if (backup_json) out << outcome.body.dump(2) << "\n";
      } else if (IsInplace(config)) {
        auto target = OpenInplaceTarget(env, config.target, &log);
        TargetBackupResult tr = BackupToTarget(target.get(), env, volumes, bopts, &log);
        r = tr.summary;
        outcome.body = TargetBackupToJson(tr);
        outcome.metrics.volumes = VolumeBytesOf(r, &tr.volumes);
        if (backup_json) out << outcome.body.dump(2) << "\n";
      } else {
        store = OpenStore(config, backup_target, LockMode::kAppend, &log);
        if (store->copies().size() > 1 || !store->absent_copies().empty()) store->Sync();
        r = RunBackup(store.get(), volumes, bopts, &log);
        outcome.body = BackupResultToJson(r);
        outcome.metrics.volumes = VolumeBytesOf(r, nullptr);
        if (backup_json) out << outcome.body.dump(2) << "\n";
      }
      if (!backup_json) {
        PrintLiveReads(sources, out);
        const bool to_store = !IsInplace(config);
        for (const auto& v : r.volumes) {
          out << v.name << ": " << v.files << " files, " << FormatBytes(v.bytes) << ", read "
              << FormatBytes(v.bytes_read) << ", " << v.new_blocks << (to_store ? " new of " : " written of ")
              << v.blocks << " blocks\n";
        }
        out << "point " << r.point << " committed: wrote " << FormatBytes(r.store.stored_bytes_written);
        if (to_store) out << " in " << r.store.packs_written << " pack(s)";
        out << ", " << r.seconds << " s\n";
      }
      bool absent = store && !store->absent_copies().empty();
      if (!r.errors && (absent || log.warnings() > 0)) return kExitWarnings;
      if (r.errors) {
        log.Error("point " + r.point + " lacks " + std::to_string(r.errors) +
                  " entr(y/ies) that could not be read (see above)");
        return kExitDamaged;
      }
      return kExitOk;
    }
    if (list->parsed()) {
      Config config = ResolveConfig(list_target);
      nlohmann::json points = nlohmann::json::array();
      std::string where;
      if (IsInplace(config)) {
        auto target = OpenInplaceTarget(env, config.target, &log);
        where = target->describe();
        for (const auto& p : ListTargetPoints(target.get(), env))
          points.push_back({{"name", p.name},
                            {"time", p.time_ns >= 0 ? FormatTimeUtc(p.time_ns) : ""},
                            {"time_ns", p.time_ns},
                            {"volumes", p.volumes}});
      } else {
        auto store = OpenStore(config, list_target, LockMode::kShared, &log);
        where = store->dir();
        for (const auto& name : store->ListPoints()) {
          nlohmann::json m = store->ReadManifest(name);
          nlohmann::json vols = nlohmann::json::array();
          for (const auto& v : m.at("volumes")) vols.push_back(v.at("name"));
          points.push_back({{"name", name},
                            {"time", m.value("time", "")},
                            {"time_ns", m.value("time_ns", int64_t{0})},
                            {"volumes", vols},
                            {"tags", m.value("tags", nlohmann::json::array())},
                            {"stats", m.value("stats", nlohmann::json::object())}});
        }
      }
      if (list_json) {
        out << points.dump(2) << "\n";
      } else if (points.empty()) {
        out << "no points yet in " << where << "\n";
      } else {
        for (const auto& p : points) {
          int64_t t = p["time_ns"].get<int64_t>();
          // Names from the disk: escaped for the terminal (--json keeps them exact).
          out << EscapeForTerminal(p["name"].get<std::string>()) << "  " << (t >= 0 ? FormatTimeUtc(t) : "?")
              << "  ";
          std::string sep;
          for (const auto& v : p["volumes"]) {
            out << sep << EscapeForTerminal(v.get<std::string>());
            sep = ",";
          }
          if (p.contains("tags"))
            for (const auto& t : p["tags"]) out << "  #" << t.get<std::string>();
          out << "\n";
        }
      }
      return kExitOk;
    }
    if (restore->parsed()) {
      Config config = ResolveConfig(restore_target);
      RestoreStats s;
      std::unique_ptr<Store> store;
      RestoreOptions options;
      options.overwrite = force ? Overwrite::kAllow : Overwrite::kRefuse;
      options.owner = !no_owner;
      options.special = !no_special;
      options.privileges = !no_privileges;
      options.fail_fast = fail_fast;
      if (IsInplace(config)) {
        auto target = OpenInplaceTarget(env, config.target, &log);
        s = RestoreFromTarget(target.get(), env, restore_point, restore_path, restore_to, options, &log);
      } else {
        store = OpenStore(config, restore_target, LockMode::kShared, &log);
        s = Restore(store.get(), restore_point, restore_path, restore_to, options, &log);
      }
      out << "restored " << s.files << " files, " << s.dirs << " directories, " << s.other
          << " other entries (" << FormatBytes(s.bytes) << ") to " << EscapeForTerminal(restore_to)
          << (s.skipped ? ", " + std::to_string(s.skipped) + " special files left out" : std::string()) << "\n";
      if (s.damaged) {
        for (const auto& d : s.damage) log.Error("damaged: " + d);
        log.Error("restore incomplete: " + std::to_string(s.damaged) + " damaged range(s)" +
                  (s.damaged > s.damage.size() ? " (the first " + std::to_string(s.damage.size()) + " listed)" : "") +
                  " left zero; everything else was restored. 'vmback verify' tells which points share the "
                  "damage; an older or newer point may hold the lost blocks");
        return kExitDamaged;
      }
      if (!store) return log.warnings() > 0 ? kExitWarnings : kExitOk;
      return store->repairs() || !store->absent_copies().empty() ? kExitWarnings : kExitOk;
    }
    if (verify->parsed()) {
      Config config = ResolveConfig(verify_target);
      outcome.kind = "verify";
      outcome.config = config;
      if (IsInplace(config)) {
        if (!verify_subset.empty() || !verify_limit_text.empty())
          ThrowConfig("--read-data-subset and --read-limit are for a store; an in-place target is checked by "
                      "its file system's scrub and its blockmaps");
        auto target = OpenInplaceTarget(env, config.target, &log);
        TargetVerifyReport r = VerifyTarget(target.get(), env, &log);
        outcome.body = TargetVerifyToJson(r);
        outcome.metrics.verify_errors = r.problems.size() + r.scrub.unrepaired;
        if (verify_json) {
          out << outcome.body.dump(2) << "\n";
        } else {
          if (r.scrub.ran || !r.scrub.summary.empty()) out << r.scrub.summary << "\n";
          out << "checked " << r.points << " points, " << r.files << " files, " << r.blocks << " blocks ("
              << FormatBytes(r.bytes) << ") against their blockmaps: "
              << (r.problems.empty() ? "all good" : std::to_string(r.problems.size()) + " problem(s)") << "\n";
          for (const auto& p : r.problems) out << "  " << EscapeForTerminal(p) << "\n";
        }
        if (!r.ok()) return kExitDamaged;
        return r.scrub.repaired ? kExitWarnings : kExitOk;
      }
      // The check takes the shared lock, so backups go on beside it; only
      // when there is something to heal (a copy's pack or manifest from
      // another, the damage record) does it take the exclusive lock, and
      // check again under it. On read-only media it can only read.
      bool read_only = IsReadOnlyFileSystem(config.target.path);
      if (read_only) log.Info(config.target.path + " is on a read-only file system: verify reads only, repairs nothing");
      auto store = OpenStore(config, verify_target, LockMode::kShared, &log);
      VerifyOptions vopts;
      if (!verify_subset.empty()) ParseReadDataSubset(verify_subset, env->NowNanos(), &vopts);
      if (!verify_limit_text.empty() &&
          (!ParseSize(verify_limit_text, &vopts.read_limit) || vopts.read_limit == 0))
        ThrowConfig("--read-limit: cannot read '" + verify_limit_text + "' as a size per second, e.g. 50M");
      VerifyReport r = Verify(store.get(), &log, vopts);
      bool not_healed = false;
      if (r.to_heal > 0 && !read_only) {
        // This process's shared lock goes first (flock locks are per open file).
        store.reset();
        log.Info("found " + std::to_string(r.to_heal) +
                 " thing(s) to heal from other copies: checking again under the store's exclusive lock");
        try {
          store = OpenStore(config, verify_target, LockMode::kExclusive, &log);
          r = Verify(store.get(), &log, vopts);
        } catch (const Error& e) {
          if (e.kind() != ErrorKind::kLocked) throw;
          not_healed = true;
          log.Warn("not healed: " + std::string(e.what()) +
                   "; run 'vmback verify' again when no backup runs (or with --lock-wait)");
          store = OpenStore(config, verify_target, LockMode::kShared, &log);
        }
      }
      outcome.body = VerifyReportToJson(r);
      outcome.metrics.verify_errors = r.problems.size();
      if (verify_json) {
        out << outcome.body.dump(2) << "\n";
      } else {
        out << "checked " << r.packs << " packs, " << r.blobs << " blobs (" << FormatBytes(r.bytes) << ")"
            << (r.subset.empty() ? "" : " (part " + r.subset + "; " + std::to_string(r.packs_skipped) +
                                            " packs left for other parts)")
            << ", " << r.points << " points, " << r.files_checked << " files: "
            << (r.ok() ? "all good" : std::to_string(r.problems.size()) + " problem(s)") << "\n";
        if (r.copies.size() > 1 || r.repaired) {
          for (const auto& c : r.copies)
            out << "  copy " << c.dir << ": " << c.packs_checked << " packs checked, " << c.packs_missing
                << " missing, " << c.packs_damaged << " damaged, " << c.manifests_damaged
                << " manifests damaged; repaired " << c.repaired << ", unrepairable " << c.unrepairable << "\n";
        }
        if (!r.lost.empty())
          out << "note: " << r.lost.size() << " file(s) in the points above hold blocks recorded lost by "
              << "'vmback repair' (listed above); a restore leaves them zero\n";
        if (!r.next_step.empty()) out << "next step: " << r.next_step << "\n";
      }
      if (!r.ok()) return kExitDamaged;
      // Blocks recorded lost: the store is sound and nothing is left to do,
      // but those points are incomplete for good; a warning, not damage.
      return r.repaired || not_healed || !r.lost.empty() || !store->absent_copies().empty() ? kExitWarnings : kExitOk;
    }
    if (repair->parsed()) {
      Config config = ResolveConfig(repair_target);
      if (IsInplace(config))
        ThrowConfig("repair is for the built-in store; a " + config.target.type +
                    " target is repaired by its file system's scrub ('vmback verify')");
      auto store = OpenStore(config, repair_target, LockMode::kExclusive, &log);
      RepairReport r = Repair(store.get(), &log, repair_dry_run);
      const std::string would = repair_dry_run ? "would be " : "";
      if (r.verify.repaired && !repair_json)
        out << "first healed " << r.verify.repaired << " damaged or missing file(s) from other copies\n";
      if (repair_json) {
        out << RepairReportToJson(r).dump(2) << "\n";
      } else if (r.packs_rewritten == 0) {
        out << "nothing to repair: no pack is damaged on every copy"
            << (r.verify.ok() ? "" : " (verify names " + std::to_string(r.verify.problems.size()) +
                                         " problem(s) that repair cannot mend; run 'vmback verify')")
            << "\n";
      } else {
        for (const auto& p : r.lost)
          out << (repair_dry_run ? "would lose: " : "lost: ") << EscapeForTerminal(p.point) << ": " << EscapeForTerminal(p.path) << ": " << p.reason
              << "\n";
        out << (repair_dry_run ? "would rewrite " : "rewrote ") << r.packs_rewritten
            << " pack(s) damaged on every copy: " << r.blobs_moved << " good blob(s) " << would << "moved to a new pack, "
            << r.blobs_healed << " bad blob(s) " << would << "dropped (a good copy is in another pack), "
            << r.blobs_lost << " " << would << "recorded lost\n";
        if (!repair_dry_run)
          out << (r.blobs_lost ? "'vmback verify' now notes the lost blocks (exit 5); restore leaves them zero\n"
                               : "nothing was lost; 'vmback verify' is clean again\n");
      }
      if (repair_dry_run || r.packs_rewritten == 0) return r.verify.ok() ? kExitOk : kExitDamaged;
      return r.blobs_lost ? kExitWarnings : kExitOk;
    }
  } catch (const Error& e) {
    log.Error(e.what());
    failure = e.what();
    return ExitFor(e);
  } catch (const std::exception& e) {
    log.Error(std::string("unexpected: ") + e.what());
    failure = e.what();
    return kExitFailed;
  }
  return kExitUsage;
  }();
  LeaveReport(&outcome, rc, failure, &log);
  return rc;
}

}  // namespace vmback
