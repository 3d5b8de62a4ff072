// Hypervisor over the libvirt C API.
//
// Timeouts. virDomainFSFreeze, virDomainSuspend and the like take no timeout.
// virDomainQemuAgentCommand could bound the agent's fsfreeze, but it is
// QEMU-only (libvirt-qemu), bypasses libvirt's own freeze bookkeeping, and
// would not bound suspend or resume. So every call that changes a domain
// (fsfreeze, fsthaw, send-key, suspend, resume) runs on a thread of its own,
// holding its own reference to the domain (and so to the connection), and the
// caller waits for it until the deadline. A call that misses the deadline
// counts as failed; it is left to finish on its (detached) thread, which then
// undoes what it did: a late suspend is resumed, and a late fsfreeze is always
// followed by an fsthaw (libvirt may have given up on the agent while the
// guest still got the freeze). So a timed-out quiesce leaves nothing frozen or
// paused behind, only later than the deadline.
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include <algorithm>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "hypervisor/hypervisor.h"
#include "hypervisor/libvirt_internal.h"
#include "os/env.h"
#include "util/encoding.h"
#include "util/error.h"

namespace vmback {

namespace {

using namespace libvirt_internal;

using std::chrono::milliseconds;

// Alt+SysRq+S (emergency sync), as Linux input keycodes.
constexpr unsigned int kSysrqKeys[] = {56 /* KEY_LEFTALT */, 99 /* KEY_SYSRQ */, 31 /* KEY_S */};
constexpr unsigned int kSysrqHoldMs = 100;
// How long the guest gets to write its dirty pages after Alt+SysRq+S.
constexpr milliseconds kSysrqSyncWait{500};
// Bound on each call Recover makes (it has no timeout argument).
constexpr milliseconds kRecoverTimeout{30000};

void IgnoreLibvirtError(void*, virErrorPtr) {}

// Once per process: thread-safe libvirt, and no error text on stderr (every
// failure is reported through Error or the Logger instead).
void InitLibvirt() {
  static std::once_flag once;
  static int rc = 0;
  std::call_once(once, [] {
    rc = virInitialize();
    virSetErrorFunc(nullptr, IgnoreLibvirtError);
  });
  if (rc < 0) throw Error(ErrorKind::kOther, "libvirt: cannot initialize: " + LastError());
}

// ------------------------------------------------------------ bounded calls

enum class Op { kFreeze, kThaw, kSendKey, kSuspend, kResume };

const char* OpName(Op op) {
  switch (op) {
    case Op::kFreeze:
      return "fsfreeze";
    case Op::kThaw:
      return "fsthaw";
    case Op::kSendKey:
      return "send-key";
    case Op::kSuspend:
      return "suspend";
    case Op::kResume:
      return "resume";
  }
  return "?";
}

std::mutex test_delay_mu;
std::map<std::string, milliseconds>* test_delays = nullptr;  // guarded by test_delay_mu

milliseconds TestDelay(Op op) {
  std::lock_guard<std::mutex> l(test_delay_mu);
  if (test_delays == nullptr) return milliseconds(0);
  auto it = test_delays->find(OpName(op));
  return it == test_delays->end() ? milliseconds(0) : it->second;
}

int RunOp(virDomainPtr dom, Op op) {
  switch (op) {
    case Op::kFreeze:
      return virDomainFSFreeze(dom, nullptr, 0, 0);
    case Op::kThaw:
      return virDomainFSThaw(dom, nullptr, 0, 0);
    case Op::kSendKey: {
      unsigned int keys[] = {kSysrqKeys[0], kSysrqKeys[1], kSysrqKeys[2]};
      return virDomainSendKey(dom, VIR_KEYCODE_SET_LINUX, kSysrqHoldMs, keys, 3, 0);
    }
    case Op::kSuspend:
      return virDomainSuspend(dom);
    case Op::kResume:
      return virDomainResume(dom);
  }
  return -1;
}

// Undoes what a call that finished after its caller gave up did (see the top
// of this file). Runs on the call's own thread; nobody is left to tell.
void UndoLateCall(virDomainPtr dom, Op op, int rc) {
  if (op == Op::kFreeze) {
    virDomainFSThaw(dom, nullptr, 0, 0);
  } else if (op == Op::kSuspend && rc >= 0) {
    virDomainResume(dom);
  }
}

struct PendingCall {
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;       // guarded by mu
  bool abandoned = false;  // guarded by mu: the caller stopped waiting
  int rc = -1;             // guarded by mu
  std::string error;       // guarded by mu
};

struct CallResult {
  bool timed_out = false;
  int rc = -1;
  std::string error;  // libvirt's message when rc < 0
  bool ok() const { return !timed_out && rc >= 0; }
};

CallResult CallWithDeadline(virDomainPtr dom, Op op, milliseconds timeout) {
  auto call = std::make_shared<PendingCall>();
  const milliseconds delay = TestDelay(op);
  if (virDomainRef(dom) < 0) return CallResult{false, -1, LastError()};
  try {
    std::thread([call, dom, op, delay] {
      if (delay.count() > 0) std::this_thread::sleep_for(delay);
      int rc = RunOp(dom, op);
      std::string error = rc < 0 ? LastError() : std::string();
      bool abandoned;
      {
        std::lock_guard<std::mutex> l(call->mu);
        abandoned = call->abandoned;
        // While the caller waits it holds a reference too, so this one is
        // not the last, and the caller alone decides when the domain (and
        // maybe the connection) goes.
        if (!abandoned) virDomainFree(dom);
        call->done = true;
        call->rc = rc;
        call->error = std::move(error);
        call->cv.notify_all();
      }
      if (abandoned) {
        UndoLateCall(dom, op, rc);
        virDomainFree(dom);
      }
    }).detach();
  } catch (const std::system_error& e) {
    virDomainFree(dom);
    return CallResult{false, -1, std::string("cannot start a thread: ") + e.what()};
  }
  std::unique_lock<std::mutex> l(call->mu);
  auto done = [&call] { return call->done; };
  if (timeout.count() <= 0) {
    call->cv.wait(l, done);
  } else if (!call->cv.wait_for(l, timeout, done)) {
    call->abandoned = true;
    return CallResult{true, -1, ""};
  }
  return CallResult{false, call->rc, call->error};
}

// "VM 'x': <what> failed: <libvirt's message>" or "... timed out after N ms".
std::string CallFailure(const std::string& name, const std::string& what, const CallResult& r,
                        milliseconds timeout) {
  if (r.timed_out) {
    return Quote(name) + ": " + what + " timed out after " + std::to_string(timeout.count()) +
           " ms";
  }
  return Quote(name) + ": " + what + " failed: " + r.error;
}

// ------------------------------------------------------------ domain state

int DomainState(virDomainPtr dom, const std::string& name) {
  int state = VIR_DOMAIN_NOSTATE, reason = 0;
  if (virDomainGetState(dom, &state, &reason, 0) < 0) {
    throw Error(ErrorKind::kOther, Quote(name) + ": cannot get its state: " + LastError());
  }
  return state;
}

// Whether the domain has a live QEMU (running, paused, shutting down, ...).
bool IsLive(int state) { return state != VIR_DOMAIN_SHUTOFF && state != VIR_DOMAIN_NOSTATE; }

// A resume failed: fine if the domain is no longer paused after all (someone
// else resumed it, or it stopped). Returns whether it is.
bool NoLongerPaused(virDomainPtr dom, const std::string& name) {
  try {
    return DomainState(dom, name) != VIR_DOMAIN_PAUSED;
  } catch (const Error&) {
    return false;
  }
}

// ------------------------------------------------------------ the guard

class LibvirtQuiescedVm : public QuiescedVm {
 public:
  LibvirtQuiescedVm(DomainHandle dom, std::string name, QuiesceMethod method, milliseconds timeout,
                    Logger* log)
      : dom_(std::move(dom)),
        name_(std::move(name)),
        method_(method),
        timeout_(timeout),
        log_(log) {}

