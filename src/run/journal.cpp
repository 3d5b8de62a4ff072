#include "run/journal.h"

#include <sstream>

#include "os/subprocess.h"
#include "source/snapshot.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

Journal::Journal(Env* env, std::string path, const std::string& run_id)
    : env_(env), path_(std::move(path)) {
  file_ = env_->OpenWrite(path_, CreateMode::kExclusive, 0600);
  env_->SyncDir(DirName(path_));
  Record({{"op", "start"}, {"run", run_id}, {"time", FormatTimeUtc(env_->NowNanos())}});
}

void Journal::Record(const nlohmann::json& record) {
  std::string line = record.dump() + "\n";
  file_->Append(line.data(), line.size());
  file_->Sync();
}

void Journal::Close() {
  file_->Close();
  env_->Remove(path_);
  env_->SyncDir(DirName(path_));
}

Leftovers ReadJournal(Env* env, const std::string& path) {
  Leftovers left;
  std::istringstream in(ReadFileToString(env, path));
  std::string line;
  std::vector<std::pair<std::string, std::string>> vms;
  while (std::getline(in, line)) {
    nlohmann::json r;
    try {
      r = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      continue;  // a torn line from the crash
    }
    std::string op = r.value("op", "");
    auto erase = [](auto* v, const std::string& key) {
      for (auto it = v->begin(); it != v->end(); ++it)
        if (*it == key) {
          v->erase(it);
          return;
        }
    };
    if (op == "start") {
      left.run_id = r.value("run", "");
    } else if (op == "quiesce") {
      left.vms.emplace_back(r.value("vm", ""), r.value("method", "auto"));
    } else if (op == "released") {
      std::string vm = r.value("vm", "");
      for (auto it = left.vms.begin(); it != left.vms.end(); ++it)
        if (it->first == vm) {
          left.vms.erase(it);
          break;
        }
    } else if (op == "mount") {
      left.mounts.push_back(r.value("dir", ""));
    } else if (op == "unmounted") {
      erase(&left.mounts, r.value("dir", ""));
    } else if (op == "snapshot") {
      left.snapshots.push_back(r.value("record", ""));
    } else if (op == "dropped") {
      erase(&left.snapshots, r.value("record", ""));
    }
  }
  return left;
}

namespace {

// A mount point vmback makes: <state_dir>/mnt-<volume>.
bool IsOwnMountPoint(const std::string& state_dir, const std::string& dir) {
  const std::string prefix = JoinPath(state_dir, "mnt-");
  if (dir.size() <= prefix.size() || dir.compare(0, prefix.size(), prefix) != 0) return false;
  std::string name = dir.substr(prefix.size());
  return name.find('/') == std::string::npos && name.find('\0') == std::string::npos && name != "." &&
         name != "..";
}

}  // namespace

std::vector<std::string> RecoverFromJournal(Env* env, const std::string& path, Hypervisor* hv,
                                            Logger* log) {
  std::vector<std::string> done;
  Leftovers left = ReadJournal(env, path);
  std::string failures;
  // The journal is read as hostile (it sits on disk between runs): a record
  // that vmback could not have written is refused, and nothing is run on it.
  const std::string state_dir = DirName(path);
  for (const auto& [vm, method] : left.vms) {
    if (!hv) {
      failures += std::string("; VM ") + vm + ": no libvirt connection to resume it with";
      continue;
    }
    try {
      hv->Recover(vm, ParseQuiesceMethod(method));
      done.push_back("resumed VM " + vm + " (quiesced by a run that did not finish)");
    } catch (const Error& e) {
      failures += std::string("; VM ") + vm + ": " + e.what();
    }
  }
  for (auto it = left.mounts.rbegin(); it != left.mounts.rend(); ++it) {
    if (!IsOwnMountPoint(state_dir, *it)) {
      failures += "; refusing mount record '" + *it + "': not a mount point vmback makes (" +
                  JoinPath(state_dir, "mnt-*") + "), not unmounted";
      continue;
    }
    std::vector<std::string> argv = {"umount", "--", *it};
    RunResult r = env->Run(argv);
    if (r.exit_code == 0) {
      done.push_back("unmounted " + *it);
    } else if (r.err.find("not mounted") == std::string::npos &&
               r.err.find("no mount point") == std::string::npos && env->Exists(*it)) {
      failures += "; " + DescribeFailure(argv, r);
    }
  }
  for (const auto& s : left.snapshots) {
    try {
      DropLeftoverSnapshot(env, s, left.run_id, log);
      done.push_back("dropped snapshot " + s);
    } catch (const Error& e) {
      failures += std::string("; snapshot ") + s + ": " + e.what();
    }
  }
  if (!failures.empty())
    throw Error(ErrorKind::kOther, "cannot clean up after the crashed run recorded in " + path + ":" +
                                       failures.substr(1) + "; fix this, then run again");
  env->Remove(path);
  env->SyncDir(DirName(path));
  for (const auto& d : done) log->Warn(d);
  return done;
}

}  // namespace vmback
