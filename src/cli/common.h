// What the commands share: the options that name a target (-c, --store,
// --zfs, --btrfs, --dir, --mirror, --lock-wait), turning them into a
// configuration and an open destination, cancellation by signal, and the crash
// hook of the sweeps.
#pragma once

#include <signal.h>

#include <atomic>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "config/config.h"
#include "destination/destination.h"
#include "job/job.h"
#include "scan/exclude_filter.h"
#include "store/store.h"
#include "util/log.h"

namespace CLI {
class App;
}

namespace vmback {

// The target a command works on, as given on its command line.
struct TargetArgs {
  std::string config;
  std::string store;
  std::string zfs, btrfs, dir;
  std::vector<std::string> mirrors;
  double lock_wait = -1;  // -1: from the config, else 0
  std::string key_file;   // --key-file: opens an encrypted store
  std::string upload_limit;  // --upload-limit: to copies in buckets, per second
};

// (CliEnv, in command.h.) Buckets are reached as c's [s3] table says (what it leaves out: as the
// environment says), with t's --upload-limit over the table's.
void ConfigureBuckets(const Config& c, const TargetArgs& t);
// What this process sent to and fetched from buckets, one line ("buckets:
// 12 PUTs (35.2 MiB), 3 GETs (1.0 KiB), 2 listings, 0 deletes"); "" when
// it made no request.
std::string BucketTraffic();

// Adds -c, --store, --zfs, --btrfs, --dir (one of them), --mirror and
// --lock-wait to cmd, bound to *t. REQUIRES: t outlives the parse.
void AddTargetOptions(CLI::App* cmd, TargetArgs* t);

// The configuration a command works on: the file given with -c, or one
// made from --store/--zfs/--btrfs/--dir. Throws Error(kConfig) when none is
// given, or --mirror with an in-place target.
Config ResolveConfig(const TargetArgs& t);
// Whether t names a target or a config (-c, --store, --zfs, --btrfs, --dir).
bool TargetGiven(const TargetArgs& t);
// Whether ResolveConfig(t) reads a config file: -c, or the default one
// (DefaultConfigPath) when no target is given.
bool ReadsConfigFile(const TargetArgs& t);

// The config a command reads when none and no target is given: the file
// VMBACK_CONFIG names (Error(kConfig) when it is not there), else
// kDefaultConfigPath when it exists, else "".
inline constexpr char kDefaultConfigPath[] = "/etc/vmback/vmback.toml";
std::string DefaultConfigPath();
// given, or DefaultConfigPath(); Error(kConfig) saying how to give one when
// there is none (run, plan).
std::string ConfigPathOrDefault(const std::string& given);

// True for a zfs, btrfs or dir target; false for the built-in store.
bool IsInplace(const Config& c);

// How to open the store of c: its mirrors, and --lock-wait over the config's.
StoreOptions StoreOptionsFor(const Config& c, const TargetArgs& t);

// Opens the store a command works on, from --store or the config's [target]
// (store sync and repair, which are the store's alone).
std::unique_ptr<Store> OpenStore(const Config& c, const TargetArgs& t, LockMode mode, Logger* log);

// Opens the destination a command works on (OpenDestination), with
// --lock-wait over the config's. excludes: what a Backup leaves out.
std::unique_ptr<Destination> OpenDestinationFor(const Config& c, const TargetArgs& t, DestinationAccess access,
                                                Logger* log, BackupExcludes excludes = {});

// What a POINT argument takes (destination/point_select.h), for --help.
inline constexpr char kPointHelp[] =
    "a point: its name or its time as 'vmback list' shows them, 'latest', or 'latest~N' (the Nth before the "
    "newest)";

// `vmback dump` and `restore --to -`: the regular file at path of point
// written to out (Destination::Dump). When it fails after some bytes went
// out, the error says they are incomplete and must be discarded.
void DumpToStream(Destination* dest, const std::string& point, const std::string& path, std::ostream& out,
                  Logger* log);

// Reads a --read-limit value (e.g. 50M) into *limit; throws Error(kConfig)
// for anything but a positive size.
void ParseReadLimit(const std::string& text, uint64_t* limit);

// SIGINT, SIGTERM and SIGHUP set a flag that the run polls, so that it stops
// at the next step and cleans up (VMs resumed, snapshots dropped, a partial
// restored file removed) instead of dying with things left behind. Restored
// on destruction. One at a time. A command that fails after one of them
// came exits 128 + the signal's number (130 for SIGINT, 143 for SIGTERM):
// ExitStatusAfterSignal.
class SignalCancel {
 public:
  SignalCancel();
  ~SignalCancel();
  SignalCancel(const SignalCancel&) = delete;
  SignalCancel& operator=(const SignalCancel&) = delete;
  const std::atomic<bool>* flag() const;

 private:
  struct sigaction old_[3];
};

// Test seam for the crash sweeps (run, backup -c): VMBACK_TEST_CRASH_AT=STEP
// dies by SIGKILL (no clean-up) at that step, as a power cut or an OOM kill
// would; the next run must clean up.
StepHook CrashHookForTesting();

// One line per volume read live (no snapshot), saying whether it was chosen.
void PrintLiveReads(const std::vector<SourceReport>& sources, std::ostream& out);

}  // namespace vmback