  LibvirtQuiescedVm(const LibvirtQuiescedVm&) = delete;
  LibvirtQuiescedVm& operator=(const LibvirtQuiescedVm&) = delete;

  ~LibvirtQuiescedVm() override {
    try {
      Release();
    } catch (const Error& e) {
      log_->Error(e.what());  // names the VM
    } catch (const std::exception& e) {
      log_->Error(Quote(name_) + ": releasing the quiesce failed: " + e.what());
    } catch (...) {
      log_->Error(Quote(name_) + ": releasing the quiesce failed");
    }
  }

  void Release() override {
    if (released_) return;
    released_ = true;  // one attempt: a failed undo is reported, not retried
    switch (method_) {
      case QuiesceMethod::kAgent: {
        CallResult r = CallWithDeadline(dom_.get(), Op::kThaw, timeout_);
        if (!r.ok()) {
          throw Error(ErrorKind::kOther,
                      CallFailure(name_, "thawing the guest file systems", r, timeout_) +
                          " (the guest may still be frozen)");
        }
        log_->Debug(Quote(name_) + ": thawed " + Counted(r.rc, "guest file system"));
        return;
      }
      case QuiesceMethod::kSysrq:
      case QuiesceMethod::kSuspend: {
        CallResult r = CallWithDeadline(dom_.get(), Op::kResume, timeout_);
        if (r.ok()) {
          log_->Debug(Quote(name_) + ": resumed");
          return;
        }
        if (!r.timed_out && NoLongerPaused(dom_.get(), name_)) {
          log_->Warn(Quote(name_) + " was no longer paused when the backup resumed it");
          return;
        }
        throw Error(ErrorKind::kOther,
                    CallFailure(name_, "resume", r, timeout_) + " (the VM may still be paused)");
      }
      case QuiesceMethod::kAuto:
      case QuiesceMethod::kNone:
        return;
    }
  }

