#include "cli/common.h"

#include <CLI/CLI.hpp>
#include <unistd.h>

#include <cstdlib>

#include "cli/exit_status.h"
#include "destination/dump.h"
#include "run/store_destination.h"
#include "s3/bucket_env.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

void AddTargetOptions(CLI::App* cmd, TargetArgs* t) {
  auto* c = cmd->add_option("-c,--config", t->config,
                            "configuration file (TOML); with no target given: the file VMBACK_CONFIG names, "
                            "else /etc/vmback/vmback.toml when it exists");
  auto* s = cmd->add_option("--store", t->store, "store directory (instead of a configuration)");
  auto* z = cmd->add_option("--zfs", t->zfs, "a ZFS dataset as an in-place target (e.g. usbpool/vmback)");
  auto* b = cmd->add_option("--btrfs", t->btrfs, "a btrfs subvolume as an in-place target");
  auto* d = cmd->add_option("--dir", t->dir, "a plain directory as an in-place target (no history)");
  std::vector<CLI::Option*> all = {c, s, z, b, d};
  for (auto* x : all)
    for (auto* y : all)
      if (x != y) x->excludes(y);
  cmd->add_option("--mirror", t->mirrors,
                  "another copy of the store: a directory, or s3://BUCKET/PREFIX (repeat for more);\n"
                  "default: the copies recorded at init (those in buckets only when named).\n"
                  "When the store's own directory holds no store (its disk not mounted), the first\n"
                  "of these that does serves");
  cmd->add_option("--lock-wait", t->lock_wait,
                  "seconds to wait for another vmback process holding the store (default 0)");
  cmd->add_option("--upload-limit", t->upload_limit,
                  "at most this many bytes per second to copies in buckets (s3://), e.g. 5M;\n"
                  "default: [s3] upload_limit, else no limit");
  cmd->add_option("--key-file", t->key_file,
                  "key file of an encrypted store (else [target] key_file, VMBACK_PASSPHRASE_FILE,\n"
                  "systemd credentials vmback.key / vmback.passphrase, or a prompt on a terminal)");
}

std::string DefaultConfigPath() {
  const std::string env = EnvironmentValue("VMBACK_CONFIG");
  if (!env.empty()) {
    if (Env::Default()->Status(env).kind == FileKind::kMissing)
      ThrowConfig("VMBACK_CONFIG names " + env + ", which is not there");
    return env;
  }
  return Env::Default()->Status(kDefaultConfigPath).kind == FileKind::kMissing ? "" : kDefaultConfigPath;
}

std::string ConfigPathOrDefault(const std::string& given) {
  if (!given.empty()) return given;
  std::string path = DefaultConfigPath();
  if (path.empty())
    ThrowConfig(std::string("give -c CONFIG (or set VMBACK_CONFIG, or write ") + kDefaultConfigPath + ")");
  return path;
}

bool TargetGiven(const TargetArgs& t) {
  return !t.config.empty() || !t.store.empty() || !t.zfs.empty() || !t.btrfs.empty() || !t.dir.empty();
}

bool ReadsConfigFile(const TargetArgs& t) {
  return !t.config.empty() || (!TargetGiven(t) && !DefaultConfigPath().empty());
}

Config ResolveConfig(const TargetArgs& t) {
  Config c;
  const std::string fallback = TargetGiven(t) ? "" : DefaultConfigPath();
  if (!t.config.empty() || !fallback.empty()) {
    c = LoadConfig(!t.config.empty() ? t.config : fallback);
  } else if (!t.store.empty()) {
    c.target.path = t.store;
  } else if (!t.zfs.empty()) {
    c.target.type = TargetType::kZfs;
    c.target.dataset = t.zfs;
  } else if (!t.btrfs.empty()) {
    c.target.type = TargetType::kBtrfs;
    c.target.path = t.btrfs;
  } else if (!t.dir.empty()) {
    c.target.type = TargetType::kDir;
    c.target.path = t.dir;
  } else {
    ThrowConfig(std::string("say which target: -c CONFIG, --store DIR, --zfs DATASET, --btrfs PATH or --dir PATH "
                            "(with none, VMBACK_CONFIG or ") +
                kDefaultConfigPath + " is the config)");
  }
  if (!t.mirrors.empty()) {
    if (c.target.type != TargetType::kStore)
      ThrowConfig(std::string("--mirror is for the built-in store; a ") + TargetTypeName(c.target.type) +
                                              " target is mirrored by its file system");
    c.target.mirrors = t.mirrors;
  }
  if (t.lock_wait >= 0) c.target.lock_wait_seconds = static_cast<int>(t.lock_wait);
  if (!t.key_file.empty()) c.target.key_file = t.key_file;
  ConfigureBuckets(c, t);
  return c;
}

