#include "job/journal.h"

#include <algorithm>

#include "job/libvirt_volume.h"
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

namespace {

// One record's string field; absent gives `absent`. A record vmback did not
// write (another type) is refused where it is decoded.
std::string Field(const nlohmann::json& r, const char* key, const std::string& where, const char* absent = "") {
  auto it = r.find(key);
  if (it == r.end()) return absent;
  if (!it->is_string()) ThrowCorrupt(where + ": \"" + key + "\" is not a string; this is not a journal vmback wrote");
  return it->get<std::string>();
}

}  // namespace

Leftovers ReadJournal(Env* env, const std::string& path) {
  Leftovers left;
  const std::string text = ReadFileToString(env, path);
  std::vector<std::string> lines;
  for (size_t pos = 0; pos < text.size();) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(pos, end - pos));
    pos = end + 1;
  }
  auto erase = [](std::vector<std::string>* v, const std::string& key) {
    auto it = std::find(v->begin(), v->end(), key);
    if (it != v->end()) v->erase(it);
  };
  for (size_t i = 0; i < lines.size(); i++) {
    const std::string where = path + ":" + std::to_string(i + 1);
    nlohmann::json r;
    try {
      r = nlohmann::json::parse(lines[i]);
    } catch (const nlohmann::json::exception&) {
      if (i + 1 == lines.size()) continue;  // the torn last line of a crash
      ThrowCorrupt(where + ": not a JSON record, and not the last line (torn by a crash); "
                   "this is not a journal vmback wrote");
    }
    if (!r.is_object()) ThrowCorrupt(where + ": not a JSON object; this is not a journal vmback wrote");
    const std::string op = Field(r, "op", where);
    if (op == "start") {
      left.run_id = Field(r, "run", where);
    } else if (op == "quiesce") {
      left.vms.emplace_back(Field(r, "vm", where), Field(r, "method", where, "auto"));
    } else if (op == "released") {
      const std::string vm = Field(r, "vm", where);
      auto it = std::find_if(left.vms.begin(), left.vms.end(), [&](const auto& v) { return v.first == vm; });
      if (it != left.vms.end()) left.vms.erase(it);
    } else if (op == "backup-job") {
      left.backup_jobs.emplace_back(Field(r, "vm", where), Field(r, "dir", where));
    } else if (op == "backup-ended") {
      const std::string vm = Field(r, "vm", where);
      auto it = std::find_if(left.backup_jobs.begin(), left.backup_jobs.end(),
                             [&](const auto& j) { return j.first == vm; });
      if (it != left.backup_jobs.end()) left.backup_jobs.erase(it);
    } else if (op == "mount") {
      left.mounts.push_back(Field(r, "dir", where));
    } else if (op == "unmounted") {
      erase(&left.mounts, Field(r, "dir", where));
    } else if (op == "snapshot") {
      left.snapshots.push_back(Field(r, "record", where));
    } else if (op == "dropped" || op == "kept") {  // kept: the base of the next run
      erase(&left.snapshots, Field(r, "record", where));
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
                                            Logger* log, const std::string& nbd_dir) {
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
  for (const auto& [vm, dir] : left.backup_jobs) {
    if (!IsNbdSocketDir(nbd_dir, dir)) {
      failures += "; refusing backup job record of VM " + EscapeForTerminal(vm) + " with directory '" +
                  EscapeForTerminal(dir) + "': not one vmback makes (" + JoinPath(nbd_dir, "nbd-HEX") +
                  "), nothing done";
      continue;
    }
    if (!hv) {
      failures += std::string("; VM ") + vm + ": no libvirt connection to end its backup job with";
      continue;
    }
    try {
      hv->EndBackup(vm);
      done.push_back("ended the backup job of VM " + vm + " (begun by a run that did not finish)");
    } catch (const Error& e) {
      // Gone with its QEMU (the VM stopped), or ended already: nothing runs.
      log->Info("VM " + vm + ": no backup job to end (" + e.what() + ")");
    }
    try {
      env->RemoveTree(dir);
    } catch (const Error& e) {
      failures += std::string("; ") + e.what();
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