  QuiesceMethod method() const override { return method_; }
  const std::string& name() const override { return name_; }

 private:
  DomainHandle dom_;
  const std::string name_;
  const QuiesceMethod method_;
  const milliseconds timeout_;
  Logger* const log_;
  bool released_ = false;
};

// ------------------------------------------------------------ the hypervisor

Logger* StderrLogger() {
  static Logger* log = new Logger();
  return log;
}

class LibvirtHypervisor : public Hypervisor {
 public:
  // Without a Logger, messages go to a process-wide one for stderr (guards
  // may outlive this object, so it is never destroyed).
  LibvirtHypervisor(virConnectPtr conn, Logger* log)
      : conn_(conn), log_(log != nullptr ? log : StderrLogger()) {}
  LibvirtHypervisor(const LibvirtHypervisor&) = delete;
  LibvirtHypervisor& operator=(const LibvirtHypervisor&) = delete;

  // Guards still alive hold domain references, which keep the connection
  // open until they are gone.
  ~LibvirtHypervisor() override { virConnectClose(conn_); }

  DomainInfo Domain(const std::string& name) override {
    DomainHandle dom = Lookup(name);
    return Describe(dom.get(), name);
  }

  std::vector<DomainInfo> Domains() override {
    virDomainPtr* list = nullptr;
    int n = virConnectListAllDomains(conn_, &list, 0);
    if (n < 0) throw Error(ErrorKind::kOther, "libvirt: cannot list domains: " + LastError());
    std::vector<DomainHandle> doms;
    for (int i = 0; i < n; i++) doms.emplace_back(list[i]);
    std::free(list);

    std::vector<DomainInfo> infos;
    for (const DomainHandle& dom : doms) {
      const char* name = virDomainGetName(dom.get());
      try {
        infos.push_back(Describe(dom.get(), name != nullptr ? name : "?"));
      } catch (const Error&) {
        if (virGetLastErrorCode() != VIR_ERR_NO_DOMAIN) throw;
        // Undefined since it was listed: it is no longer one of the domains.
      }
    }
    std::sort(infos.begin(), infos.end(),
              [](const DomainInfo& a, const DomainInfo& b) { return a.name < b.name; });
    return infos;
  }