namespace {

BucketEnv* Buckets() {
  static BucketEnv env(Env::Default(), [] { return BucketSettingsFrom(Env::Default(), "", "", ""); });
  return &env;
}

}  // namespace

Env* CliEnv() { return Buckets(); }

std::string BucketTraffic() {
  const BucketEnv::Stats s = Buckets()->stats();
  if (s.puts + s.gets + s.heads + s.lists + s.deletes == 0) return "";
  return "buckets: " + Counted(s.puts, "PUT") + " (" + FormatBytes(s.put_bytes) + "), " + Counted(s.gets, "GET") +
         " (" + FormatBytes(s.get_bytes) + "), " + Counted(s.heads, "HEAD") + ", " + Counted(s.lists, "listing") +
         ", " + Counted(s.deletes, "delete");
}

void ConfigureBuckets(const Config& c, const TargetArgs& t) {
  S3TableConfig s3 = c.s3;
  if (!t.upload_limit.empty() && (!ParseSize(t.upload_limit, &s3.upload_limit) || s3.upload_limit == 0))
    ThrowConfig("--upload-limit: cannot read '" + t.upload_limit + "' as a size per second, e.g. 5M");
  Buckets()->Configure([s3] {
    BucketSettings b = BucketSettingsFrom(Env::Default(), s3.endpoint, s3.profile, s3.addressing);
    b.upload_limit = s3.upload_limit;
    return b;
  });
}

bool IsInplace(const Config& c) { return c.target.type != TargetType::kStore; }

StoreOptions StoreOptionsFor(const Config& c, const TargetArgs& t) {
  StoreOptions options;
  options.mirrors = c.target.mirrors;
  options.lock_wait_seconds = t.lock_wait >= 0 ? t.lock_wait : c.target.lock_wait_seconds;
  options.keys = KeySources::FromEnvironment(c.target.key_file);
  options.require_encrypted = c.target.encrypt;
  return options;
}

std::unique_ptr<Store> OpenStore(const Config& c, const TargetArgs& t, LockMode mode, Logger* log) {
  return Store::Open(CliEnv(), c.target.path, mode, log, StoreOptionsFor(c, t));
}

std::unique_ptr<Destination> OpenDestinationFor(const Config& c, const TargetArgs& t, DestinationAccess access,
                                                Logger* log, BackupExcludes excludes) {
  return OpenDestination(CliEnv(), c.target, access, StoreOptionsFor(c, t).lock_wait_seconds, log,
                         std::move(excludes));
}

void DumpToStream(Destination* dest, const std::string& point, const std::string& path, std::ostream& out,
                  Logger* log) {
  StreamFile file(out, "standard output");
  try {
    dest->Dump(point, path, &file, log);
    file.Close();
  } catch (const Error& e) {
    if (file.written() == 0) throw;
    throw Error(e.kind(), std::string(e.what()) + "; the " + std::to_string(file.written()) +
                              " bytes already written to standard output are incomplete: discard them");
  }
}

void ParseReadLimit(const std::string& text, uint64_t* limit) {
  if (!ParseSize(text, limit) || *limit == 0)
    ThrowConfig("--read-limit: cannot read '" + text + "' as a size per second, e.g. 50M");
}

namespace {

std::atomic<bool> g_cancel{false};
std::atomic<int> g_signal{0};
constexpr int kSignals[3] = {SIGINT, SIGTERM, SIGHUP};

}  // namespace

SignalCancel::SignalCancel() {
  struct sigaction sa = {};
  sa.sa_handler = [](int sig) {
    int none = 0;
    g_signal.compare_exchange_strong(none, sig);
    g_cancel.store(true);
  };
  sigemptyset(&sa.sa_mask);
  for (int i = 0; i < 3; i++) sigaction(kSignals[i], &sa, &old_[i]);
}

SignalCancel::~SignalCancel() {
  for (int i = 0; i < 3; i++) sigaction(kSignals[i], &old_[i], nullptr);
}

const std::atomic<bool>* SignalCancel::flag() const { return &g_cancel; }

int CancelSignal() { return g_signal.load(); }

StepHook CrashHookForTesting() {
  const char* at = std::getenv("VMBACK_TEST_CRASH_AT");
  if (at == nullptr || *at == '\0') return {};
  std::string target = at;
  return [target](const std::string& step) {
    if (step == target) ::kill(::getpid(), SIGKILL);
  };
}

void PrintLiveReads(const std::vector<SourceReport>& sources, std::ostream& out) {
  for (const auto& s : sources)
    if (s.read_live)
      out << "volume " << s.volume << ": read live"
          << (s.by_choice ? " (snapshot = \"none\")" : " (no snapshot set)") << "\n";
}

}  // namespace vmback
