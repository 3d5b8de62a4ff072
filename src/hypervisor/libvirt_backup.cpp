// libvirt's pull-mode backups and checkpoints (virDomainBackupBegin and
// friends) for the libvirt hypervisor (libvirt.cpp).
//
// Deadlines, as libvirt.cpp bounds the quiesce calls: none of these libvirt
// calls takes a timeout, so each runs on a thread of its own holding its own
// reference to the domain (and so to the connection), and the caller waits
// for it until kBackupCallTimeout. A call that misses it counts as failed and
// is left to finish on its (detached) thread, which undoes what it did: a
// backup job begun late is aborted (its export ended) and the checkpoint it
// made deleted, since no point will use them.
#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>

#include "hypervisor/libvirt_internal.h"
#include "util/error.h"

namespace vmback {
namespace libvirt_internal {

namespace {

using std::chrono::milliseconds;

// " (incremental from X, checkpoint Y)" for messages.
std::string BackupWords(const PullBackupSpec& spec) {
  std::string words;
  if (!spec.incremental.empty()) words += "incremental from '" + spec.incremental + "'";
  if (!spec.checkpoint.empty()) {
    words += (words.empty() ? "" : ", ") + std::string("checkpoint '") + spec.checkpoint + "'";
  }
  return words.empty() ? " (full)" : " (" + words + ")";
}

// ------------------------------------------------------------ bounded calls

std::mutex test_mu;
milliseconds test_timeout{0};                             // guarded by test_mu
std::map<std::string, milliseconds>* test_delays = nullptr;  // guarded by test_mu

milliseconds CallTimeout() {
  std::lock_guard<std::mutex> l(test_mu);
  return test_timeout.count() > 0 ? test_timeout : kBackupCallTimeout;
}

milliseconds TestDelay(const std::string& call) {
  std::lock_guard<std::mutex> l(test_mu);
  if (test_delays == nullptr) return milliseconds(0);
  auto it = test_delays->find(call);
  return it == test_delays->end() ? milliseconds(0) : it->second;
}

// What a call gave: rc < 0 is a failure, with libvirt's message and error
// code taken on the call's own thread (libvirt's last error is per thread).
struct Outcome {
  int rc = -1;
  int code = VIR_ERR_OK;
  std::string error;
  std::vector<std::string> names;  // ListCheckpoints
  bool lookup_failed = false;      // DeleteVmbackCheckpoint: rc < 0 from the lookup
};

Outcome Succeeded() { return Outcome{0, VIR_ERR_OK, "", {}, false}; }

Outcome Failed() {
  Outcome o;
  o.code = virGetLastErrorCode();
  o.error = LastError();
  return o;
}

struct PendingCall {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;       // guarded by mu
  bool abandoned = false;  // guarded by mu: the caller stopped waiting
  Outcome outcome;         // guarded by mu
};

// One libvirt call, for Bounded.
struct Call {
  const char* test_name;  // for SetBackupCallDelayForTesting
  const char* api;        // the libvirt function, for messages
  std::string what;       // "beginning a pull-mode backup (full)", for messages
  std::function<Outcome(virDomainPtr)> run;
  // Undoes a call that succeeded after the caller gave up (may be empty).
  std::function<void(virDomainPtr)> undo_late;
};

// Runs call on a thread of its own and waits for it until the deadline;
// throws Error "VM 'x': <what> (<api>) timed out after N ms" when it is
// missed. Returns what the call gave otherwise (the caller checks rc).
Outcome Bounded(virDomainPtr dom, const std::string& vm, Call call, milliseconds limit = milliseconds(0)) {
  const milliseconds timeout = limit.count() > 0 ? std::min(limit, CallTimeout()) : CallTimeout();
  const milliseconds delay = TestDelay(call.test_name);
  auto pending = std::make_shared<PendingCall>();
  if (virDomainRef(dom) < 0) return Failed();
  auto shared = std::make_shared<Call>(std::move(call));
  try {
    std::thread([pending, shared, dom, delay] {
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      Outcome outcome = shared->run(dom);
      const bool ok = outcome.rc >= 0;
      bool abandoned;
      {
        std::lock_guard<std::mutex> l(pending->mu);
        abandoned = pending->abandoned;
        // While the caller waits it holds a reference too, so this one is
        // not the last, and the caller alone decides when the domain (and
        // maybe the connection) goes.
        if (!abandoned) virDomainFree(dom);
        pending->done = true;
        pending->outcome = std::move(outcome);
        pending->cv.notify_all();
      }
      if (abandoned) {
        if (ok && shared->undo_late) shared->undo_late(dom);
        virDomainFree(dom);
      }
    }).detach();
  } catch (const std::system_error& e) {
    virDomainFree(dom);
    throw Error(ErrorKind::kOther, Quote(vm) + ": " + shared->what + ": cannot start a thread: " + e.what());
  }
  std::unique_lock<std::mutex> l(pending->mu);
  if (!pending->cv.wait_for(l, timeout, [&pending] { return pending->done; })) {
    pending->abandoned = true;
    throw Error(ErrorKind::kOther, Quote(vm) + ": " + shared->what + " (" + shared->api + ") timed out after " +
                                       std::to_string(timeout.count()) + " ms");
  }
  return std::move(pending->outcome);
}

}  // namespace

void SetBackupCallTimeoutForTesting(milliseconds timeout) {
  std::lock_guard<std::mutex> l(test_mu);
  test_timeout = timeout;
}

void SetBackupCallDelayForTesting(const std::string& call, milliseconds delay) {
  std::lock_guard<std::mutex> l(test_mu);
  if (test_delays == nullptr) test_delays = new std::map<std::string, milliseconds>();
  if (delay.count() > 0) {
    (*test_delays)[call] = delay;
  } else {
    test_delays->erase(call);
  }
}

void BeginPullBackup(virDomainPtr dom, const std::string& vm, const PullBackupSpec& spec, Logger* log) {
  const std::string backup = PullBackupXml(spec);
  const std::string checkpoint = spec.checkpoint.empty() ? "" : CheckpointXml(spec);
  const std::string checkpoint_name = spec.checkpoint;
  Call call{"backup-begin", "virDomainBackupBegin", "beginning a pull-mode backup" + BackupWords(spec),
            [backup, checkpoint](virDomainPtr d) {
              if (virDomainBackupBegin(d, backup.c_str(), checkpoint.empty() ? nullptr : checkpoint.c_str(),
                                       0) < 0)
                return Failed();
              return Succeeded();
            },
            // Nobody will read the export nor commit a point for the checkpoint.
            [checkpoint_name](virDomainPtr d) {
              virDomainAbortJob(d);
              if (checkpoint_name.empty()) return;
              CheckpointHandle cp(virDomainCheckpointLookupByName(d, checkpoint_name.c_str(), 0));
              if (cp != nullptr) virDomainCheckpointDelete(cp.get(), 0);
            }};
  Outcome o = Bounded(dom, vm, std::move(call), spec.timeout);
  if (o.rc < 0) {
    throw Error(ErrorKind::kOther, Quote(vm) + ": cannot begin a pull-mode backup" +
                                       BackupWords(spec) + ": " + o.error);
  }
  log->Debug(Quote(vm) + ": pull-mode backup begun" + BackupWords(spec));
}

void EndPullBackup(virDomainPtr dom, const std::string& vm) {
  // Only a backup job is aborted: a migration or a dump the VM runs is not
  // vmback's (a journal's job may have ended with its QEMU long ago).
  Outcome o = Bounded(dom, vm,
                      {"backup-end", "virDomainAbortJob", "ending its backup job",
                       [](virDomainPtr d) {
                         int type = VIR_DOMAIN_JOB_NONE;
                         virTypedParameterPtr params = nullptr;
                         int n = 0;
                         if (virDomainGetJobStats(d, &type, &params, &n, 0) < 0) return Failed();
                         int operation = -1;
                         const bool known =
                             virTypedParamsGetInt(params, n, VIR_DOMAIN_JOB_OPERATION, &operation) == 1;
                         virTypedParamsFree(params, n);
                         Outcome other;
                         other.rc = -2;
                         if (type == VIR_DOMAIN_JOB_NONE) {
                           other.error = "it runs no job";
                           return other;
                         }
                         if (known && operation != VIR_DOMAIN_JOB_OPERATION_BACKUP) {
                           other.error = "the job it runs is not a backup (operation " + std::to_string(operation) +
                                         "): left alone";
                           return other;
                         }
                         return virDomainAbortJob(d) < 0 ? Failed() : Succeeded();
                       },
                       nullptr});
  if (o.rc == -2) ThrowNotFound(Quote(vm) + ": no backup job to end: " + o.error);
  if (o.rc < 0) throw Error(ErrorKind::kOther, Quote(vm) + ": cannot end its backup job: " + o.error);
}

std::vector<std::string> ListCheckpoints(virDomainPtr dom, const std::string& vm) {
  Outcome o = Bounded(dom, vm,
                      {"checkpoint-list", "virDomainListAllCheckpoints", "listing its checkpoints",
                       [](virDomainPtr d) {
                         virDomainCheckpointPtr* list = nullptr;
                         int n = virDomainListAllCheckpoints(d, &list, 0);
                         if (n < 0) return Failed();
                         std::vector<CheckpointHandle> handles;
                         for (int i = 0; i < n; i++) handles.emplace_back(list[i]);
                         std::free(list);
                         Outcome out = Succeeded();
                         for (const CheckpointHandle& c : handles) {
                           const char* name = virDomainCheckpointGetName(c.get());
                           if (name != nullptr) out.names.push_back(name);
                         }
                         return out;
                       },
                       nullptr});
  if (o.rc < 0) throw Error(ErrorKind::kOther, Quote(vm) + ": cannot list its checkpoints: " + o.error);
  std::sort(o.names.begin(), o.names.end());
  return o.names;
}

void DeleteVmbackCheckpoint(virDomainPtr dom, const std::string& vm, const std::string& name) {
  Outcome o = Bounded(dom, vm,
                      {"checkpoint-delete", "virDomainCheckpointDelete", "deleting checkpoint '" + name + "'",
                       [name](virDomainPtr d) {
                         CheckpointHandle cp(virDomainCheckpointLookupByName(d, name.c_str(), 0));
                         if (cp == nullptr) {
                           Outcome lookup = Failed();
                           lookup.lookup_failed = true;
                           return lookup;
                         }
                         if (virDomainCheckpointDelete(cp.get(), 0) < 0) return Failed();
                         return Succeeded();
                       },
                       nullptr});
  const std::string what = Quote(vm) + ": checkpoint '" + name + "'";
  if (o.lookup_failed) {
    if (o.code == VIR_ERR_NO_DOMAIN_CHECKPOINT) ThrowNotFound(what + ": not there");
    throw Error(ErrorKind::kOther, what + ": cannot look it up: " + o.error);
  }
  if (o.rc < 0) throw Error(ErrorKind::kOther, Quote(vm) + ": cannot delete checkpoint '" + name + "': " + o.error);
}

}  // namespace libvirt_internal
}  // namespace vmback