  std::unique_ptr<QuiescedVm> Quiesce(const std::string& name, QuiesceMethod method,
                                      milliseconds timeout) override {
    DomainHandle dom = Lookup(name);
    if (method == QuiesceMethod::kNone) return Guard(std::move(dom), name, method, timeout);
    int state = DomainState(dom.get(), name);
    if (!IsLive(state)) {
      log_->Info(Quote(name) + " is not running; not quiesced");
      return Guard(std::move(dom), name, QuiesceMethod::kNone, timeout);
    }
    if (state == VIR_DOMAIN_PAUSED || state == VIR_DOMAIN_PMSUSPENDED) {
      log_->Info(Quote(name) + " is already paused; left as it is (not resumed afterwards)");
      return Guard(std::move(dom), name, QuiesceMethod::kNone, timeout);
    }

    switch (method) {
      case QuiesceMethod::kAgent:
        Freeze(dom.get(), name, timeout);
        break;
      case QuiesceMethod::kSysrq:
        SyncAndSuspend(dom.get(), name, timeout);
        break;
      case QuiesceMethod::kSuspend:
        Suspend(dom.get(), name, timeout);
        break;
      case QuiesceMethod::kAuto:
        try {
          Freeze(dom.get(), name, timeout);
          method = QuiesceMethod::kAgent;
        } catch (const Error& agent_error) {
          log_->Info(std::string(agent_error.what()) + "; falling back to sysrq and suspend");
          try {
            SyncAndSuspend(dom.get(), name, timeout);
          } catch (const Error& e) {
            throw Error(e.kind(), std::string(e.what()) + " (after the guest agent failed too)");
          }
          method = QuiesceMethod::kSysrq;
        }
        break;
      case QuiesceMethod::kNone:
        break;
    }
    log_->Info(Quote(name) + " quiesced (" + QuiesceMethodName(method) + ")");
    return Guard(std::move(dom), name, method, timeout);
  }

  void Recover(const std::string& name, QuiesceMethod method) override {
    DomainHandle dom = Lookup(name);
    int state = DomainState(dom.get(), name);
    if (method == QuiesceMethod::kNone) return;
    if (!IsLive(state)) {
      log_->Info(Quote(name) + " is not running; nothing to recover");
      return;
    }
    const bool resume = method == QuiesceMethod::kSysrq || method == QuiesceMethod::kSuspend ||
                        method == QuiesceMethod::kAuto;
    const bool thaw = method == QuiesceMethod::kAgent || method == QuiesceMethod::kAuto;

    // Resume first: a paused guest cannot be thawed.
    if (resume && state == VIR_DOMAIN_PAUSED) {
      CallResult r = CallWithDeadline(dom.get(), Op::kResume, kRecoverTimeout);
      if (r.ok()) {
        log_->Info(Quote(name) + ": resumed (an interrupted backup had paused it)");
      } else if (r.timed_out || !NoLongerPaused(dom.get(), name)) {
        throw Error(ErrorKind::kOther, CallFailure(name, "resume", r, kRecoverTimeout) +
                                           " (left paused by an interrupted backup)");
      }
    }
    if (thaw) {
      CallResult r = CallWithDeadline(dom.get(), Op::kThaw, kRecoverTimeout);
      if (r.ok()) {
        if (r.rc > 0) {
          log_->Info(Quote(name) + ": thawed " + Counted(r.rc, "guest file system") +
                     " an interrupted backup had frozen");
        }
      } else if (method == QuiesceMethod::kAgent) {
        log_->Warn(CallFailure(name, "thawing the guest file systems", r, kRecoverTimeout) +
                   " (an interrupted backup had frozen them; check the guest)");
      } else {
        // kAuto: the run may never have used the agent.
        log_->Debug(CallFailure(name, "thawing the guest file systems", r, kRecoverTimeout));
      }
    }
  }

  // No deadline: these calls only start or stop a job in libvirt, they do not
  // wait for the guest (its agent) as fsfreeze does (libvirt_backup.cpp).
  void BeginBackup(const std::string& vm, const PullBackupSpec& spec) override {
    BeginPullBackup(Lookup(vm).get(), vm, spec, log_);
  }
  void EndBackup(const std::string& vm) override { EndPullBackup(Lookup(vm).get(), vm); }
  std::vector<std::string> Checkpoints(const std::string& vm) override { return ListCheckpoints(Lookup(vm).get(), vm); }
  void DeleteCheckpoint(const std::string& vm, const std::string& name) override {
    if (!IsVmbackCheckpoint(name))
      throw Error(ErrorKind::kOther, Quote(vm) + ": checkpoint '" + name + "' was not made by vmback; left alone");
    DeleteVmbackCheckpoint(Lookup(vm).get(), vm, name);
  }

  std::string DefineDomain(const std::string& xml) override {
    const std::string name = DomainNameOf(xml, "domain XML to define");
    DomainHandle existing(virDomainLookupByName(conn_, name.c_str()));
    if (existing != nullptr)
      throw Error(ErrorKind::kConfig, Quote(name) + ": a domain of that name exists already; not redefined");
    DomainHandle dom(virDomainDefineXML(conn_, xml.c_str()));
    if (dom == nullptr) throw Error(ErrorKind::kOther, Quote(name) + ": libvirt would not define it: " + LastError());
    const char* defined = virDomainGetName(dom.get());
    return defined != nullptr ? defined : name;
  }

  void StartDomain(const std::string& vm) override {
    if (virDomainCreate(Lookup(vm).get()) != 0)
      throw Error(ErrorKind::kOther, Quote(vm) + ": libvirt would not start it: " + LastError());
  }

  void RemoveDomain(const std::string& vm) override {
    DomainHandle dom = Lookup(vm);
    if (IsLive(DomainState(dom.get(), vm)) && virDomainDestroy(dom.get()) != 0)
      throw Error(ErrorKind::kOther, Quote(vm) + ": libvirt would not force it off: " + LastError());
    if (virDomainIsPersistent(dom.get()) == 1 &&
        virDomainUndefineFlags(dom.get(), VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA) != 0)
      throw Error(ErrorKind::kOther, Quote(vm) + ": libvirt would not undefine it: " + LastError());
  }

  static constexpr int kPivotTries = 60;  // a second apart, once the copy has caught up

  void CopyDiskAndPivot(const std::string& vm, const std::string& target, const std::string& dest,
                        const std::string& format, const std::atomic<bool>* cancel,
                        const std::function<void(uint64_t, uint64_t)>& progress) override {
    DomainHandle dom = Lookup(vm);
    const std::string what = Quote(vm) + ": copying disk " + target + " to " + dest;
    const std::string xml = "<disk type='file'><source file='" + XmlEscape(dest, "the copy's path") +
                            "'/><driver type='" + XmlEscape(format, "the copy's format") + "'/></disk>";
    if (virDomainBlockCopy(dom.get(), target.c_str(), xml.c_str(), nullptr, 0,
                           VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB) != 0)
      throw Error(ErrorKind::kOther, what + ": libvirt would not start the copy: " + LastError());
    auto abort = [&] { virDomainBlockJobAbort(dom.get(), target.c_str(), 0); };
    for (int pivot_tries = 0;;) {
      virDomainBlockJobInfo info{};
      const int rc = virDomainGetBlockJobInfo(dom.get(), target.c_str(), &info, 0);
      if (rc < 0) {
        const std::string error = LastError();
        abort();
        throw Error(ErrorKind::kOther, what + ": cannot follow the copy: " + error);
      }
      if (rc == 0) throw Error(ErrorKind::kOther, what + ": the copy ended before it could be pivoted");
      if (progress) progress(info.cur, info.end);
      if (cancel != nullptr && cancel->load()) {
        abort();
        throw Error(ErrorKind::kOther, what + ": stopped by a signal; the VM stays on its disk");
      }
      // Caught up: pivot, which libvirt refuses until QEMU says the mirror
      // is ready (a moment after cur reaches end): then try again.
      if (info.end > 0 && info.cur == info.end) {
        if (virDomainBlockJobAbort(dom.get(), target.c_str(), VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT) == 0) return;
        const std::string error = LastError();
        if (++pivot_tries >= kPivotTries) {
          abort();
          throw Error(ErrorKind::kOther, what + ": libvirt would not pivot onto the copy: " + error);
        }
      }
      SleepFor(std::chrono::seconds(1));
    }
  }

 private:
  std::unique_ptr<QuiescedVm> Guard(DomainHandle dom, const std::string& name, QuiesceMethod method,
                                    milliseconds timeout) {
    return std::make_unique<LibvirtQuiescedVm>(std::move(dom), name, method, timeout, log_);
  }

  DomainHandle Lookup(const std::string& name) {
    DomainHandle dom(virDomainLookupByName(conn_, name.c_str()));
    if (dom == nullptr) {
      if (virGetLastErrorCode() == VIR_ERR_NO_DOMAIN) {
        ThrowNotFound(Quote(name) + ": no such libvirt domain");
      }
      throw Error(ErrorKind::kOther, Quote(name) + ": cannot look it up: " + LastError());
    }
    return dom;
  }

  DomainInfo Describe(virDomainPtr dom, const std::string& name) {
    DomainInfo info;
    info.name = name;
    int state = DomainState(dom, name);
    info.running = IsLive(state);
    info.paused = state == VIR_DOMAIN_PAUSED;
    char* xml = virDomainGetXMLDesc(dom, 0);
    if (xml == nullptr) {
      throw Error(ErrorKind::kOther, Quote(name) + ": cannot get its XML: " + LastError());
    }
    std::string text(xml);
    std::free(xml);
    info.disks = DisksFromDomainXml(text, name);
    for (const auto& d : info.disks) info.disk_sources.push_back(d.source);
    info.config_xml = std::move(text);
    if (virDomainIsPersistent(dom) == 1 && info.running) {  // else the live XML is the definition
      char* inactive = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
      if (inactive == nullptr)
        throw Error(ErrorKind::kOther, Quote(name) + ": cannot get its persistent XML: " + LastError());
      info.config_xml = inactive;
      std::free(inactive);
    }
    return info;
  }

  // Guest agent fsfreeze; throws if it fails or times out.
  void Freeze(virDomainPtr dom, const std::string& name, milliseconds timeout) {
    CallResult r = CallWithDeadline(dom, Op::kFreeze, timeout);
    if (!r.ok()) {
      std::string message = CallFailure(name, "guest agent fsfreeze", r, timeout);
      if (r.timed_out) message += " (it will be thawed if it completes later)";
      throw Error(ErrorKind::kOther, message);
    }
    log_->Debug(Quote(name) + ": froze " + Counted(r.rc, "guest file system"));
  }

  // Suspend; throws if it fails or times out (a late suspend is undone).
  void Suspend(virDomainPtr dom, const std::string& name, milliseconds timeout) {
    CallResult r = CallWithDeadline(dom, Op::kSuspend, timeout);
    if (!r.ok()) {
      std::string message = CallFailure(name, "suspend", r, timeout);
      if (r.timed_out) message += " (it will be resumed if it completes later)";
      throw Error(ErrorKind::kOther, message);
    }
  }

  // Alt+SysRq+S, a pause for the guest to write its dirty pages, suspend.
  void SyncAndSuspend(virDomainPtr dom, const std::string& name, milliseconds timeout) {
    CallResult r = CallWithDeadline(dom, Op::kSendKey, timeout);
    if (!r.ok())
      throw Error(ErrorKind::kOther, CallFailure(name, "send-key Alt+SysRq+S", r, timeout));
    std::this_thread::sleep_for(kSysrqSyncWait);
    Suspend(dom, name, timeout);
  }

  virConnectPtr conn_;
  Logger* const log_;
};

}  // namespace

void SetLibvirtCallDelayForTesting(const std::string& call, milliseconds delay) {
  std::lock_guard<std::mutex> l(test_delay_mu);
  if (test_delays == nullptr) test_delays = new std::map<std::string, milliseconds>();
  if (delay.count() > 0) {
    (*test_delays)[call] = delay;
  } else {
    test_delays->erase(call);
  }
}

QuiesceMethod ParseQuiesceMethod(const std::string& text) {
  static const QuiesceMethod kAll[] = {QuiesceMethod::kAuto, QuiesceMethod::kAgent,
                                       QuiesceMethod::kSysrq, QuiesceMethod::kSuspend,
                                       QuiesceMethod::kNone};
  for (QuiesceMethod m : kAll) {
    if (text == QuiesceMethodName(m)) return m;
  }
  ThrowConfig("unknown quiesce method '" + text +
              "' (expected auto, agent, sysrq, suspend or none)");
}

const char* QuiesceMethodName(QuiesceMethod m) {
  switch (m) {
    case QuiesceMethod::kAuto:
      return "auto";
    case QuiesceMethod::kAgent:
      return "agent";
    case QuiesceMethod::kSysrq:
      return "sysrq";
    case QuiesceMethod::kSuspend:
      return "suspend";
    case QuiesceMethod::kNone:
      return "none";
  }
  return "?";
}

std::unique_ptr<Hypervisor> ConnectLibvirt(const std::string& uri, Logger* log) {
  InitLibvirt();
  virConnectPtr conn = virConnectOpen(uri.c_str());
  if (conn == nullptr) {
    throw Error(ErrorKind::kOther, "libvirt: cannot connect to '" + uri + "': " + LastError());
  }
  return std::make_unique<LibvirtHypervisor>(conn, log);
}

}  // namespace vmback
